/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * child.c - a child process from fork to exit: its runtime (ev2_child:
 * fdqueue, epoll set, locks, the shared connection allocator), its
 * threads (ThreadsPerChild workers and one listener), how it learns to
 * stop (the pipe of death and SIGTERM, or signals under -X) and how it
 * stops (ev2_child_stop, from any thread).  The functions here run on the
 * child's main thread, except ev2_child_stop, ev2_wake_listener and
 * ev2_now, which any thread may call.
 */

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "apr_signal.h"

#include "ev2.h"
#include "http_main.h"
#include "http_connection.h"

/* The one child runtime of this process.  Static storage, not pool
 * memory: connection pool cleanups use it until the process exits. */
static ev2_child_t the_child;
ev2_child_t *ev2_child;

static volatile sig_atomic_t got_sigterm;

static void child_sigterm(int sig)
{
    (void)sig;
    got_sigterm = 1;
}

apr_time_t ev2_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (apr_time_t)ts.tv_sec * APR_USEC_PER_SEC + ts.tv_nsec / 1000;
}

/* Wake the listener from ev2_poller_wait(); coalesced, so a burst of
 * callers costs one write() to the poller's eventfd.  Should the eventfd
 * refuse it, the poller has sent the listener wake_sig instead; the next
 * caller then tries again rather than counting on a wake-up in flight. */
void ev2_wake_listener(void)
{
    apr_status_t rv;

    if (apr_atomic_cas32(&ev2_child->wake_pending, 1, 0) != 0) {
        return;
    }
    rv = ev2_poller_wakeup(ev2_child->poller);
    if (rv == APR_SUCCESS) {
        return;
    }
    apr_atomic_set32(&ev2_child->wake_pending, 0);
    if (apr_atomic_cas32(&ev2_child->wake_failed_logged, 1, 0) != 0) {
        return;
    }
    if (ev2_child->wake_sig) {
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, ap_server_conf, EV2LOG(091)
                     "could not wake the listener through its eventfd; "
                     "waking it with signal %d instead (logged once per "
                     "child)", ev2_child->wake_sig);
    }
    else {
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, ap_server_conf, EV2LOG(091)
                     "could not wake the listener through its eventfd, "
                     "and no signal is free to do it: timeouts and stops "
                     "may be seen late (logged once per child)");
    }
}

/* The signal for the poller's wake-up fallback: the highest real-time
 * signal that nothing in this process has claimed.  httpd and APR use
 * none (their signals are the classic ones: TERM, HUP, USR1, WINCH, PIPE,
 * CHLD, ALRM, XCPU, XFSZ and the fatal ones); glibc keeps its own below
 * SIGRTMIN.  Tried from the top, as a debugger or valgrind may refuse
 * one.  Every thread of the child already blocks it (it blocks all
 * asynchronous signals before child_init), and only the listener is ever
 * sent it. */
static void set_wake_signal(ev2_poller_t *poller)
{
    int sig;

    for (sig = SIGRTMAX; sig >= SIGRTMIN; sig--) {
        struct sigaction old;

        if (sigaction(sig, NULL, &old) != 0
            || (old.sa_flags & SA_SIGINFO) || old.sa_handler != SIG_DFL) {
            continue;
        }
        if (ev2_poller_wake_signal(poller, sig) == APR_SUCCESS) {
            ev2_child->wake_sig = sig;
            return;
        }
    }
}

static void shutdown_busy_sockets(void)
{
    int i;

    apr_thread_mutex_lock(ev2_child->busy_lock);
    for (i = 0; i < ev2_cfg.threads_per_child; i++) {
        ev2_conn_t *cs = ev2_child->busy[i];

        if (cs && cs->sd) {
            int fd = ev2_os_sock(cs->sd);

            if (fd >= 0) {
                shutdown(fd, SHUT_RDWR);
            }
        }
    }
    apr_thread_mutex_unlock(ev2_child->busy_lock);
}

/* Begin stopping this child; any thread may call it, more than once, and
 * a stop only ever gets harder.  Graceful: the listener stops accepting
 * and drains.  Ungraceful: workers are interrupted and the sockets they
 * run are shut down. */
void ev2_child_stop(ev2_stop_mode_e mode)
{
    apr_uint32_t cur;

    do {
        cur = apr_atomic_read32(&ev2_child->stop_mode);
        if (cur >= (apr_uint32_t)mode) {
            return;
        }
    } while (apr_atomic_cas32(&ev2_child->stop_mode, mode, cur) != cur);

    ev2_retained->mpm->mpm_state = AP_MPMQ_STOPPING;
    if (apr_atomic_cas32(&ev2_child->stopping_hooks_run, 1, 0) == 0) {
        ap_run_child_stopping(ev2_child->pchild, mode == EV2_GRACEFUL);
    }
    if (mode == EV2_UNGRACEFUL) {
        ev2_fdq_interrupt_all(ev2_child->fdq);
        shutdown_busy_sockets();
    }
    ev2_wake_listener();
}

