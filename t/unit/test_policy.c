/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * test_policy.c - unit tests for the MPM's pure decisions (policy.h):
 * directive values, config reconciliation, the admission rule, the poll
 * timeout and idle server maintenance.  No APR pools, no threads, no
 * clock: every case is plain numbers in, plain numbers out.  Cases found
 * by the fuzzers (t/fuzz) are kept here under their own names.
 */

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "policy.h"
#include "tap.h"

/* Something no parse writes, to see that a refusal leaves *out alone. */
#define UNTOUCHED 0x5eed

/* ---- ev2_parse_whole ---- */

static int whole(const char *arg, long lo, long hi)
{
    int v = UNTOUCHED;

    if (ev2_parse_whole(arg, lo, hi, &v) != 0) {
        is(v, UNTOUCHED);
        return -1000000;        /* no test range reaches this */
    }
    return v;
}

static void parse_whole_accepts_values_in_range(void)
{
    is(whole("25", 1, 100), 25);
    is(whole("1", 1, 100), 1);              /* lo itself */
    is(whole("100", 1, 100), 100);          /* hi itself */
    is(whole("+7", 1, 100), 7);             /* strtol's own sign */
    is(whole("-3", -5, 5), -3);
    is(whole("007", 1, 100), 7);            /* decimal, not octal */
    /* strtol skips leading white space; httpd strips unquoted
     * arguments anyway, and a quoted " 5" still means 5. */
    is(whole(" 5", 1, 100), 5);
    is(whole("\t5", 1, 100), 5);
}

static void parse_whole_refuses_out_of_range(void)
{
    is(whole("0", 1, 100), -1000000);       /* below lo */
    is(whole("101", 1, 100), -1000000);     /* hi + 1 */
    is(whole("-1", 1, 100), -1000000);
    is(whole("5", 6, 4), -1000000);         /* empty range */
}

static void parse_whole_refuses_junk(void)
{
    int v = UNTOUCHED;

    is(whole("abc", 1, 100), -1000000);
    is(whole("", 1, 100), -1000000);
    is(whole("12abc", 1, 100), -1000000);
    is(whole("5 ", 1, 100), -1000000);      /* trailing space */
    is(whole("0x10", 0, 100), -1000000);    /* no hex */
    is(whole("1.5", 0, 100), -1000000);
    is(whole("-", 0, 100), -1000000);
    is(whole(" ", 0, 100), -1000000);
    is(ev2_parse_whole(NULL, 1, 100, &v), -1);
    is(v, UNTOUCHED);
}

static void parse_whole_refuses_overflow(void)
{
    char buf[64];

    is(whole("99999999999999999999", LONG_MIN, LONG_MAX), -1000000);
    is(whole("-99999999999999999999", LONG_MIN, LONG_MAX), -1000000);
    snprintf(buf, sizeof(buf), "%ld", LONG_MAX);
    is(whole(buf, 1, INT_MAX), -1000000);
    snprintf(buf, sizeof(buf), "%d", INT_MAX);
    is(whole(buf, 1, INT_MAX), INT_MAX);
}

/* The result is an int: a range wider than int must not let a value
 * through truncated (4294967296 used to come back as 0, "success"). */
static void parse_whole_never_truncates_to_int(void)
{
    char buf[64];

    is(whole("4294967296", 0, LONG_MAX), -1000000);
    is(whole("4294967297", 0, LONG_MAX), -1000000);
    is(whole("2147483648", 0, LONG_MAX), -1000000);
    is(whole("-2147483649", LONG_MIN, 0), -1000000);
    snprintf(buf, sizeof(buf), "%ld", LONG_MAX);
    is(whole(buf, LONG_MIN, LONG_MAX), -1000000);
    is(whole("2147483647", 0, LONG_MAX), INT_MAX);
    is(whole("-2147483648", LONG_MIN, 0), INT_MIN);
}

/* ---- ev2_parse_factor ---- */

/* The value in thousandths, or -1 when refused (and *milli untouched). */
static long long factor(const char *arg)
{
    apr_uint32_t m = UNTOUCHED;

    if (ev2_parse_factor(arg, &m) != 0) {
        is(m, UNTOUCHED);
        return -1;
    }
    return m;
}

static void parse_factor_accepts_whole_and_fractions(void)
{
    is(factor("2"), 2000);
    is(factor("1.5"), 1500);
    is(factor("0.25"), 250);
    is(factor("0.001"), 1);                 /* the smallest */
    is(factor("100000"), 100000000);        /* EV2_MAX_FACTOR */
    is(factor("1e3"), 1000000);             /* strtod's exponents */
    is(factor("+3"), 3000);
    is(factor(" 2"), 2000);                 /* leading space, as strtod */
}

static void parse_factor_rounds_to_nearest_thousandth(void)
{
    is(factor("0.0015"), 2);
    is(factor("0.0014"), 1);
    is(factor("1.0004"), 1000);
    is(factor("1.0006"), 1001);
    is(factor("99999.9999"), 100000000);
}

static void parse_factor_refuses_out_of_range(void)
{
    is(factor("0.0005"), -1);               /* rounds to 1, but < 0.001 */
    is(factor("0.000999"), -1);
    is(factor("0"), -1);
    is(factor("-0"), -1);
    is(factor("-1"), -1);
    is(factor("100000.1"), -1);
    is(factor("1e6"), -1);
    is(factor("1e400"), -1);                /* ERANGE, overflow */
    is(factor("1e-400"), -1);               /* ERANGE, underflow */
}

