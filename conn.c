/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * conn.c - a connection's life in the workers: created, run through
 * httpd's hooks, parked with the listener whenever it must wait for its
 * client (keep-alive, write completion, wait-io, lingering close), picked
 * up again when it has work, closed.  Parking takes the queue and what to
 * poll for from the state's row in states.c; lingering close is in
 * linger.c.  Also the connection pools, recycled through the fdqueue.
 *
 * Threads: the worker that owns the connection; ev2_conn_new and
 * ev2_conn_unpark run on the listener; the pool cleanup runs wherever the
 * pool is cleared.
 */

#include "ev2.h"
#include "http_connection.h"
#include "http_vhost.h"
#include "util_filter.h"

/* ---- pools ---- */

/* A pool for a new connection: one kept for reuse, or a new child of the
 * shared connection allocator's root.  NULL if none can be had. */
apr_pool_t *ev2_conn_pool_get(void)
{
    apr_pool_t *ptrans = ev2_fdq_pool_get(ev2_child->fdq);

    if (ptrans) {
        return ptrans;
    }
    if (apr_pool_create(&ptrans, ev2_child->conn_root) != APR_SUCCESS) {
        return NULL;
    }
    apr_pool_tag(ptrans, "transaction");
    return ptrans;
}

/* Done with a connection's pool: clearing it closes the socket and runs
 * conn_cleanup; it is kept for reuse or destroyed. */
void ev2_conn_pool_put(apr_pool_t *p)
{
    if (ev2_fdq_pool_put(ev2_child->fdq, p) != APR_SUCCESS) {
        apr_pool_destroy(p);
    }
}

void ev2_conn_push(ev2_conn_t *cs)
{
    /* The fdqueue is unbounded and intrusive: pushing only fails once it
     * is terminated, which happens after the listener stopped. */
    ev2_fdq_push(ev2_child->fdq, &cs->item.link);
}

static apr_status_t conn_cleanup(void *baton);

/* Listener: an accepted socket, counted from now until its pool is
 * cleared; a worker creates the conn_rec (header.c decides when). */
ev2_conn_t *ev2_conn_new(apr_pool_t *p, apr_socket_t *sd)
{
    ev2_conn_t *cs = apr_pcalloc(p, sizeof(*cs));

    cs->item.kind = EV2_ITEM_CONN;
    cs->p = p;
    cs->sd = sd;
    cs->sc = ev2_srv_of(ap_server_conf);
    cs->hsc = cs->sc;
    ev2_tq_entry_init(&cs->tq);
    ev2_pollee_init(&cs->pe, ev2_os_sock(sd), cs);
    apr_atomic_inc32(&ev2_child->conns);
    apr_pool_cleanup_register(p, cs, conn_cleanup, apr_pool_cleanup_null);
    return cs;
}

/* ---- handing over ---- */

/* A worker lets go of cs (to the listener, the fdqueue or a module):
 * the suspend hooks run, and the scoreboard handle it no longer owns is
 * cleared.  conn_reattach() undoes it in the worker that takes cs up. */
static void conn_detach(ev2_conn_t *cs)
{
    ap_run_suspend_connection(cs->c, cs->r);
    cs->c->sbh = NULL;
}

static void conn_reattach(ev2_conn_t *cs)
{
    cs->c->sbh = cs->sbh;
    ap_run_resume_connection(cs->c, cs->r);
}

/* Hand cs to the listener, to wait in its state: the table gives the
 * queue (of cs's vhost), what to poll for and where the deadline counts
 * from.  Returns 1 when parked (cs is no longer ours), 0 if it could not
 * be (cs is still ours, reattached). */
