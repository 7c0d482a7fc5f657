/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * config.c - the MPM's directives and configuration passes: pre_config
 * (defaults, retained data, detaching), the directive handlers,
 * check_config (reconciling values that conflict), open_logs (listeners
 * into buckets, one pipe of death each) and post_config (the timeout
 * queues of every vhost).  Runs in the parent (and in -X's one process),
 * on the main thread, once per configuration pass.  What a value means is
 * decided in policy.c; this file reports it.
 */

#include "apr_strings.h"
#include "apr_hash.h"

#include <limits.h>
#include <unistd.h>

#include "ev2.h"
#include "http_main.h"
#include "http_core.h"

#define EV2_DEFAULT_START_DAEMONS       3
#define EV2_DEFAULT_THREADS_PER_CHILD   25
#define EV2_DEFAULT_MIN_SPARE_THREADS   75
#define EV2_DEFAULT_MAX_SPARE_THREADS   250
#define EV2_DEFAULT_MAX_WORKERS         400
#define EV2_DEFAULT_SERVER_LIMIT        16
#define EV2_DEFAULT_THREAD_LIMIT        64
#define EV2_MAX_SERVER_LIMIT            20000
#define EV2_MAX_THREAD_LIMIT            100000
#define EV2_DEFAULT_FACTOR_MILLI        (2 * EV2_FACTOR_SCALE)

ev2_config_t ev2_cfg;
ev2_tq_set_t *ev2_queues;
ev2_retained_t *ev2_retained;
ev2_bucket_t *ev2_buckets;
int ev2_one_process;
apr_pool_t *ev2_pconf;

static int is_startup_pass(void)
{
    return ev2_retained->mpm->module_loads == 1;
}

/* What an integer directive sets and the values it accepts. */
typedef struct {
    int *field;
    long lo, hi;
} ev2_int_directive_t;

static ev2_int_directive_t start_servers_arg = {
    &ev2_cfg.daemons_to_start, 1, EV2_MAX_SERVER_LIMIT };
static ev2_int_directive_t min_spare_arg = {
    &ev2_cfg.min_spare_threads, 1, INT_MAX };
static ev2_int_directive_t max_spare_arg = {
    &ev2_cfg.max_spare_threads, 1, INT_MAX };
static ev2_int_directive_t max_workers_arg = {
    &ev2_cfg.max_workers, 1, INT_MAX };
static ev2_int_directive_t threads_per_child_arg = {
    &ev2_cfg.threads_per_child, 1, EV2_MAX_THREAD_LIMIT };
static ev2_int_directive_t server_limit_arg = {
    &ev2_cfg.server_limit, 1, EV2_MAX_SERVER_LIMIT };
static ev2_int_directive_t thread_limit_arg = {
    &ev2_cfg.thread_limit, 1, EV2_MAX_THREAD_LIMIT };

/* Every integer directive: server-wide only, a whole number in range. */
static const char *set_int_directive(cmd_parms *cmd, void *d, const char *arg)
{
    const ev2_int_directive_t *what = cmd->info;
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);

    (void)d;
    if (err != NULL) {
        return err;
    }
    if (!strcasecmp(cmd->cmd->name, "MaxClients")) {
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, NULL, APLOGNO(00521)
                     "MaxClients is deprecated, use MaxRequestWorkers "
                     "instead.");
    }
    if (ev2_parse_whole(arg, what->lo, what->hi, what->field) != 0) {
        return apr_psprintf(cmd->pool,
                            "%s: invalid value '%s': expected a whole "
                            "number from %ld to %ld",
                            cmd->cmd->name, arg, what->lo, what->hi);
    }
    return NULL;
}

static const char *set_header_timeout(cmd_parms *cmd, void *d,
                                      const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);

    (void)d;
    if (err != NULL) {
        return err;
    }
    if (ev2_parse_header_timeout(arg, &ev2_cfg.header_base_s,
                                 &ev2_cfg.header_max_s,
                                 &ev2_cfg.header_rate) != 0) {
        return apr_psprintf(cmd->pool,
                            "%s: invalid value '%s': expected off, or "
                            "seconds[-max seconds][,MinRate=bytes a "
                            "second] (1-3600 s), e.g. 20-40,MinRate=500",
                            cmd->cmd->name, arg);
    }
    return NULL;
}

