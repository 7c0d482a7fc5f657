/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * test_event_queues.c - unit tests for the timeout queues and the timer
 * heap (event_queues.h).  Time is driven by hand: no test sleeps.  Every
 * queue test checks ev2_tq_check() after each step and ends with its
 * queues empty before destroying its pool.
 */

#include <stddef.h>
#include <stdlib.h>

#include <apr_pools.h>

#include "event_queues.h"
#include "tap.h"

#define T0 ((apr_time_t)1000000)
#define TIMEOUT ((apr_interval_time_t)5000)

/* Kinds, as the MPM would use them. */
enum { KIND_KEEPALIVE, KIND_WRITE, KIND_LINGER };

/* A stand-in for the connection state that embeds an entry. */
typedef struct conn_t {
    int id;
    ev2_tq_entry_t entry;
} conn_t;

#define CONN_OF(e) \
    ((conn_t *)((char *)(e) - offsetof(conn_t, entry)))

static apr_pool_t *new_pool(void)
{
    apr_pool_t *p = NULL;

    require(apr_pool_create(&p, NULL) == APR_SUCCESS);
    return p;
}

static void init_conns(conn_t *c, int n)
{
    int i;

    for (i = 0; i < n; i++) {
        c[i].id = i;
        ev2_tq_entry_init(&c[i].entry);
    }
}

/* Pop q's head and return its conn id, or -1 when empty. */
static int pop_id(ev2_tq_t *q)
{
    ev2_tq_entry_t *e = ev2_tq_pop_head(q);

    return e ? CONN_OF(e)->id : -1;
}

static void fresh_queue_is_empty_with_no_deadline(void)
{
    apr_pool_t *p = new_pool();
    ev2_tq_set_t *s = ev2_tq_set_create(p);
    ev2_tq_t *q = ev2_tq_create(s, KIND_KEEPALIVE, TIMEOUT);

    require(q != NULL);
    is(ev2_tq_count(q), 0);
    is(ev2_tq_timeout(q), TIMEOUT);
    is(ev2_tq_kind(q), KIND_KEEPALIVE);
    is(ev2_tq_next_deadline(q), EV2_NO_DEADLINE);
    is(ev2_tq_set_next_deadline(s), EV2_NO_DEADLINE);
    is_ptr(ev2_tq_pop_expired(q, APR_INT64_MAX), NULL);
    is_ptr(ev2_tq_pop_head(q), NULL);
    is_ptr(ev2_tq_set_pop_expired(s, APR_INT64_MAX), NULL);
    is(ev2_tq_set_count(s, KIND_KEEPALIVE), 0);
    ok(ev2_tq_check(q));
    apr_pool_destroy(p);
}

static void create_rejects_bad_kind_and_negative_timeout(void)
{
    apr_pool_t *p = new_pool();
    ev2_tq_set_t *s = ev2_tq_set_create(p);

    is_ptr(ev2_tq_create(s, -1, TIMEOUT), NULL);
    is_ptr(ev2_tq_create(s, EV2_TQ_MAX_KINDS, TIMEOUT), NULL);
    is_ptr(ev2_tq_create(s, 0, -1), NULL);
    ok(ev2_tq_create(s, EV2_TQ_MAX_KINDS - 1, 0) != NULL);
    is(ev2_tq_set_count(s, -1), 0);
    is(ev2_tq_set_count(s, EV2_TQ_MAX_KINDS), 0);
    is(ev2_tq_set_next_deadline(s), EV2_NO_DEADLINE);
    apr_pool_destroy(p);
}

static void detached_entry_has_no_deadline(void)
{
    conn_t c[1];

    init_conns(c, 1);
    ok(!ev2_link_is_queued(&c[0].entry.link));
    is_ptr(c[0].entry.q, NULL);
    is(ev2_tq_entry_deadline(&c[0].entry), EV2_NO_DEADLINE);
    /* Removing a detached entry is a no-op. */
    ev2_tq_remove(&c[0].entry);
    ok(!ev2_link_is_queued(&c[0].entry.link));
}

