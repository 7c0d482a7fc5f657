/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * mod_mpm_event2.c - an event-driven Multi-Processing Module for httpd
 * 2.4: the module record, the hooks it registers, ap_mpm_query's answers,
 * and the per-connection bookkeeping and timed callbacks that httpd and
 * modules call us for.
 *
 * The parent (parent.c) starts children; each child (child.c) runs
 * ThreadsPerChild worker threads (worker.c) and one listener thread
 * (listener.c, accept.c).  The listener owns the listening sockets and
 * every connection that is waiting for its client (keep-alive, write
 * completion, wait-io, lingering close): they sit in one epoll set
 * (poller.c) and on a timeout queue (event_queues.c).  When one becomes
 * ready, or its deadline passes, the listener hands it to a worker
 * through the fdqueue (fdqueue.c).  Workers only ever run connections that
 * have work (conn.c).  ev2.h says who runs what and the lock order.
 *
 * The hooks here run on whichever thread httpd calls them from: the
 * configuration passes on the parent's main thread, the connection hooks
 * on the worker running the connection, ev2_register_timed_callback on
 * any thread of a child.
 */

#include "ev2.h"
#include "http_connection.h"
#include "http_protocol.h"
#include "http_request.h"
#include "mod_status.h"

/* Upper bound on timed callbacks waiting at once in one child. */
#define EV2_MAX_TIMERS                  65536

static int ev2_query(int query_code, int *result, apr_status_t *rv)
{
    *rv = APR_SUCCESS;
    switch (query_code) {
    case AP_MPMQ_MAX_DAEMON_USED:
        *result = ev2_retained->max_daemon_used;
        break;
    case AP_MPMQ_IS_THREADED:
        *result = AP_MPMQ_STATIC;
        break;
    case AP_MPMQ_IS_FORKED:
        *result = AP_MPMQ_DYNAMIC;
        break;
    case AP_MPMQ_IS_ASYNC:
        *result = 1;
        break;
    case AP_MPMQ_HARD_LIMIT_DAEMONS:
        *result = ev2_cfg.server_limit;
        break;
    case AP_MPMQ_HARD_LIMIT_THREADS:
        *result = ev2_cfg.thread_limit;
        break;
    case AP_MPMQ_MAX_THREADS:
        *result = ev2_cfg.threads_per_child;
        break;
    case AP_MPMQ_MIN_SPARE_DAEMONS:
    case AP_MPMQ_MAX_SPARE_DAEMONS:
        *result = 0;
        break;
    case AP_MPMQ_MIN_SPARE_THREADS:
        *result = ev2_cfg.min_spare_threads;
        break;
    case AP_MPMQ_MAX_SPARE_THREADS:
        *result = ev2_cfg.max_spare_threads;
        break;
    case AP_MPMQ_MAX_REQUESTS_DAEMON:
        *result = ap_max_requests_per_child;
        break;
    case AP_MPMQ_MAX_DAEMONS:
        *result = ev2_cfg.active_daemons_limit;
        break;
    case AP_MPMQ_MPM_STATE:
        *result = ev2_retained->mpm->mpm_state;
        break;
    case AP_MPMQ_GENERATION:
        *result = ev2_retained->mpm->my_generation;
        break;
    case AP_MPMQ_CAN_WAITIO:
        *result = 1;
        break;
    default:
        *rv = APR_ENOTIMPL;
        break;
    }
    return OK;
}

static const char *ev2_get_name(void)
{
    return "event2";
}

/* Secondary connections (HTTP/2 streams) are copies of their main
 * connection, c->cs included: give each its own state, or the stream's
 * threads would write the live state of the main connection. */
static int ev2_pre_connection(conn_rec *c, void *csd)
{
    (void)csd;
    if (c->master && (!c->cs || c->cs == c->master->cs)) {
        conn_state_t *cs = apr_pcalloc(c->pool, sizeof(*cs));

        cs->state = CONN_STATE_PROCESSING;
        cs->sense = CONN_SENSE_DEFAULT;
        c->cs = cs;
    }
    return OK;
}

/* A protocol switch before any request (mod_ssl's SNI, h2 prior
 * knowledge) moves the connection to the vhost that took it. */
static int ev2_protocol_switch(conn_rec *c, request_rec *r, server_rec *s,
                               const char *protocol)
{
    (void)protocol;
    if (!r && s) {
        ev2_conn_t *cs = ev2_conn_of(c);
        ev2_srv_t *sc = ev2_srv_of(s);

        if (cs && sc) {
            cs->sc = sc;
        }
    }
    return DECLINED;
}

static apr_status_t forget_request(void *baton)
{
    ev2_conn_t *cs = baton;

    cs->r = NULL;
    return APR_SUCCESS;
}

