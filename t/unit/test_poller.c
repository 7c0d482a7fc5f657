/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * test_poller.c - unit tests for the listener's epoll set (poller.h).
 *
 * Socket pairs stand in for connections: writing to one end makes the
 * other readable.  Waits use a short timeout so that "nothing reported"
 * is observed, never assumed; the runner's alarm() catches a hang.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <apr_pools.h>
#include <apr_thread_proc.h>
#include <apr_time.h>

#include "poller.h"
#include "tap.h"

#define SHORT_WAIT apr_time_from_msec(50)

typedef struct fixture_t {
    apr_pool_t *p;
    ev2_poller_t *ps;
    int sv[2];              /* sv[0] is polled, sv[1] is the peer */
    ev2_pollee_t pe;
    int tag;
} fixture_t;

static void setup(fixture_t *f)
{
    memset(f, 0, sizeof(*f));
    require(apr_pool_create(&f->p, NULL) == APR_SUCCESS);
    require_is(ev2_poller_create(&f->ps, 16, f->p), APR_SUCCESS);
    require(socketpair(AF_UNIX, SOCK_STREAM, 0, f->sv) == 0);
    ev2_pollee_init(&f->pe, f->sv[0], &f->tag);
}

static void teardown(fixture_t *f)
{
    if (f->sv[0] >= 0) {
        close(f->sv[0]);
    }
    if (f->sv[1] >= 0) {
        close(f->sv[1]);
    }
    apr_pool_destroy(f->p);
}

static void poke(int fd)
{
    require(write(fd, "x", 1) == 1);
}

static void drain(int fd)
{
    char buf[64];

    require(read(fd, buf, sizeof(buf)) > 0);
}

/* Events reported by one wait of at most `timeout`; the first in *ev. */
static int wait_once(fixture_t *f, apr_interval_time_t timeout,
                     ev2_poll_event_t *ev)
{
    const ev2_poll_event_t *out = NULL;
    int n = -1;
    apr_status_t rv = ev2_poller_wait(f->ps, timeout, &n, &out);

    if (rv == APR_TIMEUP || rv == APR_EINTR) {
        is(n, 0);
        return 0;
    }
    require_is(rv, APR_SUCCESS);
    if (n > 0 && ev) {
        *ev = out[0];
    }
    return n;
}

static void oneshot_reports_once_until_rearmed(void)
{
    fixture_t f;
    ev2_poll_event_t ev;

    setup(&f);
    require_is(ev2_poller_arm(f.ps, &f.pe, EV2_POLL_IN), APR_SUCCESS);
    is(wait_once(&f, SHORT_WAIT, &ev), 0);
    poke(f.sv[1]);
    is(wait_once(&f, SHORT_WAIT, &ev), 1);
    is_ptr(ev.data, &f.tag);
    ok(ev.events & EV2_POLL_IN);
    /* Still readable, but one-shot: silent until armed again. */
    is(wait_once(&f, SHORT_WAIT, NULL), 0);
    ok(f.pe.registered);
    require_is(ev2_poller_arm(f.ps, &f.pe, EV2_POLL_IN), APR_SUCCESS);
    is(wait_once(&f, SHORT_WAIT, &ev), 1);
    is_ptr(ev.data, &f.tag);
    teardown(&f);
}

static void remove_silences_an_armed_pollee(void)
{
    fixture_t f;

    setup(&f);
    require_is(ev2_poller_arm(f.ps, &f.pe, EV2_POLL_IN), APR_SUCCESS);
    require_is(ev2_poller_remove(f.ps, &f.pe), APR_SUCCESS);
    ok(!f.pe.registered);
    poke(f.sv[1]);
    is(wait_once(&f, SHORT_WAIT, NULL), 0);
    /* Removing twice is harmless; arming again registers anew. */
    is(ev2_poller_remove(f.ps, &f.pe), APR_SUCCESS);
    require_is(ev2_poller_arm(f.ps, &f.pe, EV2_POLL_IN), APR_SUCCESS);
    is(wait_once(&f, SHORT_WAIT, NULL), 1);
    teardown(&f);
}

static void level_triggered_reports_while_readable(void)
{
    fixture_t f;
    int round;

    setup(&f);
    require_is(ev2_poller_add(f.ps, &f.pe, EV2_POLL_IN), APR_SUCCESS);
    poke(f.sv[1]);
    for (round = 0; round < 3; round++) {
        is(wait_once(&f, SHORT_WAIT, NULL), 1);
    }
    drain(f.sv[0]);
    is(wait_once(&f, SHORT_WAIT, NULL), 0);
    require_is(ev2_poller_remove(f.ps, &f.pe), APR_SUCCESS);
    poke(f.sv[1]);
    is(wait_once(&f, SHORT_WAIT, NULL), 0);
    teardown(&f);
}

