/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * ev2.h - private to mod_mpm_event2: the types, globals and functions its
 * files share.  Nothing here is exported from the .so (built with
 * -fvisibility=hidden); mpm_event2_module is the only public symbol.
 *
 * Who runs what:
 *   parent process   config.c (configuration passes), parent.c, maint.c
 *   child, main      child.c (start, signals, stop)
 *   child, listener  listener.c (the loop), accept.c (accepting,
 *                    admission, early closes), states.c (ready and
 *                    expired connections), the listener half of linger.c
 *   child, workers   worker.c, conn.c, the worker half of linger.c
 *   any thread       status.c (our scoreboard slot), policy.c, hooks in
 *                    mod_mpm_event2.c
 *
 * Ownership: a connection belongs to exactly one of a worker, the
 * listener (while it is parked: on one timeout queue and armed in the
 * epoll set) or a module (suspended).  Parking (ev2_conn_park) is the only
 * hand-over from a worker to the listener; from the moment it is done the
 * listener may already hand the connection on.
 *
 * Lock order: child->qlock, then child->busy_lock.  Neither is held while
 * calling into httpd hooks or filters.  child->status_lock comes after
 * both: it may be taken with either held (or none), and nothing else is
 * taken or called while it is held.  The fdqueue and the poller have
 * locks of their own, also taken last.
 */

#ifndef EV2_H
#define EV2_H

#include <stddef.h>

#include "apr.h"
#include "apr_atomic.h"
#include "apr_portable.h"
#include "apr_thread_proc.h"
#include "apr_thread_mutex.h"

#include "ap_config.h"
#include "httpd.h"
#include "http_config.h"
#include "http_log.h"
#include "http_main.h"
#include "ap_listen.h"
#include "ap_mpm.h"
#include "mpm_common.h"
#include "scoreboard.h"
#include "unixd.h"

#include "policy.h"
#include "fdqueue.h"
#include "poller.h"
#include "event_queues.h"
#include "memtrim.h"

/* Built with -fvisibility=hidden: only the module record is exported. */
extern __attribute__((visibility("default")))
module AP_MODULE_DECLARE_DATA mpm_event2_module;
APLOG_USE_MODULE(mpm_event2);

/* Messages that stock event logs in the same situation carry its APLOGNO
 * code and text, so that monitoring written for it keeps working; messages
 * only we log carry tags of our own, in the same style. */
#define EV2LOG(n) "EV2" #n ": "

/* Lingering close: how long we wait for the client to close. */
#define EV2_LINGER_NORMAL               apr_time_from_sec(30)
#define EV2_LINGER_SHORT                apr_time_from_sec(2)

/* A parked connection only wakes the listener when its deadline is this
 * much earlier than the listener's planned wake-up: timeouts are never
 * early, and at most this late. */
#define EV2_WAKE_SLACK                  apr_time_from_msec(20)

/* ---- configuration (config.c) ---- */

/* Our one state beyond httpd's conn_state_e: a connection whose request
 * header has not fully arrived waits in the listener (header.c).  It is
 * only ever in cs->pub.state while the listener holds the connection. */
#define EV2_STATE_READ_HEADER   ((conn_state_e)CONN_STATE_NUM)
#define EV2_STATES              (CONN_STATE_NUM + 1)

/* Per virtual host: the timeout queue of each parking state, indexed by
 * state; NULL for states nobody parks in.  Vhosts with the same timeout
 * share a queue. */
typedef struct {
    ev2_tq_t *q[EV2_STATES];
    /* How long a request header (or a body held for a worker) may wait
     * here: AsyncHeaderTimeout, or with mod_reqtimeout the header= of
     * RequestReadTimeout that applies to this server (its own in its
     * <VirtualHost>, else the main server's).  As mod_reqtimeout does, the
     * server is the connection's address-based one (c->base_server). */
    int header_base_s;
    int header_max_s;
    int header_rate;
    const char *header_src;     /* which directive set them, for the log */
    /* Once the header is whole, how long its body may wait here: with
     * mod_reqtimeout, the body= of RequestReadTimeout for this server (its
     * default 20,MinRate=500 when none is set), counted from the end of
     * the header over the body's bytes alone.  body_base_s 0 (no
     * mod_reqtimeout, or body=0): the body shares the header's wait. */
    int body_base_s;
    int body_max_s;
    int body_rate;
} ev2_srv_t;

