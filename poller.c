/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * poller.c - the listener's epoll set; see poller.h.
 */

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <apr_errno.h>

#include "poller.h"

struct ev2_poller_t {
    int epfd;
    int wakefd;
    unsigned int max_events;
    struct epoll_event *raw;
    ev2_poll_event_t *out;

    /* The signal fallback (0: none).  wait_mask is the waiter's signal
     * mask without wake_sig, used during its waits (waiter only). */
    int wake_sig;
    int mask_ready;
    sigset_t wait_mask;
    /* waiter_lock guards the rest: which thread waits, and a wake-up
     * that came before any thread waited. */
    pthread_mutex_t waiter_lock;
    int lock_made;
    pthread_t waiter;
    int has_waiter;
    int wake_missed;
};

/* ThreadSanitizer does not know that the kernel orders an
 * epoll_ctl(MOD) before the event it enables (gcc 12's runtime orders
 * only an ADD before a later epoll_wait), so the owner's writes before
 * re-arming a one-shot pollee and the waiter's reads after its event
 * look unordered.  Tell it, per pollee: release at every (re)arm or add,
 * acquire when its event is reported.  Nothing in other builds. */
#if defined(__SANITIZE_THREAD__)
#define EV2_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define EV2_TSAN 1
#endif
#endif
#ifdef EV2_TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define ev2_hb_release(p) __tsan_release(p)
#define ev2_hb_acquire(p) __tsan_acquire(p)
#else
#define ev2_hb_release(p) ((void)(p))
#define ev2_hb_acquire(p) ((void)(p))
#endif

/* The eventfd's epoll data: no pollee has this address. */
static char wake_tag;

static apr_status_t poller_cleanup(void *data)
{
    ev2_poller_t *ps = data;

    if (ps->epfd >= 0) {
        close(ps->epfd);
    }
    if (ps->wakefd >= 0) {
        close(ps->wakefd);
    }
    ps->epfd = ps->wakefd = -1;
    if (ps->lock_made) {
        pthread_mutex_destroy(&ps->waiter_lock);
        ps->lock_made = 0;
    }
    return APR_SUCCESS;
}

void ev2_pollee_init(ev2_pollee_t *pe, int fd, void *data)
{
    pe->fd = fd;
    pe->registered = 0;
    pe->data = data;
}

apr_status_t ev2_poller_create(ev2_poller_t **pp, unsigned int max_events,
                               apr_pool_t *p)
{
    ev2_poller_t *ps = apr_pcalloc(p, sizeof(*ps));
    struct epoll_event ev = { 0 };

    *pp = NULL;
    if (max_events == 0) {
        return APR_EINVAL;
    }
    ps->max_events = max_events;
    pthread_mutex_init(&ps->waiter_lock, NULL);
    ps->lock_made = 1;
    ps->raw = apr_pcalloc(p, max_events * sizeof(*ps->raw));
    ps->out = apr_pcalloc(p, max_events * sizeof(*ps->out));
    ps->epfd = epoll_create1(EPOLL_CLOEXEC);
    ps->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    apr_pool_cleanup_register(p, ps, poller_cleanup, apr_pool_cleanup_null);
    if (ps->epfd < 0 || ps->wakefd < 0) {
        apr_status_t rv = errno;

        poller_cleanup(ps);
        return rv;
    }
    ev.events = EPOLLIN;
    ev.data.ptr = &wake_tag;
    if (epoll_ctl(ps->epfd, EPOLL_CTL_ADD, ps->wakefd, &ev) != 0) {
        apr_status_t rv = errno;

        poller_cleanup(ps);
        return rv;
    }
    *pp = ps;
    return APR_SUCCESS;
}

static uint32_t to_epoll(unsigned int events)
{
    uint32_t e = EPOLLERR | EPOLLHUP;

    if (events & EV2_POLL_IN) {
        e |= EPOLLIN;
    }
    if (events & EV2_POLL_OUT) {
        e |= EPOLLOUT;
    }
    return e;
}

static unsigned int from_epoll(uint32_t e)
{
    unsigned int events = 0;

    if (e & EPOLLIN) {
        events |= EV2_POLL_IN;
    }
    if (e & EPOLLOUT) {
        events |= EV2_POLL_OUT;
    }
    if (e & (EPOLLERR | EPOLLHUP)) {
        events |= EV2_POLL_ERR;
    }
    return events;
}

/* Register pe, or change what it waits for: ADD for a pollee the kernel
 * does not know, MOD otherwise, each falling back to the other should
 * our idea of the kernel's set be wrong (a descriptor closed and reused
 * behind our back). */
static apr_status_t set_events(ev2_poller_t *ps, ev2_pollee_t *pe,
                               uint32_t e)
{
    struct epoll_event ev = { 0 };
    int op = pe->registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;

    ev.events = e;
    ev.data.ptr = pe;
    ev2_hb_release(pe);
    if (epoll_ctl(ps->epfd, op, pe->fd, &ev) != 0) {
        if (op == EPOLL_CTL_MOD && errno == ENOENT) {
            op = EPOLL_CTL_ADD;
        }
        else if (op == EPOLL_CTL_ADD && errno == EEXIST) {
            op = EPOLL_CTL_MOD;
        }
        else {
            return errno;
        }
        if (epoll_ctl(ps->epfd, op, pe->fd, &ev) != 0) {
            return errno;
        }
    }
    pe->registered = 1;
    return APR_SUCCESS;
}