int ev2_conn_park(ev2_conn_t *cs)
{
    const ev2_state_t *row = ev2_state_of(cs->pub.state);
    unsigned int flags;
    apr_time_t stamp, deadline;
    apr_status_t rv;
    int wake = 0;

    if (!row) {
        return 0;
    }
    flags = row->poll;
    if (row->honours_sense) {
        if (cs->pub.sense == CONN_SENSE_WANT_READ) {
            flags = EV2_POLL_IN;
        }
        else if (cs->pub.sense == CONN_SENSE_WANT_WRITE) {
            flags = EV2_POLL_OUT;
        }
        cs->pub.sense = CONN_SENSE_DEFAULT;
    }
    stamp = row->keeps_stamp ? cs->linger_since : ev2_now();
    if (cs->c) {
        conn_detach(cs);
    }

    apr_thread_mutex_lock(ev2_child->qlock);
    ev2_tq_append(cs->sc->q[cs->pub.state], &cs->tq, stamp);
    rv = ev2_poller_arm(ev2_child->poller, &cs->pe, flags);
    if (rv != APR_SUCCESS) {
        ev2_tq_remove(&cs->tq);
        apr_thread_mutex_unlock(ev2_child->qlock);
        if (cs->c) {
            ap_log_cerror(APLOG_MARK, APLOG_ERR, rv, cs->c, "%s",
                          row->park_failed);
            conn_reattach(cs);
        }
        else {
            ap_log_error(APLOG_MARK, APLOG_ERR, rv, ap_server_conf, "%s",
                         row->park_failed);
        }
        return 0;
    }
    ev2_status_queues();
    deadline = ev2_tq_entry_deadline(&cs->tq);
    if (ev2_child->sleep_until == EV2_NO_DEADLINE
        || deadline + EV2_WAKE_SLACK < ev2_child->sleep_until) {
        ev2_child->sleep_until = deadline;
        wake = 1;
    }
    apr_thread_mutex_unlock(ev2_child->qlock);
    /* cs may already be in another worker's hands here. */
    if (wake) {
        ev2_wake_listener();
    }
    return 1;
}

/* Listener: cs, which the listener holds (parked, or just off its
 * queue), goes on waiting in state: on that state's queue from now, armed
 * again.  Returns 0 if the epoll set refused it (cs is off every queue
 * then, the caller hands it to a worker). */
int ev2_conn_repark(ev2_conn_t *cs, conn_state_e state)
{
    const ev2_state_t *row = ev2_state_of(state);
    apr_status_t rv;

    if (!row) {
        return 0;
    }
    apr_thread_mutex_lock(ev2_child->qlock);
    ev2_tq_remove(&cs->tq);
    cs->pub.state = state;
    ev2_tq_append(cs->sc->q[state], &cs->tq, ev2_now());
    rv = ev2_poller_arm(ev2_child->poller, &cs->pe, row->poll);
    if (rv != APR_SUCCESS) {
        ev2_tq_remove(&cs->tq);
    }
    ev2_status_queues();
    apr_thread_mutex_unlock(ev2_child->qlock);
    return rv == APR_SUCCESS;
}

/* Listener: take cs, whose one-shot registration fired, off its timeout
 * queue: it is the listener's to hand on or close now. */
void ev2_conn_unpark(ev2_conn_t *cs)
{
    apr_thread_mutex_lock(ev2_child->qlock);
    ev2_tq_remove(&cs->tq);
    ev2_status_queues();
    apr_thread_mutex_unlock(ev2_child->qlock);
}

/* ---- worker side ---- */

/* The books of a connection close when its pool is cleared. */
static apr_status_t conn_cleanup(void *baton)
{
    ev2_conn_t *cs = baton;

    if (cs->is_lingering) {
        apr_atomic_dec32(&ev2_child->lingering);
    }
    if (cs->is_suspended) {
        apr_atomic_dec32(&ev2_child->suspended);
    }
    apr_atomic_dec32(&ev2_child->conns);
    ev2_status_conns();
    if (ev2_is_stopping()) {
        /* The listener exits on the last connection, and surplus
         * workers may leave now. */
        ev2_fdq_interrupt_all(ev2_child->fdq);
        ev2_wake_listener();
    }
    else if (apr_atomic_read32(&ev2_child->accept_mode) != EV2_ACCEPTING) {
        ev2_wake_listener();
    }
    return APR_SUCCESS;
}

/* A module that suspended a connection and lets its pool die gets its
 * resume notification first. */
static apr_status_t conn_precleanup(void *baton)
{
    ev2_conn_t *cs = baton;

    if (cs->is_suspended && cs->c) {
        ap_run_resume_connection(cs->c, cs->r);
    }
    return APR_SUCCESS;
}

void ev2_conn_release(ev2_worker_t *w, ev2_conn_t *cs)
{
    ev2_set_busy(w, NULL);
    ev2_conn_pool_put(cs->p);
}