static void parse_factor_refuses_non_numbers(void)
{
    apr_uint32_t m = UNTOUCHED;

    is(factor("nan"), -1);
    is(factor("NAN"), -1);
    is(factor("-nan"), -1);
    is(factor("inf"), -1);
    is(factor("infinity"), -1);
    is(factor("-inf"), -1);
    is(factor(""), -1);
    is(factor(" "), -1);
    is(factor("2x"), -1);
    is(factor("2 "), -1);
    is(factor("1,5"), -1);
    is(factor("."), -1);
    is(ev2_parse_factor(NULL, &m), -1);
    is(m, UNTOUCHED);
}

/* ---- ev2_config_reconcile ---- */

/* Stock event's defaults: nothing to reconcile. */
static ev2_config_t defaults(void)
{
    ev2_config_t c;

    memset(&c, 0, sizeof(c));
    c.daemons_to_start = 3;
    c.min_spare_threads = 75;
    c.max_spare_threads = 250;
    c.max_workers = 400;
    c.server_limit = 16;
    c.thread_limit = 64;
    c.threads_per_child = 25;
    c.factor_milli = 2000;
    return c;
}

/* Check adjustment number i. */
#define is_adj(adj, i, kind, f, t) \
    do { \
        is((adj)[i].what, kind); \
        is((adj)[i].from, f); \
        is((adj)[i].to, t); \
    } while (0)

/* Reconcile c as a first pass; returns the count. */
static int first_pass(ev2_config_t *c, ev2_adjustment_t *adj)
{
    int fsl = 0, ftl = 0, n;

    n = ev2_config_reconcile(c, &fsl, &ftl, adj);
    is(fsl, c->server_limit);
    is(ftl, c->thread_limit);
    return n;
}

static void reconcile_defaults_change_nothing(void)
{
    ev2_config_t c = defaults(), before = defaults();
    ev2_adjustment_t adj[EV2_MAX_ADJUSTMENTS];
    int fsl = 0, ftl = 0;

    is(ev2_config_reconcile(&c, &fsl, &ftl, adj), 0);
    is(fsl, 16);
    is(ftl, 64);
    is(c.active_daemons_limit, 16);
    before.active_daemons_limit = 16;
    ok(memcmp(&c, &before, sizeof(c)) == 0);
}

static void reconcile_derives_active_daemons_limit(void)
{
    ev2_config_t c = defaults();
    ev2_adjustment_t adj[EV2_MAX_ADJUSTMENTS];

    c.max_workers = 150;
    is(first_pass(&c, adj), 0);
    is(c.max_workers, 150);
    is(c.active_daemons_limit, 6);
}

static void reconcile_rounds_workers_down_to_a_multiple(void)
{
    ev2_config_t c = defaults();
    ev2_adjustment_t adj[EV2_MAX_ADJUSTMENTS];

    c.max_workers = 151;
    require_is(first_pass(&c, adj), 1);
    is_adj(adj, 0, EV2_ADJ_WORKERS_ROUNDED, 151, 150);
    is(c.max_workers, 150);
    is(c.active_daemons_limit, 6);

    c = defaults();
    c.max_workers = 174;                    /* just under 7 children */
    require_is(first_pass(&c, adj), 1);
    is_adj(adj, 0, EV2_ADJ_WORKERS_ROUNDED, 174, 150);
    is(c.active_daemons_limit, 6);
}

static void reconcile_lowers_threads_to_thread_limit(void)
{
    ev2_config_t c = defaults();
    ev2_adjustment_t adj[EV2_MAX_ADJUSTMENTS];

    c.threads_per_child = 100;
    c.max_workers = 640;
    require_is(first_pass(&c, adj), 1);
    is_adj(adj, 0, EV2_ADJ_THREADS_OVER_LIMIT, 100, 64);
    is(c.threads_per_child, 64);
    is(c.max_workers, 640);
    is(c.active_daemons_limit, 10);
}

static void reconcile_raises_workers_to_threads_per_child(void)
{
    ev2_config_t c = defaults();
    ev2_adjustment_t adj[EV2_MAX_ADJUSTMENTS];

    c.max_workers = 10;
    c.daemons_to_start = 1;
    require_is(first_pass(&c, adj), 1);
    is_adj(adj, 0, EV2_ADJ_WORKERS_UNDER_TPC, 10, 25);
    is(c.max_workers, 25);
    is(c.active_daemons_limit, 1);
}

static void reconcile_lowers_workers_to_server_limit(void)
{
    ev2_config_t c = defaults();
    ev2_adjustment_t adj[EV2_MAX_ADJUSTMENTS];

    c.max_workers = 1000;
    require_is(first_pass(&c, adj), 1);
    is_adj(adj, 0, EV2_ADJ_WORKERS_OVER_SLOTS, 1000, 400);
    is(c.max_workers, 400);
    is(c.active_daemons_limit, 16);
}

