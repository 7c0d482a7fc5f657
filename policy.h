/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * policy.h - the MPM's arithmetic decisions, kept apart from the code that
 * acts on them: what a directive value means, how conflicting settings are
 * reconciled, whether a child admits a new connection, how long the
 * listener may sleep, and whether idle server maintenance starts or stops
 * children.  Each function takes plain numbers and returns plain numbers:
 * no httpd symbols, no clock, no locks, no logging (the callers log what
 * a decision says).  APR types only, so t/unit tests every branch without
 * httpd, and the fuzzers (t/fuzz) feed the parsers.  Any thread may call
 * any of them.
 */

#ifndef EV2_POLICY_H
#define EV2_POLICY_H

#include <apr.h>
#include <apr_time.h>

/* ---- directive values ---- */

/** AsyncRequestWorkerFactor is kept in thousandths, so 1.5 stays 1.5. */
#define EV2_FACTOR_SCALE 1000
/** Its range: 0.001 .. EV2_MAX_FACTOR. */
#define EV2_MAX_FACTOR   100000.0

/** Parse a whole decimal number in [lo, hi] and in int's range (the
 *  whole of arg, no sign games beyond strtol's).  Returns 0 and sets
 *  *out, or -1 and leaves *out alone. */
int ev2_parse_whole(const char *arg, long lo, long hi, int *out);

/** Parse AsyncRequestWorkerFactor: a finite decimal number from 0.001 to
 *  EV2_MAX_FACTOR, fractions allowed.  Returns 0 and sets *milli to the
 *  value in thousandths (rounded), or -1. */
int ev2_parse_factor(const char *arg, apr_uint32_t *milli);

/** AsyncHeaderTimeout: "off" (or "0"), or "base[-max][,MinRate=rate]"
 *  in whole seconds (1-3600, max >= base) and bytes a second (1-10^9):
 *  a header must be complete within base seconds, extended by a second
 *  for every rate bytes received, up to max seconds.  Returns 0 and sets
 *  the three values (all 0 for off; max = base and rate 0 when neither
 *  is given; max 0, no maximum, for a rate without a range, as
 *  mod_reqtimeout reads it), or -1. */
int ev2_parse_header_timeout(const char *arg, int *base_s, int *max_s,
                             int *rate);

/* ---- configuration ---- */

/** The MPM's settings, as the directives left them. */
typedef struct {
    int header_base_s;          /* AsyncHeaderTimeout; 0: off */
    int header_max_s;
    int header_rate;            /* MinRate, bytes a second; 0: none */
    int daemons_to_start;       /* StartServers */
    int min_spare_threads;      /* MinSpareThreads */
    int max_spare_threads;      /* MaxSpareThreads */
    int max_workers;            /* MaxRequestWorkers */
    int server_limit;           /* ServerLimit */
    int thread_limit;           /* ThreadLimit */
    int threads_per_child;      /* ThreadsPerChild */
    apr_uint32_t factor_milli;  /* AsyncRequestWorkerFactor x 1000 */
    int active_daemons_limit;   /* derived: max_workers / threads_per_child */
} ev2_config_t;

/** What ev2_config_reconcile() changed, one record per change. */
typedef enum {
    EV2_ADJ_SERVER_LIMIT_FIXED, /* ServerLimit changed across a restart */
    EV2_ADJ_THREAD_LIMIT_FIXED, /* ThreadLimit changed across a restart */
    EV2_ADJ_THREADS_OVER_LIMIT, /* ThreadsPerChild > ThreadLimit */
    EV2_ADJ_WORKERS_UNDER_TPC,  /* MaxRequestWorkers < ThreadsPerChild */
    EV2_ADJ_WORKERS_ROUNDED,    /* not a multiple of ThreadsPerChild */
    EV2_ADJ_WORKERS_OVER_SLOTS, /* needs more children than ServerLimit */
    EV2_ADJ_START_OVER_LIMIT,   /* StartServers > MaxRequestWorkers allows */
    EV2_ADJ_SPARE_RAISED        /* MaxSpareThreads < Min + ThreadsPerChild */
} ev2_adjust_e;

typedef struct {
    ev2_adjust_e what;
    int from;                   /* the value as configured */
    int to;                     /* the value used */
} ev2_adjustment_t;

/** Most adjustments one reconciliation can make (one of each kind). */
#define EV2_MAX_ADJUSTMENTS 8

/** Make values that are each valid but conflict agree, the way stock event
 *  does, and derive active_daemons_limit.  first_server_limit and
 *  first_thread_limit are the values the scoreboard was sized with (0 on
 *  the first pass: then cfg's own are taken and returned through them).
 *  Records each change in adj[] (room for EV2_MAX_ADJUSTMENTS) and returns
 *  how many it made. */
