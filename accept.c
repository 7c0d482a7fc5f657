/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * accept.c - taking new connections: the listening sockets in and out of
 * the epoll set, the admission rule (policy.c), accepting in batches, and
 * closing idle connections early to make room for a client that waits.
 * Listener thread only, except ev2_admission_open(), which only reads
 * atomics.  Accepting never hands a parked connection to anyone: early
 * closes are asked for here (l->want_room) and done by the listener once
 * the whole epoll batch has been dispatched (listener.c).
 */

#include "ev2.h"

/* Most connections accepted in one go from one listening socket before
 * the listener looks at its other events again. */
#define EV2_ACCEPT_BATCH                32

/* After accept() failed for lack of resources (EMFILE, ENOMEM), or the
 * listening sockets could not be put back in the epoll set, stop
 * accepting for this long instead of spinning. */
#define EV2_ACCEPT_BACKOFF              apr_time_from_msec(200)

/* Idle connections are closed early (overload, stopping child) only once
 * idle this long: one that went idle a moment ago is likely to carry the
 * client's next request already, and closing it then fails that request
 * at a client that does not retry. */
#define EV2_IDLE_MIN                    apr_time_from_msec(100)

/* Put the listening sockets in the epoll set (on) or take them out.  All
 * or none: if one cannot be added, the child does not accept, says so
 * once (until it works again), and the listener retries after the
 * backoff. */
void ev2_accepting_set(ev2_listener_t *l, int on, apr_time_t now)
{
    apr_status_t rv = APR_SUCCESS;
    int i, j;

    for (i = 0; i < l->num_lsocks; i++) {
        if (!on) {
            ev2_poller_remove(ev2_child->poller, &l->lsocks[i].pe);
        }
        else if ((rv = ev2_poller_add(ev2_child->poller, &l->lsocks[i].pe,
                                      EV2_POLL_IN)) != APR_SUCCESS) {
            break;
        }
    }
    if (rv != APR_SUCCESS) {
        for (j = 0; j < i; j++) {
            ev2_poller_remove(ev2_child->poller, &l->lsocks[j].pe);
        }
        if (!l->accept_failed_logged) {
            ap_log_error(APLOG_MARK, APLOG_ERR, rv, ap_server_conf,
                         EV2LOG(081) "epoll_ctl could not add listening "
                         "socket %d: not accepting, retrying every %d ms",
                         l->lsocks[i].pe.fd,
                         (int)apr_time_as_msec(EV2_ACCEPT_BACKOFF));
            l->accept_failed_logged = 1;
        }
        l->accept_backoff_until = now + EV2_ACCEPT_BACKOFF;
        on = 0;
    }
    else if (on && l->accept_failed_logged) {
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, ap_server_conf,
                     EV2LOG(082) "accepting connections again");
        l->accept_failed_logged = 0;
    }
    apr_atomic_set32(&ev2_child->accepting_off, !on);
    ev2_status_accepting(on);
}

int ev2_admission_open(void)
{
    return ev2_admits(apr_atomic_read32(&ev2_child->conns),
                      apr_atomic_read32(&ev2_child->lingering),
                      ev2_fdq_idle(ev2_child->fdq),
                      ev2_cfg.threads_per_child, ev2_cfg.factor_milli);
}

/* Accept what waits on ls while admission allows, up to a batch. */
void ev2_accept_on(ev2_listener_t *l, ev2_lsock_t *ls)
{
    int n;

    for (n = 0; n < EV2_ACCEPT_BATCH; n++) {
        apr_pool_t *ptrans;
        void *csd = NULL;
        apr_status_t rv;

        if (!ev2_admission_open()) {
            ev2_accepting_set(l, 0, 0);
            /* Every worker is busy and a client waits to connect: free
             * what idle connections hold so they can go elsewhere.  With
             * the listening sockets out of the epoll set, the listener
             * learns of no further client: it comes back for those not
             * idle long enough yet (room_at). */
            if (ev2_fdq_idle(ev2_child->fdq) <= 0) {
                l->want_room = 1;
            }
            break;
        }
        if ((ptrans = ev2_conn_pool_get()) == NULL) {
            ev2_accepting_set(l, 0, 0);
            break;
        }
        rv = ls->lr->accept_func(&csd, ls->lr, ptrans);
        if (rv != APR_SUCCESS || !csd) {
            ev2_conn_pool_put(ptrans);
            if (rv == APR_EGENERAL) {
                /* Out of descriptors or memory: back off instead of
                 * spinning, and free what idle connections hold. */
                l->accept_backoff_until = ev2_now() + EV2_ACCEPT_BACKOFF;
                ev2_accepting_set(l, 0, 0);
                l->want_room = 1;
            }
            /* EAGAIN: another child won the race, or the queue is empty. */
            break;
        }
        ev2_conn_new(ptrans, csd);
        if (l->conns_left > 0 && --l->conns_left == 0) {
            /* MaxConnectionsPerChild: this was the last one. */
            ev2_child_stop(EV2_GRACEFUL);
            break;
        }
    }
    ev2_status_conns();
}

/* What pop_oldest_idle() looks for, and tells back. */
typedef struct {
    apr_time_t idle_since;      /* parked at or before this */
    apr_time_t oldest;          /* the oldest stamp left, or none */
} ev2_idle_pick_t;

/* Detach the oldest parked idle connection (of a state the table marks
 * is_idle, of any vhost) if it was parked at or before pick->idle_since,
 * else NULL; pick->oldest tells when the oldest one left was parked.
 * Called under qlock (ev2_expire_each). */
static ev2_tq_entry_t *pop_oldest_idle(void *baton)
{
    ev2_idle_pick_t *pick = baton;
    ev2_tq_t *oldest_q = NULL;
    apr_time_t oldest = EV2_NO_DEADLINE;
    server_rec *vs;
    int st;

    for (st = 0; st < CONN_STATE_NUM; st++) {
        const ev2_state_t *row = ev2_state_of((conn_state_e)st);

        if (!row || !row->is_idle) {
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
    if (!oldest_q || oldest > pick->idle_since) {
        return NULL;
    }
    return ev2_tq_pop_head(oldest_q);
}

/* Close the idle connections idle for EV2_IDLE_MIN or more, oldest
 * first, through their state's expiry.  Returns when the next one will
 * qualify, or EV2_NO_DEADLINE.  Listener only, between batches. */
apr_time_t ev2_close_idle(apr_time_t now)
{
    ev2_idle_pick_t pick;
    int n;

    pick.idle_since = now - EV2_IDLE_MIN;
    pick.oldest = EV2_NO_DEADLINE;
    n = ev2_expire_each(pop_oldest_idle, &pick);
    if (n) {
        ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, ap_server_conf, EV2LOG(080)
                     "closed %d idle keep-alive connections early", n);
    }
    return pick.oldest == EV2_NO_DEADLINE ? EV2_NO_DEADLINE
                                          : pick.oldest + EV2_IDLE_MIN;
}