static void writable_and_hangup_are_reported(void)
{
    fixture_t f;
    ev2_poll_event_t ev;

    setup(&f);
    require_is(ev2_poller_arm(f.ps, &f.pe, EV2_POLL_OUT), APR_SUCCESS);
    is(wait_once(&f, SHORT_WAIT, &ev), 1);
    ok(ev.events & EV2_POLL_OUT);
    ok(!(ev.events & EV2_POLL_IN));
    /* The peer goes away: reported to a pollee that waits for input. */
    close(f.sv[1]);
    f.sv[1] = -1;
    require_is(ev2_poller_arm(f.ps, &f.pe, EV2_POLL_IN), APR_SUCCESS);
    is(wait_once(&f, SHORT_WAIT, &ev), 1);
    ok(ev.events & (EV2_POLL_ERR | EV2_POLL_IN));
    teardown(&f);
}

/* The kernel drops a closed descriptor from the set behind our back; a
 * new descriptor with the same number and a stale "registered" flag must
 * still be armed (MOD falls back to ADD). */
static void rearm_after_descriptor_reuse(void)
{
    fixture_t f;
    int sv2[2];

    setup(&f);
    require_is(ev2_poller_arm(f.ps, &f.pe, EV2_POLL_IN), APR_SUCCESS);
    close(f.sv[0]);
    require(socketpair(AF_UNIX, SOCK_STREAM, 0, sv2) == 0);
    if (sv2[0] != f.pe.fd) {
        /* Put the new socket on the old number. */
        require(dup2(sv2[0], f.pe.fd) == f.pe.fd);
        close(sv2[0]);
    }
    f.sv[0] = f.pe.fd;
    ok(f.pe.registered);
    require_is(ev2_poller_arm(f.ps, &f.pe, EV2_POLL_IN), APR_SUCCESS);
    poke(sv2[1]);
    is(wait_once(&f, SHORT_WAIT, NULL), 1);
    close(sv2[1]);
    teardown(&f);
}

static void *APR_THREAD_FUNC waker(apr_thread_t *t, void *data)
{
    apr_sleep(apr_time_from_msec(100));
    ev2_poller_wakeup(data);
    apr_thread_exit(t, APR_SUCCESS);
    return NULL;
}

static void wakeup_ends_a_wait_without_events(void)
{
    fixture_t f;
    apr_thread_t *t;
    apr_status_t trv;
    const ev2_poll_event_t *out;
    int n = -1;
    apr_time_t start;

    setup(&f);
    /* Woken before waiting: the wait returns at once. */
    is(ev2_poller_wakeup(f.ps), APR_SUCCESS);
    is(ev2_poller_wakeup(f.ps), APR_SUCCESS);
    start = apr_time_now();
    is(ev2_poller_wait(f.ps, apr_time_from_sec(5), &n, &out), APR_EINTR);
    is(n, 0);
    ok(apr_time_now() - start < apr_time_from_sec(2));
    /* Both wake-ups were consumed by that one wait. */
    is(ev2_poller_wait(f.ps, SHORT_WAIT, &n, &out), APR_TIMEUP);
    /* Woken from another thread while blocked without a time limit. */
    require(apr_thread_create(&t, NULL, waker, f.ps, f.p) == APR_SUCCESS);
    is(ev2_poller_wait(f.ps, -1, &n, &out), APR_EINTR);
    apr_thread_join(&trv, t);
    teardown(&f);
}

/* The poller's eventfd: the only one this process has open. */
static int find_eventfd(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int found = -1;

    require(d != NULL);
    while ((e = readdir(d)) != NULL) {
        char path[300], target[64];
        ssize_t n;

        snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
        n = readlink(path, target, sizeof(target) - 1);
        if (n > 0) {
            target[n] = '\0';
            if (strcmp(target, "anon_inode:[eventfd]") == 0) {
                found = atoi(e->d_name);
            }
        }
    }
    closedir(d);
    return found;
}

/* Put a read-only descriptor where the eventfd was: every write to it
 * fails (EBADF) from now on, and the eventfd leaves the epoll set. */
static void break_eventfd(void)
{
    int efd = find_eventfd(), ro;

    require(efd >= 0);
    ro = open("/dev/null", O_RDONLY);
    require(ro >= 0);
    require(dup2(ro, efd) == efd);
    close(ro);
}

typedef struct {
    ev2_poller_t *ps;
    apr_status_t rv;
} waker_arg_t;

static void *APR_THREAD_FUNC failing_waker(apr_thread_t *t, void *data)
{
    waker_arg_t *a = data;

    apr_sleep(apr_time_from_msec(100));
    a->rv = ev2_poller_wakeup(a->ps);
    apr_thread_exit(t, APR_SUCCESS);
    return NULL;
}