int ev2_config_reconcile(ev2_config_t *cfg, int *first_server_limit,
                         int *first_thread_limit, ev2_adjustment_t *adj);

/* ---- admission ---- */

/** Descriptors a child keeps back from connections: listening sockets,
 *  the epoll set, logs, pipes, and a file or pipe pair per worker. */
#define EV2_FD_RESERVE(threads_per_child) (64 + 2 * (apr_uint64_t)(threads_per_child))

/** The most connections a child holds at once, parked ones included:
 *  (AsyncRequestWorkerFactor + 1) x ThreadsPerChild, stock's documented
 *  maximum, but no more than max_fds (the descriptor limit, 0: unknown)
 *  leaves after EV2_FD_RESERVE, and never below ThreadsPerChild. */
apr_uint32_t ev2_conns_cap(int threads_per_child, apr_uint32_t factor_milli,
                           apr_uint64_t max_fds);

/** What admission says about one more connection. */
typedef enum {
    EV2_ADMIT = 0,              /* accept it */
    EV2_ADMIT_NO_WORKER,        /* every worker is busy and connections
                                 * already queue for them: another child,
                                 * or a worker going idle, takes it */
    EV2_ADMIT_AT_CAP            /* the child holds its cap of connections */
} ev2_admit_e;

/** Admission by worker demand: a child accepts while it can start on a
 *  new connection soon (idle_workers, the workers waiting minus the
 *  connections queued for them, is not negative: at most a queue of one)
 *  and its connections that are not closing (conns - lingering) are below
 *  cap.  Parked idle connections cost a slot under the cap, not a
 *  worker. */
ev2_admit_e ev2_admit(apr_uint32_t conns, apr_uint32_t lingering,
                      int idle_workers, apr_uint32_t cap);

/** How many idle connections one child closes to make room for clients
 *  waiting in a listen backlog that children_at_cap children (the ones of
 *  that backlog that are all at their cap, this one included) share:
 *  its part, rounded up, so that together they close about as many as
 *  there are waiting clients. */
int ev2_room_share(int waiting, int children_at_cap);

/* ---- time ---- */

/** The earlier of two deadlines, either of which may be -1 (none). */
apr_time_t ev2_earliest(apr_time_t a, apr_time_t b);

/** How long a poll may sleep to wake at deadline (-1: none): -1 for
 *  ever, 0 when due, else the wait rounded up to a whole millisecond (in
 *  microseconds): rounding down would wake early and spin until due.
 *  now >= 0 (a monotonic clock); deadline may be up to APR_INT64_MAX. */
apr_interval_time_t ev2_poll_timeout(apr_time_t deadline, apr_time_t now);

/** When a client that started its header at since and has sent bytes
 *  of it so far must have completed it (AsyncHeaderTimeout's values;
 *  max_s 0: no maximum). */
apr_time_t ev2_header_deadline(apr_time_t since, apr_size_t bytes,
                               int base_s, int max_s, int rate);

/* ---- idle server maintenance ---- */

/** What the parent counted for one bucket in one maintenance pass. */
typedef struct {
    int idle_threads;           /* idle or starting workers of this
                                 * generation's accepting children */
    int free_slots;             /* free scoreboard slots found for this
                                 * bucket, at most spawn_rate */
    int active_daemons;         /* live children not stopping */
    int total_daemons;          /* all live children */
    int active_daemons_limit;   /* MaxRequestWorkers / ThreadsPerChild */
    int server_limit;
    int min_spare;              /* MinSpareThreads / buckets */
    int max_spare;              /* MaxSpareThreads / buckets */
    int spawn_rate;             /* children this bucket may start now */
    int max_spawn_rate;         /* cap of spawn_rate for this bucket */
    int hold_off;               /* passes left without doubling the rate */
} ev2_maint_in_t;

typedef enum {
    EV2_MAINT_NONE,             /* idle threads within bounds */
    EV2_MAINT_STOP_ONE,         /* too many idle: stop one child */
    EV2_MAINT_KEEP_SURPLUS,     /* too many idle, but children that are
                                 * stopping still hold the slots */
    EV2_MAINT_AT_MAX_WORKERS,   /* too few idle, MaxRequestWorkers reached */
    EV2_MAINT_SCOREBOARD_FULL,  /* too few idle, no free slot */
    EV2_MAINT_SPAWN             /* too few idle: start children */
} ev2_maint_action_e;

typedef struct {
    ev2_maint_action_e action;
    int spawn;                  /* children to start (EV2_MAINT_SPAWN) */
    int spawn_rate;             /* the bucket's rate for the next pass */
    int hold_off;               /* hold_off for the next pass */
} ev2_maint_out_t;

/** Decide one bucket's maintenance step from plain counts. */
void ev2_maint_decide(const ev2_maint_in_t *in, ev2_maint_out_t *out);

#endif /* EV2_POLICY_H */