static void append_stamps_counts_and_sets_deadline(void)
{
    apr_pool_t *p = new_pool();
    ev2_tq_set_t *s = ev2_tq_set_create(p);
    ev2_tq_t *q = ev2_tq_create(s, KIND_KEEPALIVE, TIMEOUT);
    conn_t c[3];
    int i;

    init_conns(c, 3);
    for (i = 0; i < 3; i++) {
        ev2_tq_append(q, &c[i].entry, T0 + 10 * i);
        ok(ev2_tq_check(q));
        is(ev2_tq_count(q), i + 1);
        is(ev2_tq_set_count(s, KIND_KEEPALIVE), i + 1);
        is(c[i].entry.stamp, T0 + 10 * i);
        is_ptr(c[i].entry.q, q);
        ok(ev2_link_is_queued(&c[i].entry.link));
        is(ev2_tq_entry_deadline(&c[i].entry), T0 + 10 * i + TIMEOUT);
        /* The head, not the newest entry, decides the next deadline. */
        is(ev2_tq_next_deadline(q), T0 + TIMEOUT);
    }
    is(ev2_tq_set_count(s, KIND_WRITE), 0);

    for (i = 0; i < 3; i++) {
        is(pop_id(q), i);
        ok(ev2_tq_check(q));
    }
    is(ev2_tq_count(q), 0);
    is(ev2_tq_set_count(s, KIND_KEEPALIVE), 0);
    apr_pool_destroy(p);
}

static void expire_stops_at_first_live_entry(void)
{
    apr_pool_t *p = new_pool();
    ev2_tq_set_t *s = ev2_tq_set_create(p);
    ev2_tq_t *q = ev2_tq_create(s, KIND_KEEPALIVE, TIMEOUT);
    conn_t c[3];
    apr_time_t t[3] = { T0, T0 + 100, T0 + 200 };
    apr_time_t now = t[1] + TIMEOUT;
    ev2_tq_entry_t *e;
    int i;

    init_conns(c, 3);
    for (i = 0; i < 3; i++) {
        ev2_tq_append(q, &c[i].entry, t[i]);
    }

    /* Just before the first deadline nothing is due. */
    is_ptr(ev2_tq_pop_expired(q, t[0] + TIMEOUT - 1), NULL);
    is(ev2_tq_count(q), 3);

    e = ev2_tq_pop_expired(q, now);
    require(e != NULL);
    is(CONN_OF(e)->id, 0);
    ok(!ev2_link_is_queued(&e->link));
    is_ptr(e->q, NULL);
    ok(ev2_tq_check(q));
    is(ev2_tq_count(q), 2);
    is(ev2_tq_set_count(s, KIND_KEEPALIVE), 2);

    /* A deadline equal to now counts as expired. */
    e = ev2_tq_pop_expired(q, now);
    require(e != NULL);
    is(CONN_OF(e)->id, 1);
    ok(ev2_tq_check(q));
    is(ev2_tq_count(q), 1);

    is_ptr(ev2_tq_pop_expired(q, now), NULL);
    is(ev2_tq_count(q), 1);
    is(ev2_tq_next_deadline(q), t[2] + TIMEOUT);
    ok(ev2_tq_check(q));

    is(pop_id(q), 2);
    is(ev2_tq_count(q), 0);
    is(ev2_tq_set_count(s, KIND_KEEPALIVE), 0);
    apr_pool_destroy(p);
}

/* Append five entries, remove the one at index victim, and check the order
 * of the rest. */
static void remove_one_of_five(int victim)
{
    apr_pool_t *p = new_pool();
    ev2_tq_set_t *s = ev2_tq_set_create(p);
    ev2_tq_t *q = ev2_tq_create(s, KIND_WRITE, TIMEOUT);
    conn_t c[5];
    int i;

    init_conns(c, 5);
    for (i = 0; i < 5; i++) {
        ev2_tq_append(q, &c[i].entry, T0 + i);
    }
    ev2_tq_remove(&c[victim].entry);
    ok(ev2_tq_check(q));
    ok(!ev2_link_is_queued(&c[victim].entry.link));
    is_ptr(c[victim].entry.q, NULL);
    is(ev2_tq_entry_deadline(&c[victim].entry), EV2_NO_DEADLINE);
    is(ev2_tq_count(q), 4);
    is(ev2_tq_set_count(s, KIND_WRITE), 4);
    is(ev2_tq_next_deadline(q), T0 + (victim == 0 ? 1 : 0) + TIMEOUT);

    for (i = 0; i < 5; i++) {
        if (i != victim) {
            is(pop_id(q), i);
            ok(ev2_tq_check(q));
        }
    }
    is(ev2_tq_count(q), 0);
    is(ev2_tq_set_count(s, KIND_WRITE), 0);
    apr_pool_destroy(p);
}

