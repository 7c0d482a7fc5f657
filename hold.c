/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * hold.c - a request that must come through httpd's input filters waits
 * parked too.  The listener can peek at a plain socket (header.c), but
 * not at what only the filters can give: the plain text of a TLS stream
 * (and the handshake before it), the start of a pipelined request that
 * the core input filter already read, a request body that the kernel
 * should not have to hold.  For those a worker reads ahead without
 * blocking (the bytes below this module's EV2_HOLD input filter, as the
 * filters under it give them), keeps them, and asks reqscan.c whether
 * the request, header and body, is all there.  If not, the connection
 * parks in EV2_STATE_READ_HEADER again and the worker is free; the
 * listener hands it back when its socket is readable, and the timeout
 * is the header's (AsyncHeaderTimeout, header.c), then, once the header
 * is whole, the body's where mod_reqtimeout gives one.  Once the request is
 * complete, the filter gives httpd's reads the kept bytes first, exactly
 * as they came, then reads through as if it were not there.
 *
 * What is kept lives in one buffer that grows as bytes arrive (a client
 * that trickles a byte at a time costs a byte a byte, not a bucket's
 * block), at most EV2_HOLD_MAX bytes.  A request longer than that goes
 * on as today: httpd reads the rest while it serves it.
 *
 * Worker threads only, on a connection the worker owns.
 */

#include <stdlib.h>
#include <string.h>

#include "ev2.h"
#include "http_protocol.h"
#include "http_ssl.h"
#include "util_filter.h"
#include "reqscan.h"

/* The most of a request kept: the most of a header the listener looks at
 * (header.c) and a body of up to EV2_BODY_MAX. */
#define EV2_HOLD_MAX            (EV2_HEADER_PEEK_MAX + EV2_BODY_MAX)

/* The first size of the buffer; it doubles as needed. */
#define EV2_HOLD_FIRST          1024

struct ev2_hold_t {
    ap_filter_t *f;             /* this connection's EV2_HOLD filter */
    char *buf;                  /* read ahead, not yet given to httpd */
    apr_size_t len, cap;
    apr_bucket_brigade *bb;     /* given to httpd's reads first */
    apr_bucket_brigade *tmp;    /* one read's worth, from below */
};

static ap_filter_rec_t *hold_filter;

static apr_status_t hold_cleanup(void *baton)
{
    ev2_hold_t *h = baton;

    free(h->buf);
    h->buf = NULL;
    h->len = h->cap = 0;
    return APR_SUCCESS;
}

/* Room for n more bytes in h's buffer; 0 if there is none to be had. */
static int hold_room(ev2_hold_t *h, apr_size_t n)
{
    apr_size_t cap = h->cap ? h->cap : EV2_HOLD_FIRST;
    char *buf;

    if (h->len + n <= h->cap) {
        return 1;
    }
    while (cap < h->len + n) {
        cap *= 2;
    }
    if ((buf = realloc(h->buf, cap)) == NULL) {
        return 0;
    }
    h->buf = buf;
    h->cap = cap;
    return 1;
}

/* What the buffer holds becomes a bucket (it takes the memory with it),
 * ahead of anything h->bb still has. */
static void hold_release(ev2_hold_t *h, apr_bucket_alloc_t *ba)
{
    apr_bucket *b;

    if (h->len == 0) {
        return;
    }
    b = apr_bucket_heap_create(h->buf, h->len, free, ba);
    APR_BRIGADE_INSERT_HEAD(h->bb, b);
    h->buf = NULL;
    h->len = h->cap = 0;
}

/* Drop the CR and LF bytes at the front of h->bb. */
static apr_status_t eat_crlf(apr_bucket_brigade *bb)
{
    while (!APR_BRIGADE_EMPTY(bb)) {
        apr_bucket *b = APR_BRIGADE_FIRST(bb);
        const char *s;
        apr_size_t n, i = 0;
        apr_status_t rv;

        if (APR_BUCKET_IS_METADATA(b)) {
            return APR_SUCCESS;
        }
        if ((rv = apr_bucket_read(b, &s, &n, APR_BLOCK_READ))
            != APR_SUCCESS) {
            return rv;
        }
        while (i < n && (s[i] == '\r' || s[i] == '\n')) {
            i++;
        }
        if (i < n) {
            if (i > 0) {
                apr_bucket_split(b, i);
                apr_bucket_delete(b);
            }
            return APR_SUCCESS;
        }
        apr_bucket_delete(b);
    }
    return APR_SUCCESS;
}

/* Drop the data buckets of no length at the front of bb (what is left
 * of one a line or a partition ended with).  Kept, they would make a
 * speculative read of "is there more?" (httpd's pipeline check) say yes
 * with nothing to give, and the response would wait unflushed for a
 * request that is not there. */
