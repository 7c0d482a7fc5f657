/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * accept.c - taking new connections: the listening sockets in and out of
 * the epoll set, admission by worker demand (policy.c), accepting in
 * batches, and making room at the cap by closing idle connections early,
 * only for clients that really wait and only as many as they need.
 * Listener thread only, except ev2_admission(), which only reads atomics.
 * Accepting never hands a parked connection to anyone: making room is
 * asked for here (l->want_room) and done by the listener once the whole
 * epoll batch has been dispatched (listener.c).
 */

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "ev2.h"

/* Most connections accepted in one go from one listening socket before
 * the listener looks at its other events again. */
#define EV2_ACCEPT_BATCH                32

/* After accept() failed for lack of resources (EMFILE, ENOMEM), a
 * connection pool could not be had, or the listening sockets could not
 * be put back in the epoll set, stop accepting for this long instead of
 * spinning. */
#define EV2_ACCEPT_BACKOFF              apr_time_from_msec(200)

/* Idle connections are closed early (to make room, or in a stopping
 * child) only once idle this long: one that went idle a moment ago is
 * likely to carry the client's next request already, and closing it then
 * fails that request at a client that does not retry. */
#define EV2_IDLE_MIN                    apr_time_from_msec(100)

/* At the cap with clients waiting that another child is about to take,
 * or that no idle connection can make room for yet: look again this
 * often rather than spin on the readable listening socket. */
#define EV2_ROOM_RECHECK                apr_time_from_msec(100)

/* Put the listening sockets in the epoll set (mode EV2_ACCEPTING,
 * level-triggered), watch them for one more waiting client (watch: a
 * one-shot registration, for a child at its cap), or take them out.  All
 * or none: if one cannot be added, the child backs off, says so once
 * (until it works again), and the listener retries after the backoff. */
void ev2_accepting_set(ev2_listener_t *l, ev2_accept_mode_e mode,
                       int watch, apr_time_t now)
{
    apr_status_t rv = APR_SUCCESS;
    int i, j;

    for (i = 0; i < l->num_lsocks; i++) {
        ev2_pollee_t *pe = &l->lsocks[i].pe;

        if (mode == EV2_ACCEPTING) {
            rv = ev2_poller_add(ev2_child->poller, pe, EV2_POLL_IN);
        }
        else if (watch) {
            rv = ev2_poller_arm(ev2_child->poller, pe, EV2_POLL_IN);
        }
        else {
            ev2_poller_remove(ev2_child->poller, pe);
        }
        if (rv != APR_SUCCESS) {
            break;
        }
    }
    if (rv != APR_SUCCESS) {
        for (j = 0; j < i; j++) {
            ev2_poller_remove(ev2_child->poller, &l->lsocks[j].pe);
        }
        if (!l->failure_logged) {
            ap_log_error(APLOG_MARK, APLOG_ERR, rv, ap_server_conf,
                         EV2LOG(081) "epoll_ctl could not add listening "
                         "socket %d: not accepting, retrying every %d ms",
                         l->lsocks[i].pe.fd,
                         (int)apr_time_as_msec(EV2_ACCEPT_BACKOFF));
            l->failure_logged = 1;
        }
        l->accept_backoff_until = now + EV2_ACCEPT_BACKOFF;
        mode = EV2_OFF_BACKOFF;
    }
    else if (mode == EV2_ACCEPTING && l->failure_logged) {
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, ap_server_conf,
                     EV2LOG(082) "accepting connections again");
        l->failure_logged = 0;
    }
    l->mode = mode;
    apr_atomic_set32(&ev2_child->accept_mode, mode);
    ev2_status_accepting(mode);
}

ev2_admit_e ev2_admission(const ev2_listener_t *l)
{
    return ev2_admit(apr_atomic_read32(&ev2_child->conns),
                     apr_atomic_read32(&ev2_child->lingering),
                     ev2_fdq_idle(ev2_child->fdq), l->conns_cap);
}

