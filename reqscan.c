/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * reqscan.c - whether what a client sent so far is a whole request header
 * (see reqscan.h).  Every step looks only at the bytes it was given and
 * never past len.
 */

#include <string.h>

#include "reqscan.h"

/* The HTTP/2 connection preface a client sends with prior knowledge. */
static const char h2_preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
#define H2_PREFACE_LEN (sizeof(h2_preface) - 1)

/* The PROXY protocol v2 signature. */
static const char proxy2_sig[] = "\r\n\r\n\0\r\nQUIT\n";
#define PROXY2_SIG_LEN 12

/* Whether buf[0 .. len) is a prefix of the len_w bytes of w (so far it
 * could be w). */
static int is_prefix_of(const char *buf, apr_size_t len, const char *w,
                        apr_size_t len_w)
{
    return memcmp(buf, w, len < len_w ? len : len_w) == 0;
}

/* The offset just past the first LF in buf[from .. len), or 0. */
static apr_size_t line_end(const char *buf, apr_size_t from, apr_size_t len)
{
    const char *lf;

    if (from >= len) {
        return 0;
    }
    lf = memchr(buf + from, '\n', len - from);
    return lf ? (apr_size_t)(lf - buf) + 1 : 0;
}

/* A request line that names an HTTP version ends in "HTTP/x.y" (CR
 * optional); anything else is HTTP/0.9 or junk. */
static int names_a_version(const char *buf, apr_size_t start, apr_size_t end)
{
    apr_size_t n = end - start - 1;     /* without the LF */
    const char *p = buf + start;

    if (n > 0 && p[n - 1] == '\r') {
        n--;
    }
    return n >= 9 && memcmp(p + n - 8, "HTTP/", 5) == 0 && p[n - 9] == ' ';
}

/* After a request line ending at pos: complete once an empty line (LF or
 * CRLF alone) ends the header fields. */
static ev2_scan_e scan_fields(const char *buf, apr_size_t pos, apr_size_t len)
{
    while (pos < len) {
        apr_size_t end;

        if (buf[pos] == '\n') {
            return EV2_SCAN_COMPLETE;
        }
        if (buf[pos] == '\r') {
            if (pos + 1 >= len) {
                return EV2_SCAN_INCOMPLETE;
            }
            if (buf[pos + 1] == '\n') {
                return EV2_SCAN_COMPLETE;
            }
        }
        if ((end = line_end(buf, pos, len)) == 0) {
            return EV2_SCAN_INCOMPLETE;
        }
        pos = end;
    }
    return EV2_SCAN_INCOMPLETE;
}

/* An HTTP/1.x request (or HTTP/0.9 line) starting at pos. */
static ev2_scan_e scan_http(const char *buf, apr_size_t pos, apr_size_t len)
{
    apr_size_t end;

    /* Blank lines before the request line are skipped, as httpd does:
     * LF or CRLF alone.  A CR before anything else starts the request
     * line (httpd strips one CR before the LF, so "\r\r\n" is a line
     * of its own, and answered from it). */
    for (;;) {
        if (pos < len && buf[pos] == '\n') {
            pos++;
        }
        else if (pos + 1 < len && buf[pos] == '\r' && buf[pos + 1] == '\n') {
            pos += 2;
        }
        else {
            break;
        }
    }
    if (pos >= len) {
        return EV2_SCAN_INCOMPLETE;
    }
    if ((end = line_end(buf, pos, len)) == 0) {
        return EV2_SCAN_INCOMPLETE;
    }
    if (!names_a_version(buf, pos, end)) {
        return EV2_SCAN_COMPLETE;
    }
    return scan_fields(buf, end, len);
}

/* A PROXY v2 block at pos: 16 bytes and the length they announce. */
static ev2_scan_e scan_proxy2(const char *buf, apr_size_t pos, apr_size_t len,
                              apr_size_t *next)
{
    apr_size_t body;

    if (len - pos < 16) {
        return EV2_SCAN_INCOMPLETE;
    }
    body = ((apr_size_t)(unsigned char)buf[pos + 14] << 8)
           | (unsigned char)buf[pos + 15];
    if (len - pos < 16 + body) {
        return EV2_SCAN_INCOMPLETE;
    }
    *next = pos + 16 + body;
    return EV2_SCAN_COMPLETE;
}

/* What a connection starts with once any PROXY header is skipped: a TLS
 * record, the HTTP/2 preface or an HTTP/1.x request, from pos. */
static ev2_scan_e scan_payload(const char *buf, apr_size_t pos,
                               apr_size_t len)
{
    if (pos >= len) {
        return EV2_SCAN_INCOMPLETE;
    }
    if ((unsigned char)buf[pos] == 0x16) {
        /* A TLS handshake record: its header, then its length. */
        apr_size_t rec;

        if (len - pos < 5) {
            return EV2_SCAN_INCOMPLETE;
        }
        rec = ((apr_size_t)(unsigned char)buf[pos + 3] << 8)
              | (unsigned char)buf[pos + 4];
        return len - pos >= 5 + rec ? EV2_SCAN_COMPLETE : EV2_SCAN_INCOMPLETE;
    }
    if (is_prefix_of(buf + pos, len - pos, h2_preface, H2_PREFACE_LEN)) {
        return len - pos >= H2_PREFACE_LEN ? EV2_SCAN_COMPLETE
                                           : EV2_SCAN_INCOMPLETE;
    }
    return scan_http(buf, pos, len);
}

static ev2_scan_e scan(const char *buf, apr_size_t len)
{
    apr_size_t pos = 0;

    if (len == 0) {
        return EV2_SCAN_INCOMPLETE;
    }
    if (is_prefix_of(buf, len, proxy2_sig, PROXY2_SIG_LEN)) {
        ev2_scan_e e;

        if (len < PROXY2_SIG_LEN) {
            /* Also the start of blank lines: wait to tell them apart. */
            return EV2_SCAN_INCOMPLETE;
        }
        if ((e = scan_proxy2(buf, 0, len, &pos)) != EV2_SCAN_COMPLETE) {
            return e;
        }
    }
    else if (is_prefix_of(buf, len, "PROXY ", 6)) {
        /* ("P" and "PR" also start the h2 preface: either way no line
         * has ended yet.) */
        if (len < 6 || (pos = line_end(buf, 0, len)) == 0) {
            return EV2_SCAN_INCOMPLETE;
        }
    }
    /* Behind a PROXY header may come anything a client starts with: a
     * load balancer in front of an HTTPS backend sends TLS. */
    return scan_payload(buf, pos, len);
}

ev2_scan_e ev2_reqscan(const char *buf, apr_size_t len, apr_size_t limit)
{
    ev2_scan_e e = scan(buf, len);

    if (e == EV2_SCAN_INCOMPLETE && len >= limit) {
        return EV2_SCAN_TOO_LONG;
    }
    return e;
}
