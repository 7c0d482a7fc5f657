/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * states.c - the table of waiting states, and what the listener does with
 * a parked connection when its socket is ready or its deadline passes.
 *
 * One row per state a connection can wait in with the listener: its
 * queue's timeout, what to poll for, where the deadline counts from,
 * whether it may be closed early to make room, what readiness and expiry
 * mean, and what to log if the epoll set refuses it.  Parking
 * (conn.c), the listener's ready, expiry and early-close paths
 * (listener.c, accept.c) and post_config's queues (config.c) read it: a
 * new waiting state is a new row.  Listener thread only, on connections
 * it owns, except ev2_state_of(), which any thread may call.
 */

#include "ev2.h"

/* cs (still on its queue) goes to a worker, to run in state. */
static void to_worker(ev2_conn_t *cs, conn_state_e state)
{
    /* Nothing to take out of the epoll set: the one-shot registration
     * fired, and the next park re-arms it with a single MOD. */
    ev2_conn_unpark(cs);
    cs->pub.state = state;
    ev2_conn_push(cs);
}

static void ready_to_read(ev2_conn_t *cs)
{
    to_worker(cs, CONN_STATE_PROCESSING);
}

/* The next request has begun: to a worker once its header is all there
 * (header.c), waiting here until then. */
static void ready_keepalive(ev2_conn_t *cs)
{
    if (!ev2_header_keepalive(cs)) {
        to_worker(cs, CONN_STATE_PROCESSING);
    }
}

/* Filters that cannot run asynchronously (mod_http2's compat path) get
 * process_connection on any wake-up. */
static void ready_to_write(ev2_conn_t *cs)
{
    to_worker(cs, cs->c->clogging_input_filters ? CONN_STATE_PROCESSING
                                                : CONN_STATE_WRITE_COMPLETION);
}

/* A worker sends what the protocol needs (TLS close_notify) and closes. */
static void expired_close(ev2_conn_t *cs)
{
    cs->pub.state = CONN_STATE_LINGER;
    ev2_conn_push(cs);
}

/* An idle connection (its timeout, or closed early to make room): the
 * short linger, started right here, so that its slot is free at once and
 * no worker is taken from clients with work. */
static void expired_idle(ev2_conn_t *cs)
{
    apr_table_setn(cs->c->notes, "short-lingering-close", "1");
    if (ev2_linger_start(cs)) {
        return;
    }
    if (ev2_is_lingering_state(cs->pub.state)) {
        ev2_linger_expired(cs);
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

/* The failure texts are stock event's for the same wait. */
static const ev2_state_t states[EV2_STATES] = {
    [CONN_STATE_KEEPALIVE] = {
        .poll = EV2_POLL_IN, .is_idle = 1,
        .timeout = vhost_keepalive_timeout,
        .ready = ready_keepalive, .expired = expired_idle,
        .park_failed = APLOGNO(03093) "process_socket: apr_pollset_add "
                       "failure for keep alive" },
    [CONN_STATE_WRITE_COMPLETION] = {
        .poll = EV2_POLL_OUT, .honours_sense = 1,
        .timeout = vhost_timeout,
        .ready = ready_to_write, .expired = expired_close,
        .park_failed = APLOGNO(03465) "process_socket: apr_pollset_add "
                       "failure in CONN_STATE_WRITE_COMPLETION" },
    [CONN_STATE_ASYNC_WAITIO] = {
        .poll = EV2_POLL_IN, .honours_sense = 1,
        .timeout = vhost_timeout,
        .ready = ready_to_read, .expired = expired_close,
        .park_failed = APLOGNO(10503) "process_socket: apr_pollset_add "
                       "failure in CONN_STATE_ASYNC_WAITIO" },
    [CONN_STATE_LINGER_NORMAL] = {
        .poll = EV2_POLL_IN, .keeps_stamp = 1,
        .timeout = linger_normal_timeout,
        .ready = ev2_linger_ready, .expired = ev2_linger_expired,
        .park_failed = APLOGNO(03092) "process_lingering_close: "
                       "apr_pollset_add failure" },
    [CONN_STATE_LINGER_SHORT] = {
        .poll = EV2_POLL_IN, .keeps_stamp = 1,
        .timeout = linger_short_timeout,
        .ready = ev2_linger_ready, .expired = ev2_linger_expired,
        .park_failed = APLOGNO(03092) "process_lingering_close: "
                       "apr_pollset_add failure" },
    [EV2_STATE_READ_HEADER] = {
        .poll = EV2_POLL_IN, .is_idle = 1,
        .timeout = ev2_header_tick,
        .ready = ev2_header_ready, .expired = ev2_header_expired,
        .closed_early = ev2_header_closed_early,
        .park_failed = EV2LOG(086) "epoll_ctl failed for a connection "
                       "waiting for its header" },
};

const ev2_state_t *ev2_state_of(conn_state_e state)
{
    if ((unsigned int)state >= EV2_STATES || !states[state].ready) {
        return NULL;
    }
    return &states[state];
}

/* Listener: cs's socket is ready. */
void ev2_conn_ready(ev2_conn_t *cs)
{
    /* Only parked connections are armed (one-shot), and only step 2 of
     * the listener reads events, before anything else can hand a parked
     * connection on: cs is the listener's. */
    const ev2_state_t *row = ev2_state_of(cs->pub.state);

    if (!row) {
        to_worker(cs, CONN_STATE_LINGER);
        return;
    }
    row->ready(cs);
}

/* Listener: cs was taken off its queue: its deadline passed, or it is
 * closed early (is_early) to make room or by a stopping child. */
void ev2_conn_expired(ev2_conn_t *cs, int is_early)
{
    const ev2_state_t *row = ev2_state_of(cs->pub.state);

    ev2_poller_remove(ev2_child->poller, &cs->pe);
    if (!row) {
        expired_close(cs);
        return;
    }
    if (is_early && row->closed_early) {
        row->closed_early(cs);
        return;
    }
    row->expired(cs);
}

/* Listener: expire (or close early), one at a time, each connection that
 * pop detaches from its queue (pop runs under qlock, with baton), until
 * pop returns NULL.  Returns how many. */
int ev2_expire_each(ev2_tq_entry_t *(*pop)(void *baton), void *baton,
                    int is_early)
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
        ev2_conn_expired(EV2_CONTAINER(e, ev2_conn_t, tq), is_early);
        n++;
    }
}