/* Stop accepting for a while: a resource ran out. */
static void back_off(ev2_listener_t *l, const char *what)
{
    apr_time_t now = ev2_now();

    if (!l->failure_logged) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, ap_server_conf, EV2LOG(083)
                     "%s: not accepting, retrying every %d ms", what,
                     (int)apr_time_as_msec(EV2_ACCEPT_BACKOFF));
        l->failure_logged = 1;
    }
    l->accept_backoff_until = now + EV2_ACCEPT_BACKOFF;
    ev2_accepting_set(l, EV2_OFF_BACKOFF, 0, now);
}

/* Accept what waits on ls while admission allows, up to a batch. */
void ev2_accept_on(ev2_listener_t *l, ev2_lsock_t *ls)
{
    int n;

    for (n = 0; n < EV2_ACCEPT_BATCH; n++) {
        ev2_admit_e admit = ev2_admission(l);
        apr_pool_t *ptrans;
        void *csd = NULL;
        apr_status_t rv;

        if (admit != EV2_ADMIT) {
            /* No worker soon: the client is another child's, or waits
             * for the next worker to go idle (which wakes us).  At the
             * cap: make room, if the client still waits after the batch
             * (step 4). */
            ev2_accepting_set(l, admit == EV2_ADMIT_AT_CAP ? EV2_OFF_AT_CAP
                                                           : EV2_OFF_NO_WORKER,
                              0, 0);
            l->want_room = (admit == EV2_ADMIT_AT_CAP);
            break;
        }
        if ((ptrans = ev2_conn_pool_get()) == NULL) {
            back_off(l, "could not create a connection pool");
            break;
        }
        rv = ls->lr->accept_func(&csd, ls->lr, ptrans);
        if (rv != APR_SUCCESS || !csd) {
            ev2_conn_pool_put(ptrans);
            if (rv == APR_EGENERAL) {
                /* Out of descriptors or memory (ap_unixd_accept logged
                 * it): back off instead of spinning, and free what idle
                 * connections hold for the clients that wait. */
                l->accept_backoff_until = ev2_now() + EV2_ACCEPT_BACKOFF;
                ev2_accepting_set(l, EV2_OFF_BACKOFF, 0, 0);
                l->want_room = 1;
            }
            /* EAGAIN: another child won the race, or the queue is empty. */
            break;
        }
        ev2_header_accepted(ev2_conn_new(ptrans, csd));
        if (l->conns_left > 0 && --l->conns_left == 0) {
            /* MaxConnectionsPerChild: this was the last one. */
            ev2_child_stop(EV2_GRACEFUL);
            break;
        }
    }
    ev2_status_conns();
}

/* Clients waiting in the accept queues of our listening sockets (for a
 * listening TCP socket, Linux reports its accept queue's length as
 * tcpi_unacked); a socket that cannot say counts as one waiting. */
static int clients_waiting(const ev2_listener_t *l)
{
    int i, n = 0;

    for (i = 0; i < l->num_lsocks; i++) {
        struct tcp_info ti;
        socklen_t len = sizeof(ti);

        if (getsockopt(l->lsocks[i].pe.fd, IPPROTO_TCP, TCP_INFO, &ti,
                       &len) != 0) {
            n++;
            continue;
        }
        n += (int)ti.tcpi_unacked;
    }
    return n;
}

/* Step 4 of the listener: at the cap (or out of descriptors), clients
 * wait in the backlog and no other child of the bucket accepts them:
 * close this child's share of idle connections for them, oldest first,
 * once idle long enough.  With no client waiting, watch the listening
 * sockets for the next one instead.  Only ever as many as needed: a burst
 * of load below the cap closes nothing. */
