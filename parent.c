/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * parent.c - the parent process: starting children in scoreboard slots,
 * reaping them, idle server maintenance (start or stop children to keep
 * the idle workers between MinSpareThreads and MaxSpareThreads), and the
 * mpm hook's run: start a generation, wait, then stop or restart.  Runs
 * on the parent's only thread.  The parent keeps its own counts of
 * children (ev2_retained) and never acts on what a child could have
 * written into the scoreboard, except the pids and statuses it reads to
 * find idle threads.
 */

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "apr_signal.h"

#include "ev2.h"
#include "http_main.h"

/* While children of a new generation still wait for slots that old ones
 * hold, look for exits this often (ap_wait_or_timeout() sleeps a second),
 * for at most EV2_PENDING_STARTS_MAX; idle maintenance does the rest. */
#define EV2_PENDING_STARTS_POLL         apr_time_from_msec(50)
#define EV2_PENDING_STARTS_MAX          apr_time_from_sec(10)

/* Crashed children of this generation replaced at once, in a row, before
 * the parent leaves it to idle maintenance (no crash loop). */
#define EV2_MAX_ABRUPT_REPLACEMENTS     3

/* The books of a child that is gone; also ap_reclaim_child_processes()'s
 * callback, which reports kills as (slot, 0, 0). */
static void child_exited(int slot, pid_t pid, ap_generation_t gen)
{
    process_score *ps;
    int i;

    if (slot < 0 || slot >= ev2_cfg.server_limit) {
        return;
    }
    ps = ap_get_scoreboard_process(slot);
    if (!pid) {
        pid = ps->pid;
    }
    if (!gen) {
        gen = ps->generation;
    }
    ap_run_child_status(ap_server_conf, pid, gen, slot, MPM_CHILD_EXITED);
    for (i = 0; i < ev2_cfg.thread_limit; i++) {
        ap_update_child_status_from_indexes(slot, i, SERVER_DEAD, NULL);
    }
    if (!ev2_retained->uncounted[slot]) {
        ev2_retained->active_daemons--;
    }
    ev2_retained->uncounted[slot] = 0;
    ev2_retained->total_daemons--;
    ps->pid = 0;
    ps->quiescing = 0;
    ps->not_accepting = 0;
}

int ev2_make_child(server_rec *s, int slot, int bucket)
{
    process_score *ps = ap_get_scoreboard_process(slot);
    pid_t pid;

    if (slot + 1 > ev2_retained->max_daemon_used) {
        ev2_retained->max_daemon_used = slot + 1;
    }
    if (ps->pid != 0) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, APLOGNO(03455)
                     "BUG: Scoreboard slot %d should be empty but is "
                     "in use by pid %" APR_PID_T_FMT, slot, ps->pid);
        return -1;
    }
    ev2_status_reset(slot);
    if (ev2_one_process) {
        ps->quiescing = 0;
        ps->not_accepting = 0;
        ps->generation = ev2_retained->mpm->my_generation;
        ps->pid = getpid();
        ev2_child_main(slot, 0);
    }

    pid = fork();
    if (pid == -1) {
        ap_log_error(APLOG_MARK, APLOG_ERR, errno, s, APLOGNO(00481)
                     "fork: Unable to fork new process");
        /* Don't fork-bomb a machine that is already out of something. */
        apr_sleep(apr_time_from_sec(10));
        return -1;
    }
    if (pid == 0) {
#if AP_HAS_THREAD_LOCAL
        ap_thread_current_after_fork();
#endif
        /* Until the child has set up its own signal handling, a stop
         * request simply ends it. */
        apr_signal(SIGTERM, SIG_DFL);
        ev2_child_main(slot, bucket);
    }

    ps->quiescing = 0;
    ps->not_accepting = 0;
    ps->bucket = 0;
    ps->generation = ev2_retained->mpm->my_generation;
    ps->pid = pid;
    ev2_retained->uncounted[slot] = 0;
    ev2_retained->active_daemons++;
    ev2_retained->total_daemons++;
    ap_run_child_status(ap_server_conf, pid,
                        ev2_retained->mpm->my_generation, slot,
                        MPM_CHILD_STARTED);
    return 0;
}

