/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * linger.c - all of lingering close: shut our side, then read and discard
 * what the client still sends until it closes or the linger time runs
 * out, so that an early error response is not destroyed by a reset.  A
 * worker starts it (ev2_conn_linger), or the listener does for an idle
 * connection it closes (ev2_linger_start); the waiting is the listener's,
 * parked in LINGER_NORMAL (30 s) or LINGER_SHORT (2 s), and the listener
 * drains what arrives (ev2_linger_ready).  The final close is a pool
 * clear: the listener's on the client's EOF, a worker's otherwise.
 */

#include "ev2.h"
#include "http_connection.h"

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

/* From now on cs no longer counts against admission. */
static void count_lingering(ev2_conn_t *cs)
{
    if (!cs->is_lingering) {
        cs->is_lingering = 1;
        apr_atomic_inc32(&ev2_child->lingering);
        ev2_status_conns();
    }
}

/* Listener: start the lingering close of an idle connection here,
 * without blocking, so that its client gets our FIN and its slot is free
 * at once, whether or not a worker is free.  Only the start runs here (EOC through the filters, so mod_ssl still sends
 * close_notify, then shutdown of our side); the connection then waits in
 * the short linger queue.  An idle connection has nothing buffered to
 * write, so the non-blocking flush has nothing to wait for.  Returns 0 if
 * it could not be started or parked here (the caller hands it to a
 * worker). */
int ev2_linger_start(ev2_conn_t *cs)
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
    return ev2_conn_park(cs);
}

/* Listener: a lingering connection became readable.  Drain it here
 * without blocking; on the client's EOF close it here too (its pool's
 * cleanups are CPU work, as in the stock listener), sparing a hand-off to
 * a worker for every closed connection.  Still data after a bounded
 * number of reads, or just EAGAIN: it stays parked, re-armed. */
void ev2_linger_ready(ev2_conn_t *cs)
{
    if (linger_drain(cs, 16) != APR_EOF
        && ev2_poller_arm(ev2_child->poller, &cs->pe, EV2_POLL_IN)
           == APR_SUCCESS) {
        return;
    }
    ev2_conn_unpark(cs);
    ev2_conn_pool_put(cs->p);
}

/* Listener: the linger time ran out; a worker closes it. */
void ev2_linger_expired(ev2_conn_t *cs)
{
    cs->is_expired = 1;
    ev2_conn_push(cs);
}

/* Worker: start (CONN_STATE_LINGER) or go on with a lingering close;
 * cs leaves this worker, parked or closed. */
void ev2_conn_linger(ev2_worker_t *w, ev2_conn_t *cs)
{
    conn_rec *c = cs->c;

    if (cs->pub.state == CONN_STATE_LINGER) {
        int short_linger;

        apr_socket_timeout_set(cs->sd, EV2_LINGER_SHORT);
        count_lingering(cs);
        if (ap_start_lingering_close(c)) {
            ev2_conn_release(w, cs);
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
        ev2_conn_release(w, cs);
        return;
    }
    ev2_set_busy(w, NULL);
    if (!ev2_conn_park(cs)) {
        ev2_conn_release(w, cs);
    }
}