static void signal_wakes_when_the_eventfd_refuses(void)
{
    fixture_t f;
    apr_thread_t *t;
    apr_status_t trv;
    const ev2_poll_event_t *out;
    waker_arg_t a;
    sigset_t mask;
    int n = -1;
    apr_time_t start;

    setup(&f);
    require_is(ev2_poller_wake_signal(f.ps, SIGRTMAX), APR_SUCCESS);
    break_eventfd();
    /* Refused before any thread waited: the first wait returns at once. */
    is(ev2_poller_wakeup(f.ps), EBADF);
    start = apr_time_now();
    is(ev2_poller_wait(f.ps, apr_time_from_sec(5), &n, &out), APR_EINTR);
    ok(apr_time_now() - start < apr_time_from_sec(2));
    /* That wait made this thread the waiter, with the signal blocked
     * outside its waits. */
    require(pthread_sigmask(SIG_BLOCK, NULL, &mask) == 0);
    ok(sigismember(&mask, SIGRTMAX));
    is(ev2_poller_wait(f.ps, SHORT_WAIT, &n, &out), APR_TIMEUP);
    /* Refused while the waiter sleeps without a limit: the signal ends
     * the wait. */
    a.ps = f.ps;
    a.rv = APR_SUCCESS;
    require(apr_thread_create(&t, NULL, failing_waker, &a, f.p)
            == APR_SUCCESS);
    start = apr_time_now();
    is(ev2_poller_wait(f.ps, apr_time_from_sec(5), &n, &out), APR_EINTR);
    ok(apr_time_now() - start < apr_time_from_sec(2));
    apr_thread_join(&trv, t);
    is(a.rv, EBADF);
    /* Refused while the waiter is not waiting: kept pending, not lost,
     * and seen by the next wait only. */
    is(ev2_poller_wakeup(f.ps), EBADF);
    start = apr_time_now();
    is(ev2_poller_wait(f.ps, apr_time_from_sec(5), &n, &out), APR_EINTR);
    ok(apr_time_now() - start < apr_time_from_sec(2));
    is(ev2_poller_wait(f.ps, SHORT_WAIT, &n, &out), APR_TIMEUP);
    /* Once the waiter is forgotten, nothing is sent to it. */
    ev2_poller_forget_waiter(f.ps);
    is(ev2_poller_wakeup(f.ps), EBADF);
    is(ev2_poller_wait(f.ps, SHORT_WAIT, &n, &out), APR_TIMEUP);
    teardown(&f);
}

/* Without the fallback a refused wake-up is reported, and lost. */
static void refused_wakeup_is_reported(void)
{
    fixture_t f;
    const ev2_poll_event_t *out;
    int n = -1;

    setup(&f);
    break_eventfd();
    is(ev2_poller_wakeup(f.ps), EBADF);
    is(ev2_poller_wait(f.ps, SHORT_WAIT, &n, &out), APR_TIMEUP);
    teardown(&f);
}

static void timeout_is_honoured(void)
{
    fixture_t f;
    const ev2_poll_event_t *out;
    int n = -1;
    apr_time_t start;

    setup(&f);
    start = apr_time_now();
    is(ev2_poller_wait(f.ps, apr_time_from_msec(120), &n, &out), APR_TIMEUP);
    ok(apr_time_now() - start >= apr_time_from_msec(110));
    /* A sub-millisecond timeout still sleeps (rounded up), not 0 ms. */
    is(ev2_poller_wait(f.ps, 10, &n, &out), APR_TIMEUP);
    teardown(&f);
}

static void many_events_are_capped_per_wait(void)
{
    apr_pool_t *p;
    ev2_poller_t *ps;
    int sv[6][2], i, n, total = 0;
    ev2_pollee_t pe[6];
    const ev2_poll_event_t *out;

    require(apr_pool_create(&p, NULL) == APR_SUCCESS);
    require_is(ev2_poller_create(&ps, 4, p), APR_SUCCESS);
    for (i = 0; i < 6; i++) {
        require(socketpair(AF_UNIX, SOCK_STREAM, 0, sv[i]) == 0);
        ev2_pollee_init(&pe[i], sv[i][0], &pe[i]);
        require_is(ev2_poller_arm(ps, &pe[i], EV2_POLL_IN), APR_SUCCESS);
        poke(sv[i][1]);
    }
    require_is(ev2_poller_wait(ps, SHORT_WAIT, &n, &out), APR_SUCCESS);
    ok(n >= 1 && n <= 4);
    total += n;
    while (ev2_poller_wait(ps, SHORT_WAIT, &n, &out) == APR_SUCCESS) {
        total += n;
    }
    /* One-shot: each reported exactly once across the waits. */
    is(total, 6);
    for (i = 0; i < 6; i++) {
        close(sv[i][0]);
        close(sv[i][1]);
    }
    is(ev2_poller_create(&ps, 0, p), APR_EINVAL);
    apr_pool_destroy(p);
}

int main(int argc, char **argv)
{
    static const tap_test_t tests[] = {
        TAP_TEST(oneshot_reports_once_until_rearmed),
        TAP_TEST(remove_silences_an_armed_pollee),
        TAP_TEST(level_triggered_reports_while_readable),
        TAP_TEST(writable_and_hangup_are_reported),
        TAP_TEST(rearm_after_descriptor_reuse),
        TAP_TEST(wakeup_ends_a_wait_without_events),
        TAP_TEST(signal_wakes_when_the_eventfd_refuses),
        TAP_TEST(refused_wakeup_is_reported),
        TAP_TEST(timeout_is_honoured),
        TAP_TEST(many_events_are_capped_per_wait),
        {NULL, NULL}
    };

    return tap_main(tests, argc, argv);
}