/* what starts with its log tag: stock's code and text where stock logs the
 * same failure, else ours. */
static void child_fatal(const char *what, apr_status_t rv)
{
    ap_log_error(APLOG_MARK, APLOG_ALERT, rv, ap_server_conf, "%s", what);
    exit(APEXIT_CHILDSICK);
}

/* One allocator, with a mutex, for every connection pool of the child.
 * With an allocator per connection (as in stock), the blocks a request
 * freed stay on that connection's free list for as long as it lives:
 * about 28 KiB per idle keep-alive connection, measured.  Shared, the
 * freed blocks serve whichever connection runs next, and an idle
 * connection keeps only the blocks it uses (its pool and its bucket
 * allocator).  MaxMemFree then bounds the free blocks of the child.
 * conn_root is a child of the runtime pool, whose pre-cleanup destroys the
 * pools the fdqueue keeps for reuse before conn_root itself goes. */
static void conn_root_create(void)
{
    apr_allocator_t *allocator;
    apr_thread_mutex_t *mutex;
    apr_status_t rv;

    if ((rv = apr_allocator_create(&allocator)) != APR_SUCCESS) {
        child_fatal(EV2LOG(070) "apr_allocator_create failed", rv);
    }
    apr_allocator_max_free_set(allocator, ap_max_mem_free);
    if ((rv = apr_pool_create_ex(&ev2_child->conn_root, ev2_child->pool,
                                 NULL, allocator)) != APR_SUCCESS) {
        apr_allocator_destroy(allocator);
        child_fatal(EV2LOG(070) "apr_pool_create_ex failed", rv);
    }
    apr_allocator_owner_set(allocator, ev2_child->conn_root);
    apr_pool_tag(ev2_child->conn_root, "ev2_connections");
    if ((rv = apr_thread_mutex_create(&mutex, APR_THREAD_MUTEX_DEFAULT,
                                      ev2_child->conn_root)) != APR_SUCCESS) {
        child_fatal(EV2LOG(070) "apr_thread_mutex_create failed", rv);
    }
    apr_allocator_mutex_set(allocator, mutex);
}

/* How many sleeping workers the fdqueue may be waking at once: one per
 * CPU this process may run on, and at least two.  Waking a worker for
 * every item of a burst made all of them runnable together: with 50
 * keep-alive clients on two children of 25 workers, p99 was 140-200 ms
 * (the listener and the workers each waited behind the whole herd for the
 * CPU); with two wake-ups in flight on one CPU, 3-4 ms at the same rate. */
static unsigned int wakeups_in_flight(void)
{
    cpu_set_t set;
    int n = 0;

    if (sched_getaffinity(0, sizeof(set), &set) == 0) {
        n = CPU_COUNT(&set);
    }
    return n < 2 ? 2 : (unsigned int)n;
}

