/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * mod_mpm_event2.c - an event-driven Multi-Processing Module for httpd 2.4.
 *
 * The parent starts children; each child runs ThreadsPerChild worker
 * threads and one listener thread.  The listener owns the listening
 * sockets and every connection that is waiting for something (the next
 * request, a writable socket, the end of a lingering close): they sit in
 * one epoll set and in a timeout queue (event_queues.h).  When one becomes
 * ready, or its deadline passes, the listener hands it to a worker through
 * the fdqueue (fdqueue.h).  Workers only ever run connections that have
 * work; they never wait for a client between requests.
 *
 * Ownership: a connection belongs to exactly one of a worker, the listener
 * (while it is queued and in the epoll set) or a module (suspended).  A
 * worker finishes everything it does with a connection before parking it;
 * parking is "append to a timeout queue + arm in the epoll set" under
 * child->qlock, and from that moment the listener may already hand it on.
 *
 * Sections: configuration, hooks and queries, parent, child, listener,
 * worker, connection states.
 *
 * Lock order: child->qlock, then child->busy_lock; neither is held while
 * calling into httpd hooks or filters.
 */

#include "apr.h"
#include "apr_portable.h"
#include "apr_strings.h"
#include "apr_hash.h"
#include "apr_thread_proc.h"
#include "apr_thread_mutex.h"
#include "apr_signal.h"
#include "apr_poll.h"
#include "apr_atomic.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ap_config.h"
#include "httpd.h"
#include "http_main.h"
#include "http_log.h"
#include "http_config.h"
#include "http_core.h"
#include "http_connection.h"
#include "http_protocol.h"
#include "http_request.h"
#include "http_vhost.h"
#include "ap_mpm.h"
#include "mpm_common.h"
#include "ap_listen.h"
#include "scoreboard.h"
#include "unixd.h"

#include "fdqueue.h"
#include "poller.h"
#include "event_queues.h"
#include "memtrim.h"

/* Built with -fvisibility=hidden: only the module record is exported. */
extern __attribute__((visibility("default")))
module AP_MODULE_DECLARE_DATA mpm_event2_module;
APLOG_USE_MODULE(mpm_event2);

/* Our own log tags, in the style of httpd's APLOGNO. */
#define EV2LOG(n) "EV2" #n ": "

/* ------------------------------------------------------------------ */
/* Configuration                                                        */
/* ------------------------------------------------------------------ */

#define EV2_DEFAULT_START_DAEMONS       3
#define EV2_DEFAULT_THREADS_PER_CHILD   25
#define EV2_DEFAULT_MIN_SPARE_THREADS   75
#define EV2_DEFAULT_MAX_SPARE_THREADS   250
#define EV2_DEFAULT_MAX_WORKERS         400
#define EV2_DEFAULT_SERVER_LIMIT        16
#define EV2_DEFAULT_THREAD_LIMIT        64
#define EV2_MAX_SERVER_LIMIT            20000
#define EV2_MAX_THREAD_LIMIT            100000
#define EV2_MAX_SPAWN_RATE              32

/* AsyncRequestWorkerFactor is kept in thousandths, so 1.5 stays 1.5. */
#define EV2_FACTOR_SCALE                1000
#define EV2_DEFAULT_FACTOR              2.0
#define EV2_MAX_FACTOR                  100000.0

#define EV2_LINGER_NORMAL               apr_time_from_sec(30)
#define EV2_LINGER_SHORT                apr_time_from_sec(2)

/* A parked connection only wakes the listener when its deadline is this
 * much earlier than the listener's planned wake-up: timeouts are never
 * early, and at most this late. */
#define EV2_WAKE_SLACK                  apr_time_from_msec(20)

/* After an accept() failure for lack of resources (EMFILE, ENOMEM), stop
 * accepting for this long instead of spinning on the listening socket. */
#define EV2_ACCEPT_BACKOFF              apr_time_from_msec(200)

/* Keep-alive connections are closed early (overload, stopping child) only
 * once idle this long: one that went idle a moment ago is likely to carry
 * the client's next request already, and closing it then fails that
 * request at a client that does not retry. */
#define EV2_KEEPALIVE_MIN_IDLE          apr_time_from_msec(100)

/* Upper bound on timed callbacks waiting at once in one child. */
#define EV2_MAX_TIMERS                  65536

/* Queue kinds, counted separately for mod_status. */
enum {
    EV2_KIND_WRITE = 0,         /* write completion, Timeout */
    EV2_KIND_WAITIO,            /* CONN_STATE_ASYNC_WAITIO, Timeout */
    EV2_KIND_KEEPALIVE,         /* KeepAliveTimeout */
    EV2_KIND_LINGER             /* lingering close, 30 s or 2 s */
};

typedef struct {
    int daemons_to_start;
    int min_spare_threads;
    int max_spare_threads;
    int max_workers;
    int server_limit;
    int thread_limit;
    int threads_per_child;
    apr_uint32_t factor_milli;  /* AsyncRequestWorkerFactor x 1000 */
    int active_daemons_limit;   /* max_workers / threads_per_child */
} ev2_config_t;

/* Rebuilt from the defaults on every configuration pass. */
static ev2_config_t cfg;

/* Per virtual host: the queues whose timeouts come from that vhost. */
typedef struct {
    ev2_tq_t *write_q;
    ev2_tq_t *waitio_q;
    ev2_tq_t *keepalive_q;
} ev2_srv_t;

/* Every timeout queue of this configuration generation (built in
 * post_config, inherited by the children, which own their copy). */
static struct {
    ev2_tq_set_t *set;
    ev2_tq_t *linger_q;
    ev2_tq_t *short_linger_q;
} queues;

/* What survives the DSO being unloaded and reloaded on each restart. */
typedef struct {
    ap_unixd_mpm_retained_data *mpm;
    int first_server_limit;
    int first_thread_limit;
    int max_daemon_used;        /* highest slot ever used + 1 */
    int active_daemons;         /* live children not stopping */
    int total_daemons;          /* all live children */
    int *idle_spawn_rate;       /* per bucket */
    int sick_child_detected;
    int maxworkers_reported;
    int near_maxworkers_reported;
    int scoreboard_full_reported;
    int hold_off_on_exponential_spawning;
    int abrupt_deaths;          /* children killed by a signal in a row */
    /* Per slot, parent-private: the child no longer counts as active
     * (it is stopping).  Kept here rather than read back from the
     * child-writable scoreboard. */
    char *uncounted;
} ev2_retained_t;

static ev2_retained_t *retained;

typedef struct {
    ap_pod_t *pod;
    ap_listen_rec *listeners;
} ev2_bucket_t;

static ev2_bucket_t *all_buckets;
static ev2_bucket_t *my_bucket;     /* the child's */

static int one_process;
static apr_pool_t *ev2_pconf;
static pid_t parent_pid;

static int is_startup_pass(void)
{
    return retained->mpm->module_loads == 1;
}

/* Parse a whole decimal number in [lo, hi] for directive cmd. */
static const char *parse_int_arg(cmd_parms *cmd, const char *arg,
                                 long lo, long hi, int *out)
{
    char *end = NULL;
    long v;

    errno = 0;
    v = strtol(arg, &end, 10);
    if (end == arg || *end != '\0' || errno == ERANGE || v < lo || v > hi) {
        return apr_psprintf(cmd->pool,
                            "%s: invalid value '%s': expected a whole "
                            "number from %ld to %ld",
                            cmd->cmd->name, arg, lo, hi);
    }
    *out = (int)v;
    return NULL;
}

/* What an integer directive sets and the values it accepts. */
typedef struct {
    int *field;
    long lo, hi;
} ev2_int_directive_t;

static ev2_int_directive_t start_servers_arg = {
    &cfg.daemons_to_start, 1, EV2_MAX_SERVER_LIMIT };
static ev2_int_directive_t min_spare_arg = {
    &cfg.min_spare_threads, 1, INT_MAX };
static ev2_int_directive_t max_spare_arg = {
    &cfg.max_spare_threads, 1, INT_MAX };
static ev2_int_directive_t max_workers_arg = {
    &cfg.max_workers, 1, INT_MAX };
static ev2_int_directive_t threads_per_child_arg = {
    &cfg.threads_per_child, 1, EV2_MAX_THREAD_LIMIT };
static ev2_int_directive_t server_limit_arg = {
    &cfg.server_limit, 1, EV2_MAX_SERVER_LIMIT };
static ev2_int_directive_t thread_limit_arg = {
    &cfg.thread_limit, 1, EV2_MAX_THREAD_LIMIT };

/* Every integer directive: server-wide only, a whole number in range. */
static const char *set_int_directive(cmd_parms *cmd, void *d, const char *arg)
{
    const ev2_int_directive_t *what = cmd->info;
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);

    (void)d;
    if (err != NULL) {
        return err;
    }
    if (!strcasecmp(cmd->cmd->name, "MaxClients")) {
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, NULL, EV2LOG(001)
                     "MaxClients is deprecated, use MaxRequestWorkers "
                     "instead.");
    }
    return parse_int_arg(cmd, arg, what->lo, what->hi, what->field);
}

static const char *set_worker_factor(cmd_parms *cmd, void *d, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    char *end = NULL;
    double v;

    (void)d;
    if (err != NULL) {
        return err;
    }
    errno = 0;
    v = strtod(arg, &end);
    if (end == arg || *end != '\0' || errno == ERANGE || !isfinite(v)
        || v * EV2_FACTOR_SCALE < 1.0 || v > EV2_MAX_FACTOR) {
        return apr_psprintf(cmd->pool,
                            "%s: invalid value '%s': expected a number "
                            "from 0.001 to %.0f (fractions allowed)",
                            cmd->cmd->name, arg, EV2_MAX_FACTOR);
    }
    cfg.factor_milli = (apr_uint32_t)(v * EV2_FACTOR_SCALE + 0.5);
    return NULL;
}

static const command_rec ev2_cmds[] = {
    LISTEN_COMMANDS,
    AP_GRACEFUL_SHUTDOWN_TIMEOUT_COMMAND,
    AP_INIT_TAKE1("StartServers", set_int_directive, &start_servers_arg,
                  RSRC_CONF,
                  "Number of child processes launched at server startup "
                  "(1-20000, default 3)"),
    AP_INIT_TAKE1("MinSpareThreads", set_int_directive, &min_spare_arg,
                  RSRC_CONF,
                  "Minimum number of idle threads, to handle request spikes "
                  "(1-2147483647, default 75)"),
    AP_INIT_TAKE1("MaxSpareThreads", set_int_directive, &max_spare_arg,
                  RSRC_CONF,
                  "Maximum number of idle threads (1-2147483647, default 250)"),
    AP_INIT_TAKE1("MaxClients", set_int_directive, &max_workers_arg, RSRC_CONF,
                  "Deprecated name of MaxRequestWorkers (1-2147483647)"),
    AP_INIT_TAKE1("MaxRequestWorkers", set_int_directive, &max_workers_arg,
                  RSRC_CONF,
                  "Maximum number of threads alive at the same time "
                  "(1-2147483647, default 400)"),
    AP_INIT_TAKE1("ThreadsPerChild", set_int_directive, &threads_per_child_arg,
                  RSRC_CONF,
                  "Number of worker threads each child process creates "
                  "(1-100000, default 25)"),
    AP_INIT_TAKE1("ServerLimit", set_int_directive, &server_limit_arg,
                  RSRC_CONF,
                  "Maximum number of child processes (scoreboard slots; "
                  "1-20000, default 16)"),
    AP_INIT_TAKE1("ThreadLimit", set_int_directive, &thread_limit_arg,
                  RSRC_CONF,
                  "Maximum worker threads in a process (scoreboard size; "
                  "1-100000, default 64)"),
    AP_INIT_TAKE1("AsyncRequestWorkerFactor", set_worker_factor, NULL,
                  RSRC_CONF,
                  "How many connections a child may hold per idle worker "
                  "beyond ThreadsPerChild (0.001-100000, fractions allowed, "
                  "default 2)"),
    { NULL }
};