static long conn_id(ev2_worker_t *w)
{
    return (long)ev2_child->slot * ev2_cfg.thread_limit + w->tid;
}

/* The conn_rec for an accepted socket, and the pre_connection hooks.
 * Returns 0 if there is no connection (core closed the socket). */
static int conn_create(ev2_worker_t *w, ev2_conn_t *cs)
{
    conn_rec *c;
    int rc;

    cs->ba = apr_bucket_alloc_create(cs->p);
    ap_create_sb_handle(&cs->sbh, cs->p, ev2_child->slot, w->tid);
    c = ap_run_create_connection(cs->p, ap_server_conf, cs->sd, conn_id(w),
                                 cs->sbh, cs->ba);
    if (!c) {
        cs->sd = NULL;
        ev2_conn_release(w, cs);
        return 0;
    }
    cs->c = c;
    ap_set_module_config(c->conn_config, &mpm_event2_module, cs);
    c->cs = &cs->pub;
    c->current_thread = w->thd;
    cs->sc = ev2_srv_of(c->base_server);
    cs->pub.state = CONN_STATE_PROCESSING;
    cs->pub.sense = CONN_SENSE_DEFAULT;
    apr_pool_pre_cleanup_register(cs->p, cs, conn_precleanup);

    ap_update_vhost_given_ip(c);
    if (c->base_server && ev2_srv_of(c->base_server)) {
        cs->hsc = ev2_srv_of(c->base_server);
    }
    /* A new connection shows its client before any request is read. */
    ap_update_child_status_from_conn(c->sbh, SERVER_BUSY_READ, c);
    rc = ap_pre_connection(c, cs->sd);
    if (rc != OK && rc != DONE) {
        ap_log_cerror(APLOG_MARK, APLOG_DEBUG, 0, c, APLOGNO(00469)
                      "process_socket: connection aborted");
        cs->pub.state = CONN_STATE_LINGER;
    }
    if (!cs->sc) {
        cs->sc = ev2_srv_of(ap_server_conf);
    }
    return 1;
}

static void conn_resume(ev2_worker_t *w, ev2_conn_t *cs)
{
    ap_update_sb_handle(cs->sbh, ev2_child->slot, w->tid);
    cs->c->current_thread = w->thd;
    cs->c->id = conn_id(w);
    conn_reattach(cs);
}

/* What the hooks left: the next state, per the MPM contract. */
static void conn_process(ev2_conn_t *cs)
{
    conn_rec *c = cs->c;
    int rc;

    /* No scoreboard update here: http_core's process_connection (and
     * mod_http2's) marks the worker BUSY_READ with the client and vhost
     * for every request itself; a second copy of those strings cost 380
     * instructions a request (callgrind). */
    cs->pub.state = CONN_STATE_PROCESSING;
    cs->pub.sense = CONN_SENSE_DEFAULT;
    /* Whatever it waited for is here: the next wait starts afresh. */
    cs->is_held = 0;
    cs->is_waiting = 0;
    cs->body_since = 0;
    rc = ap_run_process_connection(c);
    if (rc == DONE) {
        rc = OK;
    }
    if (rc != OK) {
        ap_log_cerror(APLOG_MARK, APLOG_DEBUG, 0, c, APLOGNO(10111)
                      "process_socket: connection processing returned %i "
                      "(state %i): closing", rc, (int)cs->pub.state);
    }
    if (rc != OK || c->aborted) {
        cs->pub.state = CONN_STATE_LINGER;
        return;
    }
    switch (cs->pub.state) {
    case CONN_STATE_KEEPALIVE:
        cs->pub.state = CONN_STATE_WRITE_COMPLETION;
        break;
    case CONN_STATE_WRITE_COMPLETION:
    case CONN_STATE_ASYNC_WAITIO:
    case CONN_STATE_SUSPENDED:
    case CONN_STATE_LINGER:
        break;
    case CONN_STATE_PROCESSING:
        /* A third-party hook served it and claimed nothing after. */
        cs->pub.state = CONN_STATE_LINGER;
        break;
    case CONN_STATE_HANDLER:
    case CONN_STATE_LINGER_NORMAL:
    case CONN_STATE_LINGER_SHORT:
    case CONN_STATE_NUM:
        ap_log_cerror(APLOG_MARK, APLOG_DEBUG, 0, c, APLOGNO(10111)
                      "process_socket: connection processing returned %i "
                      "(unexpected state %i): closing", rc,
                      (int)cs->pub.state);
        cs->pub.state = CONN_STATE_LINGER;
        break;
    }
}