static const char *set_worker_factor(cmd_parms *cmd, void *d, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);

    (void)d;
    if (err != NULL) {
        return err;
    }
    if (ev2_parse_factor(arg, &ev2_cfg.factor_milli) != 0) {
        return apr_psprintf(cmd->pool,
                            "%s: invalid value '%s': expected a number "
                            "from 0.001 to %.0f (fractions allowed)",
                            cmd->cmd->name, arg, EV2_MAX_FACTOR);
    }
    return NULL;
}

const command_rec ev2_cmds[] = {
    LISTEN_COMMANDS,
    AP_GRACEFUL_SHUTDOWN_TIMEOUT_COMMAND,
    AP_INIT_TAKE1("StartServers", set_int_directive, &start_servers_arg,
                  RSRC_CONF,
                  "Number of child processes launched at server startup "
                  "(1-20000, default 3)"),
    AP_INIT_TAKE1("MinSpareThreads", set_int_directive, &min_spare_arg,
                  RSRC_CONF,
                  "Minimum number of idle threads, to handle request spikes "
                  "(1-2147483647, default 75)"),
    AP_INIT_TAKE1("MaxSpareThreads", set_int_directive, &max_spare_arg,
                  RSRC_CONF,
                  "Maximum number of idle threads (1-2147483647, default 250)"),
    AP_INIT_TAKE1("MaxClients", set_int_directive, &max_workers_arg, RSRC_CONF,
                  "Deprecated name of MaxRequestWorkers (1-2147483647)"),
    AP_INIT_TAKE1("MaxRequestWorkers", set_int_directive, &max_workers_arg,
                  RSRC_CONF,
                  "Maximum number of threads alive at the same time "
                  "(1-2147483647, default 400)"),
    AP_INIT_TAKE1("ThreadsPerChild", set_int_directive, &threads_per_child_arg,
                  RSRC_CONF,
                  "Number of worker threads each child process creates "
                  "(1-100000, default 25)"),
    AP_INIT_TAKE1("ServerLimit", set_int_directive, &server_limit_arg,
                  RSRC_CONF,
                  "Maximum number of child processes (scoreboard slots; "
                  "1-20000, default 16)"),
    AP_INIT_TAKE1("ThreadLimit", set_int_directive, &thread_limit_arg,
                  RSRC_CONF,
                  "Maximum worker threads in a process (scoreboard size; "
                  "1-100000, default 64)"),
    AP_INIT_TAKE1("AsyncRequestWorkerFactor", set_worker_factor, NULL,
                  RSRC_CONF,
                  "How many connections a child may hold per idle worker "
                  "beyond ThreadsPerChild (0.001-100000, fractions allowed, "
                  "default 2)"),
    AP_INIT_TAKE1("AsyncHeaderTimeout", set_header_timeout, NULL, RSRC_CONF,
                  "How long a request header may take to arrive while it "
                  "waits in the listener, not in a worker: off, or "
                  "seconds[-max][,MinRate=bytes/s] (default 20-40,"
                  "MinRate=500)"),
    { NULL }
};

/* Stock event's warning for each reconciliation, with its code and text:
 * on the first pass over the configuration to the console (no server,
 * APLOG_STARTUP, a longer text), later to the error log.  The values
 * besides a->from and a->to are the final ones: ThreadsPerChild and
 * ServerLimit are settled before the checks that name them. */
#define EV2_WARN_FIRST  (APLOG_WARNING | APLOG_STARTUP)

/* The first pass's texts, to the console.  Returns 0 if a has none of its
 * own (then warn_in_log's text is used). */
