/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * fdqueue.c - the listener-to-worker hand-off behind fdqueue.h.
 *
 * One mutex (q->lock) guards everything in ev2_fdq_t except q->idle, which
 * is only written while q->lock is held but may be read without it.  One
 * condition variable (q->not_empty) is where poppers sleep.  No other lock
 * is ever taken while q->lock is held, so there is no lock order to keep;
 * pools are cleared and destroyed outside the lock.
 *
 * Invariants, true whenever q->lock is free:
 *   - q->queued is the length of the list head..tail (tail is NULL iff
 *     head is NULL);
 *   - q->waiting is the number of threads inside the wait loop of
 *     ev2_fdq_pop();
 *   - q->idle holds (waiting - queued) as a two's complement 32-bit value;
 *   - q->sleeping (<= waiting) counts those blocked in cond_wait, and
 *     q->waking the signals sent to them that no return from cond_wait has
 *     answered yet (a spurious return may answer one early: that can only
 *     let one wake-up too many happen, never one too few);
 *   - q->npools is the length of the recycled pool stack and never exceeds
 *     q->max_pools.
 *
 * Callers: the listener pushes and recycles pools, workers pop, the child's
 * main thread interrupts and terminates.  Any thread may call anything.
 */

#include <apr_thread_mutex.h>
#include <apr_thread_cond.h>
#include <apr_atomic.h>

#include "fdqueue.h"

/* A recycled pool on the stack.  The node lives inside the pool it names
 * (allocated right after the pool was cleared), so keeping a pool costs no
 * memory beyond what the cleared pool already holds, and the node vanishes
 * with the pool when it is handed out and cleared again. */
typedef struct kept_pool_t {
    struct kept_pool_t *next;
    apr_pool_t *pool;
} kept_pool_t;

struct ev2_fdq_t {
    apr_thread_mutex_t *lock;       /* guards every field below but idle */
    apr_thread_cond_t *not_empty;   /* poppers wait here, under lock */

    ev2_fdq_elem_t *head;           /* oldest item, next to be popped */
    ev2_fdq_elem_t *tail;           /* newest item, NULL when empty */
    unsigned int queued;            /* items on head..tail */
    unsigned int waiting;           /* poppers blocked on not_empty */
    unsigned int sleeping;          /* of those, inside cond_wait now */
    unsigned int waking;            /* signals sent, not yet woken to */
    unsigned int max_waking;        /* cap on waking; 0 = no cap */

    /* Bumped by ev2_fdq_interrupt_all(); a popper remembers the value it
     * saw on entry and gives up with APR_EINTR once it changes.  Wrapping
     * is harmless: only "different from what I saw" matters, and a popper
     * cannot sleep through 2^32 interrupts without being woken by one. */
    apr_uint32_t interrupt_gen;
    int is_terminated;

    kept_pool_t *pools;             /* stack of cleared pools */
    unsigned int npools;
    unsigned int max_pools;

    ev2_fdq_idle_hook_fn *idle_hook;    /* set once, before any pop */
    void *idle_hook_arg;

    /* waiting - queued, for ev2_fdq_idle() to read without the lock.
     * Written only under lock, so writers never race each other; the
     * atomic store/load only make the unlocked read well defined. */
    volatile apr_uint32_t idle;
};

/* Recompute the lock-free idle snapshot.  Pre: q->lock held. */
static void publish_idle(ev2_fdq_t *q)
{
    /* Both counts are far below 2^31 in practice (threads and connections
     * of one child), so the difference fits; the unsigned subtraction
     * wraps to the two's complement encoding ev2_fdq_idle() undoes. */
    apr_atomic_set32(&q->idle, (apr_uint32_t)q->waiting
                               - (apr_uint32_t)q->queued);
}

/* Detach the whole pool stack.  Pre: q->lock held. */
static kept_pool_t *take_all_pools(ev2_fdq_t *q)
{
    kept_pool_t *all = q->pools;

    q->pools = NULL;
    q->npools = 0;
    return all;
}

static void destroy_pools(kept_pool_t *kp)
{
    while (kp) {
        /* kp lives inside kp->pool: read the link before destroying. */
        kept_pool_t *next = kp->next;

        apr_pool_destroy(kp->pool);
        kp = next;
    }
}

/* Pre-cleanup on the creating pool.  It has to be a *pre* cleanup: APR
 * destroys a pool's children before running its ordinary cleanups, so if
 * the kept pools are children of that same pool (the usual setup), an
 * ordinary cleanup would destroy them a second time.  Pre-cleanups run
 * while the children and our mutex still exist.  No thread may use the
 * queue once its pool is being destroyed, so the lock is uncontended. */