static void setup_runtime(int slot, int bucket)
{
    ev2_child_t *ch = ev2_child;
    apr_status_t rv;
    unsigned int keep_pools, n;
    ap_listen_rec *lr;

    /* Connections are subpools of pconf and may outlive pchild while the
     * child exits: their runtime objects live on a pool of their own. */
    if ((rv = apr_pool_create(&ch->pool, ev2_pconf)) != APR_SUCCESS) {
        child_fatal(EV2LOG(070) "apr_pool_create failed", rv);
    }
    apr_pool_tag(ch->pool, "ev2_runtime");
    ch->slot = slot;
    ch->bucket = &ev2_buckets[bucket];

    /* Connection pools kept for reuse.  In flight at once are about a
     * worker's worth of connections plus those finishing a lingering
     * close; with fewer kept, every other accept creates a pool (and its
     * allocator maps fresh blocks) that a close then unmaps: measured
     * 0.5 map/unmap pairs per request under Connection: close load with
     * stock's 3/4 x ThreadsPerChild.  Each kept pool holds one request's
     * worth of memory, so 2 x ThreadsPerChild costs little. */
    keep_pools = (unsigned int)ev2_cfg.threads_per_child * 2;
    if ((rv = ev2_fdq_create(&ch->fdq, keep_pools, ch->pool))
        != APR_SUCCESS) {
        child_fatal(APLOGNO(03100) "ap_queue_create() failed", rv);
    }
    ev2_fdq_set_idle_hook(ch->fdq, ev2_worker_went_idle, NULL);
    ev2_fdq_set_max_waking(ch->fdq, wakeups_in_flight());
    if ((rv = apr_thread_mutex_create(&ch->qlock, APR_THREAD_MUTEX_DEFAULT,
                                      ch->pool)) != APR_SUCCESS
        || (rv = apr_thread_mutex_create(&ch->busy_lock,
                                         APR_THREAD_MUTEX_DEFAULT,
                                         ch->pool)) != APR_SUCCESS
        || (rv = apr_thread_mutex_create(&ch->status_lock,
                                         APR_THREAD_MUTEX_DEFAULT,
                                         ch->pool)) != APR_SUCCESS) {
        child_fatal(APLOGNO(03102) "creation of the timeout mutex failed.",
                    rv);
    }
    conn_root_create();
    /* With epoll the size only bounds the events one poll returns. */
    for (n = 0, lr = ch->bucket->listeners; lr; lr = lr->next) {
        n++;
    }
    if ((rv = ev2_poller_create(&ch->poller, 512 + n, ch->pool))
        != APR_SUCCESS) {
        child_fatal(APLOGNO(03103) "apr_pollset_create with Thread Safety "
                    "failed.", rv);
    }
    set_wake_signal(ch->poller);
    ch->timers = ev2_theap_create(ch->pool);
    ch->sleep_until = EV2_NO_DEADLINE;
    ch->busy = apr_pcalloc(ch->pool,
                           ev2_cfg.threads_per_child * sizeof(*ch->busy));
    ch->workers = apr_pcalloc(ch->pool, ev2_cfg.threads_per_child
                                        * sizeof(*ch->workers));
}

static void start_threads(ev2_listener_t *l)
{
    apr_threadattr_t *attr;
    apr_status_t rv;
    int i;

    if ((rv = apr_threadattr_create(&attr, ev2_child->pchild))
        != APR_SUCCESS) {
        child_fatal(EV2LOG(070) "apr_threadattr_create failed", rv);
    }
    apr_threadattr_detach_set(attr, 0);
    if (ap_thread_stacksize != 0) {
        rv = apr_threadattr_stacksize_set(attr, ap_thread_stacksize);
        if (rv != APR_SUCCESS && rv != APR_ENOTIMPL) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, rv, ap_server_conf,
                         APLOGNO(02436) "WARNING: ThreadStackSize of %"
                         APR_SIZE_T_FMT " is inappropriate, using default",
                         ap_thread_stacksize);
        }
    }
    for (i = 0; i < ev2_cfg.threads_per_child; i++) {
        ev2_worker_t *w = &ev2_child->workers[i];

        w->tid = i;
        ev2_status_worker(i, SERVER_STARTING);
        apr_atomic_inc32(&ev2_child->live_workers);
        rv = ap_thread_create(&w->thd, attr, ev2_worker_main, w,
                              ev2_child->pchild);
        if (rv != APR_SUCCESS) {
            apr_atomic_dec32(&ev2_child->live_workers);
            ev2_status_worker(i, SERVER_DEAD);
            child_fatal(APLOGNO(03104) "ap_thread_create: unable to create "
                        "worker thread", rv);
        }
    }
    rv = ap_thread_create(&ev2_child->listener, attr, ev2_listener_main, l,
                          ev2_child->pchild);
    if (rv != APR_SUCCESS) {
        child_fatal(APLOGNO(00474) "ap_thread_create: unable to create "
                    "listener thread", rv);
    }
}

static void join_threads(void)
{
    apr_status_t rv;
    int i;

    if (ev2_child->listener) {
        /* Workers may still wake it (their connections close): no signal
         * may go to a thread that is gone. */
        ev2_poller_forget_waiter(ev2_child->poller);
        apr_thread_join(&rv, ev2_child->listener);
    }
    for (i = 0; i < ev2_cfg.threads_per_child; i++) {
        if (ev2_child->workers[i].thd) {
            apr_thread_join(&rv, ev2_child->workers[i].thd);
        }
    }
}

static int listener_is_done(void)
{
    return apr_atomic_read32(&ev2_child->listener_done) != 0;
}

/* -X: the signals come to this thread directly.  SIGWINCH stops
 * gracefully, every other one at once. */