static int warn_on_console(const ev2_adjustment_t *a)
{
    int tpc = ev2_cfg.threads_per_child;

    switch (a->what) {
    case EV2_ADJ_THREADS_OVER_LIMIT:
        ap_log_error(APLOG_MARK, EV2_WARN_FIRST, 0, NULL, APLOGNO(00507)
                     "WARNING: ThreadsPerChild of %d exceeds ThreadLimit "
                     "of %d threads, decreasing to %d. "
                     "To increase, please see the ThreadLimit directive.",
                     a->from, a->to, a->to);
        return 1;
    case EV2_ADJ_WORKERS_UNDER_TPC:
        ap_log_error(APLOG_MARK, EV2_WARN_FIRST, 0, NULL, APLOGNO(00511)
                     "WARNING: MaxRequestWorkers of %d is less than "
                     "ThreadsPerChild of %d, increasing to %d. "
                     "MaxRequestWorkers must be at least as large "
                     "as the number of threads in a single server.",
                     a->from, a->to, a->to);
        return 1;
    case EV2_ADJ_WORKERS_ROUNDED:
        ap_log_error(APLOG_MARK, EV2_WARN_FIRST, 0, NULL, APLOGNO(00513)
                     "WARNING: MaxRequestWorkers of %d is not an integer "
                     "multiple of ThreadsPerChild of %d, decreasing to "
                     "nearest multiple %d, for a maximum of %d servers.",
                     a->from, tpc, a->to, a->to / tpc);
        return 1;
    case EV2_ADJ_WORKERS_OVER_SLOTS:
        ap_log_error(APLOG_MARK, EV2_WARN_FIRST, 0, NULL, APLOGNO(00515)
                     "WARNING: MaxRequestWorkers of %d would require %d "
                     "servers and would exceed ServerLimit of %d, "
                     "decreasing to %d. To increase, please see the "
                     "ServerLimit directive.", a->from, a->from / tpc,
                     ev2_cfg.server_limit, a->to);
        return 1;
    case EV2_ADJ_SERVER_LIMIT_FIXED:
    case EV2_ADJ_THREAD_LIMIT_FIXED:
    case EV2_ADJ_START_OVER_LIMIT:
    case EV2_ADJ_SPARE_RAISED:
        break;
    }
    return 0;
}

/* Restarts' texts, to the error log (first pass: with APLOG_STARTUP). */
static void warn_in_log(server_rec *s, int startup, const ev2_adjustment_t *a)
{
    int tpc = ev2_cfg.threads_per_child;
    int level = startup ? EV2_WARN_FIRST : APLOG_WARNING;

    s = startup ? NULL : s;
    switch (a->what) {
    case EV2_ADJ_SERVER_LIMIT_FIXED:
        ap_log_error(APLOG_MARK, level, 0, s, APLOGNO(00501)
                     "changing ServerLimit to %d from original value of %d "
                     "not allowed during restart", a->from, a->to);
        break;
    case EV2_ADJ_THREAD_LIMIT_FIXED:
        ap_log_error(APLOG_MARK, level, 0, s, APLOGNO(00506)
                     "changing ThreadLimit to %d from original value of %d "
                     "not allowed during restart", a->from, a->to);
        break;
    case EV2_ADJ_THREADS_OVER_LIMIT:
        ap_log_error(APLOG_MARK, level, 0, s, APLOGNO(00508)
                     "ThreadsPerChild of %d exceeds ThreadLimit "
                     "of %d, decreasing to match", a->from, a->to);
        break;
    case EV2_ADJ_WORKERS_UNDER_TPC:
        ap_log_error(APLOG_MARK, level, 0, s, APLOGNO(00512)
                     "MaxRequestWorkers of %d is less than "
                     "ThreadsPerChild of %d, increasing to match",
                     a->from, a->to);
        break;
    case EV2_ADJ_WORKERS_ROUNDED:
        ap_log_error(APLOG_MARK, level, 0, s, APLOGNO(00514)
                     "MaxRequestWorkers of %d is not an integer multiple "
                     "of ThreadsPerChild of %d, decreasing to nearest "
                     "multiple %d", a->from, tpc, a->to);
        break;
    case EV2_ADJ_WORKERS_OVER_SLOTS:
        ap_log_error(APLOG_MARK, level, 0, s, APLOGNO(00516)
                     "MaxRequestWorkers of %d would require %d servers "
                     "and exceed ServerLimit of %d, decreasing to %d",
                     a->from, a->from / tpc, ev2_cfg.server_limit, a->to);
        break;
    case EV2_ADJ_START_OVER_LIMIT:
        /* Stock lowers it without a word; we say so. */
        ap_log_error(APLOG_MARK, level, 0, s, EV2LOG(002)
                     "WARNING: StartServers of %d exceeds the %d children "
                     "MaxRequestWorkers allows; lowered", a->from, a->to);
        break;
    case EV2_ADJ_SPARE_RAISED:
        /* silent, as in stock */
        break;
    }
}