int ev2_bucket_of_slot(int slot)
{
    return slot % ev2_retained->mpm->num_buckets;
}

/* Start up to number children in free slots; returns how many started. */
static int startup_children(int number)
{
    int i, started = 0;

    for (i = 0; started < number && i < ev2_cfg.server_limit; i++) {
        if (ap_get_scoreboard_process(i)->pid != 0) {
            continue;
        }
        if (ev2_retained->active_daemons >= ev2_cfg.active_daemons_limit) {
            break;
        }
        if (ev2_make_child(ap_server_conf, i, ev2_bucket_of_slot(i)) < 0) {
            break;
        }
        started++;
    }
    return started;
}

/* Stop counting slot's child as active (it is stopping). */
void ev2_uncount_child(int slot)
{
    if (!ev2_retained->uncounted[slot]) {
        ev2_retained->uncounted[slot] = 1;
        ev2_retained->active_daemons--;
    }
}

/* ---- the main loop ---- */

static void wait_for_child_exit(int hurry, apr_exit_why_e *exitwhy,
                                int *status, apr_proc_t *pid)
{
    apr_status_t rv;

    if (!hurry) {
        ap_wait_or_timeout(exitwhy, status, pid, ev2_pconf, ap_server_conf);
        return;
    }
    rv = apr_proc_wait_all_procs(pid, status, exitwhy, APR_NOWAIT,
                                 ev2_pconf);
    if (!APR_STATUS_IS_CHILD_DONE(rv)) {
        pid->pid = -1;
        apr_sleep(EV2_PENDING_STARTS_POLL);
    }
}

/* A child of this generation exited fatally, or none could start: the
 * parent stops, and does not claim it caught SIGTERM (as stock). */
static int had_fatal_child;

/* A child of this generation exited with APEXIT_CHILDFATAL: the server
 * stops, at once. */
static void stop_for_fatal_child(void)
{
    ev2_retained->mpm->shutdown_pending = 1;
    ev2_retained->mpm->is_ungraceful = 1;
    had_fatal_child = 1;
    ap_log_error(APLOG_MARK, APLOG_ALERT, 0, ap_server_conf, EV2LOG(030)
                 "a child exited with a fatal error; shutting the server "
                 "down");
}

/* A child of slot (with its generation) has exited: settle its books and
 * decide whether to replace it now.  *remaining counts the children of a
 * new generation still waiting for a slot. */