static void warn_adjusted(server_rec *s, const char *fmt, const char *what,
                          int a, int b)
{
    int startup = is_startup_pass();
    char *msg = apr_psprintf(s->process->pconf, fmt, what, a, b);

    ap_log_error(APLOG_MARK, APLOG_WARNING | (startup ? APLOG_STARTUP : 0),
                 0, startup ? NULL : s, EV2LOG(002) "WARNING: %s", msg);
}

/* Reconcile values that are each valid but conflict; warn, as stock does. */
static int ev2_check_config(apr_pool_t *p, apr_pool_t *plog,
                            apr_pool_t *ptemp, server_rec *s)
{
    (void)p; (void)plog; (void)ptemp;

    /* ServerLimit and ThreadLimit size the scoreboard: they are fixed by
     * the first start. */
    if (!retained->first_server_limit) {
        retained->first_server_limit = cfg.server_limit;
    }
    else if (cfg.server_limit != retained->first_server_limit) {
        warn_adjusted(s, "%s of %d is not allowed across a restart; "
                      "keeping %d until a full stop", "ServerLimit",
                      cfg.server_limit, retained->first_server_limit);
        cfg.server_limit = retained->first_server_limit;
    }
    if (!retained->first_thread_limit) {
        retained->first_thread_limit = cfg.thread_limit;
    }
    else if (cfg.thread_limit != retained->first_thread_limit) {
        warn_adjusted(s, "%s of %d is not allowed across a restart; "
                      "keeping %d until a full stop", "ThreadLimit",
                      cfg.thread_limit, retained->first_thread_limit);
        cfg.thread_limit = retained->first_thread_limit;
    }

    if (cfg.threads_per_child > cfg.thread_limit) {
        warn_adjusted(s, "%s of %d exceeds ThreadLimit; lowered to %d",
                      "ThreadsPerChild", cfg.threads_per_child,
                      cfg.thread_limit);
        cfg.threads_per_child = cfg.thread_limit;
    }
    if (cfg.max_workers < cfg.threads_per_child) {
        warn_adjusted(s, "%s of %d is less than ThreadsPerChild; raised "
                      "to %d", "MaxRequestWorkers", cfg.max_workers,
                      cfg.threads_per_child);
        cfg.max_workers = cfg.threads_per_child;
    }
    cfg.active_daemons_limit = cfg.max_workers / cfg.threads_per_child;
    if (cfg.max_workers % cfg.threads_per_child) {
        int fixed = cfg.active_daemons_limit * cfg.threads_per_child;

        warn_adjusted(s, "%s of %d is not a multiple of ThreadsPerChild; "
                      "rounded down to %d", "MaxRequestWorkers",
                      cfg.max_workers, fixed);
        cfg.max_workers = fixed;
    }
    if (cfg.active_daemons_limit > cfg.server_limit) {
        int fixed = cfg.server_limit * cfg.threads_per_child;

        warn_adjusted(s, "%s of %d would need more than ServerLimit "
                      "children; lowered to %d", "MaxRequestWorkers",
                      cfg.max_workers, fixed);
        cfg.max_workers = fixed;
        cfg.active_daemons_limit = cfg.server_limit;
    }
    if (cfg.daemons_to_start > cfg.active_daemons_limit) {
        warn_adjusted(s, "%s of %d exceeds the %d children "
                      "MaxRequestWorkers allows; lowered", "StartServers",
                      cfg.daemons_to_start, cfg.active_daemons_limit);
        cfg.daemons_to_start = cfg.active_daemons_limit;
    }
    if (cfg.max_spare_threads < cfg.min_spare_threads + cfg.threads_per_child) {
        /* Otherwise the parent would stop a child only to start one
         * again at the next maintenance pass. */
        cfg.max_spare_threads = cfg.min_spare_threads + cfg.threads_per_child;
    }
    return OK;
}

/* ------------------------------------------------------------------ */
/* Child runtime state                                                  */
/* ------------------------------------------------------------------ */

/* What the fdqueue and the epoll set carry: the first member of each. */
typedef enum {
    EV2_ITEM_CONN,
    EV2_ITEM_TIMER,
    EV2_ITEM_LISTENER
} ev2_item_kind_e;

typedef struct {
    ev2_fdq_elem_t link;
    ev2_item_kind_e kind;
} ev2_item_t;

#define EV2_CONTAINER(ptr, type, member) \
    ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

typedef struct ev2_conn_t {
    ev2_item_t item;            /* kind EV2_ITEM_CONN; must stay first */
    ev2_tq_entry_t tq;          /* timeout queue link (under qlock) */
    apr_pool_t *p;              /* the connection's pool ("ptrans") */
    apr_socket_t *sd;
    apr_bucket_alloc_t *ba;
    conn_rec *c;                /* NULL until a worker created it */
    request_rec *r;             /* current request, for suspend hooks */
    ap_sb_handle_t *sbh;
    ev2_srv_t *sc;              /* vhost whose timeouts apply */
    ev2_pollee_t pe;            /* one-shot: armed while parked */
    conn_state_t pub;           /* c->cs points here */
    apr_time_t linger_since;    /* one stamp for the whole linger */
    ev2_trim_mark_t trim_pool;  /* memtrim.h: p's first block */
    ev2_trim_mark_t trim_ba;    /* memtrim.h: ba's first block */
    unsigned int is_lingering:1;
    unsigned int is_suspended:1;
    unsigned int is_expired:1;  /* its deadline passed while parked */
} ev2_conn_t;

typedef struct {
    ev2_item_t item;            /* kind EV2_ITEM_TIMER */
    ev2_timer_t t;
    ap_mpm_callback_fn_t *cb;
    void *baton;
    void *next_free;
} ev2_timer_ev_t;

typedef struct {
    ev2_item_t item;            /* kind EV2_ITEM_LISTENER */
    ap_listen_rec *lr;
    ev2_pollee_t pe;            /* level-triggered */
} ev2_lsock_t;

typedef struct {
    int tid;
    apr_thread_t *thd;
} ev2_worker_t;

typedef enum {
    EV2_RUNNING = 0,
    EV2_GRACEFUL,
    EV2_UNGRACEFUL
} ev2_stop_mode_e;

typedef struct {
    apr_pool_t *pool;           /* runtime objects; a child of pconf */
    apr_pool_t *conn_root;      /* parent of connection pools; owns the
                                 * allocator they share */
    apr_pool_t *pchild;
    int slot;
    ev2_fdq_t *fdq;
    ev2_poller_t *poller;

    /* qlock guards the timeout queues, the timer heap and free list,
     * sleep_until and accept_backoff_until. */
    apr_thread_mutex_t *qlock;
    ev2_theap_t *timers;
    ev2_timer_ev_t *timer_free;
    apr_size_t timers_alloc;
    apr_time_t sleep_until;     /* listener's planned wake-up, or -1 */
    apr_time_t accept_backoff_until;
    apr_time_t drain_at;        /* stopping: next keep-alive or linger
                                 * connection to close early */
    apr_time_t ka_close_at;     /* listener only: accepting is off with a
                                 * client waiting; the next keep-alive
                                 * connection idle long enough to close */

    /* busy_lock guards busy[]: the connection each worker runs, so an
     * ungraceful stop can shutdown() their sockets without racing a
     * close (and fd reuse) in the worker. */
    apr_thread_mutex_t *busy_lock;
    ev2_conn_t **busy;

    ev2_lsock_t *lsocks;
    int num_lsocks;

    /* Atomics shared by all threads. */
    apr_uint32_t wake_pending;  /* a wake-up byte is in flight */
    apr_uint32_t conns;         /* accepted and not yet closed */
    apr_uint32_t lingering;     /* of those, in lingering close */
    apr_uint32_t suspended;
    apr_uint32_t accepting_off; /* listening sockets out of the epoll set */
    apr_uint32_t stop_mode;     /* ev2_stop_mode_e */
    apr_uint32_t live_workers;
    apr_uint32_t listener_done;
    apr_uint32_t stopping_hooks_run;

    int conns_left;             /* MaxConnectionsPerChild (listener) */
    int exit_code;
    ev2_worker_t *workers;
    apr_thread_t *listener;
} ev2_child_t;

/* The one child runtime of this process.  Static storage, not pool
 * memory: connection pool cleanups use it until the process exits. */
static ev2_child_t the_child;
static ev2_child_t *child;

static int os_sock(apr_socket_t *s)
{
    apr_os_sock_t fd = -1;

    apr_os_sock_get(&fd, s);
    return fd;
}

/* The earlier of two deadlines, either of which may be EV2_NO_DEADLINE. */
static apr_time_t earliest(apr_time_t a, apr_time_t b)
{
    if (a == EV2_NO_DEADLINE) {
        return b;
    }
    return (b == EV2_NO_DEADLINE || a < b) ? a : b;
}

static apr_time_t mono_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (apr_time_t)ts.tv_sec * APR_USEC_PER_SEC + ts.tv_nsec / 1000;
}

static int is_stopping(void)
{
    return apr_atomic_read32(&child->stop_mode) != EV2_RUNNING;
}

static int is_ungraceful(void)
{
    return apr_atomic_read32(&child->stop_mode) == EV2_UNGRACEFUL;
}

/* Wake the listener from ev2_poller_wait(); coalesced, so a burst of
 * callers costs one write() to the poller's eventfd. */
static void wake_listener(void)
{
    if (apr_atomic_cas32(&child->wake_pending, 1, 0) == 0) {
        ev2_poller_wakeup(child->poller);
    }
}

/* Copy our counters into our scoreboard slot for mod_status.  Called on
 * every change, so the table is live.  Caller holds qlock (the queue
 * counts are read under it). */
static void publish_queue_counts(void)
{
    process_score *ps = ap_get_scoreboard_process(child->slot);

    ps->write_completion = ev2_tq_set_count(queues.set, EV2_KIND_WRITE);
    ps->wait_io = ev2_tq_set_count(queues.set, EV2_KIND_WAITIO);
    ps->keep_alive = ev2_tq_set_count(queues.set, EV2_KIND_KEEPALIVE);
}

static void publish_conn_counts(void)
{
    process_score *ps = ap_get_scoreboard_process(child->slot);

    ps->connections = apr_atomic_read32(&child->conns);
    ps->lingering_close = apr_atomic_read32(&child->lingering);
    ps->suspended = apr_atomic_read32(&child->suspended);
}

/* ------------------------------------------------------------------ */
/* Hooks: queries, names, per-connection bookkeeping, timed callbacks   */
/* ------------------------------------------------------------------ */