/* Stock event's warning for each reconciliation, with its code and text:
 * on the first pass over the configuration to the console (no server,
 * APLOG_STARTUP, a longer text where stock has one), later to the error
 * log.  The values besides a->from and a->to are the final ones:
 * ThreadsPerChild and ServerLimit are settled before the checks that name
 * them. */
static void warn_adjustment(server_rec *s, int startup,
                            const ev2_adjustment_t *a)
{
    if (!startup || !warn_on_console(a)) {
        warn_in_log(s, startup, a);
    }
}

/* Reconcile values that are each valid but conflict; warn, as stock does. */
int ev2_check_config(apr_pool_t *p, apr_pool_t *plog, apr_pool_t *ptemp,
                     server_rec *s)
{
    ev2_adjustment_t adj[EV2_MAX_ADJUSTMENTS];
    int startup = is_startup_pass();
    int i, n;

    (void)p; (void)plog; (void)ptemp;
    n = ev2_config_reconcile(&ev2_cfg, &ev2_retained->first_server_limit,
                             &ev2_retained->first_thread_limit, adj);
    for (i = 0; i < n; i++) {
        warn_adjustment(s, startup, &adj[i]);
    }
    return OK;
}

int ev2_pre_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp)
{
    int no_detach, foreground;
    static const char key[] = "mpm_event2_retained";

    (void)plog; (void)ptemp;
    if (ap_exists_config_define("DEBUG")) {
        ev2_one_process = 1;
        foreground = 1;
        no_detach = 0;
    }
    else {
        ev2_one_process = ap_exists_config_define("ONE_PROCESS");
        no_detach = ap_exists_config_define("NO_DETACH");
        foreground = ap_exists_config_define("FOREGROUND");
    }

    ev2_retained = ap_retained_data_get(key);
    if (!ev2_retained) {
        ev2_retained = ap_retained_data_create(key, sizeof(*ev2_retained));
        ev2_retained->mpm = ap_unixd_mpm_get_retained_data();
    }
    if (ev2_retained->mpm->baton != ev2_retained) {
        /* Another MPM ran before us in this process: nothing it left
         * (children, scoreboard) is ours to reuse gracefully. */
        ev2_retained->mpm->was_graceful = 0;
        ev2_retained->mpm->baton = ev2_retained;
    }
    ev2_retained->mpm->mpm_state = AP_MPMQ_STARTING;
    ++ev2_retained->mpm->module_loads;

    if (ev2_retained->mpm->module_loads == 2 && !ev2_one_process
        && !foreground) {
        apr_status_t rv;

        ap_fatal_signal_setup(ap_server_conf, pconf);
        rv = apr_proc_detach(no_detach ? APR_PROC_DETACH_FOREGROUND
                                       : APR_PROC_DETACH_DAEMONIZE);
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, rv, NULL, APLOGNO(00496)
                         "apr_proc_detach failed");
            return HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    ap_listen_pre_config();
    ev2_cfg.daemons_to_start = EV2_DEFAULT_START_DAEMONS;
    ev2_cfg.min_spare_threads = EV2_DEFAULT_MIN_SPARE_THREADS;
    ev2_cfg.max_spare_threads = EV2_DEFAULT_MAX_SPARE_THREADS;
    ev2_cfg.max_workers = EV2_DEFAULT_MAX_WORKERS;
    ev2_cfg.server_limit = EV2_DEFAULT_SERVER_LIMIT;
    ev2_cfg.thread_limit = EV2_DEFAULT_THREAD_LIMIT;
    ev2_cfg.threads_per_child = EV2_DEFAULT_THREADS_PER_CHILD;
    ev2_cfg.factor_milli = EV2_DEFAULT_FACTOR_MILLI;
    ev2_cfg.header_base_s = 20;
    ev2_cfg.header_max_s = 40;
    ev2_cfg.header_rate = 500;
    ev2_cfg.active_daemons_limit = ev2_cfg.max_workers
                                   / ev2_cfg.threads_per_child;
    return OK;
}

