/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * test_fdqueue.c - unit tests for the listener-to-worker queue (fdqueue.h).
 *
 * Threads stand in for workers.  Where a test must know that a popper is
 * blocked, it polls ev2_fdq_idle() with a bounded wait (never a bare sleep
 * followed by an assumption); the runner's alarm() catches a hang.  Every
 * test ends with the queue empty, no popper left, and its pool destroyed.
 */

#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>

#include <apr_atomic.h>
#include <apr_pools.h>
#include <apr_thread_proc.h>
#include <apr_time.h>

#include "fdqueue.h"
#include "tap.h"

/* A stand-in for what the listener hands over. */
typedef struct item_t {
    ev2_fdq_elem_t elem;
    int id;
} item_t;

#define ITEM_OF(e) ((item_t *)((char *)(e) - offsetof(item_t, elem)))

/* One thread that pops once. */
typedef struct popper_t {
    ev2_fdq_t *q;
    apr_thread_t *thread;
    apr_status_t rv;
    ev2_fdq_elem_t *got;
    volatile apr_uint32_t is_done;
} popper_t;

static apr_pool_t *new_pool(void)
{
    apr_pool_t *p = NULL;

    require(apr_pool_create(&p, NULL) == APR_SUCCESS);
    return p;
}

static ev2_fdq_t *new_queue(unsigned int max_pools, apr_pool_t *p)
{
    ev2_fdq_t *q = NULL;

    require_is(ev2_fdq_create(&q, max_pools, p), APR_SUCCESS);
    require(q != NULL);
    return q;
}

/* The common ending: nothing queued, nobody waiting, pool gone. */
static void finish(ev2_fdq_t *q, apr_pool_t *p)
{
    is(ev2_fdq_pending(q), 0);
    is(ev2_fdq_idle(q), 0);
    apr_pool_destroy(p);
}

static void init_items(item_t *it, int n)
{
    int i;

    for (i = 0; i < n; i++) {
        it[i].id = i;
        it[i].elem.next = NULL;
    }
}

static void *APR_THREAD_FUNC popper_main(apr_thread_t *thd, void *data)
{
    popper_t *pp = data;

    (void)thd;
    pp->rv = ev2_fdq_pop(pp->q, &pp->got);
    apr_atomic_set32(&pp->is_done, 1);
    return NULL;
}

static void start_popper(popper_t *pp, ev2_fdq_t *q, apr_pool_t *p)
{
    pp->q = q;
    pp->rv = APR_EGENERAL;
    pp->got = NULL;
    apr_atomic_set32(&pp->is_done, 0);
    require_is(apr_thread_create(&pp->thread, NULL, popper_main, pp, p),
               APR_SUCCESS);
}

static void join(apr_thread_t *thread)
{
    apr_status_t thread_rv;

    is(apr_thread_join(&thread_rv, thread), APR_SUCCESS);
}

/* Half the test's time limit: how long a bounded wait may take. */
static apr_interval_time_t half_test_time(void)
{
    return (apr_interval_time_t)(tap_timeout_s() * APR_USEC_PER_SEC / 2);
}

/* Poll until *v >= want, for at most max_wait; returns whether it got
 * there. */
static int wait_for_count(volatile apr_uint32_t *v, apr_uint32_t want,
                          apr_interval_time_t max_wait)
{
    apr_time_t limit = apr_time_now() + max_wait;

    while (apr_atomic_read32(v) < want) {
        if (apr_time_now() > limit) {
            return 0;
        }
        apr_sleep(1000);
    }
    return 1;
}

/* Poll until ev2_fdq_idle(q) == want, for at most half the test's time
 * limit; returns whether it got there. */
static int wait_for_idle(ev2_fdq_t *q, int want)
{
    apr_time_t limit = apr_time_now() + half_test_time();

    while (ev2_fdq_idle(q) != want) {
        if (apr_time_now() > limit) {
            is(ev2_fdq_idle(q), want);
            return 0;
        }
        apr_sleep(1000);
    }
    return 1;
}