static apr_status_t fdq_pre_cleanup(void *data)
{
    ev2_fdq_t *q = data;
    kept_pool_t *all;

    apr_thread_mutex_lock(q->lock);
    all = take_all_pools(q);
    apr_thread_mutex_unlock(q->lock);
    destroy_pools(all);
    return APR_SUCCESS;
}

apr_status_t ev2_fdq_create(ev2_fdq_t **pq, unsigned int max_recycled_pools,
                            apr_pool_t *p)
{
    ev2_fdq_t *q;
    apr_status_t rv;

    *pq = NULL;
    q = apr_pcalloc(p, sizeof(*q));

    /* The mutex and condvar register their own cleanups on p, so they are
     * released with p; nothing else here holds OS resources. */
    rv = apr_thread_mutex_create(&q->lock, APR_THREAD_MUTEX_DEFAULT, p);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    rv = apr_thread_cond_create(&q->not_empty, p);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    q->max_pools = max_recycled_pools;
    apr_atomic_set32(&q->idle, 0);
    apr_pool_pre_cleanup_register(p, q, fdq_pre_cleanup);

    *pq = q;
    return APR_SUCCESS;
}

/* Wake a sleeping popper for the items queued, unless enough wake-ups
 * are under way.  One item satisfies one popper, so a popper is woken per
 * item, but at most max_waking at a time: each woken popper, once it has
 * taken its item, wakes the next one if items remain (ev2_fdq_pop).  A
 * burst of items then does not make every sleeping thread runnable at
 * once, where on few CPUs they would only queue for the CPU, each at the
 * back of the others, and delay the thread that queued the burst.
 *
 * Only poppers inside cond_wait count: one still on its way there
 * (running the idle hook) would not get the signal, and the wake-up
 * counted for it would never end.  With nobody asleep, nothing to do: a
 * popper arriving later checks the list before it sleeps.
 * Pre: q->lock held. */
static void wake_one(ev2_fdq_t *q)
{
    if (q->sleeping > q->waking && q->queued > q->waking
        && (q->max_waking == 0 || q->waking < q->max_waking)) {
        q->waking++;
        apr_thread_cond_signal(q->not_empty);
    }
}

apr_status_t ev2_fdq_push(ev2_fdq_t *q, ev2_fdq_elem_t *elem)
{
    apr_status_t rv;

    rv = apr_thread_mutex_lock(q->lock);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (q->is_terminated) {
        apr_thread_mutex_unlock(q->lock);
        return APR_EOF;
    }

    elem->next = NULL;
    if (q->tail) {
        q->tail->next = elem;
    }
    else {
        q->head = elem;
    }
    q->tail = elem;
    q->queued++;
    publish_idle(q);

    /* The item is queued whatever the signal returns, so push reports
     * success: an error here would make the caller think it still owns
     * elem. */
    wake_one(q);
    apr_thread_mutex_unlock(q->lock);
    return APR_SUCCESS;
}

apr_status_t ev2_fdq_pop(ev2_fdq_t *q, ev2_fdq_elem_t **elem)
{
    apr_status_t rv;
    apr_uint32_t gen;

    *elem = NULL;
    rv = apr_thread_mutex_lock(q->lock);
    if (rv != APR_SUCCESS) {
        return rv;
    }

    if (!q->head) {
        /* Only an interrupt issued after this point concerns us: a popper
         * that arrives just after an interrupt_all() must block normally. */
        gen = q->interrupt_gen;
        q->waiting++;
        publish_idle(q);

        if (q->idle_hook) {
            /* Outside the lock: the hook may wake other threads or take
             * their locks.  We still count as waiting meanwhile; a push in
             * this gap signals nobody, but the loop below sees its item
             * before it would block. */
            apr_thread_mutex_unlock(q->lock);
            q->idle_hook(q->idle_hook_arg);
            apr_thread_mutex_lock(q->lock);
        }

        /* Loop on the condition itself: a wake-up may be spurious, or a
         * popper that never slept may have taken the item first. */
        while (!q->head && !q->is_terminated && q->interrupt_gen == gen) {
            q->sleeping++;
            rv = apr_thread_cond_wait(q->not_empty, q->lock);
            q->sleeping--;
            /* Whether this was the signal or a spurious wake-up, one
             * wake-up fewer is under way; an error may hide a wake-up,
             * but counting too few only lets wake_one() wake one more. */
            if (q->waking > 0) {
                q->waking--;
            }
            if (rv != APR_SUCCESS) {
                break;
            }
        }

        /* No publish_idle() here: ev2_fdq_idle() readers do not take the
         * lock, so they would see the transient "one waiter fewer, item
         * still queued" value.  Publish once the state is final. */
        q->waiting--;

        /* Work beats both interruption and termination: an item that is
         * there now must not wait for another popper. */
        if (!q->head) {
            publish_idle(q);
            if (rv == APR_SUCCESS) {
                rv = q->is_terminated ? APR_EOF : APR_EINTR;
            }
            apr_thread_mutex_unlock(q->lock);
            return rv;
        }
    }

    *elem = q->head;
    q->head = q->head->next;
    if (!q->head) {
        q->tail = NULL;
    }
    q->queued--;
    publish_idle(q);
    /* Pass the wake-up on: items left behind this one need poppers. */
    if (q->head) {
        wake_one(q);
    }
    apr_thread_mutex_unlock(q->lock);

    (*elem)->next = NULL;
    return APR_SUCCESS;
}

