/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * worker.c - the worker threads: pop an item from the fdqueue (a
 * connection with work, or a due timed callback), run it, come back.  A
 * worker never waits for a client: connections that must wait are parked
 * with the listener (conn.c).  Also the table of what each worker runs,
 * for an ungraceful stop, and the fdqueue's idle hook.  Worker threads;
 * ev2_worker_went_idle runs in a worker just before it blocks.
 */

#include "ev2.h"

/* The connection worker w runs (NULL: none), for shutdown_busy_sockets()
 * in child.c. */
void ev2_set_busy(ev2_worker_t *w, ev2_conn_t *cs)
{
    apr_thread_mutex_lock(ev2_child->busy_lock);
    ev2_child->busy[w->tid] = cs;
    apr_thread_mutex_unlock(ev2_child->busy_lock);
}

/* fdqueue idle hook: a worker is about to block and already counts as
 * idle.  If the listener closed admission, it may reopen it now.  The
 * listener switches accepting off before it re-checks admission, and we
 * count ourselves idle before we read the flag: one of the two sees the
 * other (the lost wake-up that left a child deaf with every worker idle). */
void ev2_worker_went_idle(void *arg)
{
    (void)arg;
    if (apr_atomic_read32(&ev2_child->accept_mode) == EV2_OFF_NO_WORKER) {
        ev2_wake_listener();
    }
}

/* While stopping, a worker beyond what the remaining connections need
 * may leave; the count is claimed atomically so they don't all go. */
static int may_leave_early(void)
{
    for (;;) {
        apr_uint32_t live = apr_atomic_read32(&ev2_child->live_workers);
        apr_uint32_t need = apr_atomic_read32(&ev2_child->conns);

        if (need < 1) {
            need = 1;
        }
        if (live <= need) {
            return 0;
        }
        if (apr_atomic_cas32(&ev2_child->live_workers, live - 1, live)
            == live) {
            return 1;
        }
    }
}

/* A due timed callback; its record goes back to the free list. */
static void run_timer(ev2_worker_t *w, ev2_timer_ev_t *te)
{
    ev2_status_worker(w->tid, SERVER_BUSY_WRITE);
    te->cb(te->baton);
    apr_thread_mutex_lock(ev2_child->qlock);
    te->next_free = ev2_child->timer_free;
    ev2_child->timer_free = te;
    apr_thread_mutex_unlock(ev2_child->qlock);
}

void *APR_THREAD_FUNC ev2_worker_main(apr_thread_t *thd, void *arg)
{
    ev2_worker_t *w = arg;
    int left_early = 0;

    w->thd = thd;
    for (;;) {
        ev2_fdq_elem_t *elem = NULL;
        ev2_item_t *item;
        apr_status_t rv;

        if (ev2_is_ungraceful()) {
            break;
        }
        if (ev2_is_stopping() && may_leave_early()) {
            left_early = 1;
            break;
        }
        ev2_status_worker(w->tid, ev2_is_stopping() ? SERVER_GRACEFUL
                                                    : SERVER_READY);
        rv = ev2_fdq_pop(ev2_child->fdq, &elem);
        if (rv == APR_EOF) {
            break;
        }
        if (rv != APR_SUCCESS) {
            continue;
        }
        item = (ev2_item_t *)elem;
        if (item->kind == EV2_ITEM_TIMER) {
            run_timer(w, (ev2_timer_ev_t *)item);
        }
        else {
            ev2_conn_run(w, (ev2_conn_t *)item);
        }
    }
    if (!left_early) {
        apr_atomic_dec32(&ev2_child->live_workers);
    }
    ev2_status_worker(w->tid, SERVER_DEAD);
    return NULL;
}