static void remove_head_keeps_order(void)
{
    remove_one_of_five(0);
}

static void remove_middle_keeps_order(void)
{
    remove_one_of_five(2);
}

static void remove_tail_keeps_order(void)
{
    remove_one_of_five(4);
}

static void double_remove_is_noop(void)
{
    apr_pool_t *p = new_pool();
    ev2_tq_set_t *s = ev2_tq_set_create(p);
    ev2_tq_t *q = ev2_tq_create(s, KIND_LINGER, TIMEOUT);
    conn_t c[3];
    int i;

    init_conns(c, 3);
    for (i = 0; i < 3; i++) {
        ev2_tq_append(q, &c[i].entry, T0 + i);
    }
    ev2_tq_remove(&c[1].entry);
    ev2_tq_remove(&c[1].entry);
    ok(ev2_tq_check(q));
    is(ev2_tq_count(q), 2);
    is(ev2_tq_set_count(s, KIND_LINGER), 2);

    /* An entry popped by expiry is detached too. */
    require(ev2_tq_pop_expired(q, APR_INT64_MAX) == &c[0].entry);
    ev2_tq_remove(&c[0].entry);
    ok(ev2_tq_check(q));
    is(ev2_tq_count(q), 1);
    is(ev2_tq_set_count(s, KIND_LINGER), 1);

    ev2_tq_remove(&c[2].entry);
    ev2_tq_remove(&c[2].entry);
    ok(ev2_tq_check(q));
    is(ev2_tq_count(q), 0);
    is(ev2_tq_set_count(s, KIND_LINGER), 0);
    is(ev2_tq_next_deadline(q), EV2_NO_DEADLINE);
    apr_pool_destroy(p);
}

static void removed_entry_can_be_appended_again(void)
{
    apr_pool_t *p = new_pool();
    ev2_tq_set_t *s = ev2_tq_set_create(p);
    ev2_tq_t *q = ev2_tq_create(s, KIND_KEEPALIVE, TIMEOUT);
    conn_t c[2];

    init_conns(c, 2);
    ev2_tq_append(q, &c[0].entry, T0);
    ev2_tq_append(q, &c[1].entry, T0 + 1);
    ev2_tq_remove(&c[0].entry);
    ev2_tq_append(q, &c[0].entry, T0 + 2);
    ok(ev2_tq_check(q));
    is(ev2_tq_count(q), 2);
    is(ev2_tq_next_deadline(q), T0 + 1 + TIMEOUT);
    is(pop_id(q), 1);
    is(pop_id(q), 0);
    is(ev2_tq_set_count(s, KIND_KEEPALIVE), 0);
    apr_pool_destroy(p);
}

static void append_queued_entry_moves_it(void)
{
    apr_pool_t *p = new_pool();
    ev2_tq_set_t *s = ev2_tq_set_create(p);
    ev2_tq_t *ka = ev2_tq_create(s, KIND_KEEPALIVE, TIMEOUT);
    ev2_tq_t *wr = ev2_tq_create(s, KIND_WRITE, 2 * TIMEOUT);
    conn_t c[2];

    init_conns(c, 2);
    ev2_tq_append(ka, &c[0].entry, T0);
    ev2_tq_append(ka, &c[1].entry, T0 + 1);
    ev2_tq_append(wr, &c[0].entry, T0 + 2);
    ok(ev2_tq_check(ka));
    ok(ev2_tq_check(wr));
    is(ev2_tq_count(ka), 1);
    is(ev2_tq_count(wr), 1);
    is(ev2_tq_set_count(s, KIND_KEEPALIVE), 1);
    is(ev2_tq_set_count(s, KIND_WRITE), 1);
    is_ptr(c[0].entry.q, wr);
    is(ev2_tq_entry_deadline(&c[0].entry), T0 + 2 + 2 * TIMEOUT);
    is(pop_id(ka), 1);
    is(pop_id(wr), 0);
    is(ev2_tq_set_count(s, KIND_KEEPALIVE), 0);
    is(ev2_tq_set_count(s, KIND_WRITE), 0);
    apr_pool_destroy(p);
}