static int ev2_query(int query_code, int *result, apr_status_t *rv)
{
    *rv = APR_SUCCESS;
    switch (query_code) {
    case AP_MPMQ_MAX_DAEMON_USED:
        *result = retained->max_daemon_used;
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
        *result = cfg.server_limit;
        break;
    case AP_MPMQ_HARD_LIMIT_THREADS:
        *result = cfg.thread_limit;
        break;
    case AP_MPMQ_MAX_THREADS:
        *result = cfg.threads_per_child;
        break;
    case AP_MPMQ_MIN_SPARE_DAEMONS:
    case AP_MPMQ_MAX_SPARE_DAEMONS:
        *result = 0;
        break;
    case AP_MPMQ_MIN_SPARE_THREADS:
        *result = cfg.min_spare_threads;
        break;
    case AP_MPMQ_MAX_SPARE_THREADS:
        *result = cfg.max_spare_threads;
        break;
    case AP_MPMQ_MAX_REQUESTS_DAEMON:
        *result = ap_max_requests_per_child;
        break;
    case AP_MPMQ_MAX_DAEMONS:
        *result = cfg.active_daemons_limit;
        break;
    case AP_MPMQ_MPM_STATE:
        *result = retained->mpm->mpm_state;
        break;
    case AP_MPMQ_GENERATION:
        *result = retained->mpm->my_generation;
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

static ev2_conn_t *conn_of(conn_rec *c)
{
    return ap_get_module_config(c->conn_config, &mpm_event2_module);
}

static ev2_srv_t *srv_of(server_rec *s)
{
    return ap_get_module_config(s->module_config, &mpm_event2_module);
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

static int ev2_protocol_switch(conn_rec *c, request_rec *r, server_rec *s,
                               const char *protocol)
{
    (void)protocol;
    if (!r && s) {
        ev2_conn_t *cs = conn_of(c);
        ev2_srv_t *sc = srv_of(s);

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

static void ev2_pre_read_request(request_rec *r, conn_rec *c)
{
    ev2_conn_t *cs = conn_of(c);

    if (cs) {
        cs->r = r;
        apr_pool_cleanup_register(r->pool, cs, forget_request,
                                  apr_pool_cleanup_null);
    }
}

/* The vhost that answered picks the KeepAliveTimeout, if it set one. */
static int ev2_post_read_request(request_rec *r)
{
    ev2_conn_t *cs = conn_of(r->connection);

    if (cs) {
        ev2_srv_t *sc = srv_of(r->server->keep_alive_timeout_set
                               ? r->server : r->connection->base_server);
        if (sc) {
            cs->sc = sc;
        }
    }
    return DECLINED;
}

static apr_status_t ev2_register_timed_callback(apr_time_t t,
                                                ap_mpm_callback_fn_t *cbfn,
                                                void *baton)
{
    ev2_timer_ev_t *te;
    int wake = 0;

    /* A draining child still runs callbacks: a paced response
     * (mod_dialup) in flight must be able to finish. */
    if (!child || !child->timers || is_ungraceful()) {
        return APR_ENOTIMPL;
    }
    apr_thread_mutex_lock(child->qlock);
    te = child->timer_free;
    if (te) {
        child->timer_free = te->next_free;
    }
    else if (child->timers_alloc < EV2_MAX_TIMERS) {
        te = apr_pcalloc(child->pool, sizeof(*te));
        child->timers_alloc++;
    }
    else {
        apr_thread_mutex_unlock(child->qlock);
        return APR_EAGAIN;
    }
    te->item.kind = EV2_ITEM_TIMER;
    te->cb = cbfn;
    te->baton = baton;
    ev2_timer_init(&te->t);
    te->t.when = mono_now() + (t > 0 ? t : 0);
    if (ev2_theap_insert(child->timers, &te->t) != APR_SUCCESS) {
        te->next_free = child->timer_free;
        child->timer_free = te;
        apr_thread_mutex_unlock(child->qlock);
        return APR_ENOMEM;
    }
    if (child->sleep_until == EV2_NO_DEADLINE
        || te->t.when + EV2_WAKE_SLACK < child->sleep_until) {
        wake = 1;
    }
    apr_thread_mutex_unlock(child->qlock);
    if (wake) {
        wake_listener();
    }
    return APR_SUCCESS;
}

/* ------------------------------------------------------------------ */
/* Parent process                                                       */
/* ------------------------------------------------------------------ */

static void child_main(int slot, int bucket) __attribute__((noreturn));

static void child_exited(int slot, pid_t pid, ap_generation_t gen)
{
    process_score *ps;
    int i;

    if (slot < 0 || slot >= cfg.server_limit) {
        return;
    }
    ps = ap_get_scoreboard_process(slot);
    /* ap_reclaim_child_processes() reports kills as (slot, 0, 0). */
    if (!pid) {
        pid = ps->pid;
    }
    if (!gen) {
        gen = ps->generation;
    }
    ap_run_child_status(ap_server_conf, pid, gen, slot, MPM_CHILD_EXITED);
    for (i = 0; i < cfg.thread_limit; i++) {
        ap_update_child_status_from_indexes(slot, i, SERVER_DEAD, NULL);
    }
    if (!retained->uncounted[slot]) {
        retained->active_daemons--;
    }
    retained->uncounted[slot] = 0;
    retained->total_daemons--;
    ps->pid = 0;
    ps->quiescing = 0;
    ps->not_accepting = 0;
}

static int make_child(server_rec *s, int slot, int bucket)
{
    process_score *ps = ap_get_scoreboard_process(slot);
    pid_t pid;

    if (slot + 1 > retained->max_daemon_used) {
        retained->max_daemon_used = slot + 1;
    }
    if (ps->pid != 0) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, EV2LOG(010)
                     "not starting a child in slot %d: still held by "
                     "pid %" APR_PID_T_FMT, slot, ps->pid);
        return -1;
    }
    if (one_process) {
        my_bucket = &all_buckets[0];
        ps->quiescing = 0;
        ps->not_accepting = 0;
        ps->generation = retained->mpm->my_generation;
        ps->pid = getpid();
        child_main(slot, 0);
    }

    pid = fork();
    if (pid == -1) {
        ap_log_error(APLOG_MARK, APLOG_ERR, errno, s, EV2LOG(011)
                     "fork: unable to start a child process");
        /* Don't fork-bomb a machine that is already out of something. */
        apr_sleep(apr_time_from_sec(10));
        return -1;
    }
    if (pid == 0) {
#if AP_HAS_THREAD_LOCAL
        ap_thread_current_after_fork();
#endif
        my_bucket = &all_buckets[bucket];
        /* Until the child has set up its own signal handling, a stop
         * request simply ends it. */
        apr_signal(SIGTERM, SIG_DFL);
        child_main(slot, bucket);
    }

    ps->quiescing = 0;
    ps->not_accepting = 0;
    ps->bucket = 0;
    ps->generation = retained->mpm->my_generation;
    ps->pid = pid;
    retained->uncounted[slot] = 0;
    retained->active_daemons++;
    retained->total_daemons++;
    ap_run_child_status(ap_server_conf, pid, retained->mpm->my_generation,
                        slot, MPM_CHILD_STARTED);
    return 0;
}

/* Start up to number children in free slots; returns how many started. */
static int startup_children(int number)
{
    int i, started = 0;

    for (i = 0; started < number && i < cfg.server_limit; i++) {
        if (ap_get_scoreboard_process(i)->pid != 0) {
            continue;
        }
        if (retained->active_daemons >= cfg.active_daemons_limit) {
            break;
        }
        if (make_child(ap_server_conf, i, i % retained->mpm->num_buckets) < 0) {
            break;
        }
        started++;
    }
    return started;
}

/* Stop counting slot's child as active (it is stopping). */
static void uncount_child(int slot)
{
    if (!retained->uncounted[slot]) {
        retained->uncounted[slot] = 1;
        retained->active_daemons--;
    }
}

/* Start or stop children so that idle threads stay between
 * MinSpareThreads and MaxSpareThreads (each split over the buckets). */
static void perform_idle_server_maintenance(int bucket)
{
    int num_buckets = retained->mpm->num_buckets;
    int rate = retained->idle_spawn_rate[bucket];
    int idle_threads = 0, free_length = 0, last_used = -1, i, j;
    int free_slots[EV2_MAX_SPAWN_RATE];

    for (i = 0; i < cfg.server_limit; i++) {
        process_score *ps = ap_get_scoreboard_process(i);

        if (i >= retained->max_daemon_used && free_length >= rate) {
            break;
        }
        if (ps->pid == 0) {
            if (i % num_buckets == bucket && free_length < rate) {
                free_slots[free_length++] = i;
            }
            continue;
        }
        last_used = i;
        if (ps->quiescing == 1) {
            /* It told us it stopped accepting: it no longer counts
             * against MaxRequestWorkers. */
            ps->quiescing = 2;
            uncount_child(i);
        }
        if (i % num_buckets != bucket || ps->quiescing || ps->not_accepting
            || ps->generation != retained->mpm->my_generation) {
            continue;
        }
        for (j = 0; j < cfg.threads_per_child; j++) {
            int status = ap_get_scoreboard_worker_from_indexes(i, j)->status;

            /* Threads not started yet will be idle soon: count them, or
             * a starting child makes us fork another. */
            if (status <= SERVER_READY) {
                idle_threads++;
            }
        }
    }
    if (last_used + 1 > retained->max_daemon_used) {
        retained->max_daemon_used = last_used + 1;
    }

    if (idle_threads > cfg.max_spare_threads / num_buckets) {
        /* Only stop a child if the scoreboard has room: while stopping
         * children still hold slots, stopping more would leave nowhere
         * to start replacements when load returns. */
        if (retained->total_daemons <= cfg.active_daemons_limit
            && retained->total_daemons < cfg.server_limit) {
            ap_mpm_podx_signal(all_buckets[bucket].pod, AP_MPM_PODX_GRACEFUL);
        }
        retained->idle_spawn_rate[bucket] = 1;
    }
    else if (idle_threads < cfg.min_spare_threads / num_buckets) {
        if (retained->active_daemons >= cfg.active_daemons_limit) {
            if (!retained->maxworkers_reported && idle_threads == 0) {
                ap_log_error(APLOG_MARK, APLOG_ERR, 0, ap_server_conf,
                             EV2LOG(020) "server reached MaxRequestWorkers "
                             "setting, consider raising the "
                             "MaxRequestWorkers setting");
                retained->maxworkers_reported = 1;
            }
            else if (!retained->near_maxworkers_reported && idle_threads) {
                ap_log_error(APLOG_MARK, APLOG_INFO, 0, ap_server_conf,
                             EV2LOG(021) "server is near MaxRequestWorkers "
                             "(%d idle threads left)", idle_threads);
                retained->near_maxworkers_reported = 1;
            }
            retained->idle_spawn_rate[bucket] = 1;
        }
        else if (free_length == 0) {
            if (!retained->scoreboard_full_reported) {
                ap_log_error(APLOG_MARK, APLOG_ERR, 0, ap_server_conf,
                             EV2LOG(022) "scoreboard is full, not at "
                             "MaxRequestWorkers. Increase ServerLimit.");
                retained->scoreboard_full_reported = 1;
            }
            retained->idle_spawn_rate[bucket] = 1;
        }
        else {
            int room = cfg.active_daemons_limit - retained->active_daemons;

            if (free_length > room) {
                free_length = room;
            }
            if (rate >= 8) {
                ap_log_error(APLOG_MARK, APLOG_INFO, 0, ap_server_conf,
                             EV2LOG(023) "server seems busy (you may need "
                             "to increase StartServers, ThreadsPerChild or "
                             "Min/MaxSpareThreads), spawning %d children, "
                             "there are around %d idle threads, and %d "
                             "total children", free_length, idle_threads,
                             retained->total_daemons);
            }
            for (i = 0; i < free_length; i++) {
                make_child(ap_server_conf, free_slots[i], bucket);
            }
            if (retained->hold_off_on_exponential_spawning) {
                retained->hold_off_on_exponential_spawning--;
            }
            else if (rate < EV2_MAX_SPAWN_RATE / num_buckets) {
                retained->idle_spawn_rate[bucket] = rate * 2;
            }
        }
    }
    else {
        retained->idle_spawn_rate[bucket] = 1;
    }
}

/* While children of a new generation still wait for slots that old ones
 * hold, look for exits this often (ap_wait_or_timeout() sleeps a second),
 * for at most EV2_PENDING_STARTS_MAX; idle maintenance does the rest. */
#define EV2_PENDING_STARTS_POLL         apr_time_from_msec(50)
#define EV2_PENDING_STARTS_MAX          apr_time_from_sec(10)

static void wait_for_child_exit(int hurry, apr_exit_why_e *exitwhy,
                                int *status, apr_proc_t *pid)
{
    apr_status_t rv;

    if (!hurry) {
        ap_wait_or_timeout(exitwhy, status, pid, ev2_pconf, ap_server_conf);
        return;
    }
    rv = apr_proc_wait_all_procs(pid, status, exitwhy, APR_NOWAIT,
                                 ev2_pconf);
    if (!APR_STATUS_IS_CHILD_DONE(rv)) {
        pid->pid = -1;
        apr_sleep(EV2_PENDING_STARTS_POLL);
    }
}

static void server_main_loop(int remaining_children_to_start)
{
    apr_exit_why_e exitwhy;
    int status, processed, slot, b;
    apr_proc_t pid;
    apr_time_t pending_until = apr_time_now() + EV2_PENDING_STARTS_MAX;

    while (!retained->mpm->restart_pending
           && !retained->mpm->shutdown_pending) {
        if (remaining_children_to_start && apr_time_now() > pending_until) {
            remaining_children_to_start = 0;
        }
        wait_for_child_exit(remaining_children_to_start > 0, &exitwhy,
                            &status, &pid);
        if (pid.pid != -1) {
            process_score *ps;
            ap_generation_t gen;

            processed = ap_process_child_status(&pid, exitwhy, status);
            slot = ap_find_child_by_pid(&pid);
            if (slot >= 0 && slot >= cfg.server_limit) {
                slot = -1;
            }
            ps = slot >= 0 ? ap_get_scoreboard_process(slot) : NULL;
            gen = ps ? ps->generation : 0;
            if (processed == APEXIT_CHILDFATAL) {
                /* Fatal only from a child of the running generation: an
                 * old one may fail on what this generation fixed. */
                if (!ps || gen == retained->mpm->my_generation) {
                    retained->mpm->shutdown_pending = 1;
                    retained->mpm->is_ungraceful = 1;
                    ap_log_error(APLOG_MARK, APLOG_ALERT, 0, ap_server_conf,
                                 EV2LOG(030) "a child exited with a fatal "
                                 "error; shutting the server down");
                }
                if (ps) {
                    child_exited(slot, pid.pid, gen);
                }
                continue;
            }
            if (ps) {
                int by_signal = (exitwhy == APR_PROC_SIGNAL);

                child_exited(slot, pid.pid, gen);
                if (processed == APEXIT_CHILDSICK) {
                    retained->sick_child_detected = 1;
                    for (b = 0; b < retained->mpm->num_buckets; b++) {
                        retained->idle_spawn_rate[b] = 1;
                    }
                }
                else if (remaining_children_to_start
                         && retained->active_daemons
                            < cfg.active_daemons_limit) {
                    make_child(ap_server_conf, slot,
                               slot % retained->mpm->num_buckets);
                    remaining_children_to_start--;
                }
                else if (by_signal && gen == retained->mpm->my_generation
                         && retained->abrupt_deaths < 3
                         && retained->active_daemons
                            < cfg.active_daemons_limit) {
                    /* A crash: replace it now rather than at the next
                     * maintenance pass; but not in a crash loop. */
                    retained->abrupt_deaths++;
                    make_child(ap_server_conf, slot,
                               slot % retained->mpm->num_buckets);
                }
                if (!by_signal) {
                    retained->abrupt_deaths = 0;
                }
            }
            else if (apr_proc_other_child_alert(&pid, APR_OC_REASON_DEATH,
                                                status) == APR_SUCCESS) {
                /* e.g. mod_cgid's daemon: its owner restarts it */
            }
            else if (retained->mpm->was_graceful) {
                ap_log_error(APLOG_MARK, APLOG_WARNING, 0, ap_server_conf,
                             EV2LOG(031) "long lost child came home! "
                             "(pid %" APR_PID_T_FMT ")", pid.pid);
            }
            continue;
        }
        if (remaining_children_to_start) {
            /* Start what has a free slot; the rest replaces old children
             * as they exit (above), until the deadline. */
            remaining_children_to_start -=
                startup_children(remaining_children_to_start);
            continue;
        }
        if (retained->sick_child_detected) {
            /* Children fail for lack of resources: wait until one of this
             * generation is healthy before spawning more. */
            int i, healthy = 0;

            for (i = 0; i < retained->max_daemon_used && !healthy; i++) {
                process_score *ps = ap_get_scoreboard_process(i);

                if (ps->pid && ps->generation == retained->mpm->my_generation) {
                    int j;
                    for (j = 0; j < cfg.threads_per_child; j++) {
                        if (ap_get_scoreboard_worker_from_indexes(i, j)->status
                            == SERVER_READY) {
                            healthy = 1;
                            break;
                        }
                    }
                }
            }
            if (!healthy && retained->total_daemons == 0) {
                ap_log_error(APLOG_MARK, APLOG_ALERT, 0, ap_server_conf,
                             EV2LOG(032) "no child could start: giving up");
                retained->mpm->shutdown_pending = 1;
                retained->mpm->is_ungraceful = 1;
                break;
            }
            if (healthy) {
                retained->sick_child_detected = 0;
            }
        }
        for (b = 0; b < retained->mpm->num_buckets; b++) {
            perform_idle_server_maintenance(b);
        }
    }
}

static int live_children(void)
{
    int i, n = 0;

    for (i = 0; i < retained->max_daemon_used; i++) {
        pid_t pid = ap_get_scoreboard_process(i)->pid;

        if (pid != 0 && ap_mpm_safe_kill(pid, 0) == APR_SUCCESS) {
            n++;
        }
    }
    return n;
}

static void signal_all_pods(ap_podx_restart_t mode)
{
    int b;

    for (b = 0; b < retained->mpm->num_buckets; b++) {
        ap_mpm_podx_killpg(all_buckets[b].pod, retained->max_daemon_used,
                           mode);
    }
}

static int ev2_run(apr_pool_t *pconf, apr_pool_t *plog, server_rec *s)
{
    int remaining;

    ev2_pconf = pconf;
    if (!retained->mpm->was_graceful) {
        if (ap_run_pre_mpm(s->process->pool, SB_SHARED) != OK) {
            retained->mpm->mpm_state = AP_MPMQ_STOPPING;
            return !OK;
        }
        /* A fresh scoreboard: nobody holds a slot. */
        retained->max_daemon_used = 0;
        retained->active_daemons = 0;
        retained->total_daemons = 0;
    }
    ap_scoreboard_image->global->running_generation =
        retained->mpm->my_generation;
    if (!retained->uncounted) {
        /* ServerLimit cannot change until a full stop. */
        retained->uncounted = apr_pcalloc(ap_pglobal, cfg.server_limit);
    }
    if (!retained->mpm->was_graceful) {
        memset(retained->uncounted, 0, cfg.server_limit);
    }
    ap_log_pid(pconf, ap_pid_fname);
    ap_unixd_mpm_set_signals(pconf, one_process);
    retained->maxworkers_reported = 0;
    retained->near_maxworkers_reported = 0;
    retained->scoreboard_full_reported = 0;

    if (one_process) {
        retained->mpm->mpm_state = AP_MPMQ_RUNNING;
        make_child(s, 0, 0);
        /* not reached: the child exits the process */
    }

    remaining = cfg.daemons_to_start;
    if (remaining < retained->mpm->num_buckets) {
        remaining = retained->mpm->num_buckets;
    }
    if (!retained->mpm->was_graceful) {
        startup_children(remaining);
        remaining = 0;
    }
    else {
        /* Old children drain in their slots: start the new generation in
         * the free ones now, the rest as old children leave. */
        int i;

        for (i = 0; i < retained->max_daemon_used; i++) {
            process_score *ps = ap_get_scoreboard_process(i);

            if (ps->pid && ps->generation != retained->mpm->my_generation) {
                uncount_child(i);
            }
        }
        remaining -= startup_children(remaining);
        retained->hold_off_on_exponential_spawning = 10;
    }

    ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s, EV2LOG(040)
                 "%s configured -- resuming normal operations",
                 ap_get_server_description());
    ap_log_command_line(plog, s);
    ap_log_mpm_common(s);
    retained->mpm->mpm_state = AP_MPMQ_RUNNING;

    server_main_loop(remaining);
    retained->mpm->mpm_state = AP_MPMQ_STOPPING;

    if (retained->mpm->shutdown_pending && retained->mpm->is_ungraceful) {
        signal_all_pods(AP_MPM_PODX_RESTART);
        ap_reclaim_child_processes(1, child_exited);
        ap_remove_pid(pconf, ap_pid_fname);
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s, EV2LOG(041)
                     "caught SIGTERM, shutting down");
        return DONE;
    }

    if (retained->mpm->shutdown_pending) {
        /* Graceful stop: let every child finish what it has. */
        apr_time_t cutoff = 0;

        ap_close_listeners();
        signal_all_pods(AP_MPM_PODX_GRACEFUL);
        ap_relieve_child_processes(child_exited);
        ap_remove_pid(pconf, ap_pid_fname);
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s, EV2LOG(042)
                     "caught " AP_SIG_GRACEFUL_STOP_STRING
                     ", shutting down gracefully");
        if (ap_graceful_shutdown_timeout) {
            cutoff = apr_time_now()
                     + apr_time_from_sec(ap_graceful_shutdown_timeout);
        }
        while (!retained->mpm->is_ungraceful && live_children() > 0
               && (!cutoff || apr_time_now() < cutoff)) {
            apr_sleep(apr_time_from_msec(200));
            ap_relieve_child_processes(child_exited);
        }
        signal_all_pods(AP_MPM_PODX_RESTART);
        ap_reclaim_child_processes(1, child_exited);
        return DONE;
    }

    /* Restart. */
    retained->mpm->my_generation++;
    ap_scoreboard_image->global->running_generation =
        retained->mpm->my_generation;
    if (retained->mpm->is_ungraceful) {
        signal_all_pods(AP_MPM_PODX_RESTART);
        ap_reclaim_child_processes(1, child_exited);
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s, EV2LOG(043)
                     "SIGHUP received.  Attempting to restart");
    }
    else {
        signal_all_pods(AP_MPM_PODX_GRACEFUL);
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s, EV2LOG(044)
                     AP_SIG_GRACEFUL_STRING " received.  Doing graceful "
                     "restart");
    }
    return OK;
}

