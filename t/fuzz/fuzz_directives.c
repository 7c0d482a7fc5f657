/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * fuzz_directives.c - libFuzzer target for what policy.h makes of the
 * MPM's directives.  The first byte picks what is fed:
 *
 *   0  ev2_parse_whole(rest, lo, hi): lo and hi from a table of the
 *      directives' ranges or raw from the input; checked against a
 *      reference parser written here (digits only, exact arithmetic).
 *   1  ev2_parse_factor(rest): accepted values are in range and within
 *      rounding of strtod's; a plain in-range number is never refused.
 *   3  ev2_parse_header_timeout(rest): an accepted value is off (all 0)
 *      or 1 <= base <= max <= 3600 with a rate of 0 or 1 to 10^9, or
 *      max 0 (no maximum) with a rate; a refused one leaves the outputs
 *      alone.
 *   2  ev2_config_reconcile() on values in the directives' ranges, on a
 *      first pass or a restart with other limits, then the invariants the
 *      MPM relies on, one record per change, and that reconciling again
 *      changes nothing.
 *
 * The directives' ranges are mod_mpm_event2.c's (EV2_MAX_SERVER_LIMIT,
 * EV2_MAX_THREAD_LIMIT), repeated here because they are not in
 * policy.h.
 */

#include <errno.h>
#include <limits.h>
#include <math.h>

#include "policy.h"
#include "fuzz_input.h"

#define MAX_SERVER_LIMIT 20000
#define MAX_THREAD_LIMIT 100000

/* ---- ev2_parse_whole ---- */

static const struct {
    long lo, hi;
} ranges[] = {
    { 1, MAX_SERVER_LIMIT },
    { 1, MAX_THREAD_LIMIT },
    { 1, INT_MAX },
    { 0, LONG_MAX },
    { LONG_MIN, LONG_MAX },
    { LONG_MIN, 0 },
    { -5, 5 },
};

/* What ev2_parse_whole() should do, derived independently: optional C
 * white space, an optional sign, one or more decimal digits, nothing
 * after; the value in [lo, hi] and in int. */
static int ref_whole(const char *s, long lo, long hi, int *out)
{
    const unsigned char *p = (const unsigned char *)s;
    __int128 v = 0;
    int neg = 0, digits = 0;

    while (*p == ' ' || (*p >= '\t' && *p <= '\r')) {
        p++;
    }
    if (*p == '+' || *p == '-') {
        neg = (*p == '-');
        p++;
    }
    for (; *p >= '0' && *p <= '9'; p++, digits++) {
        if (v < ((__int128)1 << 100)) {
            v = v * 10 + (*p - '0');
        }
    }
    if (!digits || *p != '\0') {
        return -1;
    }
    if (neg) {
        v = -v;
    }
    if (v < lo || v > hi || v < INT_MIN || v > INT_MAX) {
        return -1;
    }
    *out = (int)v;
    return 0;
}

static void fuzz_whole(fuzz_in_t *in)
{
    char buf[256];
    const char *arg;
    long lo, hi;
    int got = 0x5eed, want = 0x5eed, rv, ref;
    uint8_t pick = fuzz_u8(in);

    if (pick < 128) {
        lo = ranges[pick % (sizeof(ranges) / sizeof(ranges[0]))].lo;
        hi = ranges[pick % (sizeof(ranges) / sizeof(ranges[0]))].hi;
    }
    else {
        lo = (long)fuzz_i64(in);
        hi = (long)fuzz_i64(in);
    }
    arg = fuzz_rest_string(in, buf, sizeof(buf));
    rv = ev2_parse_whole(arg, lo, hi, &got);
    ref = ref_whole(arg, lo, hi, &want);
    CHECK(rv == 0 || rv == -1);
    CHECK(rv == ref);
    CHECK(got == want);         /* both untouched when refused */
    if (rv == 0) {
        CHECK(got >= lo && got <= hi);
    }
}

/* ---- ev2_parse_factor ---- */