/* Make sure the retained per-bucket spawn rates cover num_buckets. */
static void size_spawn_rates(int num_buckets)
{
    int i;

    if (ev2_retained->mpm->max_buckets < num_buckets) {
        int *rates = apr_pcalloc(ap_pglobal, num_buckets * sizeof(int));

        for (i = 0; i < ev2_retained->mpm->max_buckets; i++) {
            rates[i] = ev2_retained->idle_spawn_rate[i];
        }
        ev2_retained->idle_spawn_rate = rates;
        ev2_retained->mpm->max_buckets = num_buckets;
    }
    for (i = 0; i < num_buckets; i++) {
        if (ev2_retained->idle_spawn_rate[i] < 1) {
            ev2_retained->idle_spawn_rate[i] = 1;
        }
    }
}

int ev2_open_logs(apr_pool_t *p, apr_pool_t *plog, apr_pool_t *ptemp,
                  server_rec *s)
{
    int startup = is_startup_pass();
    int level_flags = startup ? APLOG_STARTUP : 0;
    server_rec *log_s = startup ? NULL : s;
    int num_buckets, i;
    ap_listen_rec **listen_buckets;
    apr_status_t rv;

    (void)plog; (void)ptemp;
    ev2_pconf = p;
    if (ap_setup_listeners(ap_server_conf) < 1) {
        ap_log_error(APLOG_MARK, APLOG_ALERT | level_flags, 0, log_s,
                     EV2LOG(060) "no listening sockets available, "
                     "shutting down");
        return !OK;
    }

    if (ev2_one_process) {
        num_buckets = 1;
    }
    else if (ev2_retained->mpm->was_graceful) {
        /* Keep the buckets the running children were started with. */
        num_buckets = ev2_retained->mpm->num_buckets;
    }
    else {
        num_buckets = 0;
    }
    rv = ap_duplicate_listeners(p, ap_server_conf, &listen_buckets,
                                &num_buckets);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT | level_flags, rv, log_s,
                     EV2LOG(061) "could not duplicate listeners");
        return !OK;
    }

    ev2_buckets = apr_pcalloc(p, num_buckets * sizeof(*ev2_buckets));
    for (i = 0; i < num_buckets; i++) {
        if (!ev2_one_process
            && (rv = ap_mpm_podx_open(p, &ev2_buckets[i].pod))
               != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_CRIT | level_flags, rv, log_s,
                         EV2LOG(062) "could not open pipe-of-death");
            return !OK;
        }
        ev2_buckets[i].listeners = listen_buckets[i];
    }
    size_spawn_rates(num_buckets);
    ev2_retained->mpm->num_buckets = num_buckets;
    return OK;
}

/* RequestReadTimeout's stage= ("header=" or "body=") in the sections
 * under d that apply to one server (for the main server, those outside
 * <VirtualHost>; for a vhost, its section's children), the last one
 * winning as in mod_reqtimeout, into *base_s..: 1 if found. */