/* ------------------------------------------------------------------ */
/* Configuration passes                                                 */
/* ------------------------------------------------------------------ */

static int ev2_pre_config(apr_pool_t *pconf, apr_pool_t *plog,
                          apr_pool_t *ptemp)
{
    int no_detach, foreground;
    static const char key[] = "mpm_event2_retained";

    (void)plog; (void)ptemp;
    if (ap_exists_config_define("DEBUG")) {
        one_process = 1;
        foreground = 1;
        no_detach = 0;
    }
    else {
        one_process = ap_exists_config_define("ONE_PROCESS");
        no_detach = ap_exists_config_define("NO_DETACH");
        foreground = ap_exists_config_define("FOREGROUND");
    }

    retained = ap_retained_data_get(key);
    if (!retained) {
        retained = ap_retained_data_create(key, sizeof(*retained));
        retained->mpm = ap_unixd_mpm_get_retained_data();
    }
    if (retained->mpm->baton != retained) {
        /* Another MPM ran before us in this process: nothing it left
         * (children, scoreboard) is ours to reuse gracefully. */
        retained->mpm->was_graceful = 0;
        retained->mpm->baton = retained;
    }
    retained->mpm->mpm_state = AP_MPMQ_STARTING;
    ++retained->mpm->module_loads;

    if (retained->mpm->module_loads == 2 && !one_process && !foreground) {
        apr_status_t rv;

        ap_fatal_signal_setup(ap_server_conf, pconf);
        rv = apr_proc_detach(no_detach ? APR_PROC_DETACH_FOREGROUND
                                       : APR_PROC_DETACH_DAEMONIZE);
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, rv, NULL, EV2LOG(050)
                         "apr_proc_detach failed");
            return HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    parent_pid = getpid();

    ap_listen_pre_config();
    cfg.daemons_to_start = EV2_DEFAULT_START_DAEMONS;
    cfg.min_spare_threads = EV2_DEFAULT_MIN_SPARE_THREADS;
    cfg.max_spare_threads = EV2_DEFAULT_MAX_SPARE_THREADS;
    cfg.max_workers = EV2_DEFAULT_MAX_WORKERS;
    cfg.server_limit = EV2_DEFAULT_SERVER_LIMIT;
    cfg.thread_limit = EV2_DEFAULT_THREAD_LIMIT;
    cfg.threads_per_child = EV2_DEFAULT_THREADS_PER_CHILD;
    cfg.factor_milli = (apr_uint32_t)(EV2_DEFAULT_FACTOR * EV2_FACTOR_SCALE);
    cfg.active_daemons_limit = cfg.max_workers / cfg.threads_per_child;
    return OK;
}

