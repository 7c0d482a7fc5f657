/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * fuzz_decisions.c - libFuzzer target for policy.h's run-time decisions.
 * The first byte picks one:
 *
 *   0  ev2_conns_cap(), ev2_admit(), ev2_room_share(): the cap is at
 *      least ThreadsPerChild, at most stock's (factor + 1) x
 *      ThreadsPerChild, and fits the descriptors when they can hold
 *      ThreadsPerChild; admission is at-cap exactly when the
 *      connections not closing reach the cap, no-worker exactly when
 *      below it with a queue, and monotonic; the shares of a backlog add
 *      up to at least the waiting clients and exceed them by less than
 *      one per child.
 *   1  ev2_poll_timeout() with ev2_earliest(): -1 only without a
 *      deadline, 0 when due, else never waking before the deadline and
 *      less than a millisecond after it, in whole milliseconds.
 *   2  ev2_maint_decide() on counts the parent can see: the action
 *      matches the thresholds, spawn in [0, room] and at most the free
 *      slots, the rate in [1, max(cap, rate in)], hold_off only counting
 *      down, and only when spawning.
 */

#include <limits.h>

#include "policy.h"
#include "fuzz_input.h"

#define MAX_SERVER_LIMIT 20000
#define MAX_THREAD_LIMIT 100000
#define MAX_FACTOR_MILLI 100000000

/* ---- ev2_conns_cap, ev2_admit, ev2_room_share ---- */

static void fuzz_admits(fuzz_in_t *in)
{
    apr_uint32_t conns = fuzz_u32(in);
    apr_uint32_t lingering = (apr_uint32_t)fuzz_range(in, 0, conns);
    int idle = (int)fuzz_range(in, INT_MIN, INT_MAX);
    int tpc = (int)fuzz_range(in, 1, MAX_THREAD_LIMIT);
    apr_uint32_t f = (apr_uint32_t)fuzz_range(in, 1, MAX_FACTOR_MILLI);
    apr_uint64_t fds = (apr_uint64_t)fuzz_range(in, 0, 1 << 24);
    int waiting = (int)fuzz_range(in, -1, 1 << 20);
    int children = (int)fuzz_range(in, 0, MAX_SERVER_LIMIT);
    apr_uint32_t cap = ev2_conns_cap(tpc, f, fds);
    apr_uint64_t stock = (apr_uint64_t)tpc
                         + ((apr_uint64_t)tpc * f) / EV2_FACTOR_SCALE;
    apr_uint32_t more_conns = (apr_uint32_t)fuzz_range(in, conns,
                                                       APR_UINT32_MAX);
    apr_uint32_t active = conns - lingering;
    ev2_admit_e a = ev2_admit(conns, lingering, idle, cap);
    int share;

    CHECK(cap >= (apr_uint32_t)tpc);
    CHECK(cap <= stock);
    if (fds && fds >= EV2_FD_RESERVE(tpc) + (apr_uint64_t)tpc) {
        CHECK((apr_uint64_t)cap + EV2_FD_RESERVE(tpc) <= fds);
    }
    CHECK((a == EV2_ADMIT_AT_CAP) == (active >= cap));
    CHECK((a == EV2_ADMIT_NO_WORKER) == (active < cap && idle < 0));
    if (a == EV2_ADMIT_AT_CAP) {
        CHECK(ev2_admit(more_conns, lingering, idle, cap) == EV2_ADMIT_AT_CAP);
    }
    /* Lingering read ahead of conns counts as none active. */
    CHECK(ev2_admit(lingering, conns, 0, cap) == EV2_ADMIT
          || (lingering == conns && cap == 0));
    share = ev2_room_share(waiting, children);
    if (waiting <= 0) {
        CHECK(share == 0);
    }
    else {
        int n = children > 1 ? children : 1;

        CHECK(share >= 1 && share <= waiting);
        CHECK((apr_uint64_t)share * n >= (apr_uint64_t)waiting);
        CHECK((apr_uint64_t)(share - 1) * n < (apr_uint64_t)waiting);
    }
}

/* ---- ev2_earliest, ev2_poll_timeout ---- */

/* A deadline: none, or a time from a monotonic clock (any value >= 0,
 * up to the APR_INT64_MAX that saturated stamps use). */
static apr_time_t deadline_from(fuzz_in_t *in)
{
    uint8_t tag = fuzz_u8(in);

    if (tag % 4 == 0) {
        return -1;
    }
    if (tag % 4 == 1) {
        return APR_INT64_MAX - (apr_time_t)fuzz_u32(in) % 4096;
    }
    return fuzz_i64(in) & APR_INT64_MAX;
}