/* cs's next request is already read (pipelined, or sent while we
 * answered).  If other connections wait for a worker, send cs to the back
 * of the line rather than serve it again at once: a client that always
 * has its next request ready would otherwise keep this worker for as long
 * as it sends, and the connections queued behind it would starve (wrk's
 * p99 went past 100 ms this way when a child held more busy connections
 * than workers).  Returns 1 when queued (cs is no longer ours). */
static int conn_requeue(ev2_conn_t *cs)
{
    if (ev2_fdq_idle(ev2_child->fdq) >= 0) {
        return 0;
    }
    conn_detach(cs);
    if (ev2_fdq_push(ev2_child->fdq, &cs->item.link) != APR_SUCCESS) {
        /* The queue is closed (stopping): serve it here. */
        conn_reattach(cs);
        return 0;
    }
    return 1;
}

/* Park cs in state, or close it if it cannot be parked.  Returns 1 when
 * parked. */
static int park_or_close(ev2_conn_t *cs, conn_state_e state)
{
    cs->pub.state = state;
    if (ev2_conn_park(cs)) {
        return 1;
    }
    cs->pub.state = CONN_STATE_LINGER;
    return 0;
}

/* Flush what the core output filter kept; then wait for the socket, go
 * on to keep-alive, read a pipelined request, or close.
 * Returns 1 if the connection was parked or requeued. */
static int conn_write_completion(ev2_conn_t *cs)
{
    conn_rec *c = cs->c;
    ap_filter_t *f = c->output_filters;
    apr_status_t rv;

    ap_update_child_status(c->sbh, SERVER_BUSY_WRITE, NULL);
    while (f->next) {
        f = f->next;
    }
    rv = f->frec->filter_func.out_func(f, NULL);
    if (rv != APR_SUCCESS || c->aborted) {
        cs->pub.state = CONN_STATE_LINGER;
        return 0;
    }
    if (c->data_in_output_filters || cs->pub.sense == CONN_SENSE_WANT_READ) {
        return park_or_close(cs, CONN_STATE_WRITE_COMPLETION);
    }
    if (c->keepalive != AP_CONN_KEEPALIVE || c->aborted) {
        cs->pub.state = CONN_STATE_LINGER;
        return 0;
    }
    if (c->data_in_input_filters) {
        /* Its next request has begun: read ahead for it first, so that a
         * client that sent only part of it cannot keep a worker waiting
         * (hold.c). */
        cs->pub.state = ev2_hold_applies(cs) ? EV2_STATE_READ_HEADER
                                             : CONN_STATE_PROCESSING;
        return conn_requeue(cs);
    }
    /* Even in a stopping child: this response promised keep-alive (it was
     * made before the stop; later ones say "Connection: close"), and the
     * client may be sending its next request right now.  Closing at once
     * would fail that request; parked, the connection is closed by the
     * drain once surely idle, or serves that one request first. */
    ap_update_child_status(c->sbh, SERVER_BUSY_KEEPALIVE, NULL);
    /* Give back what an idle connection does not use of its pool's and
     * its bucket allocator's blocks (memtrim.h). */
    ev2_trim_pool(c->pool, &cs->trim_pool);
    ev2_trim_bucket_alloc(cs->ba, &cs->trim_ba);
    return park_or_close(cs, CONN_STATE_KEEPALIVE);
}

/* Send on what the output filters keep of cs's last response.  httpd
 * leaves it unflushed when the next request has begun (it would go out
 * with that one's), and mod_ssl keeps it in its own buffer, out of the
 * core's reach: a client that waits for it before it sends the rest
 * would wait for the header timeout.  Returns 0 on a failed write. */
static int conn_flush(ev2_conn_t *cs)
{
    conn_rec *c = cs->c;
    apr_bucket_brigade *bb = apr_brigade_create(c->pool, c->bucket_alloc);
    apr_status_t rv;

    APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_flush_create(c->bucket_alloc));
    rv = ap_pass_brigade(c->output_filters, bb);
    apr_brigade_destroy(bb);
    return rv == APR_SUCCESS && !c->aborted;
}

