/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * event_queues.c - timeout queues and the timer heap behind event_queues.h.
 *
 * Timeout queues: each ev2_tq_t is a ring through a sentinel link (q->ring);
 * ring.next is the oldest entry, ring.prev the newest.  Because every entry
 * of a queue shares one timeout and is stamped when appended, the ring is
 * sorted by deadline as long as stamps never decrease, which append
 * enforces.  A detached entry has e->q == NULL and a link pointing at
 * itself; both are restored on every removal, so removing twice is safe.
 * Each queue keeps its own count and adds to its set's per-kind count, so
 * nobody ever has to walk a list to count.
 *
 * Timer heap: an array of ev2_timer_t pointers in min-heap order on
 * (when, seq); each timer records its slot in t->index so it can be
 * removed from the middle without a search.
 *
 * Single-threaded by contract: the listener serialises all calls.
 */

#include <stdlib.h>
#include <stddef.h>

#include "event_queues.h"

struct ev2_tq_t {
    ev2_link_t ring;                /* sentinel: next oldest, prev newest */
    unsigned int count;
    int kind;
    apr_interval_time_t timeout;
    ev2_tq_set_t *set;
    ev2_tq_t *next_in_set;          /* creation order */
};

struct ev2_tq_set_t {
    apr_pool_t *pool;               /* where the set's queues are allocated */
    ev2_tq_t *first;                /* oldest queue */
    ev2_tq_t *last;
    unsigned int counts[EV2_TQ_MAX_KINDS];
};

#define ENTRY_OF(l) \
    ((ev2_tq_entry_t *)((char *)(l) - offsetof(ev2_tq_entry_t, link)))

/* stamp + timeout, pinned at the largest time instead of overflowing, so
 * "expire everything" with now = APR_INT64_MAX works for any timeout. */
static apr_time_t deadline_of(apr_time_t stamp, apr_interval_time_t timeout)
{
    if (stamp > 0 && timeout > APR_INT64_MAX - stamp) {
        return APR_INT64_MAX;
    }
    return stamp + timeout;
}

/* Unlink l from its ring and make it point at itself again. */
static void link_remove(ev2_link_t *l)
{
    l->prev->next = l->next;
    l->next->prev = l->prev;
    ev2_link_init(l);
}

/* Insert l just before at (at the tail when at is the sentinel). */
static void link_insert_before(ev2_link_t *at, ev2_link_t *l)
{
    l->next = at;
    l->prev = at->prev;
    at->prev->next = l;
    at->prev = l;
}

void ev2_tq_entry_init(ev2_tq_entry_t *e)
{
    ev2_link_init(&e->link);
    e->stamp = 0;
    e->q = NULL;
}

ev2_tq_set_t *ev2_tq_set_create(apr_pool_t *p)
{
    ev2_tq_set_t *s = apr_pcalloc(p, sizeof(*s));

    s->pool = p;
    return s;
}

ev2_tq_t *ev2_tq_create(ev2_tq_set_t *s, int kind, apr_interval_time_t timeout)
{
    ev2_tq_t *q;

    /* kind indexes s->counts: refuse rather than write out of bounds.  A
     * negative timeout would put deadlines before the stamps. */
    if (kind < 0 || kind >= EV2_TQ_MAX_KINDS || timeout < 0) {
        return NULL;
    }

    q = apr_pcalloc(s->pool, sizeof(*q));
    ev2_link_init(&q->ring);
    q->kind = kind;
    q->timeout = timeout;
    q->set = s;
    if (s->last) {
        s->last->next_in_set = q;
    }
    else {
        s->first = q;
    }
    s->last = q;
    return q;
}

apr_interval_time_t ev2_tq_timeout(const ev2_tq_t *q)
{
    return q->timeout;
}

int ev2_tq_kind(const ev2_tq_t *q)
{
    return q->kind;
}

void ev2_tq_append(ev2_tq_t *q, ev2_tq_entry_t *e, apr_time_t now)
{
    /* Appending a queued entry would splice it into two rings at once and
     * corrupt both; treat it as a move instead. */
    if (e->q) {
        ev2_tq_remove(e);
    }

    if (q->count > 0) {
        apr_time_t newest = ENTRY_OF(q->ring.prev)->stamp;

        if (now < newest) {
            now = newest;
        }
    }
    e->stamp = now;
    e->q = q;
    link_insert_before(&q->ring, &e->link);
    q->count++;
    q->set->counts[q->kind]++;
}

