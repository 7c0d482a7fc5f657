/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * conn.c - a connection's life: created in a worker, run through httpd's
 * hooks, parked with the listener whenever it must wait for its client
 * (keep-alive, write completion, wait-io, lingering close), picked up
 * again, closed.
 *
 * One table (states[]) says, for each state a connection can wait in,
 * what its queue's timeout is, what to poll for, and what readiness and
 * expiry mean.  Parking reads it, the listener's ready, expiry and
 * early-close paths read it, and post_config builds the queues from it:
 * a new waiting state is a new row.
 *
 * Threads: the functions under "listener side" run on the listener
 * thread on connections it owns (parked ones); the others run on the
 * worker that owns the connection.  The pool cleanup runs wherever the
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

static void push(ev2_conn_t *cs)
{
    /* The fdqueue is unbounded and intrusive: pushing only fails once it
     * is terminated, which happens after the listener stopped. */
    ev2_fdq_push(ev2_child->fdq, &cs->item.link);
}

/* Listener: an accepted socket, for a worker to create the connection. */
ev2_conn_t *ev2_conn_new(apr_pool_t *p, apr_socket_t *sd)
{
    ev2_conn_t *cs = apr_pcalloc(p, sizeof(*cs));

    cs->item.kind = EV2_ITEM_CONN;
    cs->p = p;
    cs->sd = sd;
    ev2_tq_entry_init(&cs->tq);
    apr_atomic_inc32(&ev2_child->conns);
    push(cs);
    return cs;
}