void ev2_fdq_set_max_waking(ev2_fdq_t *q, unsigned int n)
{
    apr_thread_mutex_lock(q->lock);
    q->max_waking = n;
    apr_thread_mutex_unlock(q->lock);
}

void ev2_fdq_set_idle_hook(ev2_fdq_t *q, ev2_fdq_idle_hook_fn *fn, void *arg)
{
    q->idle_hook = fn;
    q->idle_hook_arg = arg;
}

int ev2_fdq_idle(const ev2_fdq_t *q)
{
    /* apr_atomic_read32() takes a non-const pointer but only loads.
     * The conversion back to a signed value relies on two's complement,
     * which every platform APR supports provides. */
    return (int)(apr_int32_t)apr_atomic_read32((volatile apr_uint32_t *)
                                               &q->idle);
}

unsigned int ev2_fdq_pending(ev2_fdq_t *q)
{
    unsigned int n;

    apr_thread_mutex_lock(q->lock);
    n = q->queued;
    apr_thread_mutex_unlock(q->lock);
    return n;
}

/* Wake every blocked popper: as interrupted (a new interrupt
 * generation), or for good once terminated. */
static apr_status_t wake_all(ev2_fdq_t *q, int terminate)
{
    apr_status_t rv;

    rv = apr_thread_mutex_lock(q->lock);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (terminate) {
        q->is_terminated = 1;
    }
    else {
        q->interrupt_gen++;
    }
    rv = apr_thread_cond_broadcast(q->not_empty);
    apr_thread_mutex_unlock(q->lock);
    return rv;
}

apr_status_t ev2_fdq_interrupt_all(ev2_fdq_t *q)
{
    return wake_all(q, 0);
}

apr_status_t ev2_fdq_term(ev2_fdq_t *q)
{
    return wake_all(q, 1);
}

apr_status_t ev2_fdq_pool_put(ev2_fdq_t *q, apr_pool_t *p)
{
    kept_pool_t *kp;
    int is_full;

    /* Cheap early refusal, so a full stack does not cost a clear. */
    apr_thread_mutex_lock(q->lock);
    is_full = q->is_terminated || q->npools >= q->max_pools;
    apr_thread_mutex_unlock(q->lock);
    if (is_full) {
        return APR_EAGAIN;
    }

    /* Clearing runs the pool's cleanups (closing the connection's socket,
     * for one), which may take a while: do it without the lock. */
    apr_pool_clear(p);
    kp = apr_palloc(p, sizeof(*kp));
    kp->pool = p;

    /* The stack may have filled, or the queue terminated, meanwhile. */
    apr_thread_mutex_lock(q->lock);
    if (q->is_terminated || q->npools >= q->max_pools) {
        apr_thread_mutex_unlock(q->lock);
        return APR_EAGAIN;
    }
    kp->next = q->pools;
    q->pools = kp;
    q->npools++;
    apr_thread_mutex_unlock(q->lock);
    return APR_SUCCESS;
}

apr_pool_t *ev2_fdq_pool_get(ev2_fdq_t *q)
{
    kept_pool_t *kp;

    apr_thread_mutex_lock(q->lock);
    kp = q->pools;
    if (kp) {
        q->pools = kp->next;
        q->npools--;
    }
    apr_thread_mutex_unlock(q->lock);

    /* kp itself stays allocated in the pool it names until the caller
     * clears that pool; it is never touched again. */
    return kp ? kp->pool : NULL;
}

void ev2_fdq_pool_drain(ev2_fdq_t *q)
{
    kept_pool_t *all;

    apr_thread_mutex_lock(q->lock);
    all = take_all_pools(q);
    apr_thread_mutex_unlock(q->lock);
    destroy_pools(all);
}
