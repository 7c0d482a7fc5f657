/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * header.c - a request header that has not fully arrived waits in the
 * listener (EV2_STATE_READ_HEADER), not in a worker: a new connection, or
 * a keep-alive connection whose next request has begun.  The listener
 * peeks at the socket (MSG_PEEK: httpd's filters later read the bytes
 * exactly as sent) and asks reqscan.c whether the header is complete;
 * only then does a worker read it, without waiting on the client.  So a
 * client that trickles its header (slowloris) holds a parked connection,
 * not a worker.
 *
 * Bounded like mod_reqtimeout's header=20-40,MinRate=500
 * (AsyncHeaderTimeout): the queue of this state is a one-second tick, and
 * at each tick the listener compares the time against
 * ev2_header_deadline().  A client that runs out of time goes to a
 * worker marked late; its reads then time out at once (an input filter)
 * and httpd answers as it does a timed-out read (408 where it sends
 * one).
 *
 * Not covered here (issue 10): TLS after the handshake (the stream is
 * encrypted; only a ClientHello is waited for), bytes httpd's input
 * filters already hold (a pipelined partial request), request bodies.
 * Listener thread only, except ev2_header_late() (a worker's) and
 * ev2_header_register() (the hooks').
 */

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "ev2.h"
#include "http_protocol.h"
#include "http_vhost.h"
#include "util_filter.h"
#include "http_ssl.h"
#include "reqscan.h"

/* How often the listener looks at the deadlines of waiting headers. */
#define EV2_HEADER_TICK                 apr_time_from_sec(1)

/* The listener's peek buffer: one thread, so one buffer. */
static char peek_buf[EV2_HEADER_PEEK_MAX];

typedef enum {
    EV2_HEADER_READY,           /* a worker can read it now */
    EV2_HEADER_WAIT,            /* not all there yet */
    EV2_HEADER_BODY,            /* the header is, its body not yet: a
                                 * worker reads ahead (hold.c) */
    EV2_HEADER_EOF              /* the client closed */
} ev2_header_e;

apr_interval_time_t ev2_header_tick(const server_rec *s)
{
    (void)s;
    return EV2_HEADER_TICK;
}

/* A waiting header's socket reports readable only once more bytes than
 * the listener has seen wait, or the client shut down: peeking consumes
 * nothing, so without this a socket with a partial header would be
 * readable again the moment it is re-armed (a spin). */
static void set_lowat(ev2_conn_t *cs, apr_size_t seen)
{
    int v = (int)seen + 1;

    if (setsockopt(ev2_os_sock(cs->sd), SOL_SOCKET, SO_RCVLOWAT, &v,
                   sizeof(v)) == 0) {
        cs->is_lowat = v > 1;
    }
}

/* Before a worker (or a close) takes cs: reads see every byte again. */
static void clear_lowat(ev2_conn_t *cs)
{
    if (cs->is_lowat) {
        set_lowat(cs, 0);
    }
}

static ev2_header_e header_check(ev2_conn_t *cs)
{
    apr_size_t seen = cs->header_bytes, header_len = 0;
    int was_waiting = cs->is_lowat;
    ev2_scan_e scan;
    ssize_t n = recv(ev2_os_sock(cs->sd), peek_buf, sizeof(peek_buf),
                     MSG_PEEK | MSG_DONTWAIT);

    if (n == 0) {
        return EV2_HEADER_EOF;
    }
    if (n < 0) {
        /* Nothing yet: wait.  A socket error: the worker sees it. */
        return errno == EAGAIN || errno == EWOULDBLOCK ? EV2_HEADER_WAIT
                                                        : EV2_HEADER_READY;
    }
    if (was_waiting && (apr_size_t)n <= seen) {
        /* Readable with nothing new: the client shut down its side after
         * part of a header.  A worker reads it and httpd answers it. */
        return EV2_HEADER_READY;
    }
    cs->header_bytes = (apr_size_t)n;
    scan = ev2_reqscan_req(peek_buf, (apr_size_t)n, sizeof(peek_buf),
                           EV2_BODY_MAX, &header_len);
    if (scan != EV2_SCAN_INCOMPLETE) {
        return EV2_HEADER_READY;
    }
    if (header_len > 0) {
        /* The kernel need not hold a body: a worker takes it in. */
        ev2_header_body_begins(cs, header_len);
        return EV2_HEADER_BODY;
    }
    set_lowat(cs, (apr_size_t)n);
    return EV2_HEADER_WAIT;
}

/* Listener: cs (parked or not) now waits for its header here; 0 if it
 * could not be parked (the caller hands it to a worker). */
static int wait_here(ev2_conn_t *cs, int is_parked)
{
    cs->header_since = ev2_now();
    cs->is_waiting = 1;
    if (is_parked) {
        return ev2_conn_repark(cs, EV2_STATE_READ_HEADER);
    }
    cs->pub.state = EV2_STATE_READ_HEADER;
    return ev2_conn_park(cs);
}

/* cs waits for its request from now on, unless it already did (its
 * time then runs on from then).  Listener or the worker that owns cs. */
void ev2_header_wait_begin(ev2_conn_t *cs)
{
    if (!cs->is_waiting) {
        cs->header_since = ev2_now();
        cs->is_waiting = 1;
    }
}

/* cs's header is whole (header_len bytes), its body still on its way:
 * from now on the body's wait applies, if it has one of its own.  The
 * listener or the worker that owns cs. */
void ev2_header_body_begins(ev2_conn_t *cs, apr_size_t header_len)
{
    if (cs->body_since == 0) {
        cs->body_since = ev2_now();
        cs->body_from = header_len;
    }
}

/* Whether cs now waits for a body with a wait of its own (mod_reqtimeout's
 * body=), rather than for its header. */
static int in_body_wait(const ev2_conn_t *cs)
{
    return cs->body_since != 0 && cs->hsc->body_base_s > 0;
}

/* Of what cs has sent, the body's bytes. */
static apr_size_t body_bytes(const ev2_conn_t *cs)
{
    return cs->header_bytes > cs->body_from
           ? cs->header_bytes - cs->body_from : 0;
}

/* Listener: cs, off every queue, to a worker: to read its request, or,
 * its body still to come, to read ahead for it (hold.c). */
static void to_worker(ev2_conn_t *cs, ev2_header_e why)
{
    clear_lowat(cs);
    if (why == EV2_HEADER_BODY) {
        ev2_header_wait_begin(cs);
        cs->is_held = 1;
        cs->pub.state = EV2_STATE_READ_HEADER;
    }
    else {
        cs->pub.state = CONN_STATE_PROCESSING;
    }
    ev2_conn_push(cs);
}

int ev2_header_by_vhost;

/* Listener: the address-based vhost of a connection without a conn_rec
 * yet, found the way httpd finds a new connection's c->base_server (the
 * lookup reads only the local address of the conn_rec it is given). */
static void header_vhost(ev2_conn_t *cs)
{
    apr_sockaddr_t *local = NULL;
    conn_rec probe;

    if (apr_socket_addr_get(&local, APR_LOCAL, cs->sd) != APR_SUCCESS
        || !local) {
        return;
    }
    memset(&probe, 0, sizeof(probe));
    probe.local_addr = local;
    probe.base_server = ap_server_conf;
    ap_update_vhost_given_ip(&probe);
    if (probe.base_server && ev2_srv_of(probe.base_server)) {
        cs->hsc = ev2_srv_of(probe.base_server);
    }
}

/* Listener: a connection just accepted. */
void ev2_header_accepted(ev2_conn_t *cs)
{
    ev2_header_e why = EV2_HEADER_READY;

    if (ev2_cfg.header_base_s > 0) {
        if (ev2_header_by_vhost) {
            header_vhost(cs);
        }
        switch ((why = header_check(cs))) {
        case EV2_HEADER_WAIT:
            if (wait_here(cs, 0)) {
                return;
            }
            break;
        case EV2_HEADER_EOF:
            /* Gone before it said anything: close it here. */
            ev2_conn_pool_put(cs->p);
            return;
        case EV2_HEADER_READY:
        case EV2_HEADER_BODY:
            break;
        }
    }
    to_worker(cs, why);
}

/* Listener: a parked keep-alive connection became readable.  Returns 1 if
 * its next request has begun but not fully arrived, and it now waits
 * here; 0 when it goes to a worker (the caller's part). */
int ev2_header_keepalive(ev2_conn_t *cs)
{
    ev2_header_e why;

    /* Only HTTP/1.x (mod_http2 parks its idle connections here too, and
     * reads for itself). */
    if (!ev2_hold_applies(cs)) {
        return 0;
    }
    if (ap_ssl_conn_is_ssl(cs->c)) {
        /* Only the filters can tell what TLS brought: a worker reads
         * ahead (hold.c). */
        ev2_conn_unpark(cs);
        to_worker(cs, EV2_HEADER_BODY);
        return 1;
    }
    why = header_check(cs);
    if (why == EV2_HEADER_WAIT && wait_here(cs, 1)) {
        return 1;
    }
    if (why == EV2_HEADER_BODY) {
        ev2_conn_unpark(cs);
        to_worker(cs, why);
        return 1;
    }
    clear_lowat(cs);
    return 0;
}

/* Whether cs has run out of its time to send its request. */
static int header_is_late(const ev2_conn_t *cs)
{
    if (in_body_wait(cs)) {
        return ev2_now() >= ev2_header_deadline(cs->body_since,
                                                body_bytes(cs),
                                                cs->hsc->body_base_s,
                                                cs->hsc->body_max_s,
                                                cs->hsc->body_rate);
    }
    return ev2_now() >= ev2_header_deadline(cs->header_since,
                                            cs->header_bytes,
                                            cs->hsc->header_base_s,
                                            cs->hsc->header_max_s,
                                            cs->hsc->header_rate);
}

/* The table's ready handler: more of the header arrived (or EOF). */
void ev2_header_ready(ev2_conn_t *cs)
{
    ev2_header_e why;

    if (cs->is_held) {
        /* What arrived is for a worker to read (hold.c).  Each read ahead
         * parks it anew, at the back of its queue, so a client that sends
         * a byte more often than the queue's tick would never meet the
         * expiry there: its time is checked here. */
        ev2_conn_unpark(cs);
        if (header_is_late(cs)) {
            cs->is_header_late = 1;
            to_worker(cs, EV2_HEADER_READY);
            return;
        }
        to_worker(cs, EV2_HEADER_BODY);
        return;
    }
    switch ((why = header_check(cs))) {
    case EV2_HEADER_WAIT:
        if (ev2_poller_arm(ev2_child->poller, &cs->pe, EV2_POLL_IN)
            == APR_SUCCESS) {
            return;
        }
        break;
    case EV2_HEADER_EOF:
        if (!cs->c) {
            ev2_conn_unpark(cs);
            ev2_conn_pool_put(cs->p);
            return;
        }
        break;
    case EV2_HEADER_READY:
    case EV2_HEADER_BODY:
        break;
    }
    ev2_conn_unpark(cs);
    to_worker(cs, why);
}

/* The table's expiry handler, at every tick: still within its time (the
 * queue's deadline is only the tick), or late. */
void ev2_header_expired(ev2_conn_t *cs)
{
    if (!header_is_late(cs) && ev2_conn_repark(cs, EV2_STATE_READ_HEADER)) {
        return;
    }
    cs->is_header_late = 1;
    to_worker(cs, EV2_HEADER_READY);
}

/* The table's early close (to make room): a connection that has not even
 * sent its header is closed here; one with a conn_rec goes through the
 * short lingering close. */
void ev2_header_closed_early(ev2_conn_t *cs)
{
    clear_lowat(cs);
    if (!cs->c) {
        ev2_conn_pool_put(cs->p);
        return;
    }
    apr_table_setn(cs->c->notes, "short-lingering-close", "1");
    if (!ev2_linger_start(cs)) {
        cs->pub.state = CONN_STATE_LINGER;
        ev2_conn_push(cs);
    }
}

/* A late connection's input filter: a read that would wait for the
 * client times out at once instead, so httpd answers what it has as a
 * timed-out request (the socket's own timeout would not do: httpd resets
 * it to Timeout at each request).  It sits above every other connection
 * filter: below it, mod_reqtimeout (+ 8) would turn a blocking line read
 * into non-blocking ones and wait on the socket itself for its own full
 * header time, which starts only when the worker reads, so a late client
 * would get its time twice. */
static ap_filter_rec_t *late_filter;

static apr_status_t late_read(ap_filter_t *f, apr_bucket_brigade *bb,
                              ap_input_mode_t mode, apr_read_type_e block,
                              apr_off_t readbytes)
{
    apr_status_t rv = ap_get_brigade(f->next, bb, mode, APR_NONBLOCK_READ,
                                     readbytes);

    if (block == APR_BLOCK_READ
        && (APR_STATUS_IS_EAGAIN(rv)
            || (rv == APR_SUCCESS && APR_BRIGADE_EMPTY(bb)))) {
        return APR_TIMEUP;
    }
    return rv;
}

void ev2_header_register(void)
{
    late_filter = ap_register_input_filter("EV2_HEADER_LATE", late_read, NULL,
                                           AP_FTYPE_CONNECTION);
}

/* Worker: cs ran out of its header time: logged like mod_reqtimeout's,
 * and its reads no longer wait (until the caller removes the filter
 * returned). */
ap_filter_t *ev2_header_late(ev2_conn_t *cs)
{
    cs->is_header_late = 0;
    if (in_body_wait(cs)) {
        ap_log_cerror(APLOG_MARK, APLOG_INFO, 0, cs->c, EV2LOG(104)
                      "Request body read timeout (RequestReadTimeout, %"
                      APR_SIZE_T_FMT " body bytes in %" APR_TIME_T_FMT " s)",
                      body_bytes(cs),
                      apr_time_sec(ev2_now() - cs->body_since));
    }
    else {
        ap_log_cerror(APLOG_MARK, APLOG_INFO, 0, cs->c, EV2LOG(085)
                      "Request header read timeout (%s, %"
                      APR_SIZE_T_FMT " bytes in %" APR_TIME_T_FMT " s)",
                      cs->hsc->header_src, cs->header_bytes,
                      apr_time_sec(ev2_now() - cs->header_since));
    }
    return ap_add_input_filter_handle(late_filter, NULL, NULL, cs->c);
}