static void push_pop_is_fifo(void)
{
    apr_pool_t *p = new_pool();
    ev2_fdq_t *q = new_queue(0, p);
    item_t it[10];
    ev2_fdq_elem_t *e;
    int i;

    init_items(it, 10);
    is(ev2_fdq_pending(q), 0);
    for (i = 0; i < 10; i++) {
        is(ev2_fdq_push(q, &it[i].elem), APR_SUCCESS);
        is(ev2_fdq_pending(q), i + 1);
    }
    for (i = 0; i < 10; i++) {
        require_is(ev2_fdq_pop(q, &e), APR_SUCCESS);
        require(e != NULL);
        is(ITEM_OF(e)->id, i);
        is(ev2_fdq_pending(q), 9 - i);
    }

    /* Interleaved pushes and pops keep the order too. */
    ev2_fdq_push(q, &it[0].elem);
    ev2_fdq_push(q, &it[1].elem);
    require_is(ev2_fdq_pop(q, &e), APR_SUCCESS);
    is_ptr(e, &it[0].elem);
    ev2_fdq_push(q, &it[2].elem);
    require_is(ev2_fdq_pop(q, &e), APR_SUCCESS);
    is_ptr(e, &it[1].elem);
    require_is(ev2_fdq_pop(q, &e), APR_SUCCESS);
    is_ptr(e, &it[2].elem);
    finish(q, p);
}

static void pop_blocks_until_push(void)
{
    apr_pool_t *p = new_pool();
    ev2_fdq_t *q = new_queue(0, p);
    popper_t pp;
    item_t it[1];

    init_items(it, 1);
    start_popper(&pp, q, p);
    require(wait_for_idle(q, 1));
    /* Blocked, and stays blocked while nothing is pushed. */
    apr_sleep(apr_time_from_msec(50));
    is(apr_atomic_read32(&pp.is_done), 0);
    is(ev2_fdq_idle(q), 1);

    is(ev2_fdq_push(q, &it[0].elem), APR_SUCCESS);
    join(pp.thread);
    is(pp.rv, APR_SUCCESS);
    is_ptr(pp.got, &it[0].elem);
    finish(q, p);
}

static void idle_is_zero_with_nobody_waiting(void)
{
    apr_pool_t *p = new_pool();
    ev2_fdq_t *q = new_queue(0, p);

    is(ev2_fdq_idle(q), 0);
    ev2_fdq_interrupt_all(q);
    is(ev2_fdq_idle(q), 0);
    finish(q, p);
}

static void idle_counts_blocked_poppers(void)
{
    enum { K = 4 };
    apr_pool_t *p = new_pool();
    ev2_fdq_t *q = new_queue(0, p);
    popper_t pp[K];
    item_t it[K];
    int i;

    init_items(it, K);
    for (i = 0; i < K; i++) {
        start_popper(&pp[i], q, p);
        require(wait_for_idle(q, i + 1));
    }
    is(ev2_fdq_idle(q), K);

    /* Each push takes one idle worker at once, before anyone wakes. */
    for (i = 0; i < K; i++) {
        is(ev2_fdq_push(q, &it[i].elem), APR_SUCCESS);
        is(ev2_fdq_idle(q), K - 1 - i);
    }
    for (i = 0; i < K; i++) {
        join(pp[i].thread);
        is(pp[i].rv, APR_SUCCESS);
        ok(pp[i].got != NULL);
    }
    finish(q, p);
}

static void idle_goes_negative_with_surplus_items(void)
{
    apr_pool_t *p = new_pool();
    ev2_fdq_t *q = new_queue(0, p);
    popper_t pp[2];
    item_t it[5];
    ev2_fdq_elem_t *e;
    int i;

    init_items(it, 5);
    start_popper(&pp[0], q, p);
    start_popper(&pp[1], q, p);
    require(wait_for_idle(q, 2));

    for (i = 0; i < 5; i++) {
        ev2_fdq_push(q, &it[i].elem);
    }
    /* Two waiters take two items; three stay queued. */
    join(pp[0].thread);
    join(pp[1].thread);
    is(ev2_fdq_idle(q), -3);
    is(ev2_fdq_pending(q), 3);
    ok(pp[0].rv == APR_SUCCESS && pp[1].rv == APR_SUCCESS);

    /* A popper that finds work never counts as waiting. */
    for (i = 0; i < 3; i++) {
        require_is(ev2_fdq_pop(q, &e), APR_SUCCESS);
        is(ev2_fdq_idle(q), -2 + i);
    }
    finish(q, p);
}

/* Spins on ev2_fdq_idle() until told to stop, noting values out of range. */
typedef struct idle_watch_t {
    ev2_fdq_t *q;
    int lowest_allowed, highest_allowed;
    volatile apr_uint32_t should_stop;
    volatile apr_uint32_t out_of_range;
    int last_bad;
} idle_watch_t;