static int find_reqtimeout(const ap_directive_t *d, const char *stage,
                           int *base_s, int *max_s, int *rate)
{
    apr_size_t klen = strlen(stage);
    int found = 0;

    for (; d; d = d->next) {
        if (!strcasecmp(d->directive, "<VirtualHost")) {
            continue;
        }
        if (d->first_child) {
            found |= find_reqtimeout(d->first_child, stage, base_s, max_s,
                                     rate);
            continue;
        }
        if (!strcasecmp(d->directive, "RequestReadTimeout") && d->args) {
            const char *args = d->args, *tok;

            while (*(tok = ap_getword_white(ap_pglobal, &args))) {
                if (!strncasecmp(tok, stage, klen)
                    && ev2_parse_header_timeout(tok + klen, base_s, max_s,
                                                rate) == 0) {
                    found = 1;
                }
            }
        }
    }
    return found;
}

/* With mod_reqtimeout loaded, a header waits in the listener as long as
 * RequestReadTimeout's header= allows (when it sets one), instead of
 * AsyncHeaderTimeout: 1 if so.  A client that runs out of it goes to a
 * worker late (header.c), whose reads then time out at once: the 408 is
 * httpd's, the log line ours (mod_reqtimeout's clock starts only when the
 * worker reads, so its own limit is not reached). */
static int header_timeout_from_reqtimeout(void)
{
    int base = 20, max = 40, rate = 500;    /* mod_reqtimeout's default */

    if (ev2_cfg.header_base_s == 0
        || !ap_find_linked_module("mod_reqtimeout.c")) {
        return 0;
    }
    find_reqtimeout(ap_conftree, "header=", &base, &max, &rate);
    if (base > 0) {
        ev2_cfg.header_base_s = base;
        ev2_cfg.header_max_s = max;
        ev2_cfg.header_rate = rate;
        return 1;
    }
    return 0;
}

/* The <VirtualHost> section that defined vs (where its definition began:
 * httpd records the file and line), anywhere in the tree. */
static const ap_directive_t *vhost_section(const ap_directive_t *d,
                                           const server_rec *vs)
{
    const ap_directive_t *found;

    for (; d; d = d->next) {
        if (!strcasecmp(d->directive, "<VirtualHost")) {
            if (vs->defn_name && d->filename
                && d->line_num >= 0
                && (unsigned)d->line_num == vs->defn_line_number
                && !strcmp(d->filename, vs->defn_name)) {
                return d;
            }
            continue;
        }
        if (d->first_child
            && (found = vhost_section(d->first_child, vs)) != NULL) {
            return found;
        }
    }
    return NULL;
}

/* vs's header timeouts: the main server's, or with mod_reqtimeout a
 * header= of its own in its section (header=0 there turns mod_reqtimeout's
 * header limit off for it, so AsyncHeaderTimeout's own values apply, as
 * for the main server). */
static void header_timeout_of(ev2_srv_t *sc, server_rec *vs,
                              server_rec *main_s, const char *main_src,
                              const ev2_config_t *async_only)
{
    const ap_directive_t *sect;
    int base = 0, max = 0, rate = 0;

    sc->header_base_s = ev2_cfg.header_base_s;
    sc->header_max_s = ev2_cfg.header_max_s;
    sc->header_rate = ev2_cfg.header_rate;
    sc->header_src = main_src;
    if (vs == main_s || ev2_cfg.header_base_s == 0
        || !ap_find_linked_module("mod_reqtimeout.c")
        || (sect = vhost_section(ap_conftree, vs)) == NULL
        || !find_reqtimeout(sect->first_child, "header=", &base, &max,
                            &rate)) {
        return;
    }
    if (base > 0) {
        sc->header_base_s = base;
        sc->header_max_s = max;
        sc->header_rate = rate;
        sc->header_src = "RequestReadTimeout";
    }
    else {
        sc->header_base_s = async_only->header_base_s;
        sc->header_max_s = async_only->header_max_s;
        sc->header_rate = async_only->header_rate;
        sc->header_src = "AsyncHeaderTimeout";
    }
}

/* One server's body wait, as another's. */
static void body_wait_copy(ev2_srv_t *to, const ev2_srv_t *from)
{
    to->body_base_s = from->body_base_s;
    to->body_max_s = from->body_max_s;
    to->body_rate = from->body_rate;
}

