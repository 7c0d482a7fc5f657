/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * listener.c - the listener thread's loop.  One turn is a recipe:
 *
 *   1. poll      sleep until an event or the next deadline
 *   2. dispatch  each ready connection to its state's handler (conn.c's
 *                table); note the readable listening sockets
 *   3. accept    on the noted listening sockets, as admission allows
 *   4. room      at the cap with clients waiting: close idle
 *                connections for them (accept.c)
 *   5. timers    due timed callbacks to the workers
 *   6. expiry    connections whose deadline passed (and, when stopping,
 *                the drain)
 *   7. admission the listening sockets back in when a worker is free
 *
 * Only step 2 looks at the batch, and in step 2 a connection changes
 * owner only through its own event: one epoll batch names each descriptor
 * at most once, so no event later in the batch can name a connection that
 * a worker already has (or has recycled).  Everything that hands over
 * connections that did not fire (early closes, expiry, drain) comes after
 * the batch.  Listener thread only; the state in ev2_listener_t is its
 * own.
 */

#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include "ev2.h"

/* ev2_conns_cap() for this process's descriptor limit (LimitNOFILE,
 * ulimit -n); said once, at info level, when that limit lowers it. */
static apr_uint32_t conns_cap(void)
{
    struct rlimit rl;
    apr_uint64_t max_fds = 0;
    apr_uint32_t cap, uncapped;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        max_fds = (apr_uint64_t)rl.rlim_cur;
    }
    cap = ev2_conns_cap(ev2_cfg.threads_per_child, ev2_cfg.factor_milli,
                        max_fds);
    uncapped = ev2_conns_cap(ev2_cfg.threads_per_child, ev2_cfg.factor_milli,
                             0);
    if (cap < uncapped && ev2_child->slot == 0) {
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, ap_server_conf, EV2LOG(084)
                     "a child holds at most %u connections, not %u: its "
                     "descriptor limit is %" APR_UINT64_T_FMT, cap, uncapped,
                     max_fds);
    }
    return cap;
}

apr_status_t ev2_listener_create(ev2_listener_t **pl, apr_pool_t *p)
{
    ev2_listener_t *l = apr_pcalloc(p, sizeof(*l));
    ap_listen_rec *lr;
    int i;

    for (lr = ev2_child->bucket->listeners; lr; lr = lr->next) {
        l->num_lsocks++;
    }
    l->lsocks = apr_pcalloc(p, l->num_lsocks * sizeof(*l->lsocks));
    for (i = 0, lr = ev2_child->bucket->listeners; lr; lr = lr->next, i++) {
        ev2_lsock_t *ls = &l->lsocks[i];
        apr_status_t rv;

        ls->item.kind = EV2_ITEM_LISTENER;
        ls->lr = lr;
        ev2_pollee_init(&ls->pe, ev2_os_sock(lr->sd), ls);
        /* Several children accept on the same socket and all wake for a
         * new connection: the losers must get EAGAIN, not block. */
        if ((rv = apr_socket_opt_set(lr->sd, APR_SO_NONBLOCK, 1))
            != APR_SUCCESS) {
            return rv;
        }
        if (!lr->accept_func) {
            lr->accept_func = ap_unixd_accept;
        }
    }
    l->conns_left = ap_max_requests_per_child;
    l->conns_cap = conns_cap();
    ev2_status_cap(l->conns_cap);
    l->drain_at = EV2_NO_DEADLINE;
    l->room_at = EV2_NO_DEADLINE;
    *pl = l;
    return APR_SUCCESS;
}

/* Step 2: what one batch says.  Connections go to their state's handler
 * at once; listening sockets are only noted, for step 3. */
static void dispatch(const ev2_poll_event_t *out, int num)
{
    int i;

    for (i = 0; i < num; i++) {
        ev2_item_t *item = out[i].data;

        if (item->kind == EV2_ITEM_LISTENER) {
            ((ev2_lsock_t *)item)->is_readable = 1;
        }
        else {
            ev2_conn_ready((ev2_conn_t *)item);
        }
    }
}

/* Step 3.  A child at its cap watches its listening sockets one-shot:
 * a client arriving then is a reason to make room (step 4). */
static void accept_noted(ev2_listener_t *l)
{
    int i;

    for (i = 0; i < l->num_lsocks; i++) {
        ev2_lsock_t *ls = &l->lsocks[i];

        if (!ls->is_readable) {
            continue;
        }
        ls->is_readable = 0;
        if (ev2_is_stopping()) {
            continue;
        }
        if (l->mode == EV2_ACCEPTING) {
            ev2_accept_on(l, ls);
        }
        else if (l->mode == EV2_OFF_AT_CAP) {
            l->want_room = 1;
        }
    }
}

/* Step 5. */
static void run_due_timers(apr_time_t now)
{
    ev2_timer_t *t;

    for (;;) {
        apr_thread_mutex_lock(ev2_child->qlock);
        t = ev2_theap_pop_expired(ev2_child->timers, now);
        apr_thread_mutex_unlock(ev2_child->qlock);
        if (!t) {
            break;
        }
        ev2_fdq_push(ev2_child->fdq,
                     &EV2_CONTAINER(t, ev2_timer_ev_t, t)->item.link);
    }
}

/* What drain_linger() pops: lingering connections whose 30 s would end
 * before cut from now, i.e. that have had the short budget already. */
typedef struct {
    ev2_tq_t *q;
    apr_time_t until;
} ev2_linger_cut_t;

static ev2_tq_entry_t *pop_linger_cut(void *baton)
{
    ev2_linger_cut_t *cut = baton;

    return ev2_tq_pop_expired(cut->q, cut->until);
}