void ev2_tq_remove(ev2_tq_entry_t *e)
{
    ev2_tq_t *q = e->q;

    if (!q) {
        return;
    }
    link_remove(&e->link);
    e->q = NULL;
    q->count--;
    q->set->counts[q->kind]--;
}

apr_time_t ev2_tq_entry_deadline(const ev2_tq_entry_t *e)
{
    if (!e->q) {
        return EV2_NO_DEADLINE;
    }
    return deadline_of(e->stamp, e->q->timeout);
}

ev2_tq_entry_t *ev2_tq_pop_expired(ev2_tq_t *q, apr_time_t now)
{
    ev2_tq_entry_t *head;

    if (q->count == 0) {
        return NULL;
    }
    head = ENTRY_OF(q->ring.next);
    if (deadline_of(head->stamp, q->timeout) > now) {
        return NULL;
    }
    ev2_tq_remove(head);
    return head;
}

ev2_tq_entry_t *ev2_tq_pop_head(ev2_tq_t *q)
{
    ev2_tq_entry_t *head;

    if (q->count == 0) {
        return NULL;
    }
    head = ENTRY_OF(q->ring.next);
    ev2_tq_remove(head);
    return head;
}

unsigned int ev2_tq_count(const ev2_tq_t *q)
{
    return q->count;
}

apr_time_t ev2_tq_next_deadline(const ev2_tq_t *q)
{
    if (q->count == 0) {
        return EV2_NO_DEADLINE;
    }
    return deadline_of(ENTRY_OF(q->ring.next)->stamp, q->timeout);
}

int ev2_tq_check(const ev2_tq_t *q)
{
    const ev2_link_t *l;
    unsigned int n = 0;
    apr_time_t prev_stamp = 0;

    if (q->ring.next->prev != &q->ring || q->ring.prev->next != &q->ring) {
        return 0;
    }
    for (l = q->ring.next; l != &q->ring; l = l->next) {
        const ev2_tq_entry_t *e = ENTRY_OF(l);

        /* Bounding the walk by the count stops a corrupted ring that loops
         * without passing the sentinel from hanging the caller. */
        if (++n > q->count) {
            return 0;
        }
        if (l->next->prev != l || l->prev->next != l || e->q != q) {
            return 0;
        }
        if (n > 1 && e->stamp < prev_stamp) {
            return 0;
        }
        prev_stamp = e->stamp;
    }
    return n == q->count;
}

unsigned int ev2_tq_set_count(const ev2_tq_set_t *s, int kind)
{
    if (kind < 0 || kind >= EV2_TQ_MAX_KINDS) {
        return 0;
    }
    return s->counts[kind];
}

apr_time_t ev2_tq_set_next_deadline(const ev2_tq_set_t *s)
{
    const ev2_tq_t *q;
    apr_time_t best = EV2_NO_DEADLINE;

    for (q = s->first; q; q = q->next_in_set) {
        apr_time_t d = ev2_tq_next_deadline(q);

        /* EV2_NO_DEADLINE is -1, below every real deadline: it must be
         * skipped, not taken as the minimum. */
        if (d != EV2_NO_DEADLINE && (best == EV2_NO_DEADLINE || d < best)) {
            best = d;
        }
    }
    return best;
}

ev2_tq_entry_t *ev2_tq_set_pop_expired(ev2_tq_set_t *s, apr_time_t now)
{
    ev2_tq_t *q;

    for (q = s->first; q; q = q->next_in_set) {
        ev2_tq_entry_t *e = ev2_tq_pop_expired(q, now);

        if (e) {
            return e;
        }
    }
    return NULL;
}

/* ---- timer heap ---- */

#define NOT_IN_HEAP ((apr_size_t)-1)
#define HEAP_INITIAL_SLOTS 16

struct ev2_theap_t {
    ev2_timer_t **slot;             /* malloc'ed; slot[0] is the earliest */
    apr_size_t count;
    apr_size_t capacity;
    apr_uint64_t next_seq;
};

static apr_status_t theap_cleanup(void *data)
{
    ev2_theap_t *h = data;

    free(h->slot);
    h->slot = NULL;
    h->count = h->capacity = 0;
    return APR_SUCCESS;
}