/* The body wait of the main server (vs NULL) or of vhost vs, into *sc:
 * with mod_reqtimeout, its RequestReadTimeout body= (a vhost's own, else
 * the main server's, else mod_reqtimeout's default 20,MinRate=500).
 * Without it, or with body=0 (mod_reqtimeout's body limit off), 0: the
 * body shares the header's wait (AsyncHeaderTimeout), so that a body
 * held here is bounded all the same. */
static void body_timeout_of(ev2_srv_t *sc, server_rec *vs,
                            const ev2_srv_t *main_sc)
{
    const ap_directive_t *sect;
    int base = 20, max = 0, rate = 500;

    sc->body_base_s = sc->body_max_s = sc->body_rate = 0;
    if (ev2_cfg.header_base_s == 0
        || !ap_find_linked_module("mod_reqtimeout.c")) {
        return;
    }
    if (vs == NULL) {
        find_reqtimeout(ap_conftree, "body=", &base, &max, &rate);
    }
    else if ((sect = vhost_section(ap_conftree, vs)) == NULL
             || !find_reqtimeout(sect->first_child, "body=", &base, &max,
                                 &rate)) {
        body_wait_copy(sc, main_sc);
        return;
    }
    sc->body_base_s = base;
    sc->body_max_s = max;
    sc->body_rate = rate;
}

/* The queue of kind state with this timeout, created on first use; the
 * vhosts that share a timeout share the queue. */
static ev2_tq_t *queue_for(apr_hash_t *by_timeout, conn_state_e state,
                           apr_interval_time_t timeout, apr_pool_t *p)
{
    ev2_tq_t *q = apr_hash_get(by_timeout, &timeout, sizeof(timeout));

    if (!q) {
        apr_interval_time_t *key = apr_pmemdup(p, &timeout, sizeof(timeout));

        q = ev2_tq_create(ev2_queues, (int)state, timeout);
        apr_hash_set(by_timeout, key, sizeof(*key), q);
    }
    return q;
}

/* For each vhost, a queue per parking state (conn.c's table says which
 * states park and with what timeout), the main server's first. */
int ev2_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                    server_rec *s)
{
    apr_hash_t *by_timeout[EV2_STATES];
    ev2_config_t async_only;
    ev2_srv_t main_body;
    const char *main_src;
    server_rec *vs;
    int st;

    (void)plog;
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG) {
        return OK;
    }
    for (st = 0; st < EV2_STATES; st++) {
        by_timeout[st] = apr_hash_make(ptemp);
    }
    async_only = ev2_cfg;
    main_src = header_timeout_from_reqtimeout() ? "RequestReadTimeout"
                                                : "AsyncHeaderTimeout";
    body_timeout_of(&main_body, NULL, NULL);
    ev2_header_by_vhost = 0;
    ev2_queues = ev2_tq_set_create(pconf);
    for (vs = s; vs; vs = vs->next) {
        ev2_srv_t *sc = apr_pcalloc(pconf, sizeof(*sc));

        header_timeout_of(sc, vs, s, main_src, &async_only);
        if (vs == s) {
            body_wait_copy(sc, &main_body);     /* read just above */
        }
        else {
            body_timeout_of(sc, vs, &main_body);
        }
        if (sc->header_base_s != ev2_cfg.header_base_s
            || sc->header_max_s != ev2_cfg.header_max_s
            || sc->header_rate != ev2_cfg.header_rate
            || sc->body_base_s != main_body.body_base_s
            || sc->body_max_s != main_body.body_max_s
            || sc->body_rate != main_body.body_rate) {
            ev2_header_by_vhost = 1;
        }

        for (st = 0; st < EV2_STATES; st++) {
            const ev2_state_t *row = ev2_state_of((conn_state_e)st);

            if (row) {
                sc->q[st] = queue_for(by_timeout[st], (conn_state_e)st,
                                      row->timeout(vs), pconf);
            }
        }
        ap_set_module_config(vs->module_config, &mpm_event2_module, sc);
    }
    return OK;
}