static void *APR_THREAD_FUNC idle_watch_main(apr_thread_t *thd, void *data)
{
    idle_watch_t *w = data;

    (void)thd;
    while (!apr_atomic_read32(&w->should_stop)) {
        int idle = ev2_fdq_idle(w->q);

        if (idle < w->lowest_allowed || idle > w->highest_allowed) {
            w->last_bad = idle;
            apr_atomic_inc32(&w->out_of_range);
        }
    }
    return NULL;
}

static void idle_snapshot_never_shows_transient_values(void)
{
    enum { K = 4, ROUNDS = 300 };
    apr_pool_t *p = new_pool();
    ev2_fdq_t *q = new_queue(0, p);
    idle_watch_t w = { 0 };
    apr_thread_t *watcher;
    popper_t pp[K];
    item_t it[K];
    int round, i;

    init_items(it, K);
    /* Never more items than waiters, so the true value stays in 0..K; a
     * reader without the lock must never see anything else. */
    w.q = q;
    w.lowest_allowed = 0;
    w.highest_allowed = K;
    require_is(apr_thread_create(&watcher, NULL, idle_watch_main, &w, p),
               APR_SUCCESS);
    for (round = 0; round < ROUNDS; round++) {
        for (i = 0; i < K; i++) {
            start_popper(&pp[i], q, p);
        }
        require(wait_for_idle(q, K));
        for (i = 0; i < K; i++) {
            ev2_fdq_push(q, &it[i].elem);
        }
        for (i = 0; i < K; i++) {
            join(pp[i].thread);
        }
        if (apr_atomic_read32(&w.out_of_range)) {
            break;
        }
    }
    apr_atomic_set32(&w.should_stop, 1);
    join(watcher);
    is(apr_atomic_read32(&w.out_of_range), 0);
    if (apr_atomic_read32(&w.out_of_range)) {
        is(w.last_bad, 0);
    }
    finish(q, p);
}

static void interrupt_all_wakes_every_popper_with_eintr(void)
{
    enum { K = 5 };
    apr_pool_t *p = new_pool();
    ev2_fdq_t *q = new_queue(0, p);
    popper_t pp[K];
    int i;

    for (i = 0; i < K; i++) {
        start_popper(&pp[i], q, p);
    }
    require(wait_for_idle(q, K));
    is(ev2_fdq_interrupt_all(q), APR_SUCCESS);
    for (i = 0; i < K; i++) {
        join(pp[i].thread);
        is(pp[i].rv, APR_EINTR);
        is_ptr(pp[i].got, NULL);
    }
    finish(q, p);
}

static void interrupt_all_does_not_affect_later_poppers(void)
{
    apr_pool_t *p = new_pool();
    ev2_fdq_t *q = new_queue(0, p);
    popper_t pp;
    item_t it[2];
    ev2_fdq_elem_t *e;

    init_items(it, 2);
    /* With nobody waiting, an interrupt is not remembered. */
    ev2_fdq_interrupt_all(q);
    ev2_fdq_push(q, &it[0].elem);
    is(ev2_fdq_pop(q, &e), APR_SUCCESS);
    is_ptr(e, &it[0].elem);

    start_popper(&pp, q, p);
    require(wait_for_idle(q, 1));
    apr_sleep(apr_time_from_msec(20));
    is(apr_atomic_read32(&pp.is_done), 0);
    ev2_fdq_push(q, &it[1].elem);
    join(pp.thread);
    is(pp.rv, APR_SUCCESS);
    is_ptr(pp.got, &it[1].elem);

    /* Interrupt one round, then a fresh round blocks again normally. */
    start_popper(&pp, q, p);
    require(wait_for_idle(q, 1));
    ev2_fdq_interrupt_all(q);
    join(pp.thread);
    is(pp.rv, APR_EINTR);
    start_popper(&pp, q, p);
    require(wait_for_idle(q, 1));
    apr_sleep(apr_time_from_msec(20));
    is(apr_atomic_read32(&pp.is_done), 0);
    ev2_fdq_term(q);
    join(pp.thread);
    is(pp.rv, APR_EOF);
    finish(q, p);
}