apr_status_t ev2_poller_remove(ev2_poller_t *ps, ev2_pollee_t *pe)
{
    struct epoll_event ev = { 0 };

    if (!pe->registered) {
        return APR_SUCCESS;
    }
    pe->registered = 0;
    if (epoll_ctl(ps->epfd, EPOLL_CTL_DEL, pe->fd, &ev) != 0
        && errno != ENOENT) {
        return errno;
    }
    return APR_SUCCESS;
}

apr_status_t ev2_poller_add(ev2_poller_t *ps, ev2_pollee_t *pe,
                            unsigned int events)
{
    return set_events(ps, pe, to_epoll(events));
}

apr_status_t ev2_poller_arm(ev2_poller_t *ps, ev2_pollee_t *pe,
                            unsigned int events)
{
    return set_events(ps, pe, to_epoll(events) | EPOLLONESHOT);
}

static void wake_signal_handler(int sig)
{
    (void)sig;                  /* its only job: EINTR out of the wait */
}

apr_status_t ev2_poller_wake_signal(ev2_poller_t *ps, int sig)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = wake_signal_handler;
    sigemptyset(&sa.sa_mask);
    if (sigaction(sig, &sa, NULL) != 0) {
        return errno;
    }
    ps->wake_sig = sig;
    return APR_SUCCESS;
}

void ev2_poller_forget_waiter(ev2_poller_t *ps)
{
    pthread_mutex_lock(&ps->waiter_lock);
    ps->has_waiter = 0;
    pthread_mutex_unlock(&ps->waiter_lock);
}

/* The waiter's first wait with the fallback on: keep wake_sig blocked
 * outside the waits, and become the thread it is sent to.  Returns
 * nonzero if a wake-up came before (it was not sent to anybody). */
static int become_waiter(ev2_poller_t *ps)
{
    sigset_t sig, old;
    int missed;

    sigemptyset(&sig);
    sigaddset(&sig, ps->wake_sig);
    pthread_sigmask(SIG_BLOCK, &sig, &old);
    ps->wait_mask = old;
    sigdelset(&ps->wait_mask, ps->wake_sig);
    ps->mask_ready = 1;
    pthread_mutex_lock(&ps->waiter_lock);
    ps->waiter = pthread_self();
    ps->has_waiter = 1;
    missed = ps->wake_missed;
    ps->wake_missed = 0;
    pthread_mutex_unlock(&ps->waiter_lock);
    return missed;
}

apr_status_t ev2_poller_wait(ev2_poller_t *ps, apr_interval_time_t timeout,
                             int *n, const ev2_poll_event_t **out)
{
    int ms, got, i, k = 0, woken = 0;

    if (timeout < 0) {
        ms = -1;
    }
    else {
        /* Round up: waking a little late beats spinning on 0 ms. */
        apr_interval_time_t t = (timeout + 999) / 1000;

        ms = t > 0x7fffffff ? 0x7fffffff : (int)t;
    }
    *n = 0;
    *out = ps->out;
    if (!ps->wake_sig) {
        got = epoll_wait(ps->epfd, ps->raw, (int)ps->max_events, ms);
    }
    else if (!ps->mask_ready && become_waiter(ps)) {
        return APR_EINTR;
    }
    else {
        /* wake_sig, if sent (or pending since), interrupts only this. */
        got = epoll_pwait(ps->epfd, ps->raw, (int)ps->max_events, ms,
                          &ps->wait_mask);
    }
    if (got < 0) {
        return errno == EINTR ? APR_EINTR : errno;
    }
    if (got == 0) {
        return APR_TIMEUP;
    }
    for (i = 0; i < got; i++) {
        ev2_pollee_t *pe = ps->raw[i].data.ptr;

        if ((void *)pe == (void *)&wake_tag) {
            uint64_t count;

            /* Drain; a concurrent wakeup after this read is seen next
             * time, as the eventfd is readable again. */
            if (read(ps->wakefd, &count, sizeof(count)) < 0) {
                /* EAGAIN: another reader drained it; nothing to do. */
            }
            woken = 1;
            continue;
        }
        ev2_hb_acquire(pe);
        ps->out[k].data = pe->data;
        ps->out[k].events = from_epoll(ps->raw[i].events);
        k++;
    }
    *n = k;
    return (k == 0 && woken) ? APR_EINTR : APR_SUCCESS;
}

apr_status_t ev2_poller_wakeup(ev2_poller_t *ps)
{
    uint64_t one = 1;
    apr_status_t rv;

    if (write(ps->wakefd, &one, sizeof(one)) >= 0 || errno == EAGAIN) {
        /* EAGAIN: the counter is saturated, so a wake-up is pending. */
        return APR_SUCCESS;
    }
    rv = errno;
    if (ps->wake_sig) {
        pthread_mutex_lock(&ps->waiter_lock);
        if (ps->has_waiter) {
            pthread_kill(ps->waiter, ps->wake_sig);
        }
        else {
            ps->wake_missed = 1;
        }
        pthread_mutex_unlock(&ps->waiter_lock);
    }
    return rv;
}
