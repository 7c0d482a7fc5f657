/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * maint.c - idle server maintenance, in the parent: once a second (and
 * whenever ap_wait_or_timeout() returns without an exit) count the idle
 * workers of each bucket's accepting children of this generation, let
 * policy.c decide whether to start children, stop one or do nothing, log
 * what stock event logs for that decision, and act.  Parent's main
 * thread.
 */

#include <string.h>

#include "ev2.h"

/* Most children one maintenance pass may start. */
#define EV2_MAX_SPAWN_RATE              32

/* Count what maintenance decides from for one bucket: idle threads of
 * this generation's accepting children, and up to in->spawn_rate free
 * slots (into free_slots[]).  Also notices children that said they stopped
 * accepting, and the highest slot in use. */
static void maint_scan(int bucket, ev2_maint_in_t *in, int *free_slots)
{
    int num_buckets = ev2_retained->mpm->num_buckets;
    int last_used = -1, i, j;

    for (i = 0; i < ev2_cfg.server_limit; i++) {
        process_score *ps = ap_get_scoreboard_process(i);

        if (i >= ev2_retained->max_daemon_used
            && in->free_slots >= in->spawn_rate) {
            break;
        }
        if (ps->pid == 0) {
            if (i % num_buckets == bucket && in->free_slots < in->spawn_rate) {
                free_slots[in->free_slots++] = i;
            }
            continue;
        }
        last_used = i;
        ev2_note_healthy_child(i);
        if (ps->quiescing == 1) {
            /* It told us it stopped accepting: it no longer counts
             * against MaxRequestWorkers. */
            ps->quiescing = 2;
            ev2_uncount_child(i);
        }
        if (i % num_buckets != bucket || ps->quiescing || ps->not_accepting
            || ps->generation != ev2_retained->mpm->my_generation) {
            continue;
        }
        for (j = 0; j < ev2_cfg.threads_per_child; j++) {
            int status = ap_get_scoreboard_worker_from_indexes(i, j)->status;

            /* Threads not started yet will be idle soon: count them, or
             * a starting child makes us fork another. */
            if (status <= SERVER_READY) {
                in->idle_threads++;
            }
        }
    }
    if (last_used + 1 > ev2_retained->max_daemon_used) {
        ev2_retained->max_daemon_used = last_used + 1;
    }
}

/* Whether slot holds a child of this generation with every worker
 * running (ready, busy or idle; not starting, stopping or gone), as stock
 * judges it: then the generation has had a healthy child, and stays so. */
void ev2_note_healthy_child(int slot)
{
    process_score *ps = ap_get_scoreboard_process(slot);
    int j;

    if (ev2_retained->had_healthy_child || !ps->pid
        || ps->generation != ev2_retained->mpm->my_generation) {
        return;
    }
    for (j = 0; j < ev2_cfg.threads_per_child; j++) {
        int status = ap_get_scoreboard_worker_from_indexes(slot, j)->status;

        if (status < SERVER_READY || status >= SERVER_GRACEFUL) {
            return;
        }
    }
    ev2_retained->had_healthy_child = 1;
}

/* Once per generation (stock: at every maintenance pass while it lasts).
 * Also when a new generation's children wait for slots (server_main_loop). */
static void report_scoreboard_full(void)
{
    if (!ev2_retained->scoreboard_full_reported) {
        /* sic: stock's text has no space after the full stop */
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, ap_server_conf, APLOGNO(03490)
                     "scoreboard is full, not at MaxRequestWorkers."
                     "Increase ServerLimit.");
        ev2_retained->scoreboard_full_reported = 1;
    }
}

/* Log what a maintenance decision found, with stock's codes and texts,
 * once per generation where stock does so too. */