static void append_with_earlier_now_keeps_queue_sorted(void)
{
    apr_pool_t *p = new_pool();
    ev2_tq_set_t *s = ev2_tq_set_create(p);
    ev2_tq_t *q = ev2_tq_create(s, KIND_KEEPALIVE, TIMEOUT);
    conn_t c[2];

    init_conns(c, 2);
    ev2_tq_append(q, &c[0].entry, T0 + 50);
    ev2_tq_append(q, &c[1].entry, T0);
    is(c[1].entry.stamp, T0 + 50);
    ok(ev2_tq_check(q));
    is(pop_id(q), 0);
    is(pop_id(q), 1);
    apr_pool_destroy(p);
}

static void pop_head_returns_oldest_first(void)
{
    apr_pool_t *p = new_pool();
    ev2_tq_set_t *s = ev2_tq_set_create(p);
    ev2_tq_t *q = ev2_tq_create(s, KIND_KEEPALIVE, TIMEOUT);
    conn_t c[10];
    int i;

    init_conns(c, 10);
    for (i = 0; i < 10; i++) {
        /* Equal stamps too: order is append order. */
        ev2_tq_append(q, &c[i].entry, T0 + i / 3);
    }
    ok(ev2_tq_check(q));
    for (i = 0; i < 10; i++) {
        /* pop_head ignores deadlines: nothing here has expired. */
        is(pop_id(q), i);
        ok(ev2_tq_check(q));
        is(ev2_tq_count(q), 9 - i);
        is(ev2_tq_set_count(s, KIND_KEEPALIVE), 9 - i);
    }
    is(pop_id(q), -1);
    apr_pool_destroy(p);
}

static void set_counts_per_kind(void)
{
    apr_pool_t *p = new_pool();
    ev2_tq_set_t *s = ev2_tq_set_create(p);
    /* Two queues share a kind (say, two vhosts' keep-alive timeouts). */
    ev2_tq_t *ka1 = ev2_tq_create(s, KIND_KEEPALIVE, TIMEOUT);
    ev2_tq_t *ka2 = ev2_tq_create(s, KIND_KEEPALIVE, 3 * TIMEOUT);
    ev2_tq_t *wr = ev2_tq_create(s, KIND_WRITE, 2 * TIMEOUT);
    conn_t c[6];

    init_conns(c, 6);
    ev2_tq_append(ka1, &c[0].entry, T0);
    ev2_tq_append(ka1, &c[1].entry, T0);
    ev2_tq_append(ka2, &c[2].entry, T0);
    ev2_tq_append(wr, &c[3].entry, T0);
    is(ev2_tq_set_count(s, KIND_KEEPALIVE), 3);
    is(ev2_tq_set_count(s, KIND_WRITE), 1);
    is(ev2_tq_set_count(s, KIND_LINGER), 0);
    is(ev2_tq_count(ka1), 2);
    is(ev2_tq_count(ka2), 1);
    is(ev2_tq_count(wr), 1);

    ev2_tq_remove(&c[2].entry);
    is(ev2_tq_set_count(s, KIND_KEEPALIVE), 2);
    ev2_tq_remove(&c[3].entry);
    is(ev2_tq_set_count(s, KIND_WRITE), 0);
    ev2_tq_remove(&c[0].entry);
    ev2_tq_remove(&c[1].entry);
    is(ev2_tq_set_count(s, KIND_KEEPALIVE), 0);
    ok(ev2_tq_check(ka1));
    ok(ev2_tq_check(ka2));
    ok(ev2_tq_check(wr));
    apr_pool_destroy(p);
}