static void reconcile_rounds_then_lowers_to_server_limit(void)
{
    ev2_config_t c = defaults();
    ev2_adjustment_t adj[EV2_MAX_ADJUSTMENTS];

    c.max_workers = 1001;
    require_is(first_pass(&c, adj), 2);
    is_adj(adj, 0, EV2_ADJ_WORKERS_ROUNDED, 1001, 1000);
    is_adj(adj, 1, EV2_ADJ_WORKERS_OVER_SLOTS, 1000, 400);
    is(c.max_workers, 400);
    is(c.active_daemons_limit, 16);
}

static void reconcile_lowers_start_servers(void)
{
    ev2_config_t c = defaults();
    ev2_adjustment_t adj[EV2_MAX_ADJUSTMENTS];

    c.max_workers = 150;
    c.daemons_to_start = 10;
    require_is(first_pass(&c, adj), 1);
    is_adj(adj, 0, EV2_ADJ_START_OVER_LIMIT, 10, 6);
    is(c.daemons_to_start, 6);

    /* Equal to the limit is fine. */
    c = defaults();
    c.max_workers = 150;
    c.daemons_to_start = 6;
    is(first_pass(&c, adj), 0);
    is(c.daemons_to_start, 6);
}

static void reconcile_raises_max_spare(void)
{
    ev2_config_t c = defaults();
    ev2_adjustment_t adj[EV2_MAX_ADJUSTMENTS];

    c.max_spare_threads = 80;
    require_is(first_pass(&c, adj), 1);
    is_adj(adj, 0, EV2_ADJ_SPARE_RAISED, 80, 100);
    is(c.max_spare_threads, 100);
    is(c.min_spare_threads, 75);

    /* Exactly Min + ThreadsPerChild is enough. */
    c = defaults();
    c.max_spare_threads = 100;
    is(first_pass(&c, adj), 0);
    is(c.max_spare_threads, 100);
}

/* The directive allows MinSpareThreads up to INT_MAX: Min +
 * ThreadsPerChild must not overflow (it used to, and then nothing was
 * raised at all, leaving MaxSpareThreads below MinSpareThreads). */
static void reconcile_huge_min_spare_does_not_overflow(void)
{
    ev2_config_t c = defaults();
    ev2_adjustment_t adj[EV2_MAX_ADJUSTMENTS];

    c.min_spare_threads = INT_MAX;
    require_is(first_pass(&c, adj), 1);
    is_adj(adj, 0, EV2_ADJ_SPARE_RAISED, 250, INT_MAX);
    is(c.max_spare_threads, INT_MAX);
    ok(c.max_spare_threads >= c.min_spare_threads);

    c = defaults();
    c.min_spare_threads = INT_MAX - 25;
    c.max_spare_threads = INT_MAX;
    is(first_pass(&c, adj), 0);
}

static void reconcile_several_at_once_in_order(void)
{
    ev2_config_t c = defaults();
    ev2_adjustment_t adj[EV2_MAX_ADJUSTMENTS];

    c.threads_per_child = 100;
    c.max_workers = 10;
    c.daemons_to_start = 5;
    c.max_spare_threads = 80;
    require_is(first_pass(&c, adj), 4);
    is_adj(adj, 0, EV2_ADJ_THREADS_OVER_LIMIT, 100, 64);
    is_adj(adj, 1, EV2_ADJ_WORKERS_UNDER_TPC, 10, 64);
    is_adj(adj, 2, EV2_ADJ_START_OVER_LIMIT, 5, 1);
    is_adj(adj, 3, EV2_ADJ_SPARE_RAISED, 80, 139);
    is(c.threads_per_child, 64);
    is(c.max_workers, 64);
    is(c.active_daemons_limit, 1);
    is(c.daemons_to_start, 1);
    is(c.max_spare_threads, 139);
}

static void reconcile_restart_keeps_first_limits(void)
{
    ev2_config_t c = defaults();
    ev2_adjustment_t adj[EV2_MAX_ADJUSTMENTS];
    int fsl = 0, ftl = 0;

    /* First pass: ServerLimit 4, ThreadLimit 32 taken as given. */
    c.server_limit = 4;
    c.thread_limit = 32;
    c.max_workers = 100;
    c.daemons_to_start = 2;
    is(ev2_config_reconcile(&c, &fsl, &ftl, adj), 0);
    is(fsl, 4);
    is(ftl, 32);
    is(c.active_daemons_limit, 4);

    /* A restart that asks for more: the scoreboard cannot grow. */
    c = defaults();
    c.server_limit = 8;
    c.thread_limit = 64;
    c.max_workers = 200;
    c.daemons_to_start = 2;
    require_is(ev2_config_reconcile(&c, &fsl, &ftl, adj), 3);
    is_adj(adj, 0, EV2_ADJ_SERVER_LIMIT_FIXED, 8, 4);
    is_adj(adj, 1, EV2_ADJ_THREAD_LIMIT_FIXED, 64, 32);
    is_adj(adj, 2, EV2_ADJ_WORKERS_OVER_SLOTS, 200, 100);
    is(fsl, 4);
    is(ftl, 32);
    is(c.server_limit, 4);
    is(c.thread_limit, 32);
    is(c.max_workers, 100);
    is(c.active_daemons_limit, 4);

    /* A restart with a smaller ThreadLimit also keeps the first one. */
    c = defaults();
    c.server_limit = 4;
    c.thread_limit = 16;
    c.max_workers = 100;
    c.daemons_to_start = 2;
    require_is(ev2_config_reconcile(&c, &fsl, &ftl, adj), 1);
    is_adj(adj, 0, EV2_ADJ_THREAD_LIMIT_FIXED, 16, 32);
    is(c.thread_limit, 32);
    is(c.threads_per_child, 25);

    /* The same limits again: nothing to say. */
    c = defaults();
    c.server_limit = 4;
    c.thread_limit = 32;
    c.max_workers = 100;
    c.daemons_to_start = 2;
    is(ev2_config_reconcile(&c, &fsl, &ftl, adj), 0);
}