static void child_reaped(int slot, apr_proc_t *pid, apr_exit_why_e exitwhy,
                         int processed, int *remaining)
{
    ap_generation_t gen = ap_get_scoreboard_process(slot)->generation;
    int is_current = (gen == ev2_retained->mpm->my_generation);
    int by_signal = (exitwhy == APR_PROC_SIGNAL);
    int b;

    if (processed == APEXIT_CHILDFATAL) {
        /* Fatal only from a child of the running generation: an old one
         * may fail on what this generation fixed. */
        if (is_current) {
            stop_for_fatal_child();
        }
        else {
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, ap_server_conf,
                         APLOGNO(00487) "Ignoring fatal error in child of "
                         "previous generation (pid %" APR_PID_T_FMT ").",
                         pid->pid);
        }
        child_exited(slot, pid->pid, gen);
        return;
    }
    if (is_current && ap_get_scoreboard_process(slot)->quiescing) {
        /* It drained before it exited: its listener, the last thread a
         * child creates, ran its loop, so the child had initialized, even
         * if no maintenance pass saw all its workers running (one fell
         * sick within a second of its start). */
        ev2_retained->had_healthy_child = 1;
    }
    child_exited(slot, pid->pid, gen);
    if (processed == APEXIT_CHILDSICK) {
        ev2_retained->sick_child_detected = 1;
        for (b = 0; b < ev2_retained->mpm->num_buckets; b++) {
            ev2_retained->idle_spawn_rate[b] = 1;
        }
    }
    else if (*remaining > 0
             && ev2_retained->active_daemons < ev2_cfg.active_daemons_limit) {
        ev2_make_child(ap_server_conf, slot, ev2_bucket_of_slot(slot));
        (*remaining)--;
    }
    else if (by_signal && is_current
             && ev2_retained->abrupt_deaths < EV2_MAX_ABRUPT_REPLACEMENTS
             && ev2_retained->active_daemons < ev2_cfg.active_daemons_limit) {
        /* A crash: replace it now rather than at the next maintenance
         * pass; but not in a crash loop. */
        ev2_retained->abrupt_deaths++;
        ev2_make_child(ap_server_conf, slot, ev2_bucket_of_slot(slot));
    }
    else if (by_signal && is_current
             && ev2_retained->abrupt_deaths >= EV2_MAX_ABRUPT_REPLACEMENTS) {
        /* Left to maintenance: say so at the 3rd death in a row and at
         * every 10th after, as stock does. */
        if (ev2_retained->abrupt_deaths++ % 10
            == EV2_MAX_ABRUPT_REPLACEMENTS) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, ap_server_conf,
                         APLOGNO(10392) "children are killed successively!");
        }
    }
    if (!by_signal) {
        ev2_retained->abrupt_deaths = 0;
    }
}

/* A process that is not one of our children exited. */
static void other_reaped(apr_proc_t *pid, int status)
{
    if (apr_proc_other_child_alert(pid, APR_OC_REASON_DEATH, status)
        == APR_SUCCESS) {
        return;                 /* e.g. mod_cgid's daemon: its owner
                                 * restarts it */
    }
    if (ev2_retained->mpm->was_graceful) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, ap_server_conf,
                     APLOGNO(00488) "long lost child came home! (pid %"
                     APR_PID_T_FMT ")", pid->pid);
    }
}

/* After a child exited sick (a resource shortage or another failure),
 * keep going if a child of this generation was ever healthy (maintenance
 * notes it, and the note is sticky, as stock's): the failure is taken for
 * a transient one and the child is replaced at the slow spawn rate.  Wait
 * while children of the generation still start.  Returns 0 when the
 * server must give up: no child ever initialized and none is left. */
static int sick_children_settled(void)
{
    int i;

    for (i = 0; i < ev2_retained->max_daemon_used; i++) {
        ev2_note_healthy_child(i);
    }
    if (ev2_retained->had_healthy_child) {
        ev2_retained->sick_child_detected = 0;
        return 1;
    }
    if (ev2_retained->total_daemons == 0) {
        ap_log_error(APLOG_MARK, APLOG_ALERT, 0, ap_server_conf,
                     APLOGNO(02324) "A resource shortage or other "
                     "unrecoverable failure was encountered before any "
                     "child process initialized successfully... httpd is "
                     "exiting!");
        ev2_retained->mpm->shutdown_pending = 1;
        ev2_retained->mpm->is_ungraceful = 1;
        had_fatal_child = 1;
        return 0;
    }
    return 1;
}

