/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * poller.c - the listener's epoll set; see poller.h.
 */

#include <errno.h>
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
};

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
    got = epoll_wait(ps->epfd, ps->raw, (int)ps->max_events, ms);
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
        ps->out[k].data = pe->data;
        ps->out[k].events = from_epoll(ps->raw[i].events);
        k++;
    }
    *n = k;
    return (k == 0 && woken) ? APR_EINTR : APR_SUCCESS;
}

void ev2_poller_wakeup(ev2_poller_t *ps)
{
    uint64_t one = 1;

    if (write(ps->wakefd, &one, sizeof(one)) < 0) {
        /* EAGAIN: the counter is saturated, so a wake-up is pending. */
    }
}