/* Some vhosts wait for a header longer or shorter than the main server:
 * a new connection's address then picks its vhost (header.c). */
extern int ev2_header_by_vhost;

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
    /* A child of this generation had every worker running (sticky until
     * the next generation): a sick child after that is not a server that
     * cannot start. */
    int had_healthy_child;
    int maxworkers_reported;
    int near_maxworkers_reported;
    int scoreboard_full_reported;
    int hold_off_on_exponential_spawning;
    int abrupt_deaths;          /* children killed by a signal in a row */
    /* Per slot, parent-private: the child no longer counts as active
     * (it is stopping).  Kept here rather than read back from the
     * child-writable scoreboard. */
    char *uncounted;
    /* Per slot, shared with the children (status.c); ServerLimit of
     * them, mapped once for the parent's lifetime. */
    struct ev2_slot_status_t *slots;
} ev2_retained_t;

typedef struct {
    ap_pod_t *pod;
    ap_listen_rec *listeners;
} ev2_bucket_t;

/* Rebuilt from the defaults on every configuration pass. */
extern ev2_config_t ev2_cfg;
/* Every timeout queue of this configuration generation (post_config). */
extern ev2_tq_set_t *ev2_queues;
extern ev2_retained_t *ev2_retained;
extern ev2_bucket_t *ev2_buckets;
extern int ev2_one_process;
extern apr_pool_t *ev2_pconf;

int ev2_pre_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp);
int ev2_check_config(apr_pool_t *p, apr_pool_t *plog, apr_pool_t *ptemp,
                     server_rec *s);
int ev2_open_logs(apr_pool_t *p, apr_pool_t *plog, apr_pool_t *ptemp,
                  server_rec *s);
int ev2_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                    server_rec *s);
extern const command_rec ev2_cmds[];

static inline ev2_srv_t *ev2_srv_of(server_rec *s)
{
    return ap_get_module_config(s->module_config, &mpm_event2_module);
}

/* ---- parent (parent.c) ---- */

int ev2_run(apr_pool_t *pconf, apr_pool_t *plog, server_rec *s);
int ev2_make_child(server_rec *s, int slot, int bucket);
int ev2_bucket_of_slot(int slot);
void ev2_uncount_child(int slot);

/* ---- idle server maintenance (maint.c) ---- */

void ev2_maintain(int bucket);
void ev2_maint_waiting_for_slots(void);
void ev2_note_healthy_child(int slot);

/* ---- what the fdqueue and the epoll set carry ---- */

typedef enum {
    EV2_ITEM_CONN,
    EV2_ITEM_TIMER,
    EV2_ITEM_LISTENER
} ev2_item_kind_e;

/* The first member of each thing queued or polled. */
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
    const ev2_srv_t *hsc;       /* address-based vhost: header timeouts */
    ev2_pollee_t pe;            /* one-shot: armed while parked */
    conn_state_t pub;           /* c->cs points here */
    apr_time_t linger_since;    /* one stamp for the whole linger */
    apr_time_t header_since;    /* EV2_STATE_READ_HEADER: when it began */
    apr_size_t header_bytes;    /* of the request, what has arrived */
    apr_time_t body_since;      /* the header was whole then, its body
                                 * not (0: not known to be so) */
    apr_size_t body_from;       /* the header's length: the body's bytes
                                 * are header_bytes - body_from */
    ev2_trim_mark_t trim_pool;  /* memtrim.h: p's first block */
    ev2_trim_mark_t trim_ba;    /* memtrim.h: ba's first block */
    unsigned int is_lingering:1;
    unsigned int is_suspended:1;
    unsigned int is_expired:1;  /* its deadline passed while parked */
    unsigned int is_header_late:1; /* AsyncHeaderTimeout ran out */
    unsigned int is_lowat:1;    /* SO_RCVLOWAT raised while waiting for
                                 * the rest of a header (header.c) */
    unsigned int is_held:1;     /* EV2_STATE_READ_HEADER through the
                                 * filters: a worker reads (hold.c) */
    unsigned int is_waiting:1;  /* header_since counts for the request
                                 * on its way (cleared when it is read) */
    struct ev2_hold_t *hold;    /* hold.c: what a worker read ahead */
} ev2_conn_t;