static void wait_for_stop_signal(void)
{
    sigset_t set;
    int sig = 0;

    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGWINCH);
    while (!listener_is_done()) {
        sigwait(&set, &sig);
        if (listener_is_done()) {
            break;
        }
        if (sig != SIGWINCH) {
            ev2_child_stop(EV2_UNGRACEFUL);
            break;
        }
        ev2_child_stop(EV2_GRACEFUL);
    }
}

/* SIGTERM interrupts the pod read; it comes from the parent (stop, or the
 * end of a graceful-stop timeout) or from our own listener once it has
 * drained everything.  No SA_RESTART: the read must return EINTR. */
static void catch_sigterm(void)
{
    struct sigaction sa;
    sigset_t set;

    memset(&sa, 0, sizeof(sa));
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = child_sigterm;
    sigaction(SIGTERM, &sa, NULL);
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
}

/* Returns when the child should exit: the listener finished draining,
 * or an ungraceful stop was requested. */
static void wait_for_stop(void)
{
    if (ev2_one_process) {
        wait_for_stop_signal();
        return;
    }
    catch_sigterm();
    while (!ev2_is_stopping()) {
        int rv = ap_mpm_podx_check(ev2_child->bucket->pod);

        if (listener_is_done()) {
            return;
        }
        if (rv == AP_MPM_PODX_GRACEFUL) {
            ev2_child_stop(EV2_GRACEFUL);
        }
        else if (rv == AP_MPM_PODX_RESTART || got_sigterm) {
            ev2_child_stop(EV2_UNGRACEFUL);
            return;
        }
        else if (!ev2_is_stopping()) {
            /* An odd read: don't spin if it repeats. */
            apr_sleep(apr_time_from_msec(10));
        }
    }
    /* Draining: stop reading the pod (its bytes are for the children
     * still running) and wait for the listener, or for a stop. */
    while (!listener_is_done()) {
        if (got_sigterm) {
            ev2_child_stop(EV2_UNGRACEFUL);
            return;
        }
        apr_sleep(apr_time_from_msec(100));
    }
}

/* Other buckets' listeners and pods are not ours. */
static void close_other_buckets(int bucket)
{
    int i;

    for (i = 0; i < ev2_retained->mpm->num_buckets; i++) {
        if (i != bucket) {
            ap_close_listeners_ex(ev2_buckets[i].listeners);
            if (ev2_buckets[i].pod) {
                ap_mpm_podx_close(ev2_buckets[i].pod);
            }
        }
    }
}

void ev2_child_main(int slot, int bucket)
{
    apr_thread_t *thd = NULL;
    ev2_listener_t *l;
    apr_status_t rv;

    ev2_retained->mpm->mpm_state = AP_MPMQ_STARTING;
    ap_fatal_signal_child_setup(ap_server_conf);

    ev2_child = &the_child;
    if ((rv = apr_pool_create(&ev2_child->pchild, ev2_pconf))
        != APR_SUCCESS) {
        child_fatal(EV2LOG(070) "apr_pool_create failed", rv);
    }
    apr_pool_tag(ev2_child->pchild, "pchild");
#if AP_HAS_THREAD_LOCAL
    if (!ev2_one_process) {
        ap_thread_main_create(&thd, ev2_child->pchild);
    }
#endif
    (void)thd;
    close_other_buckets(bucket);

    ap_reopen_scoreboard(ev2_child->pchild, NULL, 0);
    if (ap_run_drop_privileges(ev2_child->pchild, ap_server_conf)) {
        exit(APEXIT_CHILDFATAL);
    }

    /* Block asynchronous signals before child_init, so threads modules
     * start there (mod_watchdog) inherit the mask. */
    apr_setup_signal_thread();
    ap_run_child_init(ev2_child->pchild, ap_server_conf);

    setup_runtime(slot, bucket);
    if ((rv = ev2_listener_create(&l, ev2_child->pool)) != APR_SUCCESS) {
        child_fatal(EV2LOG(070) "could not set up the listener", rv);
    }
    /* Before the threads start, so that their queries (ap_mpm_query in a
     * worker) are ordered after it by the thread creation: after it, a
     * request served in the child's first moments raced with the write. */
    ev2_retained->mpm->mpm_state = AP_MPMQ_RUNNING;
    start_threads(l);

    wait_for_stop();

    join_threads();
    ev2_retained->mpm->mpm_state = AP_MPMQ_STOPPING;
    if (apr_atomic_cas32(&ev2_child->stopping_hooks_run, 1, 0) == 0) {
        ap_run_child_stopping(ev2_child->pchild, 0);
    }
    rv = ev2_child->exit_code;
    apr_pool_destroy(ev2_child->pchild);
    if (ev2_one_process) {
        exit(rv);
    }
    _exit(rv);
}