/* A stopping child closes its idle connections now, each once it is
 * surely idle, and gives lingering closes the short budget only, so that
 * it can exit; drain_at is when the next of either is due.  A request
 * that has begun to arrive is not idle: it is served once whole, or
 * answered when its wait runs out. */
static void drain(ev2_listener_t *l, apr_time_t now)
{
    apr_interval_time_t extra = EV2_LINGER_NORMAL - EV2_LINGER_SHORT;
    apr_time_t next = ev2_close_idle(now, -1, 1, NULL), lnext;
    ev2_linger_cut_t cut;

    cut.q = ev2_srv_of(ap_server_conf)->q[CONN_STATE_LINGER_NORMAL];
    cut.until = now + extra;
    ev2_expire_each(pop_linger_cut, &cut, 0);
    apr_thread_mutex_lock(ev2_child->qlock);
    lnext = ev2_tq_next_deadline(cut.q);
    apr_thread_mutex_unlock(ev2_child->qlock);
    l->drain_at = ev2_earliest(next, lnext == EV2_NO_DEADLINE
                                     ? lnext : lnext - extra);
}

static ev2_tq_entry_t *pop_expired(void *baton)
{
    return ev2_tq_set_pop_expired(ev2_queues, *(apr_time_t *)baton);
}

/* Step 6. */
static void expire_queues(ev2_listener_t *l, apr_time_t now)
{
    if (l->is_draining) {
        drain(l, now);
    }
    ev2_expire_each(pop_expired, &now, 0);
}

/* Step 7: after a backoff, or once admission opens again (a worker went
 * idle, connections closed), the listening sockets go back in. */
static void reopen_admission(ev2_listener_t *l, apr_time_t now)
{
    if (l->is_draining || ev2_is_stopping()) {
        return;
    }
    if (l->accept_backoff_until > now) {
        return;
    }
    l->accept_backoff_until = 0;
    if (l->mode != EV2_ACCEPTING && ev2_admission(l) == EV2_ADMIT) {
        ev2_accepting_set(l, EV2_ACCEPTING, 0, now);
    }
}

/* How long step 1 may sleep: until the earliest real deadline, rounded up
 * to the millisecond; for ever when nothing waits. */
static apr_interval_time_t next_timeout(ev2_listener_t *l, apr_time_t now)
{
    apr_time_t d;

    apr_thread_mutex_lock(ev2_child->qlock);
    d = ev2_earliest(ev2_tq_set_next_deadline(ev2_queues),
                     ev2_theap_next_deadline(ev2_child->timers));
    if (l->accept_backoff_until) {
        d = ev2_earliest(d, l->accept_backoff_until);
    }
    d = ev2_earliest(d, l->drain_at);
    d = ev2_earliest(d, l->room_at);
    ev2_child->sleep_until = d;
    apr_thread_mutex_unlock(ev2_child->qlock);
    return ev2_poll_timeout(d, now);
}

/* The child stops accepting for good and lets its spare workers go. */
static void begin_drain(ev2_listener_t *l)
{
    l->is_draining = 1;
    ev2_accepting_set(l, EV2_OFF_STOPPING, 0, 0);
    ap_close_listeners_ex(ev2_child->bucket->listeners);
    ev2_status_quiescing();
    ev2_fdq_pool_drain(ev2_child->fdq);
    /* Let workers beyond what the remaining connections need exit. */
    ev2_fdq_interrupt_all(ev2_child->fdq);
    /* The first drain is due now, not after whatever wakes the listener
     * next: the wake-up that told it to stop was already spent. */
    l->drain_at = ev2_now();
}

/* Whether the loop is over; starts the drain when a stop was asked. */
static int listener_may_exit(ev2_listener_t *l)
{
    if (ev2_is_ungraceful()) {
        return 1;
    }
    if (ev2_is_stopping() && !l->is_draining) {
        begin_drain(l);
    }
    return l->is_draining && apr_atomic_read32(&ev2_child->conns) == 0;
}

/* Step 1.  A broken epoll set makes the child stop gracefully, to be
 * replaced by the parent. */
static int poll_once(ev2_listener_t *l, const ev2_poll_event_t **out)
{
    apr_interval_time_t timeout = next_timeout(l, ev2_now());
    apr_status_t rv;
    int num = 0;

    rv = ev2_poller_wait(ev2_child->poller, timeout, &num, out);
    apr_atomic_set32(&ev2_child->wake_pending, 0);
    if (rv != APR_SUCCESS && !APR_STATUS_IS_EINTR(rv)
        && !APR_STATUS_IS_TIMEUP(rv)) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, ap_server_conf, EV2LOG(090)
                     "epoll_wait failed; stopping this child");
        ev2_child_stop(EV2_GRACEFUL);
        ev2_child->exit_code = APEXIT_CHILDSICK;
        return 0;
    }
    return rv == APR_SUCCESS ? num : 0;
}

void *APR_THREAD_FUNC ev2_listener_main(apr_thread_t *thd, void *arg)
{
    ev2_listener_t *l = arg;

    (void)thd;
    ev2_accepting_set(l, EV2_ACCEPTING, 0, ev2_now());
    while (!listener_may_exit(l)) {
        const ev2_poll_event_t *out = NULL;
        int num = poll_once(l, &out);
        apr_time_t now;

        dispatch(out, num);
        accept_noted(l);
        now = ev2_now();
        ev2_make_room(l, now);
        run_due_timers(now);
        expire_queues(l, now);
        reopen_admission(l, now);
        ev2_status_conns();
    }

    apr_atomic_set32(&ev2_child->listener_done, 1);
    ev2_fdq_term(ev2_child->fdq);
    /* Wake the main thread out of its pod read (or sigwait): only it has
     * SIGTERM unblocked. */
    kill(getpid(), SIGTERM);
    return NULL;
}