static void term_wakes_every_popper_with_eof(void)
{
    enum { K = 5 };
    apr_pool_t *p = new_pool();
    ev2_fdq_t *q = new_queue(0, p);
    popper_t pp[K];
    ev2_fdq_elem_t *e = (ev2_fdq_elem_t *)&e;
    int i;

    for (i = 0; i < K; i++) {
        start_popper(&pp[i], q, p);
    }
    require(wait_for_idle(q, K));
    is(ev2_fdq_term(q), APR_SUCCESS);
    for (i = 0; i < K; i++) {
        join(pp[i].thread);
        is(pp[i].rv, APR_EOF);
        is_ptr(pp[i].got, NULL);
    }

    /* For ever after, without blocking. */
    is(ev2_fdq_pop(q, &e), APR_EOF);
    is_ptr(e, NULL);
    is(ev2_fdq_pop(q, &e), APR_EOF);
    /* An interrupt after term does not turn EOF into EINTR. */
    ev2_fdq_interrupt_all(q);
    is(ev2_fdq_pop(q, &e), APR_EOF);
    finish(q, p);
}

static void term_still_delivers_items_queued_before_it(void)
{
    apr_pool_t *p = new_pool();
    ev2_fdq_t *q = new_queue(0, p);
    item_t it[3];
    ev2_fdq_elem_t *e;
    int i;

    init_items(it, 3);
    for (i = 0; i < 3; i++) {
        ev2_fdq_push(q, &it[i].elem);
    }
    ev2_fdq_term(q);
    is(ev2_fdq_pending(q), 3);
    for (i = 0; i < 3; i++) {
        require_is(ev2_fdq_pop(q, &e), APR_SUCCESS);
        is_ptr(e, &it[i].elem);
    }
    is(ev2_fdq_pop(q, &e), APR_EOF);
    finish(q, p);
}

static void push_after_term_returns_eof(void)
{
    apr_pool_t *p = new_pool();
    ev2_fdq_t *q = new_queue(0, p);
    item_t it[1];
    ev2_fdq_elem_t *e;

    init_items(it, 1);
    ev2_fdq_term(q);
    is(ev2_fdq_push(q, &it[0].elem), APR_EOF);
    is(ev2_fdq_pending(q), 0);
    is(ev2_fdq_idle(q), 0);
    is(ev2_fdq_pop(q, &e), APR_EOF);
    finish(q, p);
}

/* ---- pool recycling ---- */

static apr_status_t count_cleanup(void *data)
{
    (*(int *)data)++;
    return APR_SUCCESS;
}

static void pool_get_on_empty_returns_null(void)
{
    apr_pool_t *p = new_pool();
    ev2_fdq_t *q = new_queue(4, p);

    is_ptr(ev2_fdq_pool_get(q), NULL);
    ev2_fdq_pool_drain(q);
    is_ptr(ev2_fdq_pool_get(q), NULL);
    finish(q, p);
}

static void pool_put_clears_and_get_returns_it(void)
{
    apr_pool_t *p = new_pool();
    ev2_fdq_t *q = new_queue(4, p);
    apr_pool_t *ptrans, *got;
    int cleared = 0;
    char *mem;

    require_is(apr_pool_create(&ptrans, p), APR_SUCCESS);
    apr_pool_cleanup_register(ptrans, &cleared, count_cleanup,
                              apr_pool_cleanup_null);
    is(ev2_fdq_pool_put(q, ptrans), APR_SUCCESS);
    is(cleared, 1);

    got = ev2_fdq_pool_get(q);
    is_ptr(got, ptrans);
    is_ptr(ev2_fdq_pool_get(q), NULL);
    /* The pool is usable again. */
    mem = apr_pcalloc(got, 100);
    ok(mem != NULL);

    /* Last in, first out. */
    {
        apr_pool_t *a, *b;

        require_is(apr_pool_create(&a, p), APR_SUCCESS);
        require_is(apr_pool_create(&b, p), APR_SUCCESS);
        is(ev2_fdq_pool_put(q, a), APR_SUCCESS);
        is(ev2_fdq_pool_put(q, b), APR_SUCCESS);
        is_ptr(ev2_fdq_pool_get(q), b);
        is_ptr(ev2_fdq_pool_get(q), a);
        apr_pool_destroy(a);
        apr_pool_destroy(b);
    }
    apr_pool_destroy(got);
    finish(q, p);
}