static void set_next_deadline_is_min_across_queues(void)
{
    apr_pool_t *p = new_pool();
    ev2_tq_set_t *s = ev2_tq_set_create(p);
    ev2_tq_t *slow = ev2_tq_create(s, KIND_KEEPALIVE, 10 * TIMEOUT);
    ev2_tq_t *fast = ev2_tq_create(s, KIND_LINGER, TIMEOUT);
    ev2_tq_t *empty = ev2_tq_create(s, KIND_WRITE, 0);
    conn_t c[3];

    init_conns(c, 3);
    ev2_tq_append(slow, &c[0].entry, T0);
    is(ev2_tq_set_next_deadline(s), T0 + 10 * TIMEOUT);

    /* Appended later, but with a shorter timeout it is due first. */
    ev2_tq_append(fast, &c[1].entry, T0 + 100);
    is(ev2_tq_set_next_deadline(s), T0 + 100 + TIMEOUT);
    is(ev2_tq_next_deadline(empty), EV2_NO_DEADLINE);

    ev2_tq_remove(&c[1].entry);
    is(ev2_tq_set_next_deadline(s), T0 + 10 * TIMEOUT);

    /* A zero timeout is due at its stamp. */
    ev2_tq_append(empty, &c[2].entry, T0 + 7);
    is(ev2_tq_set_next_deadline(s), T0 + 7);

    ev2_tq_remove(&c[2].entry);
    ev2_tq_remove(&c[0].entry);
    is(ev2_tq_set_next_deadline(s), EV2_NO_DEADLINE);
    apr_pool_destroy(p);
}

static void set_pop_expired_prefers_earliest_created_queue(void)
{
    apr_pool_t *p = new_pool();
    ev2_tq_set_t *s = ev2_tq_set_create(p);
    ev2_tq_t *first = ev2_tq_create(s, KIND_KEEPALIVE, TIMEOUT);
    ev2_tq_t *second = ev2_tq_create(s, KIND_WRITE, TIMEOUT);
    conn_t c[4];
    ev2_tq_entry_t *e;

    init_conns(c, 4);
    /* second's entry is older, but first was created first. */
    ev2_tq_append(second, &c[0].entry, T0);
    ev2_tq_append(first, &c[1].entry, T0 + 10);
    ev2_tq_append(first, &c[2].entry, T0 + 20);
    ev2_tq_append(second, &c[3].entry, T0 + 1000);

    is_ptr(ev2_tq_set_pop_expired(s, T0 + TIMEOUT - 1), NULL);
    e = ev2_tq_set_pop_expired(s, T0 + 20 + TIMEOUT);
    require(e != NULL);
    is(CONN_OF(e)->id, 1);
    e = ev2_tq_set_pop_expired(s, T0 + 20 + TIMEOUT);
    require(e != NULL);
    is(CONN_OF(e)->id, 2);
    e = ev2_tq_set_pop_expired(s, T0 + 20 + TIMEOUT);
    require(e != NULL);
    is(CONN_OF(e)->id, 0);
    is_ptr(ev2_tq_set_pop_expired(s, T0 + 20 + TIMEOUT), NULL);
    is(ev2_tq_set_count(s, KIND_KEEPALIVE), 0);
    is(ev2_tq_set_count(s, KIND_WRITE), 1);
    ok(ev2_tq_check(first));
    ok(ev2_tq_check(second));

    /* "As of forever" drains everything, whatever the timeout. */
    e = ev2_tq_set_pop_expired(s, APR_INT64_MAX);
    require(e != NULL);
    is(CONN_OF(e)->id, 3);
    is(ev2_tq_set_count(s, KIND_WRITE), 0);
    apr_pool_destroy(p);
}

static void huge_timeout_saturates_instead_of_overflowing(void)
{
    apr_pool_t *p = new_pool();
    ev2_tq_set_t *s = ev2_tq_set_create(p);
    ev2_tq_t *q = ev2_tq_create(s, KIND_KEEPALIVE, APR_INT64_MAX);
    conn_t c[1];

    init_conns(c, 1);
    ev2_tq_append(q, &c[0].entry, T0);
    is(ev2_tq_next_deadline(q), APR_INT64_MAX);
    is_ptr(ev2_tq_pop_expired(q, APR_INT64_MAX - 1), NULL);
    is_ptr(ev2_tq_pop_expired(q, APR_INT64_MAX), &c[0].entry);
    is(ev2_tq_count(q), 0);
    apr_pool_destroy(p);
}