void ev2_make_room(ev2_listener_t *l, apr_time_t now)
{
    int waiting, not_accepting, share, closed = 0;

    if (!l->want_room && (l->room_at == EV2_NO_DEADLINE || l->room_at > now)) {
        return;
    }
    l->want_room = 0;
    l->room_at = EV2_NO_DEADLINE;
    if (l->mode == EV2_OFF_AT_CAP) {
        ev2_admit_e admit = ev2_admission(l);

        if (admit != EV2_ADMIT_AT_CAP) {
            /* Below the cap again: accept, or wait for a worker. */
            ev2_accepting_set(l, admit == EV2_ADMIT ? EV2_ACCEPTING
                                                    : EV2_OFF_NO_WORKER,
                              0, now);
            return;
        }
    }
    else if (l->mode != EV2_OFF_BACKOFF) {
        return;
    }
    waiting = clients_waiting(l);
    if (waiting == 0) {
        if (l->mode == EV2_OFF_AT_CAP) {
            ev2_accepting_set(l, EV2_OFF_AT_CAP, 1, now);
        }
        return;
    }
    if (ev2_status_other_accepting(&not_accepting)) {
        l->room_at = now + EV2_ROOM_RECHECK;
        return;
    }
    share = ev2_room_share(waiting, not_accepting);
    l->room_at = ev2_close_idle(now, share, 0, &closed);
    ev2_status_room_closed(closed);
    if (closed >= share) {
        l->room_at = EV2_NO_DEADLINE;
    }
    else if (l->room_at == EV2_NO_DEADLINE) {
        /* Nothing idle to close yet (all with workers, or queued for
         * them): look again soon, while clients still wait. */
        l->room_at = now + EV2_ROOM_RECHECK;
    }
}

/* What pop_oldest_idle() looks for, and tells back. */
typedef struct {
    apr_time_t idle_since;      /* parked at or before this */
    int left;                   /* how many more to take; < 0: all */
    int keep_waiting;           /* leave those waiting for a request */
    apr_time_t oldest;          /* the oldest stamp left, or none */
} ev2_idle_pick_t;

/* Detach the oldest parked idle connection (of a state the table marks
 * is_idle, of any vhost) if it was parked at or before pick->idle_since,
 * else NULL; pick->oldest tells when the oldest one left was parked.
 * Called under qlock (ev2_expire_each). */
static ev2_tq_entry_t *pop_oldest_idle(void *baton)
{
    ev2_idle_pick_t *pick = baton;
    ev2_tq_entry_t *e;
    ev2_tq_t *oldest_q = NULL;
    apr_time_t oldest = EV2_NO_DEADLINE;
    server_rec *vs;
    int st;

    for (st = 0; st < EV2_STATES; st++) {
        const ev2_state_t *row = ev2_state_of((conn_state_e)st);

        if (!row || !row->is_idle
            || (pick->keep_waiting && st == EV2_STATE_READ_HEADER)) {
            continue;
        }
        for (vs = ap_server_conf; vs; vs = vs->next) {
            ev2_tq_t *q = ev2_srv_of(vs)->q[st];
            apr_time_t d = ev2_tq_next_deadline(q);

            if (d != EV2_NO_DEADLINE) {
                d -= ev2_tq_timeout(q);
                if (oldest == EV2_NO_DEADLINE || d < oldest) {
                    oldest = d;
                    oldest_q = q;
                }
            }
        }
    }
    pick->oldest = oldest;
    if (pick->left == 0 || !oldest_q || oldest > pick->idle_since) {
        return NULL;
    }
    e = ev2_tq_pop_head(oldest_q);
    if (pick->left > 0) {
        pick->left--;
    }
    return e;
}

/* Close up to max (< 0: all) of the idle connections idle for
 * EV2_IDLE_MIN or more, oldest first, through their state's expiry; how
 * many in *closed (if not NULL).  keep_waiting: not those whose request
 * has begun to arrive (a stopping child lets them finish, within their
 * header or body wait, as a worker blocked on them would).  Returns when
 * the next one will qualify, or EV2_NO_DEADLINE.  Listener only, between
 * batches. */
apr_time_t ev2_close_idle(apr_time_t now, int max, int keep_waiting,
                          int *closed)
{
    ev2_idle_pick_t pick;
    int n;

    pick.idle_since = now - EV2_IDLE_MIN;
    pick.left = max;
    pick.keep_waiting = keep_waiting;
    pick.oldest = EV2_NO_DEADLINE;
    n = ev2_expire_each(pop_oldest_idle, &pick, 1);
    if (closed) {
        *closed = n;
    }
    if (n) {
        ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, ap_server_conf, EV2LOG(080)
                     "closed %d idle keep-alive connections early", n);
    }
    return pick.oldest == EV2_NO_DEADLINE ? EV2_NO_DEADLINE
                                          : pick.oldest + EV2_IDLE_MIN;
}