/* The request being read, for the suspend and resume hooks. */
static void ev2_pre_read_request(request_rec *r, conn_rec *c)
{
    ev2_conn_t *cs = ev2_conn_of(c);

    if (cs) {
        cs->r = r;
        apr_pool_cleanup_register(r->pool, cs, forget_request,
                                  apr_pool_cleanup_null);
    }
}

/* The vhost that answered picks the KeepAliveTimeout, if it set one. */
static int ev2_post_read_request(request_rec *r)
{
    ev2_conn_t *cs = ev2_conn_of(r->connection);

    if (cs) {
        ev2_srv_t *sc = ev2_srv_of(r->server->keep_alive_timeout_set
                                   ? r->server : r->connection->base_server);
        if (sc) {
            cs->sc = sc;
        }
    }
    return DECLINED;
}

/* A record for a timed callback, from the free list or new; NULL when the
 * child already has EV2_MAX_TIMERS.  Caller holds qlock. */
static ev2_timer_ev_t *timer_get(void)
{
    ev2_timer_ev_t *te = ev2_child->timer_free;

    if (te) {
        ev2_child->timer_free = te->next_free;
    }
    else if (ev2_child->timers_alloc < EV2_MAX_TIMERS) {
        te = apr_pcalloc(ev2_child->pool, sizeof(*te));
        ev2_child->timers_alloc++;
    }
    return te;
}

/* cbfn(baton) runs on a worker once t has passed; the listener sleeps
 * until the earliest such deadline. */
static apr_status_t ev2_register_timed_callback(apr_time_t t,
                                                ap_mpm_callback_fn_t *cbfn,
                                                void *baton)
{
    ev2_timer_ev_t *te;
    apr_status_t rv = APR_SUCCESS;
    int wake = 0;

    /* A draining child still runs callbacks: a paced response
     * (mod_dialup) in flight must be able to finish. */
    if (!ev2_child || !ev2_child->timers || ev2_is_ungraceful()) {
        return APR_ENOTIMPL;
    }
    apr_thread_mutex_lock(ev2_child->qlock);
    if ((te = timer_get()) == NULL) {
        rv = APR_EAGAIN;
    }
    else {
        te->item.kind = EV2_ITEM_TIMER;
        te->cb = cbfn;
        te->baton = baton;
        ev2_timer_init(&te->t);
        te->t.when = ev2_now() + (t > 0 ? t : 0);
        if (ev2_theap_insert(ev2_child->timers, &te->t) != APR_SUCCESS) {
            te->next_free = ev2_child->timer_free;
            ev2_child->timer_free = te;
            rv = APR_ENOMEM;
        }
        else if (ev2_child->sleep_until == EV2_NO_DEADLINE
                 || te->t.when + EV2_WAKE_SLACK < ev2_child->sleep_until) {
            wake = 1;
        }
    }
    apr_thread_mutex_unlock(ev2_child->qlock);
    if (wake) {
        ev2_wake_listener();
    }
    return rv;
}

static void ev2_hooks(apr_pool_t *p)
{
    static const char *const before_core[] = { "core.c", NULL };

    (void)p;
    ev2_one_process = 0;
    ap_hook_open_logs(ev2_open_logs, NULL, before_core, APR_HOOK_REALLY_FIRST);
    ap_hook_pre_config(ev2_pre_config, NULL, NULL, APR_HOOK_REALLY_FIRST);
    ap_hook_post_config(ev2_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_check_config(ev2_check_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_mpm(ev2_run, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_mpm_query(ev2_query, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_mpm_register_timed_callback(ev2_register_timed_callback, NULL,
                                        NULL, APR_HOOK_MIDDLE);
    ap_hook_mpm_get_name(ev2_get_name, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_pre_read_request(ev2_pre_read_request, NULL, NULL,
                             APR_HOOK_MIDDLE);
    ap_hook_post_read_request(ev2_post_read_request, NULL, NULL,
                              APR_HOOK_MIDDLE);
    ap_hook_pre_connection(ev2_pre_connection, NULL, NULL,
                           APR_HOOK_REALLY_FIRST);
    ap_hook_protocol_switch(ev2_protocol_switch, NULL, NULL,
                            APR_HOOK_REALLY_FIRST);
    APR_OPTIONAL_HOOK(ap, status_hook, ev2_status_hook, NULL, NULL,
                      APR_HOOK_MIDDLE);
    ev2_header_register();
    ev2_hold_register();
}

module AP_MODULE_DECLARE_DATA mpm_event2_module = {
    MPM20_MODULE_STUFF,
    NULL,                       /* hook to run before apache parses args */
    NULL,                       /* create per-directory config structure */
    NULL,                       /* merge per-directory config structures */
    NULL,                       /* create per-server config structure */
    NULL,                       /* merge per-server config structures */
    ev2_cmds,                   /* command apr_table_t */
    ev2_hooks,                  /* register hooks */
    AP_MODULE_FLAG_NONE         /* flags */
};