static void check_detects_broken_invariants(void)
{
    apr_pool_t *p = new_pool();
    ev2_tq_set_t *s = ev2_tq_set_create(p);
    ev2_tq_t *q = ev2_tq_create(s, KIND_KEEPALIVE, TIMEOUT);
    ev2_tq_t *other = ev2_tq_create(s, KIND_KEEPALIVE, TIMEOUT);
    conn_t c[3];
    ev2_link_t *saved;
    int i;

    init_conns(c, 3);
    for (i = 0; i < 3; i++) {
        ev2_tq_append(q, &c[i].entry, T0 + 10 * i);
    }
    ok(ev2_tq_check(q));

    /* Stamps going backwards. */
    c[1].entry.stamp = T0 - 1;
    ok(!ev2_tq_check(q));
    c[1].entry.stamp = T0 + 10;
    ok(ev2_tq_check(q));

    /* An entry claiming another queue. */
    c[2].entry.q = other;
    ok(!ev2_tq_check(q));
    c[2].entry.q = q;
    ok(ev2_tq_check(q));

    /* A back link pointing at the wrong node. */
    saved = c[1].entry.link.prev;
    c[1].entry.link.prev = &c[2].entry.link;
    ok(!ev2_tq_check(q));
    c[1].entry.link.prev = saved;
    ok(ev2_tq_check(q));

    /* A forward loop that skips the sentinel must not hang the check. */
    saved = c[2].entry.link.next;
    c[2].entry.link.next = &c[0].entry.link;
    ok(!ev2_tq_check(q));
    c[2].entry.link.next = saved;
    ok(ev2_tq_check(q));

    for (i = 0; i < 3; i++) {
        is(pop_id(q), i);
    }
    is(ev2_tq_count(q), 0);
    apr_pool_destroy(p);
}

/* ---- timer heap ---- */

static int compare_time(const void *a, const void *b)
{
    apr_time_t x = *(const apr_time_t *)a, y = *(const apr_time_t *)b;

    return (x > y) - (x < y);
}

static void heap_empty_has_no_deadline(void)
{
    apr_pool_t *p = new_pool();
    ev2_theap_t *h = ev2_theap_create(p);
    ev2_timer_t t;

    is(ev2_theap_count(h), 0);
    is_ptr(ev2_theap_peek(h), NULL);
    is(ev2_theap_next_deadline(h), EV2_NO_DEADLINE);
    is_ptr(ev2_theap_pop_expired(h, APR_INT64_MAX), NULL);

    ev2_timer_init(&t);
    is(t.index, (apr_size_t)-1);
    ev2_theap_remove(h, &t);
    is(ev2_theap_count(h), 0);
    apr_pool_destroy(p);
}

static void heap_orders_many_random_timers(void)
{
    enum { N = 5000 };
    apr_pool_t *p = new_pool();
    ev2_theap_t *h = ev2_theap_create(p);
    ev2_timer_t *t = calloc(N, sizeof(*t));
    apr_time_t *sorted = calloc(N, sizeof(*sorted));
    int i;

    require(t && sorted);
    srand(12345);
    for (i = 0; i < N; i++) {
        ev2_timer_init(&t[i]);
        /* A small range so that many deadlines collide. */
        t[i].when = T0 + rand() % 1000;
        sorted[i] = t[i].when;
        require_is(ev2_theap_insert(h, &t[i]), APR_SUCCESS);
    }
    is(ev2_theap_count(h), N);
    qsort(sorted, N, sizeof(*sorted), compare_time);

    for (i = 0; i < N; i++) {
        ev2_timer_t *top = ev2_theap_pop_expired(h, APR_INT64_MAX);

        require(top != NULL);
        is(top->when, sorted[i]);
        is(top->index, (apr_size_t)-1);
        if (top->when != sorted[i]) {
            break;
        }
    }
    is(ev2_theap_count(h), 0);
    free(t);
    free(sorted);
    apr_pool_destroy(p);
}

static void heap_equal_deadlines_pop_in_insertion_order(void)
{
    enum { N = 100 };
    apr_pool_t *p = new_pool();
    ev2_theap_t *h = ev2_theap_create(p);
    ev2_timer_t t[N], early;
    int i;

    for (i = 0; i < N; i++) {
        ev2_timer_init(&t[i]);
        t[i].when = T0;
        require_is(ev2_theap_insert(h, &t[i]), APR_SUCCESS);
    }
    /* One earlier timer inserted last still comes first. */
    ev2_timer_init(&early);
    early.when = T0 - 1;
    require_is(ev2_theap_insert(h, &early), APR_SUCCESS);
    is_ptr(ev2_theap_pop_expired(h, T0), &early);

    for (i = 0; i < N; i++) {
        is_ptr(ev2_theap_pop_expired(h, T0), &t[i]);
    }
    is(ev2_theap_count(h), 0);
    apr_pool_destroy(p);
}

