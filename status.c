/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * status.c - what a child writes into its own scoreboard slot, for
 * mod_status and for the parent: its connection and queue counts, whether
 * it accepts, that it is quiescing, and each worker's state.  Called on
 * every change, so the table is live (stock updates some of these only
 * when a queue entry expires).  Any thread of a child; the parent's own
 * scoreboard writes (pids, generations, dead slots) are in parent.c.
 */

#include <string.h>

#include "apr_shm.h"

#include "ev2.h"
#include "http_protocol.h"
#include "mod_status.h"

/* The counts of the timeout queues; the caller holds qlock, under which
 * they are read, and which so also orders these writes. */
static ev2_slot_status_t *slot_status(int slot);

void ev2_status_queues(void)
{
    process_score *ps = ap_get_scoreboard_process(ev2_child->slot);
    ev2_slot_status_t *ss = slot_status(ev2_child->slot);

    ps->write_completion = ev2_tq_set_count(ev2_queues,
                                            CONN_STATE_WRITE_COMPLETION);
    ps->wait_io = ev2_tq_set_count(ev2_queues, CONN_STATE_ASYNC_WAITIO);
    ps->keep_alive = ev2_tq_set_count(ev2_queues, CONN_STATE_KEEPALIVE);
    if (ss) {
        apr_atomic_set32(&ss->reading_header,
                         ev2_tq_set_count(ev2_queues, EV2_STATE_READ_HEADER));
    }
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

static const char *const mode_names[] = {
    [EV2_ACCEPTING] = "yes",
    [EV2_OFF_NO_WORKER] = "no worker soon",
    [EV2_OFF_AT_CAP] = "at its cap",
    [EV2_OFF_BACKOFF] = "backing off",
    [EV2_OFF_STOPPING] = "stopping",
};

static ev2_slot_status_t *slot_status(int slot)
{
    if (!ev2_retained->slots || slot < 0 || slot >= ev2_cfg.server_limit) {
        return NULL;
    }
    return &ev2_retained->slots[slot];
}

/* One shared segment for the parent's lifetime: ServerLimit cannot change
 * until a full stop, and children of every generation inherit it. */
apr_status_t ev2_status_setup(void)
{
    apr_size_t size;
    apr_shm_t *shm;
    apr_status_t rv;

    if (ev2_retained->slots) {
        return APR_SUCCESS;
    }
    size = (apr_size_t)ev2_cfg.server_limit * sizeof(ev2_slot_status_t);
    rv = apr_shm_create(&shm, size, NULL, ap_pglobal);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    ev2_retained->slots = apr_shm_baseaddr_get(shm);
    memset(ev2_retained->slots, 0, size);
    return APR_SUCCESS;
}

void ev2_status_reset(int slot)
{
    ev2_slot_status_t *ss = slot_status(slot);

    if (ss) {
        memset(ss, 0, sizeof(*ss));
    }
}

void ev2_status_cap(apr_uint32_t cap)
{
    ev2_slot_status_t *ss = slot_status(ev2_child->slot);

    if (ss) {
        ss->conns_cap = cap;
    }
}

void ev2_status_room_closed(int n)
{
    ev2_slot_status_t *ss = slot_status(ev2_child->slot);

    if (ss && n > 0) {
        apr_atomic_add32(&ss->room_closed, (apr_uint32_t)n);
    }
}

/* httpd's table shows "accepting: no" while the listening sockets are
 * out of the epoll set; our section says why. */
void ev2_status_accepting(ev2_accept_mode_e mode)
{
    ev2_slot_status_t *ss = slot_status(ev2_child->slot);

    ap_get_scoreboard_process(ev2_child->slot)->not_accepting =
        mode != EV2_ACCEPTING;
    if (ss) {
        apr_atomic_set32(&ss->mode, mode);
    }
}

/* A child that does not accept only for want of a free worker is below
 * its cap: it takes a waiting client as soon as a worker frees up. */
static int has_room_soon(int slot)
{
    ev2_slot_status_t *ss = slot_status(slot);

    return ss && apr_atomic_read32(&ss->mode) == EV2_OFF_NO_WORKER;
}

/* Whether another child of this child's bucket and generation accepts,
 * or will as soon as one of its workers is free.  *not_accepting counts
 * the children of the bucket that will not (at their cap, backing off),
 * this one included.  Read from the scoreboard and the shared segment, so
 * a moment old. */
int ev2_status_other_accepting(int *not_accepting)
{
    int num_buckets = ev2_retained->mpm->num_buckets;
    int bucket = (int)(ev2_child->bucket - ev2_buckets);
    ap_generation_t gen = ap_get_scoreboard_process(ev2_child->slot)
                          ->generation;
    int i, other = 0;

    *not_accepting = 1;
    for (i = 0; i < ev2_cfg.server_limit; i++) {
        process_score *ps = ap_get_scoreboard_process(i);

        if (i == ev2_child->slot || ps->pid == 0 || ps->quiescing
            || ps->generation != gen || i % num_buckets != bucket) {
            continue;
        }
        if (!ps->not_accepting || has_room_soon(i)) {
            other = 1;
        }
        else {
            (*not_accepting)++;
        }
    }
    return other;
}

/* mod_status's status_hook: a section of our own, and keys in ?auto. */
int ev2_status_hook(request_rec *r, int flags)
{
    int is_short = (flags & AP_STATUS_SHORT) != 0;
    apr_uint32_t cap = 0, closed = 0, reading = 0;
    int at_cap = 0, no_worker = 0, i;

    if (!ev2_retained->slots) {
        return OK;
    }
    if (!is_short) {
        ap_rputs("<h2>event2: admission</h2>\n<table border=\"0\">"
                 "<tr><th>Slot</th><th>PID</th><th>Connections</th>"
                 "<th>Reading header</th><th>Cap</th><th>Accepting</th>"
                 "<th>Closed to make room</th></tr>\n", r);
    }
    for (i = 0; i < ev2_cfg.server_limit; i++) {
        process_score *ps = ap_get_scoreboard_process(i);
        ev2_slot_status_t *ss = &ev2_retained->slots[i];
        apr_uint32_t mode = apr_atomic_read32(&ss->mode);
        const char *name;

        if (ps->pid == 0) {
            continue;
        }
        name = mode < sizeof(mode_names) / sizeof(mode_names[0])
               ? mode_names[mode] : "?";
        at_cap += mode == EV2_OFF_AT_CAP;
        no_worker += mode == EV2_OFF_NO_WORKER;
        closed += apr_atomic_read32(&ss->room_closed);
        reading += apr_atomic_read32(&ss->reading_header);
        if (ss->conns_cap > cap) {
            cap = ss->conns_cap;
        }
        if (is_short) {
            ap_rprintf(r, "Event2Slot%d: pid %" APR_PID_T_FMT " connections %u"
                       " reading %u cap %u accepting %s closed %u\n", i,
                       ps->pid, ps->connections,
                       apr_atomic_read32(&ss->reading_header), ss->conns_cap,
                       name, apr_atomic_read32(&ss->room_closed));
        }
        else {
            ap_rprintf(r, "<tr><td>%d</td><td>%" APR_PID_T_FMT "</td>"
                       "<td>%u</td><td>%u</td><td>%u</td><td>%s</td>"
                       "<td>%u</td></tr>\n", i, ps->pid, ps->connections,
                       apr_atomic_read32(&ss->reading_header), ss->conns_cap,
                       name, apr_atomic_read32(&ss->room_closed));
        }
    }
    if (is_short) {
        ap_rprintf(r, "Event2ConnsReadingHeader: %u\n"
                   "Event2ConnsCapPerChild: %u\n"
                   "Event2NotAcceptingAtCap: %d\n"
                   "Event2NotAcceptingNoWorker: %d\n"
                   "Event2ClosedToMakeRoom: %u\n", reading, cap, at_cap,
                   no_worker, closed);
    }
    else {
        ap_rputs("</table>\n", r);
    }
    return OK;
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
