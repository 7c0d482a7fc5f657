/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * mod_ev2_canary.c - a deliberately broken handler, built with the same
 * sanitizer as the MPM by t/sanitize/run.sh, to prove that a report from
 * inside a child's worker thread really reaches the report files (the
 * preloaded runtime, its options, the log directory's permissions).
 * Never loaded outside that control run.
 *
 *   /canary/heap   reads one byte past a heap block (ASan)
 *   /canary/ubsan  overflows a signed int (UBSan)
 *   /canary/race   two threads write one variable unlocked (TSan)
 */

#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "httpd.h"
#include "http_config.h"
#include "http_protocol.h"

static volatile int shared_counter;

static void *bump(void *arg)
{
    (void)arg;
    shared_counter++;
    return NULL;
}

static int canary_handler(request_rec *r)
{
    if (strncmp(r->uri, "/canary/", 8) != 0) {
        return DECLINED;
    }
    if (!strcmp(r->uri, "/canary/heap")) {
        char *p = malloc(8);
        volatile size_t past = 8;
        volatile char c;

        memset(p, 0, 8);
        c = p[past];
        (void)c;
        free(p);
    }
    else if (!strcmp(r->uri, "/canary/ubsan")) {
        volatile int big = INT_MAX;
        int sum = big + (int)strlen(r->uri);

        ap_rprintf(r, "%d\n", sum);
    }
    else if (!strcmp(r->uri, "/canary/race")) {
        pthread_t t;

        if (pthread_create(&t, NULL, bump, NULL) == 0) {
            shared_counter++;
            pthread_join(t, NULL);
        }
    }
    ap_set_content_type(r, "text/plain");
    ap_rputs("canary\n", r);
    return OK;
}

static void canary_hooks(apr_pool_t *p)
{
    (void)p;
    ap_hook_handler(canary_handler, NULL, NULL, APR_HOOK_FIRST);
}

/* Built with the MPM's flags, -fvisibility=hidden among them. */
extern __attribute__((visibility("default")))
module AP_MODULE_DECLARE_DATA ev2_canary_module;

module AP_MODULE_DECLARE_DATA ev2_canary_module = {
    STANDARD20_MODULE_STUFF,
    NULL,                       /* per-directory config */
    NULL,                       /* merge per-directory config */
    NULL,                       /* per-server config */
    NULL,                       /* merge per-server config */
    NULL,                       /* directives */
    canary_hooks,
    0                           /* flags */
};