static void heap_remove_from_middle_keeps_order(void)
{
    enum { N = 1000 };
    apr_pool_t *p = new_pool();
    ev2_theap_t *h = ev2_theap_create(p);
    ev2_timer_t t[N];
    int is_removed[N] = { 0 };
    apr_time_t last = 0;
    int i, left = N;

    srand(777);
    for (i = 0; i < N; i++) {
        ev2_timer_init(&t[i]);
        t[i].when = T0 + rand() % 100000;
        require_is(ev2_theap_insert(h, &t[i]), APR_SUCCESS);
    }
    /* Remove a third of them, chosen at random, wherever they sit. */
    for (i = 0; i < N; i += 3) {
        int k = rand() % N;

        if (!is_removed[k]) {
            ev2_theap_remove(h, &t[k]);
            is(t[k].index, (apr_size_t)-1);
            is_removed[k] = 1;
            left--;
        }
        /* Removing again is a no-op. */
        ev2_theap_remove(h, &t[k]);
        is(ev2_theap_count(h), left);
    }
    for (i = 0; i < left; i++) {
        ev2_timer_t *top = ev2_theap_pop_expired(h, APR_INT64_MAX);

        require(top != NULL);
        ok(!is_removed[top - t]);
        ok(top->when >= last);
        last = top->when;
    }
    is(ev2_theap_count(h), 0);
    apr_pool_destroy(p);
}

static void heap_grows_past_initial_capacity(void)
{
    enum { N = 100000 };
    apr_pool_t *p = new_pool();
    ev2_theap_t *h = ev2_theap_create(p);
    ev2_timer_t *t = calloc(N, sizeof(*t));
    int i;

    require(t != NULL);
    /* Descending deadlines: every insert sifts all the way up. */
    for (i = 0; i < N; i++) {
        ev2_timer_init(&t[i]);
        t[i].when = T0 + N - i;
        require_is(ev2_theap_insert(h, &t[i]), APR_SUCCESS);
        if (ev2_theap_peek(h) != &t[i]) {
            is_ptr(ev2_theap_peek(h), &t[i]);
            break;
        }
    }
    is(ev2_theap_count(h), N);
    is(ev2_theap_next_deadline(h), T0 + 1);
    for (i = N - 1; i >= 0; i--) {
        ev2_timer_t *top = ev2_theap_pop_expired(h, APR_INT64_MAX);

        if (top != &t[i]) {
            is_ptr(top, &t[i]);
            break;
        }
    }
    is(ev2_theap_count(h), 0);
    free(t);
    /* The heap's storage is freed by the pool (ASan checks for leaks). */
    apr_pool_destroy(p);
}

static void heap_pop_expired_respects_now(void)
{
    apr_pool_t *p = new_pool();
    ev2_theap_t *h = ev2_theap_create(p);
    ev2_timer_t a, b, c;

    ev2_timer_init(&a);
    ev2_timer_init(&b);
    ev2_timer_init(&c);
    a.when = T0 + 30;
    b.when = T0 + 10;
    c.when = T0 + 20;
    require_is(ev2_theap_insert(h, &a), APR_SUCCESS);
    require_is(ev2_theap_insert(h, &b), APR_SUCCESS);
    require_is(ev2_theap_insert(h, &c), APR_SUCCESS);

    is(ev2_theap_next_deadline(h), T0 + 10);
    is_ptr(ev2_theap_peek(h), &b);
    is_ptr(ev2_theap_pop_expired(h, T0 + 9), NULL);
    is_ptr(ev2_theap_pop_expired(h, T0 + 10), &b);
    is_ptr(ev2_theap_pop_expired(h, T0 + 10), NULL);
    is(ev2_theap_next_deadline(h), T0 + 20);
    is_ptr(ev2_theap_pop_expired(h, T0 + 25), &c);
    is_ptr(ev2_theap_pop_expired(h, T0 + 25), NULL);
    is(ev2_theap_count(h), 1);

    /* A removed timer can be inserted again, as a fresh one. */
    ev2_theap_remove(h, &a);
    a.when = T0 + 5;
    require_is(ev2_theap_insert(h, &a), APR_SUCCESS);
    is_ptr(ev2_theap_pop_expired(h, T0 + 5), &a);
    is(ev2_theap_count(h), 0);
    apr_pool_destroy(p);
}