/* Read ahead for cs's request (hold.c): park it if the request is not
 * all there, or go on to process it.  Returns 1 when parked. */
static int conn_read_ahead(ev2_worker_t *w, ev2_conn_t *cs)
{
    if (!ev2_hold_applies(cs) || !ev2_hold_fill(cs)) {
        cs->pub.state = CONN_STATE_PROCESSING;
        return 0;
    }
    if (!cs->is_waiting && cs->c->keepalives > 0 && !conn_flush(cs)) {
        cs->pub.state = CONN_STATE_LINGER;
        return 0;
    }
    ev2_header_wait_begin(cs);
    cs->is_held = 1;
    ap_update_child_status(cs->c->sbh, SERVER_BUSY_READ, NULL);
    ev2_trim_bucket_alloc(cs->ba, &cs->trim_ba);
    ev2_set_busy(w, NULL);
    if (park_or_close(cs, EV2_STATE_READ_HEADER)) {
        return 1;
    }
    ev2_set_busy(w, cs);
    return 0;
}

static void conn_suspend(ev2_worker_t *w, ev2_conn_t *cs)
{
    /* A module owns it now; its pool's death does the accounting. */
    cs->is_suspended = 1;
    apr_atomic_inc32(&ev2_child->suspended);
    ev2_status_conns();
    conn_detach(cs);
    ev2_set_busy(w, NULL);
}

/* Worker: run cs until it waits (parked), is suspended, or is closed. */
void ev2_conn_run(ev2_worker_t *w, ev2_conn_t *cs)
{
    ev2_set_busy(w, cs);
    if (!cs->c) {
        int is_held = cs->is_held;

        if (!conn_create(w, cs)) {
            return;
        }
        /* Its body is still on its way (header.c), or only mod_ssl can
         * tell what it sent: read ahead before httpd reads (hold.c). */
        if (cs->pub.state == CONN_STATE_PROCESSING
            && (is_held || ev2_hold_is_tls(cs))) {
            cs->pub.state = EV2_STATE_READ_HEADER;
        }
    }
    else {
        conn_resume(w, cs);
    }
    if (cs->is_header_late && cs->pub.state == CONN_STATE_PROCESSING) {
        /* Its reads time out at once: httpd answers it as late. */
        ap_filter_t *late = ev2_header_late(cs);

        conn_process(cs);
        ap_remove_input_filter(late);
    }

    for (;;) {
        if (cs->c->aborted && !ev2_is_lingering_state(cs->pub.state)) {
            cs->pub.state = CONN_STATE_LINGER;
        }
        switch (cs->pub.state) {
        case CONN_STATE_PROCESSING:
            conn_process(cs);
            continue;
        case CONN_STATE_KEEPALIVE:
        case CONN_STATE_WRITE_COMPLETION:
            ev2_set_busy(w, NULL);
            if (conn_write_completion(cs)) {
                return;
            }
            ev2_set_busy(w, cs);
            continue;
        case CONN_STATE_ASYNC_WAITIO:
            ap_update_child_status(cs->c->sbh, SERVER_BUSY_READ, NULL);
            ev2_set_busy(w, NULL);
            if (park_or_close(cs, CONN_STATE_ASYNC_WAITIO)) {
                return;
            }
            ev2_set_busy(w, cs);
            continue;
        case EV2_STATE_READ_HEADER:
            if (conn_read_ahead(w, cs)) {
                return;
            }
            continue;
        case CONN_STATE_SUSPENDED:
            conn_suspend(w, cs);
            return;
        case CONN_STATE_LINGER:
        case CONN_STATE_LINGER_NORMAL:
        case CONN_STATE_LINGER_SHORT:
            ev2_conn_linger(w, cs);
            return;
        case CONN_STATE_HANDLER:
            break;
        }
        ap_log_cerror(APLOG_MARK, APLOG_DEBUG, 0, cs->c, EV2LOG(103)
                      "unexpected connection state %d: closing",
                      (int)cs->pub.state);
        cs->pub.state = CONN_STATE_LINGER;
    }
}