static void drop_empty(apr_bucket_brigade *bb)
{
    while (!APR_BRIGADE_EMPTY(bb)) {
        apr_bucket *b = APR_BRIGADE_FIRST(bb);

        if (APR_BUCKET_IS_METADATA(b) || b->length != 0) {
            return;
        }
        apr_bucket_delete(b);
    }
}

/* The filter: what was read ahead first, in whatever mode httpd asks;
 * straight through once that is all given. */
static apr_status_t hold_read(ap_filter_t *f, apr_bucket_brigade *bb,
                              ap_input_mode_t mode, apr_read_type_e block,
                              apr_off_t readbytes)
{
    ev2_hold_t *h = f->ctx;
    apr_bucket *b, *next;
    apr_status_t rv;

    hold_release(h, f->c->bucket_alloc);
    drop_empty(h->bb);
    if (APR_BRIGADE_EMPTY(h->bb) || mode == AP_MODE_INIT) {
        return ap_get_brigade(f->next, bb, mode, block, readbytes);
    }
    switch (mode) {
    case AP_MODE_GETLINE:
        /* A line, or what there is of it: httpd's line reader asks again
         * for the rest (from below, once h->bb is empty). */
        return apr_brigade_split_line(bb, h->bb, block, HUGE_STRING_LEN);
    case AP_MODE_READBYTES:
        if ((rv = apr_brigade_partition(h->bb, readbytes, &next))
            != APR_SUCCESS && rv != APR_INCOMPLETE) {
            return rv;
        }
        while ((b = APR_BRIGADE_FIRST(h->bb)) != next) {
            APR_BUCKET_REMOVE(b);
            APR_BRIGADE_INSERT_TAIL(bb, b);
        }
        return APR_SUCCESS;
    case AP_MODE_SPECULATIVE:
        for (b = APR_BRIGADE_FIRST(h->bb);
             b != APR_BRIGADE_SENTINEL(h->bb) && readbytes > 0;
             b = APR_BUCKET_NEXT(b)) {
            apr_bucket *copy;

            if (!APR_BUCKET_IS_METADATA(b)
                && b->length > (apr_size_t)readbytes) {
                /* Copy only the part asked for. */
                if ((rv = apr_bucket_copy(b, &copy)) != APR_SUCCESS) {
                    return rv;
                }
                copy->length = (apr_size_t)readbytes;
                APR_BRIGADE_INSERT_TAIL(bb, copy);
                break;
            }
            if ((rv = apr_bucket_copy(b, &copy)) != APR_SUCCESS) {
                return rv;
            }
            APR_BRIGADE_INSERT_TAIL(bb, copy);
            if (!APR_BUCKET_IS_METADATA(b)) {
                readbytes -= (apr_off_t)b->length;
            }
        }
        return APR_SUCCESS;
    case AP_MODE_EATCRLF:
        if ((rv = eat_crlf(h->bb)) != APR_SUCCESS) {
            return rv;
        }
        if (APR_BRIGADE_EMPTY(h->bb)) {
            return ap_get_brigade(f->next, bb, mode, block, readbytes);
        }
        return APR_SUCCESS;
    case AP_MODE_EXHAUSTIVE:
    default:
        APR_BRIGADE_CONCAT(bb, h->bb);
        return ap_get_brigade(f->next, bb, mode, block, readbytes);
    }
}

void ev2_hold_register(void)
{
    /* A smaller type sits nearer the request, so at CONNECTION + 1 this
     * filter reads what mod_ssl (+ 5) decrypted, after mod_remoteip (+ 7)
     * took any PROXY header, through mod_reqtimeout (+ 8); the late
     * filter (CONNECTION, header.c) reads through this one. */
    hold_filter = ap_register_input_filter("EV2_HOLD", hold_read, NULL,
                                           AP_FTYPE_CONNECTION + 1);
}

/* Whether a worker should read ahead for cs's next request rather than
 * let httpd wait for it: the header wait is on, and the connection speaks
 * HTTP/1.x (not mod_http2's, which reads for itself). */
int ev2_hold_applies(const ev2_conn_t *cs)
{
    return ev2_cfg.header_base_s > 0 && cs->c && !cs->c->aborted
           && strcmp(ap_get_protocol(cs->c), AP_PROTOCOL_HTTP1) == 0;
}

/* A new connection whose first bytes the listener cannot judge: TLS. */
int ev2_hold_is_tls(const ev2_conn_t *cs)
{
    return ev2_hold_applies(cs) && ap_ssl_conn_is_ssl(cs->c);
}