/* Seven of the eight kinds in one pass (WORKERS_UNDER_TPC excludes
 * ROUNDED), within the room EV2_MAX_ADJUSTMENTS promises. */
static void reconcile_most_adjustments_fit(void)
{
    ev2_config_t c = defaults();
    ev2_adjustment_t adj[EV2_MAX_ADJUSTMENTS + 1];
    int fsl = 4, ftl = 32, n;

    memset(adj, 0xff, sizeof(adj));
    c.server_limit = 8;
    c.thread_limit = 64;
    c.threads_per_child = 40;
    c.max_workers = 1001;
    c.daemons_to_start = 9;
    c.max_spare_threads = 10;
    n = ev2_config_reconcile(&c, &fsl, &ftl, adj);
    require_is(n, 7);
    ok(n <= EV2_MAX_ADJUSTMENTS);
    is_adj(adj, 0, EV2_ADJ_SERVER_LIMIT_FIXED, 8, 4);
    is_adj(adj, 1, EV2_ADJ_THREAD_LIMIT_FIXED, 64, 32);
    is_adj(adj, 2, EV2_ADJ_THREADS_OVER_LIMIT, 40, 32);
    is_adj(adj, 3, EV2_ADJ_WORKERS_ROUNDED, 1001, 992);
    is_adj(adj, 4, EV2_ADJ_WORKERS_OVER_SLOTS, 992, 128);
    is_adj(adj, 5, EV2_ADJ_START_OVER_LIMIT, 9, 4);
    is_adj(adj, 6, EV2_ADJ_SPARE_RAISED, 10, 107);
    /* Nothing written past the records it returned. */
    is(adj[7].from, -1);
}

/* The largest values the directives accept. */
static void reconcile_largest_values(void)
{
    ev2_config_t c;
    ev2_adjustment_t adj[EV2_MAX_ADJUSTMENTS];

    c.daemons_to_start = 20000;
    c.min_spare_threads = INT_MAX;
    c.max_spare_threads = INT_MAX;
    c.max_workers = INT_MAX;
    c.server_limit = 20000;
    c.thread_limit = 100000;
    c.threads_per_child = 100000;
    c.factor_milli = 100000000;
    c.active_daemons_limit = 0;
    /* MaxSpareThreads is already as high as an int goes: no record. */
    require_is(first_pass(&c, adj), 2);
    is_adj(adj, 0, EV2_ADJ_WORKERS_ROUNDED, INT_MAX, 2147400000);
    is_adj(adj, 1, EV2_ADJ_WORKERS_OVER_SLOTS, 2147400000, 2000000000);
    is(c.max_spare_threads, INT_MAX);
    is(c.active_daemons_limit, 20000);
    is(c.daemons_to_start, 20000);
}

/* ---- ev2_conns_cap, ev2_admit, ev2_room_share ---- */

/* The documented numbers at idle: 4 workers admit 12 connections at
 * factor 2, 16 at factor 3, 10 at factor 1.5 (stock's maximum). */
static void cap_is_stocks_maximum(void)
{
    is(ev2_conns_cap(4, 2000, 0), 12);
    is(ev2_conns_cap(4, 3000, 0), 16);
    is(ev2_conns_cap(4, 1500, 0), 10);
    is(ev2_conns_cap(25, 2000, 0), 75);
    is(ev2_conns_cap(25, 200000, 0), 5025);
    /* fractions of a connection round down */
    is(ev2_conns_cap(4, 1, 0), 4);
    is(ev2_conns_cap(4, 250, 0), 5);
}

static void cap_fits_the_descriptors(void)
{
    /* 4096 descriptors, 25 workers: 4096 - (64 + 50) = 3982 */
    is(ev2_conns_cap(25, 200000, 4096), 3982);
    /* plenty of descriptors: stock's maximum */
    is(ev2_conns_cap(25, 2000, 65536), 75);
    /* too few for even ThreadsPerChild: ThreadsPerChild */
    is(ev2_conns_cap(25, 2000, 100), 25);
    is(ev2_conns_cap(25, 2000, 114), 25);
    is(ev2_conns_cap(25, 2000, 140), 26);
}

static void cap_largest_values_do_not_overflow(void)
{
    ok(ev2_conns_cap(100000, 100000000, 0) == APR_UINT32_MAX);
    ok(ev2_conns_cap(INT_MAX, APR_UINT32_MAX, 0) == APR_UINT32_MAX);
    is(ev2_conns_cap(0, 2000, 0), 3);
}

static void admit_below_cap_with_a_worker(void)
{
    is(ev2_admit(0, 0, 4, 12), EV2_ADMIT);
    is(ev2_admit(11, 0, 4, 12), EV2_ADMIT);
    /* no idle worker and nothing queued: it is next in line */
    is(ev2_admit(11, 0, 0, 12), EV2_ADMIT);
}