static int ev2_open_logs(apr_pool_t *p, apr_pool_t *plog, apr_pool_t *ptemp,
                         server_rec *s)
{
    int startup = is_startup_pass();
    int level_flags = startup ? APLOG_STARTUP : 0;
    int num_buckets, i;
    ap_listen_rec **listen_buckets;
    apr_status_t rv;

    (void)plog; (void)ptemp;
    ev2_pconf = p;
    if (ap_setup_listeners(ap_server_conf) < 1) {
        ap_log_error(APLOG_MARK, APLOG_ALERT | level_flags, 0,
                     startup ? NULL : s, EV2LOG(060)
                     "no listening sockets available, shutting down");
        return !OK;
    }

    if (one_process) {
        num_buckets = 1;
    }
    else if (retained->mpm->was_graceful) {
        /* Keep the buckets the running children were started with. */
        num_buckets = retained->mpm->num_buckets;
    }
    else {
        num_buckets = 0;
    }
    rv = ap_duplicate_listeners(p, ap_server_conf, &listen_buckets,
                                &num_buckets);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT | level_flags, rv,
                     startup ? NULL : s, EV2LOG(061)
                     "could not duplicate listeners");
        return !OK;
    }

    all_buckets = apr_pcalloc(p, num_buckets * sizeof(*all_buckets));
    for (i = 0; i < num_buckets; i++) {
        if (!one_process
            && (rv = ap_mpm_podx_open(p, &all_buckets[i].pod)) != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_CRIT | level_flags, rv,
                         startup ? NULL : s, EV2LOG(062)
                         "could not open pipe-of-death");
            return !OK;
        }
        all_buckets[i].listeners = listen_buckets[i];
    }

    if (retained->mpm->max_buckets < num_buckets) {
        int new_max = num_buckets, *rates;

        rates = apr_pcalloc(ap_pglobal, new_max * sizeof(int));
        for (i = 0; i < retained->mpm->max_buckets; i++) {
            rates[i] = retained->idle_spawn_rate[i];
        }
        retained->idle_spawn_rate = rates;
        retained->mpm->max_buckets = new_max;
    }
    for (i = 0; i < num_buckets; i++) {
        if (retained->idle_spawn_rate[i] < 1) {
            retained->idle_spawn_rate[i] = 1;
        }
    }
    retained->mpm->num_buckets = num_buckets;
    return OK;
}

static ev2_tq_t *queue_for(apr_hash_t *by_timeout, int kind,
                           apr_interval_time_t timeout, apr_pool_t *p)
{
    ev2_tq_t *q = apr_hash_get(by_timeout, &timeout, sizeof(timeout));

    if (!q) {
        apr_interval_time_t *key = apr_pmemdup(p, &timeout, sizeof(timeout));

        q = ev2_tq_create(queues.set, kind, timeout);
        apr_hash_set(by_timeout, key, sizeof(*key), q);
    }
    return q;
}

/* One queue per distinct timeout value and kind, shared by the vhosts
 * that use that value, the main server's first. */
static int ev2_post_config(apr_pool_t *pconf, apr_pool_t *plog,
                           apr_pool_t *ptemp, server_rec *s)
{
    apr_hash_t *wq, *iq, *kq;
    server_rec *vs;

    (void)plog; (void)ptemp;
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG) {
        return OK;
    }
    wq = apr_hash_make(ptemp);
    iq = apr_hash_make(ptemp);
    kq = apr_hash_make(ptemp);
    queues.set = ev2_tq_set_create(pconf);
    for (vs = s; vs; vs = vs->next) {
        ev2_srv_t *sc = apr_pcalloc(pconf, sizeof(*sc));

        sc->write_q = queue_for(wq, EV2_KIND_WRITE, vs->timeout, pconf);
        sc->waitio_q = queue_for(iq, EV2_KIND_WAITIO, vs->timeout, pconf);
        sc->keepalive_q = queue_for(kq, EV2_KIND_KEEPALIVE,
                                    vs->keep_alive_timeout, pconf);
        ap_set_module_config(vs->module_config, &mpm_event2_module, sc);
    }
    queues.linger_q = ev2_tq_create(queues.set, EV2_KIND_LINGER,
                                    EV2_LINGER_NORMAL);
    queues.short_linger_q = ev2_tq_create(queues.set, EV2_KIND_LINGER,
                                          EV2_LINGER_SHORT);
    return OK;
}

/* ------------------------------------------------------------------ */
/* Child process                                                        */
/* ------------------------------------------------------------------ */

static volatile sig_atomic_t got_sigterm;

static void child_sigterm(int sig)
{
    (void)sig;
    got_sigterm = 1;
}

static void shutdown_busy_sockets(void)
{
    int i;

    apr_thread_mutex_lock(child->busy_lock);
    for (i = 0; i < cfg.threads_per_child; i++) {
        ev2_conn_t *cs = child->busy[i];

        if (cs && cs->sd) {
            int fd = os_sock(cs->sd);

            if (fd >= 0) {
                shutdown(fd, SHUT_RDWR);
            }
        }
    }
    apr_thread_mutex_unlock(child->busy_lock);
}

/* Begin stopping this child; any thread may call it, more than once.
 * Graceful: stop accepting and drain.  Ungraceful: drop everything. */
static void signal_threads(ev2_stop_mode_e mode)
{
    apr_uint32_t cur;

    do {
        cur = apr_atomic_read32(&child->stop_mode);
        if (cur >= (apr_uint32_t)mode) {
            return;
        }
    } while (apr_atomic_cas32(&child->stop_mode, mode, cur) != cur);

    retained->mpm->mpm_state = AP_MPMQ_STOPPING;
    if (apr_atomic_cas32(&child->stopping_hooks_run, 1, 0) == 0) {
        ap_run_child_stopping(child->pchild, mode == EV2_GRACEFUL);
    }
    if (mode == EV2_UNGRACEFUL) {
        ev2_fdq_interrupt_all(child->fdq);
        shutdown_busy_sockets();
    }
    wake_listener();
}

static void *APR_THREAD_FUNC listener_main(apr_thread_t *thd, void *arg);
static void *APR_THREAD_FUNC worker_main(apr_thread_t *thd, void *arg);
static void worker_went_idle(void *arg);

static void child_fatal(const char *what, apr_status_t rv)
{
    ap_log_error(APLOG_MARK, APLOG_ALERT, rv, ap_server_conf, EV2LOG(070)
                 "%s", what);
    exit(APEXIT_CHILDSICK);
}

/* One allocator, with a mutex, for every connection pool of the child.
 * With an allocator per connection (as in stock), the blocks a request
 * freed stay on that connection's free list for as long as it lives:
 * about 28 KiB per idle keep-alive connection, measured.  Shared, the
 * freed blocks serve whichever connection runs next, and an idle
 * connection keeps only the blocks it uses (its pool and its bucket
 * allocator).  MaxMemFree then bounds the free blocks of the child.
 * conn_root is a child of the runtime pool, whose pre-cleanup destroys the
 * pools the fdqueue keeps for reuse before conn_root itself goes. */
static void conn_root_create(void)
{
    apr_allocator_t *allocator;
    apr_thread_mutex_t *mutex;
    apr_status_t rv;

    if ((rv = apr_allocator_create(&allocator)) != APR_SUCCESS) {
        child_fatal("apr_allocator_create failed", rv);
    }
    apr_allocator_max_free_set(allocator, ap_max_mem_free);
    if ((rv = apr_pool_create_ex(&child->conn_root, child->pool, NULL,
                                 allocator)) != APR_SUCCESS) {
        apr_allocator_destroy(allocator);
        child_fatal("apr_pool_create_ex failed", rv);
    }
    apr_allocator_owner_set(allocator, child->conn_root);
    apr_pool_tag(child->conn_root, "ev2_connections");
    if ((rv = apr_thread_mutex_create(&mutex, APR_THREAD_MUTEX_DEFAULT,
                                      child->conn_root)) != APR_SUCCESS) {
        child_fatal("apr_thread_mutex_create failed", rv);
    }
    apr_allocator_mutex_set(allocator, mutex);
}

/* How many sleeping workers the fdqueue may be waking at once: one per
 * CPU this process may run on, and at least two.  Waking a worker for
 * every item of a burst made all of them runnable together: with 50
 * keep-alive clients on two children of 25 workers, p99 was 140-200 ms
 * (the listener and the workers each waited behind the whole herd for the
 * CPU); with two wake-ups in flight on one CPU, 3-4 ms at the same rate. */
static unsigned int wakeups_in_flight(void)
{
    cpu_set_t set;
    int n = 0;

    if (sched_getaffinity(0, sizeof(set), &set) == 0) {
        n = CPU_COUNT(&set);
    }
    return n < 2 ? 2 : (unsigned int)n;
}

static void setup_runtime(int slot)
{
    apr_status_t rv;
    ap_listen_rec *lr;
    int n, i;
    unsigned int max_events;
    unsigned int keep_pools;

    /* Connections are subpools of pconf and may outlive pchild while the
     * child exits: their runtime objects live on a pool of their own. */
    apr_pool_create(&child->pool, ev2_pconf);
    apr_pool_tag(child->pool, "ev2_runtime");
    child->slot = slot;

    /* Connection pools kept for reuse.  In flight at once are about a
     * worker's worth of connections plus those finishing a lingering
     * close; with fewer kept, every other accept creates a pool (and its
     * allocator maps fresh blocks) that a close then unmaps: measured
     * 0.5 map/unmap pairs per request under Connection: close load with
     * stock's 3/4 x ThreadsPerChild.  Each kept pool holds one request's
     * worth of memory, so 2 x ThreadsPerChild costs little. */
    keep_pools = (unsigned int)cfg.threads_per_child * 2;
    if ((rv = ev2_fdq_create(&child->fdq, keep_pools, child->pool))
        != APR_SUCCESS) {
        child_fatal("ev2_fdq_create failed", rv);
    }
    ev2_fdq_set_idle_hook(child->fdq, worker_went_idle, NULL);
    ev2_fdq_set_max_waking(child->fdq, wakeups_in_flight());
    if ((rv = apr_thread_mutex_create(&child->qlock, APR_THREAD_MUTEX_DEFAULT,
                                      child->pool)) != APR_SUCCESS
        || (rv = apr_thread_mutex_create(&child->busy_lock,
                                         APR_THREAD_MUTEX_DEFAULT,
                                         child->pool)) != APR_SUCCESS) {
        child_fatal("apr_thread_mutex_create failed", rv);
    }
    conn_root_create();
    child->timers = ev2_theap_create(child->pool);
    child->sleep_until = EV2_NO_DEADLINE;
    child->drain_at = EV2_NO_DEADLINE;
    child->ka_close_at = EV2_NO_DEADLINE;
    child->busy = apr_pcalloc(child->pool,
                              cfg.threads_per_child * sizeof(*child->busy));
    child->workers = apr_pcalloc(child->pool, cfg.threads_per_child
                                              * sizeof(*child->workers));

    for (n = 0, lr = my_bucket->listeners; lr; lr = lr->next) {
        n++;
    }
    child->num_lsocks = n;
    child->lsocks = apr_pcalloc(child->pool, n * sizeof(*child->lsocks));

    /* With epoll the size only bounds the events one poll returns. */
    max_events = 512 + n;
    rv = ev2_poller_create(&child->poller, max_events, child->pool);
    if (rv != APR_SUCCESS) {
        child_fatal("could not create the epoll set", rv);
    }

    for (i = 0, lr = my_bucket->listeners; lr; lr = lr->next, i++) {
        ev2_lsock_t *ls = &child->lsocks[i];

        ls->item.kind = EV2_ITEM_LISTENER;
        ls->lr = lr;
        ev2_pollee_init(&ls->pe, os_sock(lr->sd), ls);
        /* Several children accept on the same socket and all wake for a
         * new connection: the losers must get EAGAIN, not block. */
        apr_socket_opt_set(lr->sd, APR_SO_NONBLOCK, 1);
        if (!lr->accept_func) {
            lr->accept_func = ap_unixd_accept;
        }
    }
    child->conns_left = ap_max_requests_per_child;
}

