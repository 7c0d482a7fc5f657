/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * status.c - what a child writes into its own scoreboard slot, for
 * mod_status and for the parent: its connection and queue counts, whether
 * it accepts, that it is quiescing, and each worker's state.  Called on
 * every change, so the table is live (stock updates some of these only
 * when a queue entry expires).  Any thread of a child; the parent's own
 * scoreboard writes (pids, generations, dead slots) are in parent.c.
 */

#include "ev2.h"

/* The counts of the timeout queues; the caller holds qlock, under which
 * they are read, and which so also orders these writes. */
void ev2_status_queues(void)
{
    process_score *ps = ap_get_scoreboard_process(ev2_child->slot);

    ps->write_completion = ev2_tq_set_count(ev2_queues,
                                            CONN_STATE_WRITE_COMPLETION);
    ps->wait_io = ev2_tq_set_count(ev2_queues, CONN_STATE_ASYNC_WAITIO);
    ps->keep_alive = ev2_tq_set_count(ev2_queues, CONN_STATE_KEEPALIVE);
}

/* Any thread (the listener after each turn, a worker when a connection
 * closes or starts lingering): the last to write also read last. */
void ev2_status_conns(void)
{
    process_score *ps = ap_get_scoreboard_process(ev2_child->slot);

    apr_thread_mutex_lock(ev2_child->status_lock);
    ps->connections = apr_atomic_read32(&ev2_child->conns);
    ps->lingering_close = apr_atomic_read32(&ev2_child->lingering);
    ps->suspended = apr_atomic_read32(&ev2_child->suspended);
    apr_thread_mutex_unlock(ev2_child->status_lock);
}

/* mod_status shows "accepting: no" while the listening sockets are out
 * of the epoll set. */
void ev2_status_accepting(int on)
{
    ap_get_scoreboard_process(ev2_child->slot)->not_accepting = !on;
}

/* The child stopped accepting for good: the parent no longer counts it
 * against MaxRequestWorkers, and its idle workers show as finishing. */
void ev2_status_quiescing(void)
{
    int i;

    ap_get_scoreboard_process(ev2_child->slot)->quiescing = 1;
    for (i = 0; i < ev2_cfg.threads_per_child; i++) {
        worker_score *ws;

        ws = ap_get_scoreboard_worker_from_indexes(ev2_child->slot, i);
        if (ws->status == SERVER_READY) {
            ap_update_child_status_from_indexes(ev2_child->slot, i,
                                                SERVER_GRACEFUL, NULL);
        }
    }
}

void ev2_status_worker(int tid, int status)
{
    ap_update_child_status_from_indexes(ev2_child->slot, tid, status, NULL);
}