static void admit_at_cap_whatever_the_workers(void)
{
    is(ev2_admit(12, 0, 4, 12), EV2_ADMIT_AT_CAP);
    is(ev2_admit(13, 0, -3, 12), EV2_ADMIT_AT_CAP);
    is(ev2_admit(APR_UINT32_MAX, 0, INT_MAX, 12), EV2_ADMIT_AT_CAP);
}

static void admit_no_worker_once_connections_queue(void)
{
    is(ev2_admit(5, 0, -1, 12), EV2_ADMIT_NO_WORKER);
    is(ev2_admit(0, 0, INT_MIN, 12), EV2_ADMIT_NO_WORKER);
}

/* Parked idle connections are not workers' demand: 1,000 of them under a
 * cap of 5,025 do not stop a child with an idle worker. */
static void admit_ignores_parked_connections_below_cap(void)
{
    is(ev2_admit(1000, 0, 1, 5025), EV2_ADMIT);
    is(ev2_admit(5024, 0, 0, 5025), EV2_ADMIT);
}

static void admit_does_not_count_lingering(void)
{
    is(ev2_admit(15, 3, 4, 12), EV2_ADMIT_AT_CAP);
    is(ev2_admit(14, 3, 4, 12), EV2_ADMIT);
    is(ev2_admit(100, 89, 4, 12), EV2_ADMIT);
    /* lingering read ahead of conns: none active */
    is(ev2_admit(2, 5, 0, 1), EV2_ADMIT);
    is(ev2_admit(0, APR_UINT32_MAX, 0, 1), EV2_ADMIT);
}

/* ---- ev2_parse_header_timeout, ev2_header_deadline ---- */

static void header_timeout_parses_reqtimeout_syntax(void)
{
    int b = -1, m = -1, r = -1;

    is(ev2_parse_header_timeout("20-40,MinRate=500", &b, &m, &r), 0);
    is(b, 20); is(m, 40); is(r, 500);
    is(ev2_parse_header_timeout("10", &b, &m, &r), 0);
    is(b, 10); is(m, 10); is(r, 0);
    is(ev2_parse_header_timeout("5-7", &b, &m, &r), 0);
    is(b, 5); is(m, 7); is(r, 0);
    /* a rate without a range has no maximum, as in mod_reqtimeout */
    is(ev2_parse_header_timeout("2,minrate=1", &b, &m, &r), 0);
    is(b, 2); is(m, 0); is(r, 1);
    is(ev2_parse_header_timeout("20-20,MinRate=500", &b, &m, &r), 0);
    is(b, 20); is(m, 20); is(r, 500);
    is(ev2_parse_header_timeout("3600-3600,MinRate=1000000000", &b, &m, &r), 0);
    is(b, 3600); is(r, 1000000000);
}

static void header_timeout_off(void)
{
    int b = -1, m = -1, r = -1;

    is(ev2_parse_header_timeout("off", &b, &m, &r), 0);
    is(b, 0); is(m, 0); is(r, 0);
    b = m = r = -1;
    is(ev2_parse_header_timeout("OFF", &b, &m, &r), 0);
    is(b, 0);
    b = -1;
    is(ev2_parse_header_timeout("0", &b, &m, &r), 0);
    is(b, 0);
}

static void header_timeout_refuses_the_rest(void)
{
    static const char *const bad[] = {
        "", "-", "abc", "20-", "-40", "40-20", "0-5", "3601", "20-3601",
        "20,", "20,MinRate", "20,MinRate=", "20,MinRate=0", "20,Rate=5",
        "20 ", " 20", "20-40,MinRate=500,", "20-40,MinRate=5x", "+20",
        "20-40,MinRate=1000000001", "99999999999999999999",
    };
    int b = 7, m = 8, r = 9;
    apr_size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (ev2_parse_header_timeout(bad[i], &b, &m, &r) != -1) {
            tap_fail(__FILE__, __LINE__, "accepted '%s'", bad[i]);
        }
    }
    is(ev2_parse_header_timeout(NULL, &b, &m, &r), -1);
    is(b, 7); is(m, 8); is(r, 9);
}

static void header_deadline_extends_with_the_rate_up_to_max(void)
{
    apr_time_t t0 = apr_time_from_sec(1000);

    /* no bytes: the base */
    is(ev2_header_deadline(t0, 0, 20, 40, 500), t0 + apr_time_from_sec(20));
    /* 500 bytes: one second more */
    is(ev2_header_deadline(t0, 500, 20, 40, 500), t0 + apr_time_from_sec(21));
    is(ev2_header_deadline(t0, 250, 20, 40, 500),
       t0 + apr_time_from_sec(20) + apr_time_from_msec(500));
    /* never past the max */
    is(ev2_header_deadline(t0, 1000000, 20, 40, 500), t0 + apr_time_from_sec(40));
    /* no rate: the base only */
    is(ev2_header_deadline(t0, 1000000, 20, 40, 0), t0 + apr_time_from_sec(20));
    /* max equal to base */
    is(ev2_header_deadline(t0, 32768, 2, 2, 1), t0 + apr_time_from_sec(2));
    /* max 0: no maximum */
    is(ev2_header_deadline(t0, 1000000, 20, 0, 500), t0 + apr_time_from_sec(2020));
    is(ev2_header_deadline(t0, 0, 20, 0, 500), t0 + apr_time_from_sec(20));
}