static void start_threads(void)
{
    apr_threadattr_t *attr;
    apr_status_t rv;
    int i;

    apr_threadattr_create(&attr, child->pchild);
    apr_threadattr_detach_set(attr, 0);
    if (ap_thread_stacksize != 0) {
        rv = apr_threadattr_stacksize_set(attr, ap_thread_stacksize);
        if (rv != APR_SUCCESS && rv != APR_ENOTIMPL) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, rv, ap_server_conf,
                         EV2LOG(071) "could not set ThreadStackSize to %"
                         APR_SIZE_T_FMT, ap_thread_stacksize);
        }
    }
    for (i = 0; i < cfg.threads_per_child; i++) {
        ev2_worker_t *w = &child->workers[i];

        w->tid = i;
        ap_update_child_status_from_indexes(child->slot, i, SERVER_STARTING,
                                            NULL);
        apr_atomic_inc32(&child->live_workers);
        rv = ap_thread_create(&w->thd, attr, worker_main, w, child->pchild);
        if (rv != APR_SUCCESS) {
            apr_atomic_dec32(&child->live_workers);
            ap_update_child_status_from_indexes(child->slot, i, SERVER_DEAD,
                                                NULL);
            child_fatal("could not create a worker thread", rv);
        }
    }
    rv = ap_thread_create(&child->listener, attr, listener_main, NULL,
                          child->pchild);
    if (rv != APR_SUCCESS) {
        child_fatal("could not create the listener thread", rv);
    }
}

static void join_threads(void)
{
    apr_status_t rv;
    int i;

    if (child->listener) {
        apr_thread_join(&rv, child->listener);
    }
    for (i = 0; i < cfg.threads_per_child; i++) {
        if (child->workers[i].thd) {
            apr_thread_join(&rv, child->workers[i].thd);
        }
    }
}

/* Returns when the child should exit: the listener finished draining,
 * or an ungraceful stop was requested. */
static void child_wait_for_stop(void)
{
    sigset_t set;

    if (one_process) {
        int sig = 0;

        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGHUP);
        sigaddset(&set, SIGUSR1);
        sigaddset(&set, SIGWINCH);
        while (!apr_atomic_read32(&child->listener_done)) {
            sigwait(&set, &sig);
            if (apr_atomic_read32(&child->listener_done)) {
                break;
            }
            if (sig == SIGWINCH) {
                signal_threads(EV2_GRACEFUL);
            }
            else {
                signal_threads(EV2_UNGRACEFUL);
                break;
            }
        }
        return;
    }

    /* SIGTERM interrupts the pod read; it comes from the parent (stop,
     * or the end of a graceful-stop timeout) or from our own listener
     * once it has drained everything.  No SA_RESTART: the read must
     * return EINTR. */
    {
        struct sigaction sa;

        memset(&sa, 0, sizeof(sa));
        sigemptyset(&sa.sa_mask);
        sa.sa_handler = child_sigterm;
        sigaction(SIGTERM, &sa, NULL);
    }
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    while (!is_stopping()) {
        int rv = ap_mpm_podx_check(my_bucket->pod);

        if (apr_atomic_read32(&child->listener_done)) {
            return;
        }
        if (rv == AP_MPM_PODX_GRACEFUL) {
            signal_threads(EV2_GRACEFUL);
        }
        else if (rv == AP_MPM_PODX_RESTART || got_sigterm) {
            signal_threads(EV2_UNGRACEFUL);
            return;
        }
        else if (!is_stopping()) {
            /* An odd read: don't spin if it repeats. */
            apr_sleep(apr_time_from_msec(10));
        }
    }
    /* Draining: stop reading the pod (its bytes are for the children
     * still running) and wait for the listener, or for a stop. */
    while (!apr_atomic_read32(&child->listener_done)) {
        if (got_sigterm) {
            signal_threads(EV2_UNGRACEFUL);
            return;
        }
        apr_sleep(apr_time_from_msec(100));
    }
}

static void child_main(int slot, int bucket)
{
    apr_thread_t *thd = NULL;
    apr_status_t rv;
    int i;

    retained->mpm->mpm_state = AP_MPMQ_STARTING;
    ap_fatal_signal_child_setup(ap_server_conf);

    child = &the_child;
    apr_pool_create(&child->pchild, ev2_pconf);
    apr_pool_tag(child->pchild, "pchild");
#if AP_HAS_THREAD_LOCAL
    if (!one_process) {
        ap_thread_main_create(&thd, child->pchild);
    }
#endif
    (void)thd;

    /* Other buckets' listeners and pods are not ours. */
    for (i = 0; i < retained->mpm->num_buckets; i++) {
        if (i != bucket) {
            ap_close_listeners_ex(all_buckets[i].listeners);
            if (all_buckets[i].pod) {
                ap_mpm_podx_close(all_buckets[i].pod);
            }
        }
    }

    ap_reopen_scoreboard(child->pchild, NULL, 0);
    if (ap_run_drop_privileges(child->pchild, ap_server_conf)) {
        exit(APEXIT_CHILDFATAL);
    }

    /* Block asynchronous signals before child_init, so threads modules
     * start there (mod_watchdog) inherit the mask. */
    apr_setup_signal_thread();
    ap_run_child_init(child->pchild, ap_server_conf);

    setup_runtime(slot);
    start_threads();
    retained->mpm->mpm_state = AP_MPMQ_RUNNING;

    child_wait_for_stop();

    join_threads();
    retained->mpm->mpm_state = AP_MPMQ_STOPPING;
    if (apr_atomic_cas32(&child->stopping_hooks_run, 1, 0) == 0) {
        ap_run_child_stopping(child->pchild, 0);
    }
    rv = child->exit_code;
    apr_pool_destroy(child->pchild);
    if (one_process) {
        exit(rv);
    }
    _exit(rv);
}

/* ------------------------------------------------------------------ */
/* Listener thread                                                      */
/* ------------------------------------------------------------------ */

/* Put the listening sockets in the epoll set or take them out; mod_status
 * shows the latter as "accepting: no". */
static void set_accepting(int on)
{
    int i;

    for (i = 0; i < child->num_lsocks; i++) {
        if (on) {
            ev2_poller_add(child->poller, &child->lsocks[i].pe, EV2_POLL_IN);
        }
        else {
            ev2_poller_remove(child->poller, &child->lsocks[i].pe);
        }
    }
    apr_atomic_set32(&child->accepting_off, !on);
    ap_get_scoreboard_process(child->slot)->not_accepting = !on;
}

/* The admission rule: connections not closing must stay below
 * ThreadsPerChild + AsyncRequestWorkerFactor x idle workers. */
static int admission_open(void)
{
    int idle = ev2_fdq_idle(child->fdq);
    apr_uint64_t active, limit;

    if (idle < 0) {
        idle = 0;
    }
    active = apr_atomic_read32(&child->conns)
             - apr_atomic_read32(&child->lingering);
    limit = (apr_uint64_t)cfg.threads_per_child
            + ((apr_uint64_t)idle * cfg.factor_milli) / EV2_FACTOR_SCALE;
    return active < limit;
}

static void push_item(ev2_item_t *item)
{
    /* The fdqueue is unbounded and intrusive: pushing only fails once it
     * is terminated, which happens after the listener stopped. */
    ev2_fdq_push(child->fdq, &item->link);
}

/* Take cs out of the listener's hands once its one-shot registration
 * fired: off its timeout queue.  Nothing to take out of the epoll set; the
 * next park re-arms it with a single MOD.  Listener only. */
static void unpark(ev2_conn_t *cs)
{
    apr_thread_mutex_lock(child->qlock);
    ev2_tq_remove(&cs->tq);
    publish_queue_counts();
    apr_thread_mutex_unlock(child->qlock);
}

static int conn_park(ev2_conn_t *cs, ev2_tq_t *q, unsigned int pollflags,
                     apr_time_t stamp);

/* Start the lingering close of an idle keep-alive connection here in the
 * listener, without blocking: when every worker is busy, handing it to one
 * would leave the client waiting for our FIN until a worker frees up.
 * Only the start runs here (EOC through the filters, so mod_ssl still
 * sends close_notify, then shutdown of our side); the connection then
 * waits in the short linger queue, and the final close is a worker's.
 * An idle keep-alive connection has nothing buffered to write, so the
 * non-blocking flush has nothing to wait for.  Returns 0 if it could not
 * be started here (the caller hands it to a worker). */
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
    if (!cs->is_lingering) {
        cs->is_lingering = 1;
        apr_atomic_inc32(&child->lingering);
    }
    cs->pub.state = CONN_STATE_LINGER_SHORT;
    cs->linger_since = mono_now();
    return conn_park(cs, queues.short_linger_q, EV2_POLL_IN, cs->linger_since);
}

/* Close a parked connection early (expiry, overload, stop): a worker sends
 * what the protocol needs (TLS close_notify) and closes; an idle keep-alive
 * connection starts closing right here if no worker is free. */
static void close_parked(ev2_conn_t *cs, int is_keepalive)
{
    if (is_keepalive) {
        apr_table_setn(cs->c->notes, "short-lingering-close", "1");
        if (ev2_fdq_idle(child->fdq) <= 0 && linger_from_listener(cs)) {
            return;
        }
    }
    if (cs->pub.state == CONN_STATE_LINGER_NORMAL
        || cs->pub.state == CONN_STATE_LINGER_SHORT) {
        cs->is_expired = 1;
    }
    else {
        cs->pub.state = CONN_STATE_LINGER;
    }
    push_item(&cs->item);
}

/* Detach the oldest parked keep-alive connection of any vhost if it was
 * parked at or before idle_since, else NULL; *oldest_stamp tells when the
 * oldest one left will have been parked that long.  Caller holds qlock. */
static ev2_tq_entry_t *pop_oldest_keepalive(apr_time_t idle_since,
                                            apr_time_t *oldest_stamp)
{
    server_rec *vs;
    ev2_tq_t *oldest_q = NULL;
    apr_time_t oldest = EV2_NO_DEADLINE;

    for (vs = ap_server_conf; vs; vs = vs->next) {
        ev2_tq_t *q = srv_of(vs)->keepalive_q;
        apr_time_t d = ev2_tq_next_deadline(q);

        if (d != EV2_NO_DEADLINE) {
            d -= ev2_tq_timeout(q);
            if (oldest == EV2_NO_DEADLINE || d < oldest) {
                oldest = d;
                oldest_q = q;
            }
        }
    }
    *oldest_stamp = oldest;
    if (!oldest_q || oldest > idle_since) {
        return NULL;
    }
    return ev2_tq_pop_head(oldest_q);
}

/* A connection just popped from its timeout queue (under qlock, by the
 * listener): out of the epoll set, and to a worker to be closed. */
static void close_popped(ev2_tq_entry_t *e, int is_keepalive)
{
    ev2_conn_t *cs = EV2_CONTAINER(e, ev2_conn_t, tq);

    ev2_poller_remove(child->poller, &cs->pe);
    close_parked(cs, is_keepalive);
}

/* Close the keep-alive connections idle for EV2_KEEPALIVE_MIN_IDLE or
 * more, oldest first.  Returns when the next one will qualify, or
 * EV2_NO_DEADLINE.  Listener only. */
static apr_time_t close_keepalives(apr_time_t now)
{
    apr_time_t oldest = EV2_NO_DEADLINE;
    int n = 0;

    for (;;) {
        ev2_tq_entry_t *e;

        apr_thread_mutex_lock(child->qlock);
        e = pop_oldest_keepalive(now - EV2_KEEPALIVE_MIN_IDLE, &oldest);
        if (e) {
            publish_queue_counts();
        }
        apr_thread_mutex_unlock(child->qlock);
        if (!e) {
            break;
        }
        close_popped(e, 1);
        n++;
    }
    if (n) {
        ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, ap_server_conf, EV2LOG(080)
                     "closed %d idle keep-alive connections early", n);
    }
    return oldest == EV2_NO_DEADLINE ? EV2_NO_DEADLINE
                                     : oldest + EV2_KEEPALIVE_MIN_IDLE;
}