static void server_main_loop(int remaining)
{
    apr_time_t pending_since = apr_time_now();
    apr_time_t pending_until = pending_since + EV2_PENDING_STARTS_MAX;
    apr_exit_why_e exitwhy;
    apr_proc_t pid;
    int status, b;

    while (!ev2_retained->mpm->restart_pending
           && !ev2_retained->mpm->shutdown_pending) {
        if (remaining && apr_time_now() > pending_until) {
            remaining = 0;
        }
        wait_for_child_exit(remaining > 0, &exitwhy, &status, &pid);
        if (pid.pid != -1) {
            int processed = ap_process_child_status(&pid, exitwhy, status);
            int slot = ap_find_child_by_pid(&pid);

            if (slot >= 0 && slot < ev2_cfg.server_limit) {
                child_reaped(slot, &pid, exitwhy, processed, &remaining);
            }
            else if (processed == APEXIT_CHILDFATAL) {
                /* Not in our scoreboard: we cannot tell its generation. */
                stop_for_fatal_child();
            }
            else {
                other_reaped(&pid, status);
            }
            continue;
        }
        if (remaining) {
            /* Start what has a free slot; the rest replaces old children
             * as they exit (above), until the deadline. */
            int started = startup_children(remaining);

            remaining -= started;
            /* Stock gives up waiting after a second, and its maintenance
             * then finds the scoreboard full: say so at the same time. */
            if (remaining && !started
                && apr_time_now() > pending_since + apr_time_from_sec(1)) {
                ev2_maint_waiting_for_slots();
            }
            continue;
        }
        if (ev2_retained->sick_child_detected && !sick_children_settled()) {
            break;
        }
        for (b = 0; b < ev2_retained->mpm->num_buckets; b++) {
            ev2_maintain(b);
        }
    }
}

/* ---- run: start, then stop or restart ---- */

static int live_children(void)
{
    int i, n = 0;

    for (i = 0; i < ev2_retained->max_daemon_used; i++) {
        pid_t pid = ap_get_scoreboard_process(i)->pid;

        if (pid != 0 && ap_mpm_safe_kill(pid, 0) == APR_SUCCESS) {
            n++;
        }
    }
    return n;
}

static void signal_all_pods(ap_podx_restart_t mode)
{
    int b;

    for (b = 0; b < ev2_retained->mpm->num_buckets; b++) {
        ap_mpm_podx_killpg(ev2_buckets[b].pod, ev2_retained->max_daemon_used,
                           mode);
    }
}

/* Books and scoreboard for a new generation; returns nonzero if the
 * scoreboard could not be had. */
static int prepare_generation(apr_pool_t *pconf, server_rec *s)
{
    ev2_retained_t *r = ev2_retained;

    ev2_pconf = pconf;
    if (!r->mpm->was_graceful) {
        if (ap_run_pre_mpm(s->process->pool, SB_SHARED) != OK) {
            r->mpm->mpm_state = AP_MPMQ_STOPPING;
            return -1;
        }
        /* A fresh scoreboard: nobody holds a slot. */
        r->max_daemon_used = 0;
        r->active_daemons = 0;
        r->total_daemons = 0;
    }
    ap_scoreboard_image->global->running_generation = r->mpm->my_generation;
    if (!r->uncounted) {
        /* ServerLimit cannot change until a full stop. */
        r->uncounted = apr_pcalloc(ap_pglobal, ev2_cfg.server_limit);
    }
    if (!r->mpm->was_graceful) {
        memset(r->uncounted, 0, ev2_cfg.server_limit);
    }
    if (ev2_status_setup() != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, EV2LOG(012)
                     "could not map the shared status of the children: "
                     "mod_status shows no event2 section");
    }
    ap_log_pid(pconf, ap_pid_fname);
    ap_unixd_mpm_set_signals(pconf, ev2_one_process);
    r->had_healthy_child = 0;
    r->maxworkers_reported = 0;
    r->near_maxworkers_reported = 0;
    r->scoreboard_full_reported = 0;
    return 0;
}

/* Start this generation's children; returns how many still wait for a
 * slot that an old child holds. */
static int start_generation(void)
{
    int remaining = ev2_cfg.daemons_to_start;
    int i;

    if (remaining < ev2_retained->mpm->num_buckets) {
        remaining = ev2_retained->mpm->num_buckets;
    }
    if (!ev2_retained->mpm->was_graceful) {
        startup_children(remaining);
        return 0;
    }
    /* Old children drain in their slots: start the new generation in the
     * free ones now, the rest as old children leave. */
    for (i = 0; i < ev2_retained->max_daemon_used; i++) {
        process_score *ps = ap_get_scoreboard_process(i);

        if (ps->pid && ps->generation != ev2_retained->mpm->my_generation) {
            ev2_uncount_child(i);
        }
    }
    remaining -= startup_children(remaining);
    ev2_retained->hold_off_on_exponential_spawning = 10;
    return remaining;
}

