/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * mod_ev2_clog.c - a test fixture, never installed: it marks connections
 * as having input filters that cannot run asynchronously
 * (c->clogging_input_filters), the way a third-party protocol module
 * would.  An async MPM must then serve such a connection worker-style,
 * with one thread for its whole life, and it must still work.
 *
 *   Ev2Clog On      in a <VirtualHost>: clog connections to that vhost's
 *                   address (decided from c->base_server).
 *
 * It also sets the response header "X-Ev2-Clogged: 1" so a test can see
 * that the fixture ran for the request it got.
 */

#include "httpd.h"
#include "http_config.h"
#include "http_connection.h"
#include "http_protocol.h"
#include "http_request.h"

module AP_MODULE_DECLARE_DATA ev2_clog_module;

typedef struct {
    int clog;
} clog_srv_t;

static void *clog_create_srv(apr_pool_t *p, server_rec *s)
{
    (void)s;
    return apr_pcalloc(p, sizeof(clog_srv_t));
}

static const char *clog_set(cmd_parms *cmd, void *d, int on)
{
    clog_srv_t *sc = ap_get_module_config(cmd->server->module_config,
                                          &ev2_clog_module);
    (void)d;
    sc->clog = on;
    return NULL;
}

static int clog_pre_connection(conn_rec *c, void *csd)
{
    clog_srv_t *sc = ap_get_module_config(c->base_server->module_config,
                                          &ev2_clog_module);
    (void)csd;
    if (!c->master && sc && sc->clog) {
        c->clogging_input_filters = 1;
    }
    return OK;
}

static int clog_fixups(request_rec *r)
{
    if (r->connection->clogging_input_filters) {
        apr_table_setn(r->headers_out, "X-Ev2-Clogged", "1");
    }
    return DECLINED;
}

static const command_rec clog_cmds[] = {
    AP_INIT_FLAG("Ev2Clog", clog_set, NULL, RSRC_CONF,
                 "Mark this vhost's connections as clogging (test only)"),
    { NULL }
};

static void clog_hooks(apr_pool_t *p)
{
    (void)p;
    ap_hook_pre_connection(clog_pre_connection, NULL, NULL, APR_HOOK_LAST);
    ap_hook_fixups(clog_fixups, NULL, NULL, APR_HOOK_MIDDLE);
}

AP_DECLARE_MODULE(ev2_clog) = {
    STANDARD20_MODULE_STUFF,
    NULL,
    NULL,
    clog_create_srv,
    NULL,
    clog_cmds,
    clog_hooks,
    AP_MODULE_FLAG_NONE
};