static void fuzz_factor(fuzz_in_t *in)
{
    char buf[256];
    const char *arg = fuzz_rest_string(in, buf, sizeof(buf));
    apr_uint32_t milli = 0x5eed;
    char *end;
    double v;
    int rv, whole_parse;

    rv = ev2_parse_factor(arg, &milli);
    errno = 0;
    v = strtod(arg, &end);
    whole_parse = (end != arg && *end == '\0');
    CHECK(rv == 0 || rv == -1);
    if (rv == 0) {
        CHECK(whole_parse);
        CHECK(isfinite(v));
        CHECK(milli >= 1 && milli <= 100000000u);
        CHECK(fabs((double)milli - v * EV2_FACTOR_SCALE) <= 0.5 + 1e-6);
    }
    else {
        CHECK(milli == 0x5eed);
        /* Clearly inside the range: must have been accepted. */
        CHECK(!(whole_parse && errno != ERANGE && v >= 0.0011
                && v <= 99999.99));
    }
}

/* ---- ev2_config_reconcile ---- */

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

/* adj[] holds exactly one record of kind what, from -> to. */
static int has_record(const ev2_adjustment_t *adj, int n, ev2_adjust_e what,
                      int from, int to)
{
    int i, found = 0;

    for (i = 0; i < n; i++) {
        if (adj[i].what == what) {
            if (adj[i].from != from || adj[i].to != to) {
                return 0;
            }
            found++;
        }
    }
    return found == 1;
}

static int has_kind(const ev2_adjustment_t *adj, int n, ev2_adjust_e what)
{
    int i;

    for (i = 0; i < n; i++) {
        if (adj[i].what == what) {
            return 1;
        }
    }
    return 0;
}