/* Does a fire before b?  Equal deadlines go in insertion order. */
static int timer_before(const ev2_timer_t *a, const ev2_timer_t *b)
{
    if (a->when != b->when) {
        return a->when < b->when;
    }
    return a->seq < b->seq;
}

static void heap_set(ev2_theap_t *h, apr_size_t i, ev2_timer_t *t)
{
    h->slot[i] = t;
    t->index = i;
}

static void sift_up(ev2_theap_t *h, apr_size_t i)
{
    ev2_timer_t *t = h->slot[i];

    while (i > 0) {
        apr_size_t parent = (i - 1) / 2;

        if (!timer_before(t, h->slot[parent])) {
            break;
        }
        heap_set(h, i, h->slot[parent]);
        i = parent;
    }
    heap_set(h, i, t);
}

static void sift_down(ev2_theap_t *h, apr_size_t i)
{
    ev2_timer_t *t = h->slot[i];

    for (;;) {
        apr_size_t child = 2 * i + 1;

        if (child >= h->count) {
            break;
        }
        if (child + 1 < h->count
            && timer_before(h->slot[child + 1], h->slot[child])) {
            child++;
        }
        if (!timer_before(h->slot[child], t)) {
            break;
        }
        heap_set(h, i, h->slot[child]);
        i = child;
    }
    heap_set(h, i, t);
}

void ev2_timer_init(ev2_timer_t *t)
{
    t->when = 0;
    t->index = NOT_IN_HEAP;
    t->seq = 0;
}

ev2_theap_t *ev2_theap_create(apr_pool_t *p)
{
    ev2_theap_t *h = apr_pcalloc(p, sizeof(*h));

    /* The slot array is malloc'ed so it can be realloc'ed as it grows
     * (a pool cannot give memory back); the cleanup frees it with p. */
    apr_pool_cleanup_register(p, h, theap_cleanup, apr_pool_cleanup_null);
    return h;
}

apr_status_t ev2_theap_insert(ev2_theap_t *h, ev2_timer_t *t)
{
    /* Inserting a timer twice would leave a stale slot pointing at it. */
    if (t->index != NOT_IN_HEAP) {
        return APR_EINVAL;
    }
    if (h->count == h->capacity) {
        apr_size_t want = h->capacity ? h->capacity * 2 : HEAP_INITIAL_SLOTS;
        ev2_timer_t **grown;

        if (want < h->capacity || want > (apr_size_t)-1 / sizeof(*grown)) {
            return APR_ENOMEM;
        }
        grown = realloc(h->slot, want * sizeof(*grown));
        if (!grown) {
            return APR_ENOMEM;
        }
        h->slot = grown;
        h->capacity = want;
    }
    t->seq = h->next_seq++;
    heap_set(h, h->count, t);
    h->count++;
    sift_up(h, t->index);
    return APR_SUCCESS;
}

void ev2_theap_remove(ev2_theap_t *h, ev2_timer_t *t)
{
    apr_size_t i = t->index;
    ev2_timer_t *last;

    /* Checking the slot, not just the index, makes a timer that sits in
     * another heap (or was never inserted) a no-op here. */
    if (i >= h->count || h->slot[i] != t) {
        return;
    }
    t->index = NOT_IN_HEAP;
    last = h->slot[--h->count];
    if (last == t) {
        return;
    }
    /* The former last element may belong above or below slot i. */
    heap_set(h, i, last);
    if (i > 0 && timer_before(last, h->slot[(i - 1) / 2])) {
        sift_up(h, i);
    }
    else {
        sift_down(h, i);
    }
}

ev2_timer_t *ev2_theap_peek(const ev2_theap_t *h)
{
    return h->count ? h->slot[0] : NULL;
}

ev2_timer_t *ev2_theap_pop_expired(ev2_theap_t *h, apr_time_t now)
{
    ev2_timer_t *t;

    if (h->count == 0 || h->slot[0]->when > now) {
        return NULL;
    }
    t = h->slot[0];
    ev2_theap_remove(h, t);
    return t;
}

apr_time_t ev2_theap_next_deadline(const ev2_theap_t *h)
{
    return h->count ? h->slot[0]->when : EV2_NO_DEADLINE;
}

apr_size_t ev2_theap_count(const ev2_theap_t *h)
{
    return h->count;
}
