/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * policy.c - the arithmetic behind the MPM's decisions (see policy.h).
 * Pure functions: the callers in config.c, accept.c, listener.c and
 * parent.c gather the numbers, call in, and act on (and log) the answer.
 */

#include "policy.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int ev2_parse_whole(const char *arg, long lo, long hi, int *out)
{
    char *end = NULL;
    long v;

    if (arg == NULL) {
        return -1;
    }
    errno = 0;
    v = strtol(arg, &end, 10);
    /* *out is an int: a range wider than int must not let a value
     * through truncated. */
    if (end == arg || *end != '\0' || errno == ERANGE || v < lo || v > hi
        || v < INT_MIN || v > INT_MAX) {
        return -1;
    }
    *out = (int)v;
    return 0;
}

int ev2_parse_factor(const char *arg, apr_uint32_t *milli)
{
    char *end = NULL;
    double v;

    if (arg == NULL) {
        return -1;
    }
    errno = 0;
    v = strtod(arg, &end);
    /* !(v >= ...) also refuses NaN, which compares false with anything. */
    if (end == arg || *end != '\0' || errno == ERANGE || !isfinite(v)
        || !(v * EV2_FACTOR_SCALE >= 1.0) || v > EV2_MAX_FACTOR) {
        return -1;
    }
    *milli = (apr_uint32_t)(v * EV2_FACTOR_SCALE + 0.5);
    return 0;
}

/* A whole number in [lo, hi] at *p, which moves past it. */
static int take_number(const char **p, long lo, long hi, int *out)
{
    char *end = NULL;
    long v;

    if (**p < '0' || **p > '9') {
        return -1;
    }
    errno = 0;
    v = strtol(*p, &end, 10);
    if (errno == ERANGE || v < lo || v > hi) {
        return -1;
    }
    *p = end;
    *out = (int)v;
    return 0;
}

int ev2_parse_header_timeout(const char *arg, int *base_s, int *max_s,
                             int *rate)
{
    const char *p = arg;
    int base, max, r = 0, has_range = 0;

    if (arg == NULL) {
        return -1;
    }
    if (!strcasecmp(arg, "off") || !strcmp(arg, "0")) {
        *base_s = *max_s = *rate = 0;
        return 0;
    }
    if (take_number(&p, 1, 3600, &base) != 0) {
        return -1;
    }
    max = base;                 /* without MinRate, no more than base */
    if (*p == '-') {
        p++;
        if (take_number(&p, base, 3600, &max) != 0) {
            return -1;
        }
        has_range = 1;
    }
    if (*p == ',') {
        p++;
        if (strncasecmp(p, "MinRate=", 8) != 0) {
            return -1;
        }
        p += 8;
        if (take_number(&p, 1, 1000000000, &r) != 0) {
            return -1;
        }
        if (!has_range) {
            /* a rate and no range: no maximum, as in mod_reqtimeout */
            max = 0;
        }
    }
    if (*p != '\0') {
        return -1;
    }
    *base_s = base;
    *max_s = max;
    *rate = r;
    return 0;
}

static void record(ev2_adjustment_t *adj, int *n, ev2_adjust_e what,
                   int from, int to)
{
    adj[*n].what = what;
    adj[*n].from = from;
    adj[*n].to = to;
    (*n)++;
}

/* a + b for a, b >= 0, stopping at INT_MAX: MinSpareThreads may be as
 * large as an int. */
static int add_capped(int a, int b)
{
    return a > INT_MAX - b ? INT_MAX : a + b;
}

int ev2_config_reconcile(ev2_config_t *cfg, int *first_server_limit,
                         int *first_thread_limit, ev2_adjustment_t *adj)
{
    int n = 0, spare;

    /* ServerLimit and ThreadLimit size the scoreboard: fixed by the first
     * start until a full stop. */
    if (!*first_server_limit) {
        *first_server_limit = cfg->server_limit;
    }
    else if (cfg->server_limit != *first_server_limit) {
        record(adj, &n, EV2_ADJ_SERVER_LIMIT_FIXED, cfg->server_limit,
               *first_server_limit);
        cfg->server_limit = *first_server_limit;
    }
    if (!*first_thread_limit) {
        *first_thread_limit = cfg->thread_limit;
    }
    else if (cfg->thread_limit != *first_thread_limit) {
        record(adj, &n, EV2_ADJ_THREAD_LIMIT_FIXED, cfg->thread_limit,
               *first_thread_limit);
        cfg->thread_limit = *first_thread_limit;
    }

    if (cfg->threads_per_child > cfg->thread_limit) {
        record(adj, &n, EV2_ADJ_THREADS_OVER_LIMIT, cfg->threads_per_child,
               cfg->thread_limit);
        cfg->threads_per_child = cfg->thread_limit;
    }
    if (cfg->max_workers < cfg->threads_per_child) {
        record(adj, &n, EV2_ADJ_WORKERS_UNDER_TPC, cfg->max_workers,
               cfg->threads_per_child);
        cfg->max_workers = cfg->threads_per_child;
    }
    cfg->active_daemons_limit = cfg->max_workers / cfg->threads_per_child;
    if (cfg->max_workers % cfg->threads_per_child) {
        int fixed = cfg->active_daemons_limit * cfg->threads_per_child;

        record(adj, &n, EV2_ADJ_WORKERS_ROUNDED, cfg->max_workers, fixed);
        cfg->max_workers = fixed;
    }
    if (cfg->active_daemons_limit > cfg->server_limit) {
        int fixed = cfg->server_limit * cfg->threads_per_child;

        record(adj, &n, EV2_ADJ_WORKERS_OVER_SLOTS, cfg->max_workers, fixed);
        cfg->max_workers = fixed;
        cfg->active_daemons_limit = cfg->server_limit;
    }
    if (cfg->daemons_to_start > cfg->active_daemons_limit) {
        record(adj, &n, EV2_ADJ_START_OVER_LIMIT, cfg->daemons_to_start,
               cfg->active_daemons_limit);
        cfg->daemons_to_start = cfg->active_daemons_limit;
    }
    /* Otherwise the parent would stop a child only to start one again at
     * the next maintenance pass (stock does this silently). */
    spare = add_capped(cfg->min_spare_threads, cfg->threads_per_child);
    if (cfg->max_spare_threads < spare) {
        record(adj, &n, EV2_ADJ_SPARE_RAISED, cfg->max_spare_threads, spare);
        cfg->max_spare_threads = spare;
    }
    return n;
}