static void fuzz_timeout(fuzz_in_t *in)
{
    apr_time_t a = deadline_from(in), b = deadline_from(in);
    apr_time_t now = fuzz_i64(in) & APR_INT64_MAX, d, late;
    apr_interval_time_t t;

    if (fuzz_u8(in) & 1) {
        /* Near the deadlines, where the rounding matters. */
        apr_time_t base = (a == -1 ? 0 : a);
        apr_time_t off = (apr_time_t)fuzz_range(in, -5000, 5000);

        if (off < 0 && base > APR_INT64_MAX + off) {
            now = APR_INT64_MAX;
        }
        else {
            now = base - off < 0 ? 0 : base - off;
        }
    }
    d = ev2_earliest(a, b);
    CHECK(ev2_earliest(b, a) == d);
    if (a == -1 || b == -1) {
        CHECK(d == (a == -1 ? b : a));
    }
    else {
        CHECK(d == (a < b ? a : b));
    }

    t = ev2_poll_timeout(d, now);
    if (d == -1) {
        CHECK(t == -1);
        return;
    }
    if (d <= now) {
        CHECK(t == 0);
        return;
    }
    /* Sleeping t from now wakes at now + t: never before d, less than a
     * millisecond after it. */
    CHECK(t > 0);
    CHECK(t >= d - now);
    late = t - (d - now);
    CHECK(late < 1000);
    CHECK(t % 1000 == 0 || t == APR_INT64_MAX);
}

/* ---- ev2_maint_decide ---- */

static void fuzz_maint(fuzz_in_t *in)
{
    ev2_maint_in_t m;
    ev2_maint_out_t out;
    int room, top;

    m.server_limit = (int)fuzz_range(in, 1, MAX_SERVER_LIMIT);
    m.active_daemons_limit = (int)fuzz_range(in, 1, m.server_limit);
    m.total_daemons = (int)fuzz_range(in, 0, m.server_limit);
    m.active_daemons = (int)fuzz_range(in, 0, m.total_daemons);
    m.idle_threads = (int)fuzz_range(in, 0, INT_MAX);
    m.min_spare = (int)fuzz_range(in, 0, INT_MAX);
    m.max_spare = (int)fuzz_range(in, 0, INT_MAX);
    m.max_spawn_rate = (int)fuzz_range(in, 0, INT_MAX);
    m.spawn_rate = (int)fuzz_range(in, 1, INT_MAX);
    m.free_slots = (int)fuzz_range(in, 0, m.spawn_rate < MAX_SERVER_LIMIT
                                          ? m.spawn_rate : MAX_SERVER_LIMIT);
    if (m.free_slots > m.server_limit - m.total_daemons) {
        m.free_slots = m.server_limit - m.total_daemons;
    }
    m.hold_off = (int)fuzz_range(in, 0, INT_MAX);

    memset(&out, 0xa5, sizeof(out));
    ev2_maint_decide(&m, &out);

    room = m.active_daemons_limit - m.active_daemons;
    top = m.max_spawn_rate > m.spawn_rate ? m.max_spawn_rate : m.spawn_rate;
    CHECK(out.spawn >= 0 && out.spawn <= (room > 0 ? room : 0));
    CHECK(out.spawn <= m.free_slots);
    CHECK(out.spawn_rate >= 1 && out.spawn_rate <= top);
    CHECK(out.hold_off >= 0 && out.hold_off <= m.hold_off);

    switch (out.action) {
    case EV2_MAINT_STOP_ONE:
    case EV2_MAINT_KEEP_SURPLUS:
        CHECK(m.idle_threads > m.max_spare);
        CHECK((out.action == EV2_MAINT_STOP_ONE)
              == (m.total_daemons <= m.active_daemons_limit
                  && m.total_daemons < m.server_limit));
        break;
    case EV2_MAINT_NONE:
        CHECK(m.idle_threads <= m.max_spare
              && m.idle_threads >= m.min_spare);
        break;
    case EV2_MAINT_AT_MAX_WORKERS:
        CHECK(m.idle_threads <= m.max_spare && m.idle_threads < m.min_spare);
        CHECK(room <= 0);
        break;
    case EV2_MAINT_SCOREBOARD_FULL:
        CHECK(m.idle_threads <= m.max_spare && m.idle_threads < m.min_spare);
        CHECK(room > 0 && m.free_slots == 0);
        break;
    case EV2_MAINT_SPAWN:
        CHECK(m.idle_threads <= m.max_spare && m.idle_threads < m.min_spare);
        CHECK(out.spawn >= 1);
        CHECK(out.spawn == (m.free_slots < room ? m.free_slots : room));
        CHECK(out.spawn_rate >= m.spawn_rate);
        if (m.hold_off > 0) {
            CHECK(out.hold_off == m.hold_off - 1);
            CHECK(out.spawn_rate == m.spawn_rate);
        }
        else if (m.spawn_rate < m.max_spawn_rate) {
            CHECK(out.spawn_rate > m.spawn_rate);
        }
        else {
            CHECK(out.spawn_rate == m.spawn_rate);
        }
        break;
    default:
        CHECK(!"unknown action");
    }
    if (out.action != EV2_MAINT_SPAWN) {
        CHECK(out.spawn == 0);
        CHECK(out.spawn_rate == 1);
        CHECK(out.hold_off == m.hold_off);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_in_t in = { data, size };

    switch (fuzz_u8(&in) % 3) {
    case 0:
        fuzz_admits(&in);
        break;
    case 1:
        fuzz_timeout(&in);
        break;
    default:
        fuzz_maint(&in);
        break;
    }
    return 0;
}
