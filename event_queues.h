/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * event_queues.h - deadline bookkeeping for the listener thread.
 *
 * 1. Timeout queues (ev2_tq_*).  Every entry of one queue has the same
 *    timeout, so appending at the tail keeps the queue sorted by deadline:
 *    append, remove and "pop the head if it expired" are O(1).  The entry
 *    (ev2_tq_entry_t) is embedded in the caller's connection state.
 *    Queues belong to a set (ev2_tq_set_t), which keeps a count per "kind"
 *    (the caller's small integer: keep-alive, write completion, ...) and
 *    answers "when is the next deadline of any queue" in O(#queues).
 *
 * 2. A timer heap (ev2_theap_*): a binary min-heap of ev2_timer_t entries
 *    embedded in the caller's timer records, for callbacks that each have
 *    their own deadline.  Insert, remove and pop are O(log n).
 *
 * Time is always passed in (apr_time_t microseconds on whatever clock the
 * caller uses, a monotonic one in the MPM); this code never reads a clock.
 * Nothing here is thread-safe: the caller serialises access with its own
 * lock.  No httpd symbols: unit-tested without httpd.
 */

#ifndef EV2_EVENT_QUEUES_H
#define EV2_EVENT_QUEUES_H

#include <apr_pools.h>
#include <apr_time.h>

/** Returned by the *_next_deadline functions when nothing is waiting. */
#define EV2_NO_DEADLINE ((apr_time_t)-1)

/** Most distinct kinds a set counts (kinds are 0 .. EV2_TQ_MAX_KINDS-1). */
#define EV2_TQ_MAX_KINDS 16

typedef struct ev2_link_t {
    struct ev2_link_t *prev, *next;
} ev2_link_t;

/** A detached link points at itself. */
static inline void ev2_link_init(ev2_link_t *l)
{
    l->prev = l->next = l;
}

static inline int ev2_link_is_queued(const ev2_link_t *l)
{
    return l->next != l;
}

typedef struct ev2_tq_t ev2_tq_t;
typedef struct ev2_tq_set_t ev2_tq_set_t;

/** What the caller embeds; initialise with ev2_tq_entry_init(). */
typedef struct ev2_tq_entry_t {
    ev2_link_t link;
    apr_time_t stamp;       /* when it was appended */
    ev2_tq_t *q;            /* the queue it is on, NULL when detached */
} ev2_tq_entry_t;

void ev2_tq_entry_init(ev2_tq_entry_t *e);

/** An empty set of queues, allocated in p. */
ev2_tq_set_t *ev2_tq_set_create(apr_pool_t *p);

/** A new queue in set s with this timeout, counted under kind
 *  (0 <= kind < EV2_TQ_MAX_KINDS). */
ev2_tq_t *ev2_tq_create(ev2_tq_set_t *s, int kind, apr_interval_time_t timeout);

/** The queue's timeout and kind. */
apr_interval_time_t ev2_tq_timeout(const ev2_tq_t *q);
int ev2_tq_kind(const ev2_tq_t *q);

/** Append e (which must be detached) at the tail, stamped now.  If now is
 *  earlier than the tail's stamp (it must not be with a monotonic clock),
 *  the tail's stamp is used, so the queue stays sorted. */
void ev2_tq_append(ev2_tq_t *q, ev2_tq_entry_t *e, apr_time_t now);

/** Detach e from whatever queue it is on; a no-op if it is detached. */
void ev2_tq_remove(ev2_tq_entry_t *e);

/** e's deadline (stamp + timeout), or EV2_NO_DEADLINE if detached. */
apr_time_t ev2_tq_entry_deadline(const ev2_tq_entry_t *e);

/** Detach and return q's head if its deadline is <= now, else NULL. */
ev2_tq_entry_t *ev2_tq_pop_expired(ev2_tq_t *q, apr_time_t now);

/** Detach and return q's head (the oldest entry) whatever its deadline,
 *  or NULL if q is empty. */
ev2_tq_entry_t *ev2_tq_pop_head(ev2_tq_t *q);

/** Entries on q. */
unsigned int ev2_tq_count(const ev2_tq_t *q);

/** Earliest deadline on q, or EV2_NO_DEADLINE if empty. */
apr_time_t ev2_tq_next_deadline(const ev2_tq_t *q);

/** Walk q and check its invariants (links consistent both ways, count
 *  matches, stamps non-decreasing, every entry points back at q).
 *  Returns 1 if all hold, 0 otherwise.  O(n): for tests and debugging. */
int ev2_tq_check(const ev2_tq_t *q);

/** Entries on all queues of s of this kind. */
unsigned int ev2_tq_set_count(const ev2_tq_set_t *s, int kind);

/** Earliest deadline over every queue of s, or EV2_NO_DEADLINE. */
apr_time_t ev2_tq_set_next_deadline(const ev2_tq_set_t *s);

/** Detach and return one entry of s whose deadline is <= now (the
 *  earliest-created queue first), or NULL when none has expired. */
ev2_tq_entry_t *ev2_tq_set_pop_expired(ev2_tq_set_t *s, apr_time_t now);

/* ---- timer heap ---- */

typedef struct ev2_theap_t ev2_theap_t;

/** What the caller embeds in a timer record. */
typedef struct ev2_timer_t {
    apr_time_t when;        /* deadline; set before inserting */
    apr_size_t index;       /* position in the heap; (apr_size_t)-1 if
                             * not in one */
    apr_uint64_t seq;       /* insertion order: equal deadlines pop FIFO */
} ev2_timer_t;

void ev2_timer_init(ev2_timer_t *t);

/** An empty heap; its storage grows as needed and is released with p. */
ev2_theap_t *ev2_theap_create(apr_pool_t *p);

/** Insert t (not already in a heap), keyed by t->when.  Returns
 *  APR_ENOMEM if the heap cannot grow. */
apr_status_t ev2_theap_insert(ev2_theap_t *h, ev2_timer_t *t);

/** Remove t if it is in h; a no-op otherwise. */
void ev2_theap_remove(ev2_theap_t *h, ev2_timer_t *t);

/** The earliest timer, or NULL. */
ev2_timer_t *ev2_theap_peek(const ev2_theap_t *h);

/** Remove and return the earliest timer if its when <= now, else NULL. */
ev2_timer_t *ev2_theap_pop_expired(ev2_theap_t *h, apr_time_t now);

/** Earliest deadline, or EV2_NO_DEADLINE if empty. */
apr_time_t ev2_theap_next_deadline(const ev2_theap_t *h);

apr_size_t ev2_theap_count(const ev2_theap_t *h);

#endif /* EV2_EVENT_QUEUES_H */