static ev2_hold_t *hold_of(ev2_conn_t *cs)
{
    ev2_hold_t *h = cs->hold;

    if (!h) {
        h = apr_pcalloc(cs->p, sizeof(*h));
        h->bb = apr_brigade_create(cs->p, cs->c->bucket_alloc);
        h->tmp = apr_brigade_create(cs->p, cs->c->bucket_alloc);
        apr_pool_cleanup_register(cs->p, h, hold_cleanup,
                                  apr_pool_cleanup_null);
        h->f = ap_add_input_filter_handle(hold_filter, h, NULL, cs->c);
        cs->hold = h;
    }
    return h;
}

/* Back into the buffer: what httpd has not yet read of h->bb (the rest
 * of a pipelined read).  0 if it holds something else than bytes (an
 * end of stream, say): then httpd must read it as it is. */
static int hold_take_back(ev2_hold_t *h)
{
    apr_bucket *b;

    for (b = APR_BRIGADE_FIRST(h->bb); b != APR_BRIGADE_SENTINEL(h->bb);
         b = APR_BUCKET_NEXT(b)) {
        if (APR_BUCKET_IS_METADATA(b)) {
            return 0;
        }
    }
    while (!APR_BRIGADE_EMPTY(h->bb)) {
        const char *s;
        apr_size_t n;

        b = APR_BRIGADE_FIRST(h->bb);
        if (apr_bucket_read(b, &s, &n, APR_BLOCK_READ) != APR_SUCCESS
            || !hold_room(h, n)) {
            return 0;
        }
        memcpy(h->buf + h->len, s, n);
        h->len += n;
        apr_bucket_delete(b);
    }
    return 1;
}

/* Append what one read from below gave.  Returns 0 once something other
 * than bytes came (kept, after the buffer, for httpd to read). */
static int hold_append(ev2_hold_t *h)
{
    while (!APR_BRIGADE_EMPTY(h->tmp)) {
        apr_bucket *b = APR_BRIGADE_FIRST(h->tmp);
        const char *s;
        apr_size_t n;

        if (APR_BUCKET_IS_METADATA(b)
            || apr_bucket_read(b, &s, &n, APR_BLOCK_READ) != APR_SUCCESS
            || !hold_room(h, n)) {
            /* The rest goes after the buffer, as it came. */
            APR_BRIGADE_CONCAT(h->bb, h->tmp);
            return 0;
        }
        memcpy(h->buf + h->len, s, n);
        h->len += n;
        apr_bucket_delete(b);
    }
    return 1;
}

/* Worker: read ahead for cs without waiting.  Returns 1 if its request
 * is not all there yet (the caller parks cs in EV2_STATE_READ_HEADER),
 * 0 if httpd can read it now (complete, too long to wait for, the end of
 * the stream, an error: httpd answers each as it does). */
int ev2_hold_fill(ev2_conn_t *cs)
{
    ev2_hold_t *h = hold_of(cs);
    ap_filter_t *below = h->f->next;

    if (!APR_BRIGADE_EMPTY(h->bb)) {
        /* The rest of an earlier read: usually one bucket that holds the
         * whole next request (pipelined), then nothing need move. */
        apr_bucket *b = APR_BRIGADE_FIRST(h->bb);
        const char *s;
        apr_size_t n;

        if (!APR_BUCKET_IS_METADATA(b)
            && apr_bucket_read(b, &s, &n, APR_BLOCK_READ) == APR_SUCCESS
            && ev2_reqscan_req(s, n, EV2_HOLD_MAX, EV2_BODY_MAX, NULL)
               != EV2_SCAN_INCOMPLETE) {
            cs->header_bytes = n;
            return 0;
        }
        if (!hold_take_back(h)) {
            return 0;
        }
    }
    for (;;) {
        apr_size_t header_len = 0;
        apr_status_t rv;

        cs->header_bytes = h->len;
        if (h->len > 0) {
            if (ev2_reqscan_req(h->buf, h->len, EV2_HOLD_MAX, EV2_BODY_MAX,
                                &header_len) != EV2_SCAN_INCOMPLETE) {
                return 0;
            }
            if (header_len > 0) {
                ev2_header_body_begins(cs, header_len);
            }
        }
        rv = ap_get_brigade(below, h->tmp, AP_MODE_READBYTES,
                            APR_NONBLOCK_READ, EV2_HOLD_MAX - h->len);
        if (APR_STATUS_IS_EAGAIN(rv)
            || (rv == APR_SUCCESS && APR_BRIGADE_EMPTY(h->tmp))) {
            apr_brigade_cleanup(h->tmp);
            return 1;
        }
        if (rv != APR_SUCCESS) {
            /* httpd's read meets it again after the kept bytes. */
            apr_brigade_cleanup(h->tmp);
            return 0;
        }
        if (!hold_append(h)) {
            return 0;
        }
    }
}