typedef struct ev2_timer_ev_t {
    ev2_item_t item;            /* kind EV2_ITEM_TIMER */
    ev2_timer_t t;
    ap_mpm_callback_fn_t *cb;
    void *baton;
    struct ev2_timer_ev_t *next_free;
} ev2_timer_ev_t;

typedef struct {
    ev2_item_t item;            /* kind EV2_ITEM_LISTENER */
    ap_listen_rec *lr;
    ev2_pollee_t pe;            /* level-triggered */
    unsigned int is_readable:1; /* listener: seen readable this batch */
} ev2_lsock_t;

typedef struct {
    int tid;
    apr_thread_t *thd;
} ev2_worker_t;

/* ---- the child runtime (child.c) ---- */

typedef enum {
    EV2_RUNNING = 0,
    EV2_GRACEFUL,
    EV2_UNGRACEFUL
} ev2_stop_mode_e;

typedef struct {
    /* Set once by the child's main thread before the threads start; read
     * by all of them. */
    apr_pool_t *pool;           /* runtime objects; a child of pconf */
    apr_pool_t *conn_root;      /* parent of connection pools; owns the
                                 * allocator they share */
    apr_pool_t *pchild;
    int slot;
    ev2_bucket_t *bucket;       /* the listeners and pod of this child */
    ev2_fdq_t *fdq;
    ev2_poller_t *poller;
    ev2_worker_t *workers;
    apr_thread_t *listener;

    /* qlock guards the timeout queues (every parked connection's tq
     * link), the timer heap and its free list, and sleep_until. */
    apr_thread_mutex_t *qlock;
    ev2_theap_t *timers;
    ev2_timer_ev_t *timer_free;
    apr_size_t timers_alloc;
    apr_time_t sleep_until;     /* listener's planned wake-up, or -1 */

    /* busy_lock guards busy[]: the connection each worker runs, so an
     * ungraceful stop can shutdown() their sockets without racing a
     * close (and fd reuse) in the worker. */
    apr_thread_mutex_t *busy_lock;
    ev2_conn_t **busy;

    /* status_lock makes ev2_status_conns() one step: reading the counts
     * below and writing them into the scoreboard, so that a thread that
     * read them earlier cannot write its older snapshot last. */
    apr_thread_mutex_t *status_lock;

    /* The poller's wake-up fallback signal (0: none); set before the
     * threads start. */
    int wake_sig;

    /* Atomics, any thread. */
    apr_uint32_t wake_pending;  /* a wake-up of the listener is in flight */
    apr_uint32_t wake_failed_logged; /* a refused wake-up was logged */
    apr_uint32_t conns;         /* accepted and not yet closed */
    apr_uint32_t lingering;     /* of those, in lingering close */
    apr_uint32_t suspended;
    apr_uint32_t accept_mode;   /* ev2_accept_mode_e (the listener sets
                                 * it): why the child does not accept */
    apr_uint32_t stop_mode;     /* ev2_stop_mode_e */
    apr_uint32_t live_workers;
    apr_uint32_t listener_done;
    apr_uint32_t stopping_hooks_run;

    /* Written by the listener before it sets listener_done; read by the
     * main thread after joining it. */
    int exit_code;
} ev2_child_t;

/* The one child runtime of this process, NULL in the parent. */
extern ev2_child_t *ev2_child;

void ev2_child_main(int slot, int bucket) __attribute__((noreturn));
void ev2_child_stop(ev2_stop_mode_e mode);
void ev2_wake_listener(void);
apr_time_t ev2_now(void);

static inline int ev2_is_stopping(void)
{
    return apr_atomic_read32(&ev2_child->stop_mode) != EV2_RUNNING;
}