static void pool_put_over_cap_returns_eagain(void)
{
    apr_pool_t *p = new_pool();
    ev2_fdq_t *q = new_queue(2, p);
    apr_pool_t *pools[3];
    int i;

    for (i = 0; i < 3; i++) {
        require_is(apr_pool_create(&pools[i], p), APR_SUCCESS);
    }
    is(ev2_fdq_pool_put(q, pools[0]), APR_SUCCESS);
    is(ev2_fdq_pool_put(q, pools[1]), APR_SUCCESS);
    is(ev2_fdq_pool_put(q, pools[2]), APR_EAGAIN);
    /* Refused: still the caller's to destroy. */
    apr_pool_destroy(pools[2]);

    /* Taking one makes room again. */
    is_ptr(ev2_fdq_pool_get(q), pools[1]);
    is(ev2_fdq_pool_put(q, pools[1]), APR_SUCCESS);
    ev2_fdq_pool_drain(q);
    is_ptr(ev2_fdq_pool_get(q), NULL);
    finish(q, p);
}

static void pool_put_with_zero_cap_returns_eagain(void)
{
    apr_pool_t *p = new_pool();
    ev2_fdq_t *q = new_queue(0, p);
    apr_pool_t *ptrans;

    require_is(apr_pool_create(&ptrans, p), APR_SUCCESS);
    is(ev2_fdq_pool_put(q, ptrans), APR_EAGAIN);
    is_ptr(ev2_fdq_pool_get(q), NULL);
    apr_pool_destroy(ptrans);
    finish(q, p);
}

static void pool_put_after_term_returns_eagain(void)
{
    apr_pool_t *p = new_pool();
    ev2_fdq_t *q = new_queue(4, p);
    apr_pool_t *ptrans;

    require_is(apr_pool_create(&ptrans, p), APR_SUCCESS);
    ev2_fdq_term(q);
    is(ev2_fdq_pool_put(q, ptrans), APR_EAGAIN);
    apr_pool_destroy(ptrans);
    finish(q, p);
}

static void pool_drain_destroys_kept_pools(void)
{
    apr_pool_t *p = new_pool();
    ev2_fdq_t *q = new_queue(8, p);
    apr_pool_t *pools[5];
    int destroyed = 0;
    int i;

    for (i = 0; i < 5; i++) {
        require_is(apr_pool_create(&pools[i], p), APR_SUCCESS);
        require_is(ev2_fdq_pool_put(q, pools[i]), APR_SUCCESS);
        /* Registered after the put's clear, so only a destroy runs it. */
        apr_pool_cleanup_register(pools[i], &destroyed, count_cleanup,
                                  apr_pool_cleanup_null);
    }
    ev2_fdq_pool_drain(q);
    is(destroyed, 5);
    is_ptr(ev2_fdq_pool_get(q), NULL);
    /* The stack is usable after a drain. */
    require_is(apr_pool_create(&pools[0], p), APR_SUCCESS);
    is(ev2_fdq_pool_put(q, pools[0]), APR_SUCCESS);
    is_ptr(ev2_fdq_pool_get(q), pools[0]);
    apr_pool_destroy(pools[0]);
    finish(q, p);
}

static void queue_pool_destroy_releases_kept_pools(void)
{
    apr_pool_t *outer = new_pool();
    apr_pool_t *p;
    ev2_fdq_t *q;
    apr_pool_t *child, *sibling;
    int destroyed = 0;

    require_is(apr_pool_create(&p, outer), APR_SUCCESS);
    q = new_queue(8, p);
    /* One kept pool is a child of the queue's own pool (destroying p must
     * not destroy it twice), the other a child of a longer-lived pool. */
    require_is(apr_pool_create(&child, p), APR_SUCCESS);
    require_is(apr_pool_create(&sibling, outer), APR_SUCCESS);
    require_is(ev2_fdq_pool_put(q, child), APR_SUCCESS);
    require_is(ev2_fdq_pool_put(q, sibling), APR_SUCCESS);
    apr_pool_cleanup_register(child, &destroyed, count_cleanup,
                              apr_pool_cleanup_null);
    apr_pool_cleanup_register(sibling, &destroyed, count_cleanup,
                              apr_pool_cleanup_null);
    is(ev2_fdq_pending(q), 0);
    is(ev2_fdq_idle(q), 0);

    apr_pool_destroy(p);
    is(destroyed, 2);
    apr_pool_destroy(outer);
    is(destroyed, 2);
}

/* ---- many threads ---- */

enum { PRODUCERS = 8, CONSUMERS = 8, PER_PRODUCER = 20000 };
enum { TOTAL = PRODUCERS * PER_PRODUCER };