static void maint_report(const ev2_maint_in_t *in, const ev2_maint_out_t *out)
{
    switch (out->action) {
    case EV2_MAINT_AT_MAX_WORKERS:
        if (!ev2_retained->maxworkers_reported && in->idle_threads == 0) {
            ap_log_error(APLOG_MARK, APLOG_ERR, 0, ap_server_conf,
                         APLOGNO(00484) "server reached MaxRequestWorkers "
                         "setting, consider raising the "
                         "MaxRequestWorkers setting");
            ev2_retained->maxworkers_reported = 1;
        }
        else if (!ev2_retained->near_maxworkers_reported
                 && in->idle_threads) {
            ap_log_error(APLOG_MARK, APLOG_ERR, 0, ap_server_conf,
                         APLOGNO(10159) "server is within MinSpareThreads "
                         "of MaxRequestWorkers, consider raising the "
                         "MaxRequestWorkers setting");
            ev2_retained->near_maxworkers_reported = 1;
        }
        break;
    case EV2_MAINT_SCOREBOARD_FULL:
        report_scoreboard_full();
        break;
    case EV2_MAINT_SPAWN:
        if (in->spawn_rate >= 8) {
            /* Stock's last number is all children; ours is what its text
             * says. */
            ap_log_error(APLOG_MARK, APLOG_INFO, 0, ap_server_conf,
                         APLOGNO(00486) "server seems busy, (you may need "
                         "to increase StartServers, ThreadsPerChild or "
                         "Min/MaxSpareThreads), spawning %d children, "
                         "there are around %d idle threads, %d active "
                         "children, and %d children that are shutting "
                         "down", out->spawn, in->idle_threads,
                         in->active_daemons,
                         in->total_daemons - in->active_daemons);
        }
        break;
    case EV2_MAINT_NONE:
    case EV2_MAINT_STOP_ONE:
    case EV2_MAINT_KEEP_SURPLUS:
        break;
    }
}

/* Is any scoreboard slot free (of any bucket)? */
static int have_free_slot(void)
{
    int i;

    for (i = 0; i < ev2_cfg.server_limit; i++) {
        if (ap_get_scoreboard_process(i)->pid == 0) {
            return 1;
        }
    }
    return 0;
}

/* Idle (or starting) workers of this generation's accepting children,
 * counted as maint_scan() does, over all buckets. */
static int count_idle_threads(void)
{
    int i, j, idle = 0;

    for (i = 0; i < ev2_retained->max_daemon_used; i++) {
        process_score *ps = ap_get_scoreboard_process(i);

        if (!ps->pid || ps->quiescing || ps->not_accepting
            || ps->generation != ev2_retained->mpm->my_generation) {
            continue;
        }
        for (j = 0; j < ev2_cfg.threads_per_child; j++) {
            if (ap_get_scoreboard_worker_from_indexes(i, j)->status
                <= SERVER_READY) {
                idle++;
            }
        }
    }
    return idle;
}

/* Start or stop children so that idle threads stay between
 * MinSpareThreads and MaxSpareThreads (each split over the buckets):
 * count, decide (policy.c), report, act. */
void ev2_maintain(int bucket)
{
    int num_buckets = ev2_retained->mpm->num_buckets;
    int free_slots[EV2_MAX_SPAWN_RATE];
    ev2_maint_in_t in;
    ev2_maint_out_t out;
    int i;

    memset(&in, 0, sizeof(in));
    in.spawn_rate = ev2_retained->idle_spawn_rate[bucket];
    maint_scan(bucket, &in, free_slots);
    in.active_daemons = ev2_retained->active_daemons;
    in.total_daemons = ev2_retained->total_daemons;
    in.active_daemons_limit = ev2_cfg.active_daemons_limit;
    in.server_limit = ev2_cfg.server_limit;
    in.min_spare = ev2_cfg.min_spare_threads / num_buckets;
    in.max_spare = ev2_cfg.max_spare_threads / num_buckets;
    in.max_spawn_rate = EV2_MAX_SPAWN_RATE / num_buckets;
    in.hold_off = ev2_retained->hold_off_on_exponential_spawning;

    ev2_maint_decide(&in, &out);
    maint_report(&in, &out);
    if (out.action == EV2_MAINT_STOP_ONE) {
        ap_mpm_podx_signal(ev2_buckets[bucket].pod, AP_MPM_PODX_GRACEFUL);
    }
    for (i = 0; i < out.spawn; i++) {
        ev2_make_child(ap_server_conf, free_slots[i], bucket);
    }
    ev2_retained->idle_spawn_rate[bucket] = out.spawn_rate;
    ev2_retained->hold_off_on_exponential_spawning = out.hold_off;
}

/* A new generation's children still wait for slots that old ones hold:
 * stock gives up waiting after a second, and its maintenance then finds
 * the scoreboard full; say so at the same time, if that is the case. */
void ev2_maint_waiting_for_slots(void)
{
    if (ev2_retained->active_daemons < ev2_cfg.active_daemons_limit
        && !have_free_slot()
        && count_idle_threads() < ev2_cfg.min_spare_threads) {
        report_scoreboard_full();
    }
}