static void room_share_splits_the_backlog(void)
{
    is(ev2_room_share(0, 1), 0);
    is(ev2_room_share(-1, 1), 0);
    is(ev2_room_share(1, 1), 1);
    is(ev2_room_share(5, 1), 5);
    is(ev2_room_share(5, 0), 5);
    is(ev2_room_share(5, 2), 3);
    is(ev2_room_share(4, 2), 2);
    is(ev2_room_share(1, 16), 1);
    is(ev2_room_share(INT_MAX, 2), INT_MAX / 2 + 1);
}

/* ---- ev2_earliest, ev2_poll_timeout ---- */

static void earliest_prefers_any_deadline_to_none(void)
{
    is(ev2_earliest(-1, -1), -1);
    is(ev2_earliest(-1, 5), 5);
    is(ev2_earliest(5, -1), 5);
    is(ev2_earliest(0, -1), 0);
    is(ev2_earliest(-1, 0), 0);
    is(ev2_earliest(3, 5), 3);
    is(ev2_earliest(5, 3), 3);
    is(ev2_earliest(4, 4), 4);
    is(ev2_earliest(APR_INT64_MAX, -1), APR_INT64_MAX);
    is(ev2_earliest(APR_INT64_MAX, 7), 7);
}

#define NOW ((apr_time_t)1000000000)

static void poll_timeout_none_due_and_past(void)
{
    is(ev2_poll_timeout(-1, NOW), -1);
    is(ev2_poll_timeout(-1, 0), -1);
    is(ev2_poll_timeout(NOW, NOW), 0);      /* due */
    is(ev2_poll_timeout(NOW - 1, NOW), 0);  /* past */
    is(ev2_poll_timeout(0, NOW), 0);
}

static void poll_timeout_rounds_up_to_a_millisecond(void)
{
    is(ev2_poll_timeout(NOW + 1, NOW), 1000);
    is(ev2_poll_timeout(NOW + 999, NOW), 1000);
    is(ev2_poll_timeout(NOW + 1000, NOW), 1000);
    is(ev2_poll_timeout(NOW + 1001, NOW), 2000);
    is(ev2_poll_timeout(NOW + 1999, NOW), 2000);
    is(ev2_poll_timeout(NOW + 2000, NOW), 2000);
    is(ev2_poll_timeout(NOW + 5000000, NOW), 5000000);
}

/* A saturated deadline (event_queues.c stamps APR_INT64_MAX for a
 * timeout too large to add) must not overflow the rounding: it used to
 * wrap to a negative wait, which a poll takes as "for ever". */
static void poll_timeout_saturated_deadline_does_not_overflow(void)
{
    apr_time_t m = APR_INT64_MAX;
    apr_interval_time_t t;

    t = ev2_poll_timeout(m, 0);
    ok(t >= m);
    t = ev2_poll_timeout(m, 500);
    ok(t >= m - 500);
    ok(t - (m - 500) <= 1000);
    t = ev2_poll_timeout(m, 1);
    ok(t >= m - 1);
    /* Far enough from the top, still whole milliseconds. */
    t = ev2_poll_timeout(m, 1000);
    ok(t >= m - 1000);
    ok(t - (m - 1000) < 1000);
    is(ev2_poll_timeout(m - 807, 0), m - 807);
    is(ev2_poll_timeout(m - 808, 0), m - 807);
}

/* ---- ev2_maint_decide ---- */

/* A bucket with room: 2 children running of 6 allowed, 16 slots. */
static ev2_maint_in_t maint_base(void)
{
    ev2_maint_in_t in;

    in.idle_threads = 100;
    in.free_slots = 1;
    in.active_daemons = 2;
    in.total_daemons = 2;
    in.active_daemons_limit = 6;
    in.server_limit = 16;
    in.min_spare = 75;
    in.max_spare = 250;
    in.spawn_rate = 1;
    in.max_spawn_rate = 32;
    in.hold_off = 0;
    return in;
}

static ev2_maint_out_t decide(const ev2_maint_in_t *in)
{
    ev2_maint_out_t out;

    memset(&out, 0xff, sizeof(out));
    ev2_maint_decide(in, &out);
    return out;
}

static void maint_idle_within_bounds_does_nothing(void)
{
    ev2_maint_in_t in = maint_base();
    ev2_maint_out_t out;

    in.spawn_rate = 8;
    in.hold_off = 3;
    out = decide(&in);
    is(out.action, EV2_MAINT_NONE);
    is(out.spawn, 0);
    is(out.spawn_rate, 1);
    is(out.hold_off, 3);

    in.idle_threads = 75;                   /* == min */
    is(decide(&in).action, EV2_MAINT_NONE);
    in.idle_threads = 250;                  /* == max */
    is(decide(&in).action, EV2_MAINT_NONE);
}