static void fuzz_reconcile(fuzz_in_t *in)
{
    ev2_config_t c, orig, again;
    ev2_adjustment_t *adj;
    int fsl, ftl, fsl_in, ftl_in, n, i;

    c.daemons_to_start = (int)fuzz_range(in, 1, MAX_SERVER_LIMIT);
    c.min_spare_threads = (int)fuzz_range(in, 1, INT_MAX);
    c.max_spare_threads = (int)fuzz_range(in, 1, INT_MAX);
    c.max_workers = (int)fuzz_range(in, 1, INT_MAX);
    c.server_limit = (int)fuzz_range(in, 1, MAX_SERVER_LIMIT);
    c.thread_limit = (int)fuzz_range(in, 1, MAX_THREAD_LIMIT);
    c.threads_per_child = (int)fuzz_range(in, 1, MAX_THREAD_LIMIT);
    c.factor_milli = (apr_uint32_t)fuzz_range(in, 1, 100000000);
    c.active_daemons_limit = (int)fuzz_i64(in);   /* derived: overwritten */
    /* 0: the first pass; else a restart sized by earlier limits. */
    fsl = fuzz_u8(in) & 1 ? (int)fuzz_range(in, 1, MAX_SERVER_LIMIT) : 0;
    ftl = fsl ? (int)fuzz_range(in, 1, MAX_THREAD_LIMIT) : 0;
    fsl_in = fsl;
    ftl_in = ftl;
    orig = c;

    /* Exactly the room the API promises, so ASan sees any overrun. */
    adj = malloc(EV2_MAX_ADJUSTMENTS * sizeof(*adj));
    CHECK(adj != NULL);
    n = ev2_config_reconcile(&c, &fsl, &ftl, adj);

    CHECK(n >= 0 && n <= EV2_MAX_ADJUSTMENTS);
    for (i = 0; i < n; i++) {
        CHECK(adj[i].what >= EV2_ADJ_SERVER_LIMIT_FIXED
              && adj[i].what <= EV2_ADJ_SPARE_RAISED);
        CHECK(adj[i].from != adj[i].to);
    }

    /* The scoreboard's size is the first pass's. */
    CHECK(fsl == (fsl_in ? fsl_in : orig.server_limit));
    CHECK(ftl == (ftl_in ? ftl_in : orig.thread_limit));
    CHECK(c.server_limit == fsl && c.thread_limit == ftl);
    CHECK(has_kind(adj, n, EV2_ADJ_SERVER_LIMIT_FIXED)
          == (orig.server_limit != c.server_limit));
    CHECK(has_kind(adj, n, EV2_ADJ_THREAD_LIMIT_FIXED)
          == (orig.thread_limit != c.thread_limit));

    /* What the MPM relies on. */
    CHECK(c.threads_per_child >= 1 && c.threads_per_child <= c.thread_limit);
    CHECK(c.max_workers >= c.threads_per_child);
    CHECK(c.max_workers % c.threads_per_child == 0);
    CHECK(c.active_daemons_limit == c.max_workers / c.threads_per_child);
    CHECK(c.active_daemons_limit >= 1
          && c.active_daemons_limit <= c.server_limit);
    CHECK(c.daemons_to_start >= 1
          && c.daemons_to_start <= c.active_daemons_limit);
    CHECK((int64_t)c.max_spare_threads
          >= min64((int64_t)c.min_spare_threads + c.threads_per_child,
                   INT_MAX));
    CHECK(c.min_spare_threads == orig.min_spare_threads);
    CHECK(c.factor_milli == orig.factor_milli);

    /* Each change is recorded, from what was asked to what is used. */
    if (c.threads_per_child != orig.threads_per_child) {
        CHECK(has_record(adj, n, EV2_ADJ_THREADS_OVER_LIMIT,
                         orig.threads_per_child, c.threads_per_child));
    }
    else {
        CHECK(!has_kind(adj, n, EV2_ADJ_THREADS_OVER_LIMIT));
    }
    if (c.daemons_to_start != orig.daemons_to_start) {
        CHECK(has_record(adj, n, EV2_ADJ_START_OVER_LIMIT,
                         orig.daemons_to_start, c.daemons_to_start));
        CHECK(orig.daemons_to_start > c.daemons_to_start);
    }
    else {
        CHECK(!has_kind(adj, n, EV2_ADJ_START_OVER_LIMIT));
    }
    if (c.max_spare_threads != orig.max_spare_threads) {
        CHECK(has_record(adj, n, EV2_ADJ_SPARE_RAISED,
                         orig.max_spare_threads, c.max_spare_threads));
        CHECK(orig.max_spare_threads < c.max_spare_threads);
    }
    else {
        CHECK(!has_kind(adj, n, EV2_ADJ_SPARE_RAISED));
    }
    CHECK((c.max_workers != orig.max_workers)
          == (has_kind(adj, n, EV2_ADJ_WORKERS_UNDER_TPC)
              || has_kind(adj, n, EV2_ADJ_WORKERS_ROUNDED)
              || has_kind(adj, n, EV2_ADJ_WORKERS_OVER_SLOTS)));
    CHECK(!(has_kind(adj, n, EV2_ADJ_WORKERS_UNDER_TPC)
            && has_kind(adj, n, EV2_ADJ_WORKERS_ROUNDED)));

    /* Reconciled values need nothing more, on the same scoreboard. */
    again = c;
    CHECK(ev2_config_reconcile(&again, &fsl, &ftl, adj) == 0);
    CHECK(memcmp(&again, &c, sizeof(c)) == 0);
    free(adj);
}

/* ---- ev2_parse_header_timeout ---- */

static void fuzz_header_timeout(fuzz_in_t *in)
{
    char buf[256];
    const char *arg = fuzz_rest_string(in, buf, sizeof(buf));
    int b = -7, m = -8, r = -9;
    int rv = ev2_parse_header_timeout(arg, &b, &m, &r);

    CHECK(rv == 0 || rv == -1);
    if (rv != 0) {
        CHECK(b == -7 && m == -8 && r == -9);
        return;
    }
    if (b == 0) {
        CHECK(m == 0 && r == 0);
        return;
    }
    CHECK(b >= 1 && b <= 3600);
    /* max 0 (no maximum) only with a rate */
    CHECK(m == 0 ? r > 0 : (b <= m && m <= 3600));
    CHECK(r >= 0 && r <= 1000000000);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_in_t in = { data, size };

    switch (fuzz_u8(&in) % 4) {
    case 0:
        fuzz_whole(&in);
        break;
    case 1:
        fuzz_factor(&in);
        break;
    case 3:
        fuzz_header_timeout(&in);
        break;
    default:
        fuzz_reconcile(&in);
        break;
    }
    return 0;
}