typedef struct stress_t {
    ev2_fdq_t *q;
    item_t *items;
    volatile apr_uint32_t *seen;    /* pops per item, must end at 1 */
    volatile apr_uint32_t popped;
    volatile apr_uint32_t interrupted;
    volatile apr_uint32_t push_failures;
    volatile apr_uint32_t bad_status;
    volatile apr_uint32_t producers_done;
    int is_paced;                   /* producers pause now and then */
} stress_t;

typedef struct producer_t {
    stress_t *st;
    int first;
} producer_t;

static void *APR_THREAD_FUNC producer_main(apr_thread_t *thd, void *data)
{
    producer_t *pr = data;
    stress_t *st = pr->st;
    int i;

    (void)thd;
    for (i = pr->first; i < pr->first + PER_PRODUCER; i++) {
        if (ev2_fdq_push(st->q, &st->items[i].elem) != APR_SUCCESS) {
            apr_atomic_inc32(&st->push_failures);
        }
        /* Pausing lets the queue run dry, so consumers block and get
         * interrupted while they wait, not only while work is queued. */
        if (st->is_paced && i % 32 == 0) {
            apr_sleep(20);
        }
    }
    apr_atomic_inc32(&st->producers_done);
    return NULL;
}

static void *APR_THREAD_FUNC consumer_main(apr_thread_t *thd, void *data)
{
    stress_t *st = data;
    ev2_fdq_elem_t *e;
    apr_status_t rv;

    (void)thd;
    for (;;) {
        rv = ev2_fdq_pop(st->q, &e);
        if (rv == APR_EOF) {
            break;
        }
        if (rv == APR_EINTR) {
            apr_atomic_inc32(&st->interrupted);
            continue;
        }
        if (rv != APR_SUCCESS || !e) {
            apr_atomic_inc32(&st->bad_status);
            break;
        }
        apr_atomic_inc32(&st->seen[ITEM_OF(e)->id]);
        apr_atomic_inc32(&st->popped);
    }
    return NULL;
}

static void stall_hook(void *arg)
{
    (void)arg;
    apr_thread_yield();
}

static void run_stress(int with_interrupts, unsigned int max_waking)
{
    apr_pool_t *p = new_pool();
    stress_t st = { 0 };
    producer_t pr[PRODUCERS];
    apr_thread_t *producers[PRODUCERS], *consumers[CONSUMERS];
    int i, bad = 0;

    st.q = new_queue(0, p);
    ev2_fdq_set_max_waking(st.q, max_waking);
    if (max_waking) {
        /* Widen the gap between counting as idle and sleeping, where a
         * signal finds nobody on the condition variable. */
        ev2_fdq_set_idle_hook(st.q, stall_hook, NULL);
    }
    st.is_paced = with_interrupts;
    st.items = calloc(TOTAL, sizeof(*st.items));
    st.seen = calloc(TOTAL, sizeof(*st.seen));
    require(st.items && st.seen);
    init_items(st.items, TOTAL);

    for (i = 0; i < CONSUMERS; i++) {
        require_is(apr_thread_create(&consumers[i], NULL, consumer_main, &st,
                                     p), APR_SUCCESS);
    }
    for (i = 0; i < PRODUCERS; i++) {
        pr[i].st = &st;
        pr[i].first = i * PER_PRODUCER;
        require_is(apr_thread_create(&producers[i], NULL, producer_main,
                                     &pr[i], p), APR_SUCCESS);
    }
    if (with_interrupts) {
        /* Interrupts while the queue is busy must neither lose nor
         * duplicate items. */
        while (apr_atomic_read32(&st.producers_done) < PRODUCERS) {
            ev2_fdq_interrupt_all(st.q);
            apr_sleep(50);
        }
    }
    for (i = 0; i < PRODUCERS; i++) {
        join(producers[i]);
    }
    if (max_waking) {
        /* With wake-ups capped, every item must still reach a consumer
         * on its own: term's broadcast below would hide a lost one. */
        wait_for_count(&st.popped, TOTAL, half_test_time());
        is(apr_atomic_read32(&st.popped), TOTAL);
    }
    /* Everything is queued; term must still let it all out. */
    is(ev2_fdq_term(st.q), APR_SUCCESS);
    for (i = 0; i < CONSUMERS; i++) {
        join(consumers[i]);
    }

    is(apr_atomic_read32(&st.push_failures), 0);
    is(apr_atomic_read32(&st.bad_status), 0);
    is(apr_atomic_read32(&st.popped), TOTAL);
    for (i = 0; i < TOTAL; i++) {
        if (st.seen[i] != 1) {
            if (bad++ < 5) {
                is(st.seen[i], 1);
            }
        }
    }
    is(bad, 0);
    if (with_interrupts) {
        printf("# %u interrupted pops\n", apr_atomic_read32(&st.interrupted));
    }
    free(st.items);
    free((void *)st.seen);
    finish(st.q, p);
}