/* Graceful stop: let every child finish what it has, for at most
 * GracefulShutdownTimeout (0: for ever), then end what is left. */
static void stop_gracefully(apr_pool_t *pconf, server_rec *s)
{
    apr_time_t cutoff = 0;

    ap_close_listeners();
    signal_all_pods(AP_MPM_PODX_GRACEFUL);
    ap_relieve_child_processes(child_exited);
    ap_remove_pid(pconf, ap_pid_fname);
    ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s, APLOGNO(00492)
                 "caught " AP_SIG_GRACEFUL_STOP_STRING
                 ", shutting down gracefully");
    if (ap_graceful_shutdown_timeout) {
        cutoff = apr_time_now()
                 + apr_time_from_sec(ap_graceful_shutdown_timeout);
    }
    while (!ev2_retained->mpm->is_ungraceful && live_children() > 0
           && (!cutoff || apr_time_now() < cutoff)) {
        apr_sleep(apr_time_from_msec(200));
        ap_relieve_child_processes(child_exited);
    }
    signal_all_pods(AP_MPM_PODX_RESTART);
    ap_reclaim_child_processes(1, child_exited);
}

/* The new generation number is set; tell the children how to go. */
static void begin_restart(server_rec *s)
{
    ev2_retained->mpm->my_generation++;
    ap_scoreboard_image->global->running_generation =
        ev2_retained->mpm->my_generation;
    if (ev2_retained->mpm->is_ungraceful) {
        signal_all_pods(AP_MPM_PODX_RESTART);
        ap_reclaim_child_processes(1, child_exited);
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s, APLOGNO(00494)
                     "SIGHUP received.  Attempting to restart");
    }
    else {
        signal_all_pods(AP_MPM_PODX_GRACEFUL);
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s, APLOGNO(00493)
                     AP_SIG_GRACEFUL_STRING " received.  Doing graceful "
                     "restart");
    }
}

int ev2_run(apr_pool_t *pconf, apr_pool_t *plog, server_rec *s)
{
    int remaining;

    if (prepare_generation(pconf, s) != 0) {
        return !OK;
    }
    if (ev2_one_process) {
        ev2_retained->mpm->mpm_state = AP_MPMQ_RUNNING;
        ev2_make_child(s, 0, 0);
        /* not reached: the child exits the process */
    }
    remaining = start_generation();

    ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s, APLOGNO(00489)
                 "%s configured -- resuming normal operations",
                 ap_get_server_description());
    ap_log_error(APLOG_MARK, APLOG_INFO, 0, s, APLOGNO(00490)
                 "Server built: %s", ap_get_server_built());
    ap_log_command_line(plog, s);
    ap_log_mpm_common(s);
    ev2_retained->mpm->mpm_state = AP_MPMQ_RUNNING;

    server_main_loop(remaining);
    ev2_retained->mpm->mpm_state = AP_MPMQ_STOPPING;

    if (ev2_retained->mpm->shutdown_pending
        && ev2_retained->mpm->is_ungraceful) {
        signal_all_pods(AP_MPM_PODX_RESTART);
        ap_reclaim_child_processes(1, child_exited);
        ap_remove_pid(pconf, ap_pid_fname);
        if (!had_fatal_child) {
            ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s, APLOGNO(00491)
                         "caught SIGTERM, shutting down");
        }
        return DONE;
    }
    if (ev2_retained->mpm->shutdown_pending) {
        stop_gracefully(pconf, s);
        return DONE;
    }
    begin_restart(s);
    return OK;
}