static void maint_too_many_idle_stops_one(void)
{
    ev2_maint_in_t in = maint_base();
    ev2_maint_out_t out;

    in.idle_threads = 251;
    in.spawn_rate = 16;
    in.hold_off = 2;
    out = decide(&in);
    is(out.action, EV2_MAINT_STOP_ONE);
    is(out.spawn, 0);
    is(out.spawn_rate, 1);
    is(out.hold_off, 2);

    /* total == active_daemons_limit, below server_limit: still room. */
    in.total_daemons = 6;
    in.active_daemons = 6;
    is(decide(&in).action, EV2_MAINT_STOP_ONE);
}

static void maint_too_many_idle_keeps_surplus_while_slots_held(void)
{
    ev2_maint_in_t in = maint_base();
    ev2_maint_out_t out;

    /* Stopping children hold slots beyond MaxRequestWorkers' share. */
    in.idle_threads = 300;
    in.active_daemons = 5;
    in.total_daemons = 7;
    in.spawn_rate = 4;
    out = decide(&in);
    is(out.action, EV2_MAINT_KEEP_SURPLUS);
    is(out.spawn, 0);
    is(out.spawn_rate, 1);

    /* Every slot taken. */
    in = maint_base();
    in.idle_threads = 300;
    in.server_limit = 6;
    in.total_daemons = 6;
    in.active_daemons = 6;
    is(decide(&in).action, EV2_MAINT_KEEP_SURPLUS);
}

static void maint_too_few_idle_at_max_workers(void)
{
    ev2_maint_in_t in = maint_base();
    ev2_maint_out_t out;

    in.idle_threads = 10;
    in.active_daemons = 6;
    in.total_daemons = 6;
    in.free_slots = 4;
    in.spawn_rate = 8;
    in.hold_off = 5;
    out = decide(&in);
    is(out.action, EV2_MAINT_AT_MAX_WORKERS);
    is(out.spawn, 0);
    is(out.spawn_rate, 1);
    is(out.hold_off, 5);

    in.idle_threads = 0;
    is(decide(&in).action, EV2_MAINT_AT_MAX_WORKERS);
}

static void maint_too_few_idle_scoreboard_full(void)
{
    ev2_maint_in_t in = maint_base();
    ev2_maint_out_t out;

    in.idle_threads = 10;
    in.free_slots = 0;
    in.spawn_rate = 8;
    in.hold_off = 5;
    out = decide(&in);
    is(out.action, EV2_MAINT_SCOREBOARD_FULL);
    is(out.spawn, 0);
    is(out.spawn_rate, 1);
    is(out.hold_off, 5);
}

static void maint_spawn_capped_by_room(void)
{
    ev2_maint_in_t in = maint_base();
    ev2_maint_out_t out;

    in.idle_threads = 10;
    in.free_slots = 1;
    out = decide(&in);
    is(out.action, EV2_MAINT_SPAWN);
    is(out.spawn, 1);
    is(out.spawn_rate, 2);
    is(out.hold_off, 0);

    /* 8 free slots, but only 3 more children allowed. */
    in.free_slots = 8;
    in.spawn_rate = 8;
    in.active_daemons = 3;
    in.total_daemons = 5;
    out = decide(&in);
    is(out.action, EV2_MAINT_SPAWN);
    is(out.spawn, 3);
    is(out.spawn_rate, 16);

    /* Exactly the room. */
    in.free_slots = 3;
    is(decide(&in).spawn, 3);
    in.free_slots = 2;
    is(decide(&in).spawn, 2);
}

static void maint_rate_doubles_up_to_the_cap(void)
{
    ev2_maint_in_t in = maint_base();
    int expect[] = { 2, 4, 8, 16, 32, 32, 32 };
    size_t i;

    in.idle_threads = 0;
    in.active_daemons_limit = 1000;
    in.server_limit = 1000;
    for (i = 0; i < sizeof(expect) / sizeof(expect[0]); i++) {
        ev2_maint_out_t out;

        in.free_slots = in.spawn_rate;
        out = decide(&in);
        is(out.action, EV2_MAINT_SPAWN);
        is(out.spawn, in.spawn_rate);
        is(out.spawn_rate, expect[i]);
        in.spawn_rate = out.spawn_rate;
        in.hold_off = out.hold_off;
    }
}

/* With buckets the cap is EV2_MAX_SPAWN_RATE / buckets, which need not be
 * a power of two: doubling must stop at it, not jump past (8 -> 16 with a
 * cap of 10 used to). */
static void maint_rate_never_passes_an_odd_cap(void)
{
    ev2_maint_in_t in = maint_base();
    int expect[] = { 2, 4, 8, 10, 10 };
    size_t i;

    in.idle_threads = 0;
    in.max_spawn_rate = 10;
    in.active_daemons_limit = 1000;
    in.server_limit = 1000;
    for (i = 0; i < sizeof(expect) / sizeof(expect[0]); i++) {
        ev2_maint_out_t out;

        in.free_slots = in.spawn_rate;
        out = decide(&in);
        is(out.action, EV2_MAINT_SPAWN);
        is(out.spawn_rate, expect[i]);
        in.spawn_rate = out.spawn_rate;
    }

    /* A cap of 0 (more buckets than EV2_MAX_SPAWN_RATE): stays at 1. */
    in.spawn_rate = 1;
    in.max_spawn_rate = 0;
    is(decide(&in).spawn_rate, 1);
    /* A cap so large that doubling would overflow an int. */
    in.spawn_rate = INT_MAX / 2 + 1;
    in.max_spawn_rate = INT_MAX;
    in.free_slots = 1;
    is(decide(&in).spawn_rate, INT_MAX);
}