apr_uint32_t ev2_conns_cap(int threads_per_child, apr_uint32_t factor_milli,
                           apr_uint64_t max_fds)
{
    apr_uint64_t tpc = threads_per_child > 0 ? (apr_uint64_t)threads_per_child
                                             : 1;
    apr_uint64_t cap = tpc + (tpc * factor_milli) / EV2_FACTOR_SCALE;
    apr_uint64_t reserve = EV2_FD_RESERVE(tpc);

    if (max_fds && max_fds > reserve && cap > max_fds - reserve) {
        cap = max_fds - reserve;
    }
    else if (max_fds && max_fds <= reserve) {
        cap = tpc;
    }
    if (cap < tpc) {
        cap = tpc;
    }
    return cap > APR_UINT32_MAX ? APR_UINT32_MAX : (apr_uint32_t)cap;
}

ev2_admit_e ev2_admit(apr_uint32_t conns, apr_uint32_t lingering,
                      int idle_workers, apr_uint32_t cap)
{
    /* A connection counted lingering is still counted in conns; a
     * momentary read of the two atomics apart cannot go below zero. */
    apr_uint32_t active = conns > lingering ? conns - lingering : 0;

    if (active >= cap) {
        return EV2_ADMIT_AT_CAP;
    }
    if (idle_workers < 0) {
        return EV2_ADMIT_NO_WORKER;
    }
    return EV2_ADMIT;
}

int ev2_room_share(int waiting, int children_at_cap)
{
    if (waiting <= 0) {
        return 0;
    }
    if (children_at_cap <= 1) {
        return waiting;
    }
    return waiting / children_at_cap + (waiting % children_at_cap != 0);
}

apr_time_t ev2_earliest(apr_time_t a, apr_time_t b)
{
    if (a == -1) {
        return b;
    }
    return (b == -1 || a < b) ? a : b;
}

apr_interval_time_t ev2_poll_timeout(apr_time_t deadline, apr_time_t now)
{
    apr_time_t d;

    if (deadline == -1) {
        return -1;
    }
    if (deadline <= now) {
        return 0;
    }
    /* Round up without d + 999, which overflows for a deadline stamped
     * APR_INT64_MAX (event_queues.c saturates there); within the last
     * millisecond of the range the wait stops at APR_INT64_MAX. */
    d = deadline - now;
    if (d % 1000 == 0) {
        return d;
    }
    if (d / 1000 >= APR_INT64_MAX / 1000) {
        return APR_INT64_MAX;
    }
    return (d / 1000 + 1) * 1000;
}

apr_time_t ev2_header_deadline(apr_time_t since, apr_size_t bytes,
                               int base_s, int max_s, int rate)
{
    apr_time_t d = since + apr_time_from_sec(base_s);
    apr_time_t cap = since + apr_time_from_sec(max_s);

    if (rate > 0) {
        /* a second more for every rate bytes */
        d += (apr_time_t)((apr_uint64_t)bytes * APR_USEC_PER_SEC
                          / (apr_uint64_t)rate);
    }
    return max_s > 0 && cap < d ? cap : d;
}

void ev2_maint_decide(const ev2_maint_in_t *in, ev2_maint_out_t *out)
{
    out->action = EV2_MAINT_NONE;
    out->spawn = 0;
    out->spawn_rate = 1;
    out->hold_off = in->hold_off;

    if (in->idle_threads > in->max_spare) {
        /* Only stop a child if the scoreboard has room: while stopping
         * children still hold slots, stopping more would leave nowhere to
         * start replacements when load returns. */
        if (in->total_daemons <= in->active_daemons_limit
            && in->total_daemons < in->server_limit) {
            out->action = EV2_MAINT_STOP_ONE;
        }
        else {
            out->action = EV2_MAINT_KEEP_SURPLUS;
        }
        return;
    }
    if (in->idle_threads >= in->min_spare) {
        return;
    }
    if (in->active_daemons >= in->active_daemons_limit) {
        out->action = EV2_MAINT_AT_MAX_WORKERS;
        return;
    }
    if (in->free_slots <= 0) {
        out->action = EV2_MAINT_SCOREBOARD_FULL;
        return;
    }
    out->action = EV2_MAINT_SPAWN;
    out->spawn = in->free_slots;
    if (out->spawn > in->active_daemons_limit - in->active_daemons) {
        out->spawn = in->active_daemons_limit - in->active_daemons;
    }
    /* Exponential: a pass that had to start children may start twice as
     * many next time, unless a restart asked to hold off a while.  The cap
     * (EV2_MAX_SPAWN_RATE / buckets) need not be a power of two: stop at
     * it rather than jump past it. */
    out->spawn_rate = in->spawn_rate;
    if (in->hold_off > 0) {
        out->hold_off = in->hold_off - 1;
    }
    else if (in->spawn_rate < in->max_spawn_rate) {
        out->spawn_rate = in->spawn_rate > in->max_spawn_rate / 2
                          ? in->max_spawn_rate : in->spawn_rate * 2;
    }
}
