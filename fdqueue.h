/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * fdqueue.h - the hand-off from the listener thread to the worker threads.
 *
 * An ev2_fdq_t is an unbounded, intrusive FIFO of work items plus the
 * bookkeeping the listener needs to decide whether a worker is free:
 *
 *   - Work items are ev2_fdq_elem_t links embedded in the caller's own
 *     structures (a freshly accepted socket's hand-off record, a parked
 *     connection, a due timer).  The queue never allocates per item and
 *     never looks inside an item; pushing cannot fail for lack of room.
 *   - "Idle workers" is the number of threads blocked in ev2_fdq_pop()
 *     minus the number of items queued and not yet taken.  It can be
 *     negative when more work is queued than threads wait for it.
 *     ev2_fdq_idle() reads it without taking the lock (a snapshot).
 *   - ev2_fdq_interrupt_all() makes every thread currently blocked in
 *     ev2_fdq_pop() return APR_EINTR once (used to let surplus workers
 *     re-check whether they should exit).
 *   - ev2_fdq_term() makes ev2_fdq_pop() return APR_EOF as soon as the
 *     FIFO is empty, now and for ever after.
 *   - A small locked stack recycles per-connection pools so the listener
 *     does not create a pool per accepted connection.
 *
 * Threads: any thread may call any function; all state is guarded by one
 * internal mutex, except ev2_fdq_idle(), which is an atomic read.
 * The module uses APR threads and atomics only: no httpd symbols.
 */

#ifndef EV2_FDQUEUE_H
#define EV2_FDQUEUE_H

#include <apr_pools.h>
#include <apr_errno.h>

/** A link the caller embeds in whatever it queues. */
typedef struct ev2_fdq_elem_t {
    struct ev2_fdq_elem_t *next;
} ev2_fdq_elem_t;

typedef struct ev2_fdq_t ev2_fdq_t;

/** Create a queue in pool p; max_recycled_pools caps the pool stack
 *  (0 = keep none, ev2_fdq_pool_put() then always returns APR_EAGAIN).
 *  Everything is released when p is destroyed. */
apr_status_t ev2_fdq_create(ev2_fdq_t **q, unsigned int max_recycled_pools,
                            apr_pool_t *p);

/** Append elem at the tail and wake one waiting popper, if any.
 *  Returns APR_EOF (and does not queue) after ev2_fdq_term(). */
apr_status_t ev2_fdq_push(ev2_fdq_t *q, ev2_fdq_elem_t *elem);

/** Cap the wake-ups under way at once (signals sent to sleeping poppers
 *  that have not woken yet); 0, the default, is no cap.  A popper that
 *  takes an item and leaves more behind wakes the next one, so every item
 *  still gets a popper; the cap only keeps a burst of pushes from making
 *  all sleeping threads runnable at the same moment. */
void ev2_fdq_set_max_waking(ev2_fdq_t *q, unsigned int n);

/** Block until an item is available and take the head into *elem.
 *  While blocked the caller counts as an idle worker.
 *  APR_SUCCESS: *elem is set.  APR_EINTR: ev2_fdq_interrupt_all() was
 *  called while we waited (*elem NULL).  APR_EOF: terminated and empty
 *  (*elem NULL).  Items queued before ev2_fdq_term() are still handed out. */
apr_status_t ev2_fdq_pop(ev2_fdq_t *q, ev2_fdq_elem_t **elem);

/** Called by a popper that is about to block, after it counts as idle
 *  (ev2_fdq_idle() already includes it), without the queue's lock held.
 *  Lets the owner react to "a worker just became idle" with no window in
 *  which the count went up but nobody looked.  Set before any pop. */
typedef void ev2_fdq_idle_hook_fn(void *arg);
void ev2_fdq_set_idle_hook(ev2_fdq_t *q, ev2_fdq_idle_hook_fn *fn, void *arg);

/** Idle workers right now: poppers waiting minus items queued. */
int ev2_fdq_idle(const ev2_fdq_t *q);

/** Number of items queued and not yet popped. */
unsigned int ev2_fdq_pending(ev2_fdq_t *q);

/** Wake every thread blocked in ev2_fdq_pop() with APR_EINTR. */
apr_status_t ev2_fdq_interrupt_all(ev2_fdq_t *q);

/** Terminate: wake all poppers; pops return APR_EOF once empty. */
apr_status_t ev2_fdq_term(ev2_fdq_t *q);

/** Clear pool p and keep it for reuse.  APR_EAGAIN when the stack is
 *  full (or the queue terminated): the caller must destroy p itself. */
apr_status_t ev2_fdq_pool_put(ev2_fdq_t *q, apr_pool_t *p);

/** A recycled (cleared) pool, or NULL when none is kept. */
apr_pool_t *ev2_fdq_pool_get(ev2_fdq_t *q);

/** Destroy every recycled pool kept so far (stopping child). */
void ev2_fdq_pool_drain(ev2_fdq_t *q);

#endif /* EV2_FDQUEUE_H */