static void maint_hold_off_counts_down_instead_of_doubling(void)
{
    ev2_maint_in_t in = maint_base();
    ev2_maint_out_t out;
    int pass;

    in.idle_threads = 0;
    in.spawn_rate = 4;
    in.free_slots = 4;
    in.hold_off = 3;
    for (pass = 0; pass < 3; pass++) {
        out = decide(&in);
        is(out.action, EV2_MAINT_SPAWN);
        is(out.spawn_rate, 4);
        is(out.hold_off, 2 - pass);
        in.hold_off = out.hold_off;
    }
    /* Held off long enough: doubling resumes. */
    out = decide(&in);
    is(out.spawn_rate, 8);
    is(out.hold_off, 0);
}

static void maint_rate_resets_on_every_other_path(void)
{
    ev2_maint_in_t in;

    in = maint_base();                      /* NONE */
    in.spawn_rate = 16;
    is(decide(&in).spawn_rate, 1);
    in.idle_threads = 251;                  /* STOP_ONE */
    is(decide(&in).spawn_rate, 1);
    in.total_daemons = 7;                   /* KEEP_SURPLUS */
    is(decide(&in).spawn_rate, 1);
    in = maint_base();                      /* AT_MAX_WORKERS */
    in.spawn_rate = 16;
    in.idle_threads = 0;
    in.active_daemons = 6;
    is(decide(&in).spawn_rate, 1);
    in.active_daemons = 2;                  /* SCOREBOARD_FULL */
    in.free_slots = 0;
    is(decide(&in).spawn_rate, 1);
    in.free_slots = 1;                      /* SPAWN keeps it */
    is(decide(&in).spawn_rate, 32);
}

static const tap_test_t tests[] = {
    TAP_TEST(parse_whole_accepts_values_in_range),
    TAP_TEST(parse_whole_refuses_out_of_range),
    TAP_TEST(parse_whole_refuses_junk),
    TAP_TEST(parse_whole_refuses_overflow),
    TAP_TEST(parse_whole_never_truncates_to_int),
    TAP_TEST(parse_factor_accepts_whole_and_fractions),
    TAP_TEST(parse_factor_rounds_to_nearest_thousandth),
    TAP_TEST(parse_factor_refuses_out_of_range),
    TAP_TEST(parse_factor_refuses_non_numbers),
    TAP_TEST(reconcile_defaults_change_nothing),
    TAP_TEST(reconcile_derives_active_daemons_limit),
    TAP_TEST(reconcile_rounds_workers_down_to_a_multiple),
    TAP_TEST(reconcile_lowers_threads_to_thread_limit),
    TAP_TEST(reconcile_raises_workers_to_threads_per_child),
    TAP_TEST(reconcile_lowers_workers_to_server_limit),
    TAP_TEST(reconcile_rounds_then_lowers_to_server_limit),
    TAP_TEST(reconcile_lowers_start_servers),
    TAP_TEST(reconcile_raises_max_spare),
    TAP_TEST(reconcile_huge_min_spare_does_not_overflow),
    TAP_TEST(reconcile_several_at_once_in_order),
    TAP_TEST(reconcile_restart_keeps_first_limits),
    TAP_TEST(reconcile_most_adjustments_fit),
    TAP_TEST(reconcile_largest_values),
    TAP_TEST(cap_is_stocks_maximum),
    TAP_TEST(cap_fits_the_descriptors),
    TAP_TEST(cap_largest_values_do_not_overflow),
    TAP_TEST(admit_below_cap_with_a_worker),
    TAP_TEST(admit_at_cap_whatever_the_workers),
    TAP_TEST(admit_no_worker_once_connections_queue),
    TAP_TEST(admit_ignores_parked_connections_below_cap),
    TAP_TEST(admit_does_not_count_lingering),
    TAP_TEST(room_share_splits_the_backlog),
    TAP_TEST(header_timeout_parses_reqtimeout_syntax),
    TAP_TEST(header_timeout_off),
    TAP_TEST(header_timeout_refuses_the_rest),
    TAP_TEST(header_deadline_extends_with_the_rate_up_to_max),
    TAP_TEST(earliest_prefers_any_deadline_to_none),
    TAP_TEST(poll_timeout_none_due_and_past),
    TAP_TEST(poll_timeout_rounds_up_to_a_millisecond),
    TAP_TEST(poll_timeout_saturated_deadline_does_not_overflow),
    TAP_TEST(maint_idle_within_bounds_does_nothing),
    TAP_TEST(maint_too_many_idle_stops_one),
    TAP_TEST(maint_too_many_idle_keeps_surplus_while_slots_held),
    TAP_TEST(maint_too_few_idle_at_max_workers),
    TAP_TEST(maint_too_few_idle_scoreboard_full),
    TAP_TEST(maint_spawn_capped_by_room),
    TAP_TEST(maint_rate_doubles_up_to_the_cap),
    TAP_TEST(maint_rate_never_passes_an_odd_cap),
    TAP_TEST(maint_hold_off_counts_down_instead_of_doubling),
    TAP_TEST(maint_rate_resets_on_every_other_path),
    TAP_END
};

int main(int argc, char **argv)
{
    return tap_main(tests, argc, argv);
}