/* Most connections accepted in one go from one listening socket before
 * the listener looks at its other events again. */
#define EV2_ACCEPT_BATCH 32

static apr_pool_t *new_conn_pool(void)
{
    apr_pool_t *ptrans = ev2_fdq_pool_get(child->fdq);

    if (ptrans) {
        return ptrans;
    }
    if (apr_pool_create(&ptrans, child->conn_root) != APR_SUCCESS) {
        return NULL;
    }
    apr_pool_tag(ptrans, "transaction");
    return ptrans;
}

static void recycle_conn_pool(apr_pool_t *p)
{
    if (ev2_fdq_pool_put(child->fdq, p) != APR_SUCCESS) {
        apr_pool_destroy(p);
    }
}

/* Accept what waits on ls while admission allows, up to a batch. */
static void accept_on(ev2_lsock_t *ls)
{
    int n;

    for (n = 0; n < EV2_ACCEPT_BATCH; n++) {
        apr_pool_t *ptrans;
        void *csd = NULL;
        apr_status_t rv;
        ev2_conn_t *cs;

        if (!admission_open()) {
            set_accepting(0);
            if (ev2_fdq_idle(child->fdq) <= 0) {
                /* Every worker is busy and a client waits to connect:
                 * free what the idle ones hold so they can go elsewhere.
                 * With the listening sockets out of the epoll set, the
                 * listener learns of no further client: it comes back
                 * for those not idle long enough yet (ka_close_due). */
                child->ka_close_at = close_keepalives(mono_now());
            }
            return;
        }
        if ((ptrans = new_conn_pool()) == NULL) {
            set_accepting(0);
            return;
        }
        rv = ls->lr->accept_func(&csd, ls->lr, ptrans);
        if (rv != APR_SUCCESS || !csd) {
            recycle_conn_pool(ptrans);
            if (rv == APR_EGENERAL) {
                /* Out of descriptors or memory: back off instead of
                 * spinning, and free what idle connections hold. */
                apr_thread_mutex_lock(child->qlock);
                child->accept_backoff_until = mono_now() + EV2_ACCEPT_BACKOFF;
                apr_thread_mutex_unlock(child->qlock);
                set_accepting(0);
                child->ka_close_at = close_keepalives(mono_now());
            }
            /* EAGAIN: another child won the race, or the queue is empty. */
            return;
        }

        cs = apr_pcalloc(ptrans, sizeof(*cs));
        cs->item.kind = EV2_ITEM_CONN;
        cs->p = ptrans;
        cs->sd = csd;
        ev2_tq_entry_init(&cs->tq);
        apr_atomic_inc32(&child->conns);
        push_item(&cs->item);

        if (child->conns_left > 0 && --child->conns_left == 0) {
            /* MaxConnectionsPerChild: this was the last one. */
            signal_threads(EV2_GRACEFUL);
            break;
        }
    }
    publish_conn_counts();
}

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

/* A lingering connection became readable: drain it here without
 * blocking; on the client's EOF close it here too (its pool's cleanups
 * are CPU work, as in the stock listener), sparing a hand-off to a worker
 * for every closed connection.  Still data after a bounded number of reads,
 * or just EAGAIN: it stays parked, re-armed.  Timed-out lingering
 * connections are closed by workers (expire_queues). */
static void linger_ready(ev2_conn_t *cs)
{
    if (linger_drain(cs, 16) != APR_EOF
        && ev2_poller_arm(child->poller, &cs->pe, EV2_POLL_IN)
           == APR_SUCCESS) {
        return;
    }
    unpark(cs);
    recycle_conn_pool(cs->p);
}

static void conn_ready(ev2_conn_t *cs)
{
    if (!ev2_link_is_queued(&cs->tq.link)) {
        /* Expired or closed earlier in this batch. */
        return;
    }
    if (cs->pub.state == CONN_STATE_LINGER_NORMAL
        || cs->pub.state == CONN_STATE_LINGER_SHORT) {
        linger_ready(cs);
        return;
    }
    unpark(cs);
    switch (cs->pub.state) {
    case CONN_STATE_KEEPALIVE:
    case CONN_STATE_ASYNC_WAITIO:
        cs->pub.state = CONN_STATE_PROCESSING;
        break;
    case CONN_STATE_WRITE_COMPLETION:
        /* Filters that cannot run asynchronously (mod_http2's compat
         * path) get process_connection on any wake-up. */
        if (cs->c->clogging_input_filters) {
            cs->pub.state = CONN_STATE_PROCESSING;
        }
        break;
    case CONN_STATE_LINGER_NORMAL:
    case CONN_STATE_LINGER_SHORT:
        /* handled by linger_ready() */
        break;
    case CONN_STATE_PROCESSING:
    case CONN_STATE_HANDLER:
    case CONN_STATE_SUSPENDED:
    case CONN_STATE_LINGER:
    case CONN_STATE_NUM:
        /* Never parked in these: close it. */
        cs->pub.state = CONN_STATE_LINGER;
        break;
    }
    push_item(&cs->item);
}

/* The client that found admission closed still waits in the backlog
 * while accepting is off and no worker is free: close the keep-alive
 * connections that have now been idle long enough. */
static void ka_close_due(apr_time_t now)
{
    if (child->ka_close_at == EV2_NO_DEADLINE || child->ka_close_at > now) {
        return;
    }
    child->ka_close_at = EV2_NO_DEADLINE;
    if (apr_atomic_read32(&child->accepting_off)
        && ev2_fdq_idle(child->fdq) <= 0) {
        child->ka_close_at = close_keepalives(now);
    }
}

static void expire_queues(apr_time_t now, int draining)
{
    ev2_tq_entry_t *e;

    if (draining) {
        /* A stopping child closes its keep-alive connections now, each
         * once it is surely idle, and gives lingering closes the short
         * budget only, so that it can exit. */
        apr_interval_time_t cut = EV2_LINGER_NORMAL - EV2_LINGER_SHORT;
        apr_time_t next = close_keepalives(now), lnext;

        for (;;) {
            apr_thread_mutex_lock(child->qlock);
            e = ev2_tq_pop_expired(queues.linger_q, now + cut);
            lnext = ev2_tq_next_deadline(queues.linger_q);
            if (e) {
                publish_queue_counts();
            }
            else {
                child->drain_at = earliest(next, lnext == EV2_NO_DEADLINE
                                                 ? lnext : lnext - cut);
            }
            apr_thread_mutex_unlock(child->qlock);
            if (!e) {
                break;
            }
            close_popped(e, 0);
        }
    }
    for (;;) {
        apr_thread_mutex_lock(child->qlock);
        e = ev2_tq_set_pop_expired(queues.set, now);
        if (e) {
            publish_queue_counts();
        }
        apr_thread_mutex_unlock(child->qlock);
        if (!e) {
            break;
        }
        close_popped(e, EV2_CONTAINER(e, ev2_conn_t, tq)->pub.state
                        == CONN_STATE_KEEPALIVE);
    }
}

static void run_due_timers(apr_time_t now)
{
    ev2_timer_t *t;

    for (;;) {
        apr_thread_mutex_lock(child->qlock);
        t = ev2_theap_pop_expired(child->timers, now);
        apr_thread_mutex_unlock(child->qlock);
        if (!t) {
            break;
        }
        push_item(&EV2_CONTAINER(t, ev2_timer_ev_t, t)->item);
    }
}

/* How long poll may sleep: until the earliest real deadline, rounded up
 * to the millisecond; forever when nothing waits. */
static apr_interval_time_t next_timeout(apr_time_t now)
{
    apr_time_t d;

    apr_thread_mutex_lock(child->qlock);
    d = earliest(ev2_tq_set_next_deadline(queues.set),
                 ev2_theap_next_deadline(child->timers));
    if (child->accept_backoff_until) {
        d = earliest(d, child->accept_backoff_until);
    }
    d = earliest(d, child->drain_at);
    d = earliest(d, child->ka_close_at);
    child->sleep_until = d;
    apr_thread_mutex_unlock(child->qlock);

    if (d == EV2_NO_DEADLINE) {
        return -1;
    }
    if (d <= now) {
        return 0;
    }
    d -= now;
    return ((d + 999) / 1000) * 1000;
}

static void begin_drain(void)
{
    process_score *ps = ap_get_scoreboard_process(child->slot);
    int i;

    if (!apr_atomic_read32(&child->accepting_off)) {
        set_accepting(0);
    }
    ap_close_listeners_ex(my_bucket->listeners);
    ps->quiescing = 1;
    for (i = 0; i < cfg.threads_per_child; i++) {
        worker_score *ws;

        ws = ap_get_scoreboard_worker_from_indexes(child->slot, i);
        if (ws->status == SERVER_READY) {
            ap_update_child_status_from_indexes(child->slot, i,
                                                SERVER_GRACEFUL, NULL);
        }
    }
    ev2_fdq_pool_drain(child->fdq);
    /* Let workers beyond what the remaining connections need exit. */
    ev2_fdq_interrupt_all(child->fdq);
}

static void *APR_THREAD_FUNC listener_main(apr_thread_t *thd, void *arg)
{
    int draining = 0;

    (void)thd; (void)arg;
    set_accepting(1);

    for (;;) {
        apr_int32_t num = 0;
        const ev2_poll_event_t *out = NULL;
        apr_interval_time_t timeout;
        apr_status_t rv;
        apr_time_t now;
        int i;

        if (is_ungraceful()) {
            break;
        }
        if (is_stopping() && !draining) {
            draining = 1;
            begin_drain();
        }
        if (draining && apr_atomic_read32(&child->conns) == 0) {
            break;
        }

        now = mono_now();
        timeout = next_timeout(now);
        rv = ev2_poller_wait(child->poller, timeout, &num, &out);
        apr_atomic_set32(&child->wake_pending, 0);
        if (rv != APR_SUCCESS && !APR_STATUS_IS_EINTR(rv)
            && !APR_STATUS_IS_TIMEUP(rv)) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, rv, ap_server_conf,
                         EV2LOG(090) "epoll_wait failed; stopping "
                         "this child");
            signal_threads(EV2_GRACEFUL);
            child->exit_code = APEXIT_CHILDSICK;
            num = 0;
        }

        for (i = 0; i < num; i++) {
            ev2_item_t *item = out[i].data;

            if (item->kind == EV2_ITEM_LISTENER) {
                if (!is_stopping()
                    && !apr_atomic_read32(&child->accepting_off)) {
                    accept_on((ev2_lsock_t *)item);
                }
            }
            else {
                conn_ready((ev2_conn_t *)item);
            }
        }

        now = mono_now();
        run_due_timers(now);
        expire_queues(now, draining);
        ka_close_due(now);

        if (!draining && !is_stopping()) {
            int backoff;

            apr_thread_mutex_lock(child->qlock);
            backoff = child->accept_backoff_until > now;
            if (!backoff) {
                child->accept_backoff_until = 0;
            }
            apr_thread_mutex_unlock(child->qlock);
            if (apr_atomic_read32(&child->accepting_off) && !backoff
                && admission_open()) {
                set_accepting(1);
            }
        }
        publish_conn_counts();
    }

    apr_atomic_set32(&child->listener_done, 1);
    ev2_fdq_term(child->fdq);
    /* Wake the main thread out of its pod read (or sigwait): only it
     * has SIGTERM unblocked. */
    kill(getpid(), SIGTERM);
    return NULL;
}

/* ------------------------------------------------------------------ */
/* Worker threads                                                       */
/* ------------------------------------------------------------------ */

static void conn_run(ev2_worker_t *w, ev2_conn_t *cs);

static void set_busy(ev2_worker_t *w, ev2_conn_t *cs)
{
    apr_thread_mutex_lock(child->busy_lock);
    child->busy[w->tid] = cs;
    apr_thread_mutex_unlock(child->busy_lock);
}