static inline int ev2_is_ungraceful(void)
{
    return apr_atomic_read32(&ev2_child->stop_mode) == EV2_UNGRACEFUL;
}

static inline int ev2_os_sock(apr_socket_t *s)
{
    apr_os_sock_t fd = -1;

    apr_os_sock_get(&fd, s);
    return fd;
}

/* ---- our scoreboard slot (status.c) ---- */

/* Whether a child accepts, and if not why: what mod_status shows. */
typedef enum {
    EV2_ACCEPTING = 0,
    EV2_OFF_NO_WORKER,          /* no worker free soon (policy.h) */
    EV2_OFF_AT_CAP,             /* at its cap of connections */
    EV2_OFF_BACKOFF,            /* accept() or the epoll set failed for
                                 * lack of resources; retrying */
    EV2_OFF_STOPPING            /* draining, for good */
} ev2_accept_mode_e;

/* What a child publishes beyond httpd's process_score, per scoreboard
 * slot, in a shared segment the parent maps once (ev2_retained->slots)
 * and every child inherits.  Written by the slot's child, read by
 * mod_status's hook in any child. */
typedef struct ev2_slot_status_t {
    apr_uint32_t mode;          /* ev2_accept_mode_e */
    apr_uint32_t conns_cap;
    apr_uint32_t room_closed;   /* idle connections closed to make room */
    apr_uint32_t reading_header; /* waiting for their request header */
} ev2_slot_status_t;

apr_status_t ev2_status_setup(void);    /* parent, before any child */
void ev2_status_reset(int slot);        /* parent, before starting slot */
void ev2_status_cap(apr_uint32_t cap);
void ev2_status_room_closed(int n);
int ev2_status_hook(request_rec *r, int flags);

void ev2_status_queues(void);           /* caller holds qlock */
void ev2_status_conns(void);            /* takes status_lock */
void ev2_status_accepting(ev2_accept_mode_e mode);
int ev2_status_other_accepting(int *not_accepting);
void ev2_status_quiescing(void);
void ev2_status_worker(int tid, int status);

/* ---- listener thread (listener.c, accept.c) ---- */

/* State only the listener thread touches. */
typedef struct {
    ev2_lsock_t *lsocks;
    int num_lsocks;
    int is_draining;
    int conns_left;             /* MaxConnectionsPerChild */
    apr_uint32_t conns_cap;     /* ev2_conns_cap() for this child */
    ev2_accept_mode_e mode;
    int want_room;              /* make room after the batch (step 4) */
    int failure_logged;         /* a resource failure was logged; reset
                                 * once accepting works again */
    apr_time_t accept_backoff_until;
    apr_time_t drain_at;        /* stopping: next keep-alive or linger
                                 * connection to close early */
    apr_time_t room_at;         /* at the cap with clients waiting: when
                                 * to look again (the next idle connection
                                 * old enough to close, or a re-check) */
} ev2_listener_t;

/* The listener's state, with its listening sockets ready to poll; main
 * thread, before the threads start. */
apr_status_t ev2_listener_create(ev2_listener_t **pl, apr_pool_t *p);
void *APR_THREAD_FUNC ev2_listener_main(apr_thread_t *thd, void *arg);

void ev2_accepting_set(ev2_listener_t *l, ev2_accept_mode_e mode,
                       int watch, apr_time_t now);
ev2_admit_e ev2_admission(const ev2_listener_t *l);
void ev2_accept_on(ev2_listener_t *l, ev2_lsock_t *ls);
void ev2_make_room(ev2_listener_t *l, apr_time_t now);
apr_time_t ev2_close_idle(apr_time_t now, int max, int keep_waiting,
                          int *closed);

/* ---- workers (worker.c) ---- */

void *APR_THREAD_FUNC ev2_worker_main(apr_thread_t *thd, void *arg);
void ev2_worker_went_idle(void *arg);
void ev2_set_busy(ev2_worker_t *w, ev2_conn_t *cs);

/* ---- connections (conn.c, states.c) ---- */

/* What a parking state means, one row per state a connection waits in
 * the listener's hands (ev2_state_of() is NULL for the others). */