typedef struct {
    ev2_fdq_t *q;
    volatile apr_uint32_t calls;
    volatile apr_uint32_t idle_seen;    /* ev2_fdq_idle() inside the hook */
} hook_probe_t;

static void probe_hook(void *arg)
{
    hook_probe_t *hp = arg;

    apr_atomic_set32(&hp->idle_seen, (apr_uint32_t)ev2_fdq_idle(hp->q));
    apr_atomic_inc32(&hp->calls);
}

/* The hook runs when a popper is about to block, already counted idle
 * (so an owner that checks its own state in the hook cannot miss the
 * new idle worker), and not when work is waiting. */
static void idle_hook_runs_before_blocking_with_idle_counted(void)
{
    apr_pool_t *p = new_pool();
    ev2_fdq_t *q = new_queue(0, p);
    hook_probe_t hp;
    popper_t pp;
    item_t it[2];
    ev2_fdq_elem_t *e;
    apr_time_t limit;

    init_items(it, 2);
    hp.q = q;
    apr_atomic_set32(&hp.calls, 0);
    apr_atomic_set32(&hp.idle_seen, 0);
    ev2_fdq_set_idle_hook(q, probe_hook, &hp);

    /* Work already queued: no blocking, no hook. */
    is(ev2_fdq_push(q, &it[0].elem), APR_SUCCESS);
    require_is(ev2_fdq_pop(q, &e), APR_SUCCESS);
    is(apr_atomic_read32(&hp.calls), 0);

    start_popper(&pp, q, p);
    limit = apr_time_now() + apr_time_from_sec(2);
    while (apr_atomic_read32(&hp.calls) == 0 && apr_time_now() < limit) {
        apr_sleep(1000);
    }
    is(apr_atomic_read32(&hp.calls), 1);
    is(apr_atomic_read32(&hp.idle_seen), 1);
    wait_for_idle(q, 1);
    is(ev2_fdq_push(q, &it[1].elem), APR_SUCCESS);
    join(pp.thread);
    is(pp.rv, APR_SUCCESS);
    require(pp.got == &it[1].elem);
    is(apr_atomic_read32(&hp.calls), 1);
    is(ev2_fdq_pending(q), 0);
    apr_pool_destroy(p);
}

static void stress_every_item_popped_exactly_once(void)
{
    run_stress(0, 0);
}

static void stress_with_interrupts_loses_nothing(void)
{
    run_stress(1, 0);
}

static void stress_with_one_wakeup_in_flight_loses_nothing(void)
{
    run_stress(0, 1);
}

/* With one wake-up in flight at a time, a burst of pushes wakes one
 * popper; each woken popper that leaves items behind wakes the next, so
 * every blocked popper still gets an item, with no further push. */
static void capped_wakeups_pass_on_to_every_popper(void)
{
    enum { K = 6 };
    apr_pool_t *p = new_pool();
    ev2_fdq_t *q = new_queue(0, p);
    popper_t pp[K];
    item_t it[K];
    int i, seen[K] = { 0 };

    ev2_fdq_set_max_waking(q, 1);
    init_items(it, K);
    for (i = 0; i < K; i++) {
        start_popper(&pp[i], q, p);
        require(wait_for_idle(q, i + 1));
    }
    for (i = 0; i < K; i++) {
        is(ev2_fdq_push(q, &it[i].elem), APR_SUCCESS);
    }
    for (i = 0; i < K; i++) {
        join(pp[i].thread);
        is(pp[i].rv, APR_SUCCESS);
        require(pp[i].got != NULL);
        seen[ITEM_OF(pp[i].got)->id]++;
    }
    for (i = 0; i < K; i++) {
        is(seen[i], 1);
    }
    finish(q, p);
}

/* A popper that is already counted as idle but not yet asleep (inside
 * the idle hook) cannot receive a signal.  An item pushed then must not
 * use up one of the capped wake-ups: with a cap of one, the next item
 * would never wake anybody. */
