/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * poller.h - the listener's epoll set.
 *
 * Two kinds of registration:
 *
 *   - Level-triggered (ev2_poller_add): the listening sockets, reported
 *     for as long as they are readable.
 *   - One-shot (ev2_poller_arm): parked connections.
 *     An armed pollee is reported once, then stays registered but silent
 *     until armed again.  Re-arming a registered pollee is one
 *     epoll_ctl(MOD) instead of the DEL at wake-up plus ADD at the next
 *     park that a level-triggered set costs per keep-alive request.  A
 *     pollee that fired needs no call at all to be taken out; closing its
 *     socket drops the registration in the kernel.
 *
 * ev2_poller_remove() takes either kind out of the set.
 *
 * ev2_poller_wakeup() makes a concurrent or the next ev2_poller_wait()
 * return early (an eventfd, drained by the waiter).  Should the eventfd
 * refuse a wake-up, a signal set with ev2_poller_wake_signal() is sent to
 * the waiting thread instead: the waiter keeps it blocked except inside
 * epoll_pwait(), so it is never lost, only delivered at the next wait.
 *
 * Threads: ev2_poller_wait() belongs to one thread.  add, arm, remove and
 * wakeup may be called from any thread (epoll_ctl is thread-safe), but a
 * given pollee must not be armed and removed concurrently: its owner
 * (the listener once it is parked, a worker otherwise) does both.
 * Linux only; no httpd symbols.
 */

#ifndef EV2_POLLER_H
#define EV2_POLLER_H

#include <apr_pools.h>
#include <apr_time.h>

/* Event bits, for arm/add and as reported. */
#define EV2_POLL_IN   0x1
#define EV2_POLL_OUT  0x2
#define EV2_POLL_ERR  0x4   /* error or hang-up; always reported */

typedef struct ev2_poller_t ev2_poller_t;

/* Embedded in the caller's structure; zero it (or ev2_pollee_init) before
 * first use for each new descriptor. */
typedef struct ev2_pollee_t {
    int fd;
    int registered;         /* known to the kernel's set */
    void *data;             /* handed back by ev2_poller_wait */
} ev2_pollee_t;

typedef struct ev2_poll_event_t {
    void *data;
    unsigned int events;    /* EV2_POLL_* */
} ev2_poll_event_t;

void ev2_pollee_init(ev2_pollee_t *pe, int fd, void *data);

/* At most max_events are reported by one wait.  The epoll and eventfd
 * descriptors are closed when p is cleared or destroyed. */
apr_status_t ev2_poller_create(ev2_poller_t **pp, unsigned int max_events,
                               apr_pool_t *p);

apr_status_t ev2_poller_add(ev2_poller_t *ps, ev2_pollee_t *pe,
                            unsigned int events);
apr_status_t ev2_poller_arm(ev2_poller_t *ps, ev2_pollee_t *pe,
                            unsigned int events);
/* No more reports for pe: it leaves the kernel's set (harmless if it is
 * not in it). */
apr_status_t ev2_poller_remove(ev2_poller_t *ps, ev2_pollee_t *pe);

/* timeout < 0: no limit.  APR_SUCCESS with *n >= 0 events in *out (valid
 * until the next wait); APR_EINTR when woken (by ev2_poller_wakeup or a
 * signal) with no event; APR_TIMEUP when the time ran out. */
apr_status_t ev2_poller_wait(ev2_poller_t *ps, apr_interval_time_t timeout,
                             int *n, const ev2_poll_event_t **out);

/* APR_SUCCESS when the eventfd took the wake-up (or already held one).
 * Otherwise the write's error, after the signal fallback was used (if
 * set, and once a thread has waited; a wake-up before that makes the
 * first wait return at once). */
apr_status_t ev2_poller_wakeup(ev2_poller_t *ps);

/* Enable the fallback: sig must be a signal nothing else in the process
 * uses.  Installs a handler that does nothing (no SA_RESTART), for the
 * whole process.  Call before the first wait.  The waiting thread blocks
 * sig at its first wait (it is unblocked only during epoll_pwait); other
 * threads are never sent it. */
apr_status_t ev2_poller_wake_signal(ev2_poller_t *ps, int sig);

/* The waiting thread is about to end (call this before joining it): no
 * signal is sent to it after this returns. */
void ev2_poller_forget_waiter(ev2_poller_t *ps);

#endif /* EV2_POLLER_H */