static int in_linger(const ev2_conn_t *cs)
{
    return cs->pub.state == CONN_STATE_LINGER_NORMAL
           || cs->pub.state == CONN_STATE_LINGER_SHORT;
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
/* epoll_ctl refused a connection about to wait in state: say it in stock's
 * words for the same wait (its apr_pollset_add failures). */
static void log_park_failure(conn_rec *c, conn_state_e state,
                             apr_status_t rv)
{
    switch (state) {
    case CONN_STATE_WRITE_COMPLETION:
        ap_log_cerror(APLOG_MARK, APLOG_ERR, rv, c, APLOGNO(03465)
                      "process_socket: apr_pollset_add failure in "
                      "CONN_STATE_WRITE_COMPLETION");
        return;
    case CONN_STATE_ASYNC_WAITIO:
        ap_log_cerror(APLOG_MARK, APLOG_ERR, rv, c, APLOGNO(10503)
                      "process_socket: apr_pollset_add failure in "
                      "CONN_STATE_ASYNC_WAITIO");
        return;
    case CONN_STATE_KEEPALIVE:
        ap_log_cerror(APLOG_MARK, APLOG_ERR, rv, c, APLOGNO(03093)
                      "process_socket: apr_pollset_add failure for "
                      "keep alive");
        return;
    case CONN_STATE_LINGER:
    case CONN_STATE_LINGER_NORMAL:
    case CONN_STATE_LINGER_SHORT:
        ap_log_cerror(APLOG_MARK, APLOG_ERR, rv, c, APLOGNO(03092)
                      "process_lingering_close: apr_pollset_add failure");
        return;
    case CONN_STATE_PROCESSING:
    case CONN_STATE_HANDLER:
    case CONN_STATE_SUSPENDED:
    case CONN_STATE_NUM:
        break;
    }
    /* not a waiting state: ev2_state_of() has no row for it */
}

static int conn_park(ev2_conn_t *cs)
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
    conn_detach(cs);

    apr_thread_mutex_lock(ev2_child->qlock);
    ev2_tq_append(cs->sc->q[cs->pub.state], &cs->tq, stamp);
    rv = ev2_poller_arm(ev2_child->poller, &cs->pe, flags);
    if (rv != APR_SUCCESS) {
        ev2_tq_remove(&cs->tq);
        apr_thread_mutex_unlock(ev2_child->qlock);
        log_park_failure(cs->c, cs->pub.state, rv);
        conn_reattach(cs);
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

/* ---- lingering close ---- */

/* Read and discard, without blocking, what a lingering client still
 * sends.  APR_EOF: it closed (or the socket failed), close ours.
 * APR_EAGAIN: nothing more for now.  APR_SUCCESS: data kept coming for
 * max_reads reads; look again later. */
static apr_status_t linger_drain(ev2_conn_t *cs, int max_reads)
{
    char buf[2048];
    int i;

    for (i = 0; i < max_reads; i++) {
        apr_size_t len = sizeof(buf);
        apr_status_t rv = apr_socket_recv(cs->sd, buf, &len);

        if (APR_STATUS_IS_EAGAIN(rv)) {
            return APR_EAGAIN;
        }
        if (rv != APR_SUCCESS || len == 0) {
            return APR_EOF;
        }
    }
    return APR_SUCCESS;
}

static void count_lingering(ev2_conn_t *cs)
{
    if (!cs->is_lingering) {
        cs->is_lingering = 1;
        apr_atomic_inc32(&ev2_child->lingering);
        ev2_status_conns();
    }
}

/* Worker: shut our side, then read and discard what the client still
 * sends until it closes or the linger time runs out, so that an early
 * error response is not destroyed by a reset.  The waiting is the
 * listener's (parked in LINGER_NORMAL or LINGER_SHORT). */
static void conn_linger(ev2_worker_t *w, ev2_conn_t *cs);

/* Listener: start the lingering close of an idle connection here,
 * without blocking: when every worker is busy, handing it to one would
 * leave the client waiting for our FIN until a worker frees up.  Only the
 * start runs here (EOC through the filters, so mod_ssl still sends
 * close_notify, then shutdown of our side); the connection then waits in
 * the short linger queue, and the final close is a worker's.  An idle
 * connection has nothing buffered to write, so the non-blocking flush has
 * nothing to wait for.  Returns 0 if it could not be started or parked
 * here (the caller hands it to a worker). */
static int linger_from_listener(ev2_conn_t *cs)
{
    conn_rec *c = cs->c;

    /* Parked means suspended: keep the hooks paired around what we do
     * (c->sbh stays NULL, the listener has no scoreboard slot). */
    ap_run_resume_connection(c, cs->r);
    apr_socket_timeout_set(cs->sd, 0);
    if (ap_start_lingering_close(c)) {
        ap_run_suspend_connection(c, cs->r);
        return 0;
    }
    count_lingering(cs);
    cs->pub.state = CONN_STATE_LINGER_SHORT;
    cs->linger_since = ev2_now();
    return conn_park(cs);
}

/* ---- listener side: what the table's handlers do ---- */

/* cs (still on its queue) goes to a worker, to run in state. */
static void to_worker(ev2_conn_t *cs, conn_state_e state)
{
    /* Nothing to take out of the epoll set: the one-shot registration
     * fired, and the next park re-arms it with a single MOD. */
    apr_thread_mutex_lock(ev2_child->qlock);
    ev2_tq_remove(&cs->tq);
    ev2_status_queues();
    apr_thread_mutex_unlock(ev2_child->qlock);
    cs->pub.state = state;
    push(cs);
}

static void ready_to_read(ev2_conn_t *cs)
{
    to_worker(cs, CONN_STATE_PROCESSING);
}

/* Filters that cannot run asynchronously (mod_http2's compat path) get
 * process_connection on any wake-up. */
static void ready_to_write(ev2_conn_t *cs)
{
    to_worker(cs, cs->c->clogging_input_filters ? CONN_STATE_PROCESSING
                                                : CONN_STATE_WRITE_COMPLETION);
}

/* A lingering connection became readable: drain it here without
 * blocking; on the client's EOF close it here too (its pool's cleanups
 * are CPU work, as in the stock listener), sparing a hand-off to a worker
 * for every closed connection.  Still data after a bounded number of
 * reads, or just EAGAIN: it stays parked, re-armed. */
static void ready_lingering(ev2_conn_t *cs)
{
    if (linger_drain(cs, 16) != APR_EOF
        && ev2_poller_arm(ev2_child->poller, &cs->pe, EV2_POLL_IN)
           == APR_SUCCESS) {
        return;
    }
    apr_thread_mutex_lock(ev2_child->qlock);
    ev2_tq_remove(&cs->tq);
    ev2_status_queues();
    apr_thread_mutex_unlock(ev2_child->qlock);
    ev2_conn_pool_put(cs->p);
}

/* A worker sends what the protocol needs (TLS close_notify) and closes. */
static void expired_close(ev2_conn_t *cs)
{
    cs->pub.state = CONN_STATE_LINGER;
    push(cs);
}

/* The linger time ran out: a worker closes it. */
static void expired_lingering(ev2_conn_t *cs)
{
    cs->is_expired = 1;
    push(cs);
}

/* An idle connection (its timeout, or closed early): the short linger;
 * started right here if no worker is free. */
static void expired_idle(ev2_conn_t *cs)
{
    apr_table_setn(cs->c->notes, "short-lingering-close", "1");
    if (ev2_fdq_idle(ev2_child->fdq) <= 0 && linger_from_listener(cs)) {
        return;
    }
    if (in_linger(cs)) {
        expired_lingering(cs);
    }
    else {
        expired_close(cs);
    }
}

static apr_interval_time_t vhost_timeout(const server_rec *s)
{
    return s->timeout;
}

static apr_interval_time_t vhost_keepalive_timeout(const server_rec *s)
{
    return s->keep_alive_timeout;
}

static apr_interval_time_t linger_normal_timeout(const server_rec *s)
{
    (void)s;
    return EV2_LINGER_NORMAL;
}

static apr_interval_time_t linger_short_timeout(const server_rec *s)
{
    (void)s;
    return EV2_LINGER_SHORT;
}

static const ev2_state_t states[CONN_STATE_NUM] = {
    [CONN_STATE_KEEPALIVE] = {
        "keep-alive", EV2_POLL_IN, 0, 0, 1,
        vhost_keepalive_timeout, ready_to_read, expired_idle },
    [CONN_STATE_WRITE_COMPLETION] = {
        "write completion", EV2_POLL_OUT, 1, 0, 0,
        vhost_timeout, ready_to_write, expired_close },
    [CONN_STATE_ASYNC_WAITIO] = {
        "wait-io", EV2_POLL_IN, 1, 0, 0,
        vhost_timeout, ready_to_read, expired_close },
    [CONN_STATE_LINGER_NORMAL] = {
        "lingering close", EV2_POLL_IN, 0, 1, 0,
        linger_normal_timeout, ready_lingering, expired_lingering },
    [CONN_STATE_LINGER_SHORT] = {
        "short lingering close", EV2_POLL_IN, 0, 1, 0,
        linger_short_timeout, ready_lingering, expired_lingering },
};

const ev2_state_t *ev2_state_of(conn_state_e state)
{
    if ((unsigned int)state >= CONN_STATE_NUM || !states[state].ready) {
        return NULL;
    }
    return &states[state];
}

/* Listener: cs's socket is ready. */
void ev2_conn_ready(ev2_conn_t *cs)
{
    const ev2_state_t *row;

    if (!ev2_link_is_queued(&cs->tq.link)) {
        /* Only parked connections are armed; anything else is not ours
         * to touch. */
        return;
    }
    row = ev2_state_of(cs->pub.state);
    if (!row) {
        to_worker(cs, CONN_STATE_LINGER);
        return;
    }
    row->ready(cs);
}

/* Listener: cs was taken off its queue (deadline passed, or closed
 * early). */
void ev2_conn_expired(ev2_conn_t *cs)
{
    const ev2_state_t *row = ev2_state_of(cs->pub.state);

    ev2_poller_remove(ev2_child->poller, &cs->pe);
    if (!row) {
        expired_close(cs);
        return;
    }
    row->expired(cs);
}

/* Listener: expire, one at a time, each connection that pop detaches
 * from its queue (pop runs under qlock, with baton), until pop returns
 * NULL.  Returns how many it expired. */
int ev2_expire_each(ev2_tq_entry_t *(*pop)(void *baton), void *baton)
{
    int n = 0;

    for (;;) {
        ev2_tq_entry_t *e;

        apr_thread_mutex_lock(ev2_child->qlock);
        e = pop(baton);
        if (e) {
            ev2_status_queues();
        }
        apr_thread_mutex_unlock(ev2_child->qlock);
        if (!e) {
            return n;
        }
        ev2_conn_expired(EV2_CONTAINER(e, ev2_conn_t, tq));
        n++;
    }
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
    else if (apr_atomic_read32(&ev2_child->accepting_off)) {
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

static void conn_release(ev2_worker_t *w, ev2_conn_t *cs)
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

    apr_pool_cleanup_register(cs->p, cs, conn_cleanup, apr_pool_cleanup_null);
    cs->ba = apr_bucket_alloc_create(cs->p);
    ap_create_sb_handle(&cs->sbh, cs->p, ev2_child->slot, w->tid);
    c = ap_run_create_connection(cs->p, ap_server_conf, cs->sd, conn_id(w),
                                 cs->sbh, cs->ba);
    if (!c) {
        cs->sd = NULL;
        conn_release(w, cs);
        return 0;
    }
    cs->c = c;
    ap_set_module_config(c->conn_config, &mpm_event2_module, cs);
    c->cs = &cs->pub;
    c->current_thread = w->thd;
    cs->sc = ev2_srv_of(c->base_server);
    ev2_pollee_init(&cs->pe, ev2_os_sock(cs->sd), cs);
    cs->pub.state = CONN_STATE_PROCESSING;
    cs->pub.sense = CONN_SENSE_DEFAULT;
    apr_pool_pre_cleanup_register(cs->p, cs, conn_precleanup);

    ap_update_vhost_given_ip(c);
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
    if (conn_park(cs)) {
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
        cs->pub.state = CONN_STATE_PROCESSING;
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

static void conn_linger(ev2_worker_t *w, ev2_conn_t *cs)
{
    conn_rec *c = cs->c;

    if (cs->pub.state == CONN_STATE_LINGER) {
        int short_linger;

        apr_socket_timeout_set(cs->sd, EV2_LINGER_SHORT);
        count_lingering(cs);
        if (ap_start_lingering_close(c)) {
            conn_release(w, cs);
            return;
        }
        apr_socket_timeout_set(cs->sd, 0);
        short_linger = ev2_is_stopping()
                       || apr_table_get(c->notes, "short-lingering-close");
        cs->pub.state = short_linger ? CONN_STATE_LINGER_SHORT
                                     : CONN_STATE_LINGER_NORMAL;
        cs->linger_since = ev2_now();
    }
    if (cs->is_expired || linger_drain(cs, 64) == APR_EOF) {
        conn_release(w, cs);
        return;
    }
    ev2_set_busy(w, NULL);
    if (!conn_park(cs)) {
        conn_release(w, cs);
    }
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
        if (!conn_create(w, cs)) {
            return;
        }
    }
    else {
        conn_resume(w, cs);
    }

    for (;;) {
        if (cs->c->aborted && !in_linger(cs)) {
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
        case CONN_STATE_SUSPENDED:
            conn_suspend(w, cs);
            return;
        case CONN_STATE_LINGER:
        case CONN_STATE_LINGER_NORMAL:
        case CONN_STATE_LINGER_SHORT:
            conn_linger(w, cs);
            return;
        case CONN_STATE_HANDLER:
        case CONN_STATE_NUM:
            break;
        }
        ap_log_cerror(APLOG_MARK, APLOG_DEBUG, 0, cs->c, EV2LOG(103)
                      "unexpected connection state %d: closing",
                      (int)cs->pub.state);
        cs->pub.state = CONN_STATE_LINGER;
    }
}