typedef struct {
    volatile apr_uint32_t entered;
    volatile apr_uint32_t gate_open;
} gate_t;

static void gate_hook(void *arg)
{
    gate_t *g = arg;

    if (apr_atomic_inc32(&g->entered) == 0) {
        wait_for_count(&g->gate_open, 1, half_test_time());
    }
}

typedef struct {
    ev2_fdq_t *q;
    ev2_fdq_elem_t *got[2];
    apr_status_t rv[2];
    volatile apr_uint32_t pops_done;
} twice_t;

static void *APR_THREAD_FUNC pop_twice_main(apr_thread_t *thd, void *data)
{
    twice_t *tw = data;
    int i;

    (void)thd;
    for (i = 0; i < 2; i++) {
        tw->rv[i] = ev2_fdq_pop(tw->q, &tw->got[i]);
        apr_atomic_inc32(&tw->pops_done);
    }
    return NULL;
}

static void capped_wakeup_not_spent_on_a_popper_not_asleep(void)
{
    apr_pool_t *p = new_pool();
    ev2_fdq_t *q = new_queue(0, p);
    gate_t g = { 0, 0 };
    twice_t tw = { 0 };
    apr_thread_t *thd;
    item_t it[2];

    ev2_fdq_set_max_waking(q, 1);
    ev2_fdq_set_idle_hook(q, gate_hook, &g);
    init_items(it, 2);
    tw.q = q;
    require_is(apr_thread_create(&thd, NULL, pop_twice_main, &tw, p),
               APR_SUCCESS);

    /* The popper is held in the hook: counted idle, not asleep. */
    wait_for_count(&g.entered, 1, apr_time_from_sec(2));
    require(apr_atomic_read32(&g.entered) == 1);
    is(ev2_fdq_push(q, &it[0].elem), APR_SUCCESS);
    apr_atomic_set32(&g.gate_open, 1);

    /* It takes that item without sleeping, then comes back and sleeps. */
    wait_for_count(&tw.pops_done, 1, apr_time_from_sec(2));
    require(apr_atomic_read32(&tw.pops_done) == 1);
    require(wait_for_idle(q, 1));

    /* This push must wake it. */
    is(ev2_fdq_push(q, &it[1].elem), APR_SUCCESS);
    join(thd);
    is(tw.rv[0], APR_SUCCESS);
    is(tw.rv[1], APR_SUCCESS);
    ok(tw.got[0] == &it[0].elem && tw.got[1] == &it[1].elem);
    finish(q, p);
}

static const tap_test_t tests[] = {
    TAP_TEST(push_pop_is_fifo),
    TAP_TEST(pop_blocks_until_push),
    TAP_TEST(idle_is_zero_with_nobody_waiting),
    TAP_TEST(idle_counts_blocked_poppers),
    TAP_TEST(idle_goes_negative_with_surplus_items),
    TAP_TEST(idle_snapshot_never_shows_transient_values),
    TAP_TEST(interrupt_all_wakes_every_popper_with_eintr),
    TAP_TEST(interrupt_all_does_not_affect_later_poppers),
    TAP_TEST(term_wakes_every_popper_with_eof),
    TAP_TEST(term_still_delivers_items_queued_before_it),
    TAP_TEST(push_after_term_returns_eof),
    TAP_TEST(pool_get_on_empty_returns_null),
    TAP_TEST(pool_put_clears_and_get_returns_it),
    TAP_TEST(pool_put_over_cap_returns_eagain),
    TAP_TEST(pool_put_with_zero_cap_returns_eagain),
    TAP_TEST(pool_put_after_term_returns_eagain),
    TAP_TEST(pool_drain_destroys_kept_pools),
    TAP_TEST(queue_pool_destroy_releases_kept_pools),
    TAP_TEST(idle_hook_runs_before_blocking_with_idle_counted),
    TAP_TEST(stress_every_item_popped_exactly_once),
    TAP_TEST(stress_with_interrupts_loses_nothing),
    TAP_TEST(stress_with_one_wakeup_in_flight_loses_nothing),
    TAP_TEST(capped_wakeups_pass_on_to_every_popper),
    TAP_TEST(capped_wakeup_not_spent_on_a_popper_not_asleep),
    TAP_END
};

int main(int argc, char **argv)
{
    return tap_main(tests, argc, argv);
}