typedef struct {
    unsigned int poll;          /* EV2_POLL_* to wait for */
    unsigned int honours_sense:1; /* CONN_SENSE_WANT_* overrides poll */
    unsigned int keeps_stamp:1; /* the deadline counts from linger_since,
                                 * for the whole state, not per park */
    unsigned int is_idle:1;     /* may be closed early to make room */
    /* The timeout of this state's queue for vhost s (post_config). */
    apr_interval_time_t (*timeout)(const server_rec *s);
    /* Listener: the socket is ready.  cs is still on its queue. */
    void (*ready)(ev2_conn_t *cs);
    /* Listener: its deadline passed, or it is closed early; cs is off its
     * queue and out of the epoll set. */
    void (*expired)(ev2_conn_t *cs);
    /* Logged (with its AH code) when the epoll set refuses the park. */
    const char *park_failed;
    /* Listener: closed early to make room (or by a stopping child), off
     * its queue and out of the epoll set; NULL: as expired. */
    void (*closed_early)(ev2_conn_t *cs);
} ev2_state_t;

const ev2_state_t *ev2_state_of(conn_state_e state);

static inline ev2_conn_t *ev2_conn_of(conn_rec *c)
{
    return ap_get_module_config(c->conn_config, &mpm_event2_module);
}

static inline int ev2_is_lingering_state(conn_state_e state)
{
    return state == CONN_STATE_LINGER_NORMAL
           || state == CONN_STATE_LINGER_SHORT;
}

ev2_conn_t *ev2_conn_new(apr_pool_t *p, apr_socket_t *sd);
void ev2_conn_push(ev2_conn_t *cs);
int ev2_conn_park(ev2_conn_t *cs);
void ev2_conn_unpark(ev2_conn_t *cs);
void ev2_conn_release(ev2_worker_t *w, ev2_conn_t *cs);
apr_pool_t *ev2_conn_pool_get(void);
void ev2_conn_pool_put(apr_pool_t *p);
void ev2_conn_run(ev2_worker_t *w, ev2_conn_t *cs);
void ev2_conn_ready(ev2_conn_t *cs);
void ev2_conn_expired(ev2_conn_t *cs, int is_early);
int ev2_expire_each(ev2_tq_entry_t *(*pop)(void *baton), void *baton,
                    int is_early);
int ev2_conn_repark(ev2_conn_t *cs, conn_state_e state);

/* ---- waiting for a request header (header.c) ---- */

/* The most of a header the listener looks at: a header not complete in
 * this many bytes goes to a worker as it is (httpd's limits answer it).
 * It is also what a client can make the kernel hold for it. */
#define EV2_HEADER_PEEK_MAX     (32 * 1024)

/* The largest request body that waits (hold.c) before a worker serves
 * the request; a larger one is read while the request is served. */
#define EV2_BODY_MAX            (64 * 1024)

apr_interval_time_t ev2_header_tick(const server_rec *s);
void ev2_header_accepted(ev2_conn_t *cs);
void ev2_header_wait_begin(ev2_conn_t *cs);
void ev2_header_body_begins(ev2_conn_t *cs, apr_size_t header_len);
int ev2_header_keepalive(ev2_conn_t *cs);
void ev2_header_ready(ev2_conn_t *cs);
void ev2_header_expired(ev2_conn_t *cs);
void ev2_header_closed_early(ev2_conn_t *cs);
void ev2_header_register(void);
struct ap_filter_t *ev2_header_late(ev2_conn_t *cs);

/* ---- reading ahead through the input filters (hold.c) ---- */

typedef struct ev2_hold_t ev2_hold_t;
void ev2_hold_register(void);
int ev2_hold_applies(const ev2_conn_t *cs);
int ev2_hold_is_tls(const ev2_conn_t *cs);
int ev2_hold_fill(ev2_conn_t *cs);

/* ---- lingering close (linger.c) ---- */

int ev2_linger_start(ev2_conn_t *cs);
void ev2_linger_ready(ev2_conn_t *cs);
void ev2_linger_expired(ev2_conn_t *cs);
void ev2_conn_linger(ev2_worker_t *w, ev2_conn_t *cs);

#endif /* EV2_H */