static void heap_rejects_double_insert_and_foreign_remove(void)
{
    apr_pool_t *p = new_pool();
    ev2_theap_t *h1 = ev2_theap_create(p);
    ev2_theap_t *h2 = ev2_theap_create(p);
    ev2_timer_t a, b;

    ev2_timer_init(&a);
    ev2_timer_init(&b);
    a.when = T0;
    b.when = T0 + 1;
    require_is(ev2_theap_insert(h1, &a), APR_SUCCESS);
    require_is(ev2_theap_insert(h2, &b), APR_SUCCESS);
    is(ev2_theap_insert(h1, &a), APR_EINVAL);
    is(ev2_theap_insert(h1, &b), APR_EINVAL);
    is(ev2_theap_count(h1), 1);

    /* b sits at index 0 of h2; removing it from h1 must not touch a. */
    ev2_theap_remove(h1, &b);
    is(ev2_theap_count(h1), 1);
    is(ev2_theap_count(h2), 1);
    is_ptr(ev2_theap_peek(h1), &a);

    is_ptr(ev2_theap_pop_expired(h1, T0), &a);
    is_ptr(ev2_theap_pop_expired(h2, T0 + 1), &b);
    is(ev2_theap_count(h1), 0);
    is(ev2_theap_count(h2), 0);
    apr_pool_destroy(p);
}

static void heap_destroyed_with_timers_still_in_it(void)
{
    apr_pool_t *p = new_pool();
    ev2_theap_t *h = ev2_theap_create(p);
    ev2_timer_t t[40];
    int i;

    for (i = 0; i < 40; i++) {
        ev2_timer_init(&t[i]);
        t[i].when = T0 + i;
        require_is(ev2_theap_insert(h, &t[i]), APR_SUCCESS);
    }
    is(ev2_theap_count(h), 40);
    /* The timers belong to the caller; only the slot array is freed. */
    apr_pool_destroy(p);
}

static const tap_test_t tests[] = {
    TAP_TEST(fresh_queue_is_empty_with_no_deadline),
    TAP_TEST(create_rejects_bad_kind_and_negative_timeout),
    TAP_TEST(detached_entry_has_no_deadline),
    TAP_TEST(append_stamps_counts_and_sets_deadline),
    TAP_TEST(expire_stops_at_first_live_entry),
    TAP_TEST(remove_head_keeps_order),
    TAP_TEST(remove_middle_keeps_order),
    TAP_TEST(remove_tail_keeps_order),
    TAP_TEST(double_remove_is_noop),
    TAP_TEST(removed_entry_can_be_appended_again),
    TAP_TEST(append_queued_entry_moves_it),
    TAP_TEST(append_with_earlier_now_keeps_queue_sorted),
    TAP_TEST(pop_head_returns_oldest_first),
    TAP_TEST(set_counts_per_kind),
    TAP_TEST(set_next_deadline_is_min_across_queues),
    TAP_TEST(set_pop_expired_prefers_earliest_created_queue),
    TAP_TEST(huge_timeout_saturates_instead_of_overflowing),
    TAP_TEST(check_detects_broken_invariants),
    TAP_TEST(heap_empty_has_no_deadline),
    TAP_TEST(heap_orders_many_random_timers),
    TAP_TEST(heap_equal_deadlines_pop_in_insertion_order),
    TAP_TEST(heap_remove_from_middle_keeps_order),
    TAP_TEST(heap_grows_past_initial_capacity),
    TAP_TEST(heap_pop_expired_respects_now),
    TAP_TEST(heap_rejects_double_insert_and_foreign_remove),
    TAP_TEST(heap_destroyed_with_timers_still_in_it),
    TAP_END
};

int main(int argc, char **argv)
{
    return tap_main(tests, argc, argv);
}