/* fdqueue idle hook: a worker is about to block and already counts as
 * idle.  If the listener closed admission, it may reopen it now.  The
 * listener switches accepting off before it re-checks admission, and we
 * count ourselves idle before we read the flag: one of the two sees the
 * other (the lost wake-up that left a child deaf with every worker idle). */
static void worker_went_idle(void *arg)
{
    (void)arg;
    if (apr_atomic_read32(&child->accepting_off)) {
        wake_listener();
    }
}

/* While stopping, a worker beyond what the remaining connections need
 * may leave; the count is claimed atomically so they don't all go. */
static int may_leave_early(void)
{
    for (;;) {
        apr_uint32_t live = apr_atomic_read32(&child->live_workers);
        apr_uint32_t need = apr_atomic_read32(&child->conns);

        if (need < 1) {
            need = 1;
        }
        if (live <= need) {
            return 0;
        }
        if (apr_atomic_cas32(&child->live_workers, live - 1, live) == live) {
            return 1;
        }
    }
}

static void *APR_THREAD_FUNC worker_main(apr_thread_t *thd, void *arg)
{
    ev2_worker_t *w = arg;
    int left_early = 0;

    w->thd = thd;
    for (;;) {
        ev2_fdq_elem_t *elem = NULL;
        ev2_item_t *item;
        apr_status_t rv;

        if (is_ungraceful()) {
            break;
        }
        if (is_stopping() && may_leave_early()) {
            left_early = 1;
            break;
        }
        ap_update_child_status_from_indexes(child->slot, w->tid,
                                            is_stopping() ? SERVER_GRACEFUL
                                                          : SERVER_READY,
                                            NULL);
        rv = ev2_fdq_pop(child->fdq, &elem);
        if (rv == APR_EOF) {
            break;
        }
        if (rv != APR_SUCCESS) {
            continue;
        }
        item = (ev2_item_t *)elem;
        if (item->kind == EV2_ITEM_TIMER) {
            ev2_timer_ev_t *te = (ev2_timer_ev_t *)item;

            ap_update_child_status_from_indexes(child->slot, w->tid,
                                                SERVER_BUSY_WRITE, NULL);
            te->cb(te->baton);
            apr_thread_mutex_lock(child->qlock);
            te->next_free = child->timer_free;
            child->timer_free = te;
            apr_thread_mutex_unlock(child->qlock);
        }
        else {
            conn_run(w, (ev2_conn_t *)item);
        }
    }
    if (!left_early) {
        apr_atomic_dec32(&child->live_workers);
    }
    ap_update_child_status_from_indexes(child->slot, w->tid, SERVER_DEAD,
                                        NULL);
    return NULL;
}

/* ------------------------------------------------------------------ */
/* Connection states (run in workers)                                   */
/* ------------------------------------------------------------------ */

/* The books of a connection close when its pool is cleared. */
static apr_status_t conn_cleanup(void *baton)
{
    ev2_conn_t *cs = baton;

    if (cs->is_lingering) {
        apr_atomic_dec32(&child->lingering);
    }
    if (cs->is_suspended) {
        apr_atomic_dec32(&child->suspended);
    }
    apr_atomic_dec32(&child->conns);
    publish_conn_counts();
    if (is_stopping()) {
        /* The listener exits on the last connection, and surplus
         * workers may leave now. */
        ev2_fdq_interrupt_all(child->fdq);
        wake_listener();
    }
    else if (apr_atomic_read32(&child->accepting_off)) {
        wake_listener();
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
    apr_pool_t *p = cs->p;

    set_busy(w, NULL);
    /* Clearing the pool closes the socket and runs conn_cleanup. */
    recycle_conn_pool(p);
}

static long conn_id(ev2_worker_t *w)
{
    return (long)child->slot * cfg.thread_limit + w->tid;
}

static int conn_create(ev2_worker_t *w, ev2_conn_t *cs)
{
    conn_rec *c;
    long id = conn_id(w);
    int rc;

    apr_pool_cleanup_register(cs->p, cs, conn_cleanup, apr_pool_cleanup_null);
    cs->ba = apr_bucket_alloc_create(cs->p);
    ap_create_sb_handle(&cs->sbh, cs->p, child->slot, w->tid);
    c = ap_run_create_connection(cs->p, ap_server_conf, cs->sd, id, cs->sbh,
                                 cs->ba);
    if (!c) {
        /* core closed the socket already */
        cs->sd = NULL;
        conn_release(w, cs);
        return 0;
    }
    cs->c = c;
    ap_set_module_config(c->conn_config, &mpm_event2_module, cs);
    c->cs = &cs->pub;
    c->current_thread = w->thd;
    cs->sc = srv_of(c->base_server);
    ev2_pollee_init(&cs->pe, os_sock(cs->sd), cs);
    cs->pub.state = CONN_STATE_PROCESSING;
    cs->pub.sense = CONN_SENSE_DEFAULT;
    apr_pool_pre_cleanup_register(cs->p, cs, conn_precleanup);

    ap_update_vhost_given_ip(c);
    /* A new connection shows its client before any request is read. */
    ap_update_child_status_from_conn(c->sbh, SERVER_BUSY_READ, c);
    rc = ap_pre_connection(c, cs->sd);
    if (rc != OK && rc != DONE) {
        ap_log_cerror(APLOG_MARK, APLOG_DEBUG, 0, c, EV2LOG(100)
                      "pre_connection hooks failed (%d): closing", rc);
        cs->pub.state = CONN_STATE_LINGER;
    }
    if (!cs->sc) {
        cs->sc = srv_of(ap_server_conf);
    }
    return 1;
}

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

static void conn_resume(ev2_worker_t *w, ev2_conn_t *cs)
{
    ap_update_sb_handle(cs->sbh, child->slot, w->tid);
    cs->c->current_thread = w->thd;
    cs->c->id = conn_id(w);
    conn_reattach(cs);
}

/* Hand the connection to the listener: wait for pollflags on q.
 * Returns 1 when parked (cs is no longer ours), 0 if it could not be. */
static int conn_park(ev2_conn_t *cs, ev2_tq_t *q, unsigned int pollflags,
                     apr_time_t stamp)
{
    apr_status_t rv;
    int wake = 0;
    apr_time_t deadline;

    conn_detach(cs);

    apr_thread_mutex_lock(child->qlock);
    ev2_tq_append(q, &cs->tq, stamp);
    rv = ev2_poller_arm(child->poller, &cs->pe, pollflags);
    if (rv != APR_SUCCESS) {
        ev2_tq_remove(&cs->tq);
        apr_thread_mutex_unlock(child->qlock);
        ap_log_cerror(APLOG_MARK, APLOG_ERR, rv, cs->c, EV2LOG(101)
                      "epoll_ctl failed: closing the connection");
        conn_reattach(cs);
        return 0;
    }
    publish_queue_counts();
    deadline = ev2_tq_entry_deadline(&cs->tq);
    if (child->sleep_until == EV2_NO_DEADLINE
        || deadline + EV2_WAKE_SLACK < child->sleep_until) {
        child->sleep_until = deadline;
        wake = 1;
    }
    apr_thread_mutex_unlock(child->qlock);
    /* cs may already be in another worker's hands here. */
    if (wake) {
        wake_listener();
    }
    return 1;
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
        ap_log_cerror(APLOG_MARK, APLOG_DEBUG, 0, c, EV2LOG(102)
                      "process_connection left state %d: closing",
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
    if (ev2_fdq_idle(child->fdq) >= 0) {
        return 0;
    }
    conn_detach(cs);
    if (ev2_fdq_push(child->fdq, &cs->item.link) != APR_SUCCESS) {
        /* The queue is closed (stopping): serve it here. */
        conn_reattach(cs);
        return 0;
    }
    return 1;
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
        unsigned int flags = cs->pub.sense == CONN_SENSE_WANT_READ
                             ? EV2_POLL_IN : EV2_POLL_OUT;

        cs->pub.sense = CONN_SENSE_DEFAULT;
        cs->pub.state = CONN_STATE_WRITE_COMPLETION;
        if (conn_park(cs, cs->sc->write_q, flags, mono_now())) {
            return 1;
        }
        cs->pub.state = CONN_STATE_LINGER;
        return 0;
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
    cs->pub.state = CONN_STATE_KEEPALIVE;
    if (conn_park(cs, cs->sc->keepalive_q, EV2_POLL_IN, mono_now())) {
        return 1;
    }
    cs->pub.state = CONN_STATE_LINGER;
    return 0;
}

/* Lingering close: shut our side, then read and discard what the client
 * still sends until it closes or the linger time runs out, so an early
 * error response is not destroyed by a reset.  Returns 1 when the
 * connection left this worker (parked or closed). */
static int conn_linger(ev2_worker_t *w, ev2_conn_t *cs)
{
    conn_rec *c = cs->c;

    if (cs->pub.state == CONN_STATE_LINGER) {
        int short_linger;

        apr_socket_timeout_set(cs->sd, EV2_LINGER_SHORT);
        if (!cs->is_lingering) {
            cs->is_lingering = 1;
            apr_atomic_inc32(&child->lingering);
            publish_conn_counts();
        }
        if (ap_start_lingering_close(c)) {
            conn_release(w, cs);
            return 1;
        }
        apr_socket_timeout_set(cs->sd, 0);
        short_linger = is_stopping()
                       || apr_table_get(c->notes, "short-lingering-close");
        cs->pub.state = short_linger ? CONN_STATE_LINGER_SHORT
                                     : CONN_STATE_LINGER_NORMAL;
        cs->linger_since = mono_now();
    }
    if (cs->is_expired || linger_drain(cs, 64) == APR_EOF) {
        conn_release(w, cs);
        return 1;
    }
    set_busy(w, NULL);
    if (conn_park(cs, cs->pub.state == CONN_STATE_LINGER_SHORT
                      ? queues.short_linger_q : queues.linger_q,
                  EV2_POLL_IN, cs->linger_since)) {
        return 1;
    }
    conn_release(w, cs);
    return 1;
}

static void conn_suspend(ev2_worker_t *w, ev2_conn_t *cs)
{
    /* A module owns it now; its pool's death does the accounting. */
    cs->is_suspended = 1;
    apr_atomic_inc32(&child->suspended);
    publish_conn_counts();
    conn_detach(cs);
    set_busy(w, NULL);
}

static void conn_run(ev2_worker_t *w, ev2_conn_t *cs)
{
    set_busy(w, cs);
    if (!cs->c) {
        if (!conn_create(w, cs)) {
            return;
        }
    }
    else {
        conn_resume(w, cs);
    }

    for (;;) {
        if (cs->c->aborted && cs->pub.state != CONN_STATE_LINGER_NORMAL
            && cs->pub.state != CONN_STATE_LINGER_SHORT) {
            cs->pub.state = CONN_STATE_LINGER;
        }
        switch (cs->pub.state) {
        case CONN_STATE_PROCESSING:
            conn_process(cs);
            continue;
        case CONN_STATE_KEEPALIVE:
        case CONN_STATE_WRITE_COMPLETION:
            set_busy(w, NULL);
            if (conn_write_completion(cs)) {
                return;
            }
            set_busy(w, cs);
            continue;
        case CONN_STATE_ASYNC_WAITIO: {
            unsigned int flags = cs->pub.sense == CONN_SENSE_WANT_WRITE
                                 ? EV2_POLL_OUT : EV2_POLL_IN;

            ap_update_child_status(cs->c->sbh, SERVER_BUSY_READ, NULL);
            cs->pub.sense = CONN_SENSE_DEFAULT;
            set_busy(w, NULL);
            if (conn_park(cs, cs->sc->waitio_q, flags, mono_now())) {
                return;
            }
            set_busy(w, cs);
            cs->pub.state = CONN_STATE_LINGER;
            continue;
        }
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

/* ------------------------------------------------------------------ */
/* Module record                                                        */
/* ------------------------------------------------------------------ */

static void ev2_hooks(apr_pool_t *p)
{
    static const char *const before_core[] = { "core.c", NULL };

    (void)p;
    one_process = 0;
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
