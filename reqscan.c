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

/* Whether the line buf[pos .. end) (its LF included) holds only spaces
 * and tabs before its line end. */
static int is_blank_fold(const char *buf, apr_size_t pos, apr_size_t end)
{
    apr_size_t i, n = end - pos - 1;

    if (n > 0 && buf[pos + n - 1] == '\r') {
        n--;
    }
    for (i = 0; i < n; i++) {
        if (buf[pos + i] != ' ' && buf[pos + i] != '\t') {
            return 0;
        }
    }
    return 1;
}

/* Whether the field that starts with the line at pos (ending at end) is
 * one httpd refuses in every HttpProtocolOptions mode, once it reads the
 * line after it: no ':' in its first line, nothing before the ':', or
 * white space in its name. */
static int is_bad_field(const char *buf, apr_size_t pos, apr_size_t end)
{
    const char *colon = memchr(buf + pos, ':', end - pos);
    apr_size_t i;

    if (!colon || colon == buf + pos) {
        return 1;
    }
    for (i = pos; buf + i < colon; i++) {
        if (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\v'
            || buf[i] == '\f' || buf[i] == '\r') {
            return 1;
        }
    }
    return 0;
}

/* After a request line ending at pos: complete once an empty line (LF or
 * CRLF alone) ends the header fields; *end is then the offset just past
 * it.  Complete too, with *end 0, as soon as httpd, reading the lines one
 * by one, would answer 400 before the end of the header (in any
 * HttpProtocolOptions mode): a first field line that starts with white
 * space, a folded line of white space alone, or a field it judges bad
 * once the next line (not a folded one) is there.  Those lines are all
 * in, so httpd answers them without waiting for the client, as it does
 * when a worker reads them as they come. */
static ev2_scan_e scan_fields(const char *buf, apr_size_t pos, apr_size_t len,
                              apr_size_t *end)
{
    apr_size_t field = 0, field_end = 0;    /* the current field's first line */
    int have_field = 0;

    while (pos < len) {
        apr_size_t next;

        if (buf[pos] == '\n') {
            *end = pos + 1;
            return EV2_SCAN_COMPLETE;
        }
        if (buf[pos] == '\r') {
            if (pos + 1 >= len) {
                return EV2_SCAN_INCOMPLETE;
            }
            if (buf[pos + 1] == '\n') {
                *end = pos + 2;
                return EV2_SCAN_COMPLETE;
            }
        }
        if ((next = line_end(buf, pos, len)) == 0) {
            return EV2_SCAN_INCOMPLETE;
        }
        if (buf[pos] == ' ' || buf[pos] == '\t') {
            if (!have_field || is_blank_fold(buf, pos, next)) {
                *end = 0;
                return EV2_SCAN_COMPLETE;
            }
        }
        else {
            if (have_field && is_bad_field(buf, field, field_end)) {
                *end = 0;
                return EV2_SCAN_COMPLETE;
            }
            field = pos;
            field_end = next;
            have_field = 1;
        }
        pos = next;
    }
    return EV2_SCAN_INCOMPLETE;
}

/* What the header fields between from and to say of a body. */
typedef struct {
    int has_length;             /* one well-formed Content-Length */
    apr_size_t length;
    int is_chunked;             /* Transfer-Encoding ending in chunked */
    int is_unsure;              /* something httpd answers on its own or
                                 * we do not read: do not wait for a body */
} body_info_t;

static int lower(char c)
{
    return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

/* Whether the n bytes at p are the field name w (lower case). */
static int name_is(const char *p, apr_size_t n, const char *w)
{
    apr_size_t i;

    if (n != strlen(w)) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        if (lower(p[i]) != w[i]) {
            return 0;
        }
    }
    return 1;
}

/* Whether the value v[0 .. n) contains w (lower case), ignoring case. */
static int value_has(const char *v, apr_size_t n, const char *w)
{
    apr_size_t i, j, m = strlen(w);

    for (i = 0; i + m <= n; i++) {
        for (j = 0; j < m && lower(v[i + j]) == w[j]; j++) {
        }
        if (j == m) {
            return 1;
        }
    }
    return 0;
}

/* Whether the value v[0 .. n) ends with the coding "chunked". */
static int ends_chunked(const char *v, apr_size_t n)
{
    static const char w[] = "chunked";
    apr_size_t m = sizeof(w) - 1, i;

    if (n < m) {
        return 0;
    }
    for (i = 0; i < m; i++) {
        if (lower(v[n - m + i]) != w[i]) {
            return 0;
        }
    }
    return n == m || v[n - m - 1] == ',' || v[n - m - 1] == ' '
           || v[n - m - 1] == '\t';
}

static void read_fields(const char *buf, apr_size_t pos, apr_size_t to,
                        body_info_t *bi)
{
    memset(bi, 0, sizeof(*bi));
    while (pos < to) {
        apr_size_t end = line_end(buf, pos, to), name, v, vend;
        const char *colon;

        if (end == 0 || buf[pos] == '\n' || buf[pos] == '\r') {
            break;                              /* the empty line */
        }
        if (buf[pos] == ' ' || buf[pos] == '\t') {
            /* A folded line: httpd's rules for it are its own. */
            bi->is_unsure = 1;
            return;
        }
        vend = end - 1;
        if (vend > pos && buf[vend - 1] == '\r') {
            vend--;
        }
        colon = memchr(buf + pos, ':', vend - pos);
        if (colon) {
            name = (apr_size_t)(colon - buf) - pos;
            v = (apr_size_t)(colon - buf) + 1;
            while (v < vend && (buf[v] == ' ' || buf[v] == '\t')) {
                v++;
            }
            while (vend > v && (buf[vend - 1] == ' ' || buf[vend - 1] == '\t')) {
                vend--;
            }
            if (name_is(buf + pos, name, "content-length")) {
                apr_size_t n = 0, i;

                if (bi->has_length || v == vend) {
                    bi->is_unsure = 1;          /* httpd answers 400 */
                }
                for (i = v; i < vend; i++) {
                    if (buf[i] < '0' || buf[i] > '9'
                        || n > ((apr_size_t)-1 - 9) / 10) {
                        bi->is_unsure = 1;
                        break;
                    }
                    n = n * 10 + (apr_size_t)(buf[i] - '0');
                }
                bi->has_length = 1;
                bi->length = n;
            }
            else if (name_is(buf + pos, name, "transfer-encoding")) {
                if (bi->is_chunked || !ends_chunked(buf + v, vend - v)) {
                    bi->is_unsure = 1;          /* httpd answers 400/501 */
                }
                bi->is_chunked = 1;
            }
            else if (name_is(buf + pos, name, "expect")
                     && value_has(buf + v, vend - v, "100-continue")) {
                /* The client waits for httpd's 100 before its body. */
                bi->is_unsure = 1;
            }
        }
        pos = end;
    }
}

/* The value of the hex digit c, or -1. */
static int hex(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c = (char)lower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* A chunked body from pos: complete once the last chunk and the trailer
 * fields after it are there; anything malformed is complete too (httpd
 * answers it). */
static ev2_scan_e scan_chunks(const char *buf, apr_size_t pos, apr_size_t len)
{
    apr_size_t trailer_end;

    for (;;) {
        apr_size_t size = 0, end, i;
        int digits = 0, d;

        if ((end = line_end(buf, pos, len)) == 0) {
            return EV2_SCAN_INCOMPLETE;
        }
        for (i = pos; i < end && (d = hex(buf[i])) >= 0; i++) {
            if (size > ((apr_size_t)-1 >> 4) - 1) {
                return EV2_SCAN_COMPLETE;       /* too big: httpd says so */
            }
            size = size * 16 + (apr_size_t)d;
            digits++;
        }
        if (digits == 0 || (buf[i] != ';' && buf[i] != ' ' && buf[i] != '\t'
                            && buf[i] != '\r' && buf[i] != '\n')) {
            return EV2_SCAN_COMPLETE;
        }
        if (size == 0) {
            /* The last chunk: trailer fields up to an empty line. */
            return scan_fields(buf, end, len, &trailer_end);
        }
        pos = end;
        if (len - pos < size || len - pos - size < 1) {
            return EV2_SCAN_INCOMPLETE;
        }
        pos += size;
        if (buf[pos] == '\r') {
            if (len - pos < 2) {
                return EV2_SCAN_INCOMPLETE;
            }
            pos++;
        }
        if (buf[pos] != '\n') {
            return EV2_SCAN_COMPLETE;
        }
        pos++;
    }
}

/* What one scan needs besides the bytes. */
typedef struct {
    apr_size_t body_max;        /* wait for a body of up to this */
    apr_size_t header_len;      /* out: the header's length, once whole */
} scan_t;

/* An HTTP/1.x request (or HTTP/0.9 line) starting at pos. */
static ev2_scan_e scan_http(scan_t *sc, const char *buf, apr_size_t pos,
                            apr_size_t len)
{
    apr_size_t end, header_end;
    body_info_t bi;

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
    if (scan_fields(buf, end, len, &header_end) != EV2_SCAN_COMPLETE) {
        return EV2_SCAN_INCOMPLETE;
    }
    if (header_end == 0) {
        return EV2_SCAN_COMPLETE;       /* httpd answers 400 from here */
    }
    sc->header_len = header_end;
    if (sc->body_max == 0) {
        return EV2_SCAN_COMPLETE;
    }
    read_fields(buf, end, header_end, &bi);
    if (bi.is_unsure) {
        return EV2_SCAN_COMPLETE;
    }
    if (bi.is_chunked) {
        ev2_scan_e e = scan_chunks(buf, header_end, len);

        /* Past the bound a chunked body goes on as today. */
        if (e == EV2_SCAN_INCOMPLETE && len - header_end >= sc->body_max) {
            return EV2_SCAN_COMPLETE;
        }
        return e;
    }
    if (bi.has_length && bi.length <= sc->body_max
        && len - header_end < bi.length) {
        return EV2_SCAN_INCOMPLETE;
    }
    return EV2_SCAN_COMPLETE;
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
static ev2_scan_e scan_payload(scan_t *sc, const char *buf, apr_size_t pos,
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
    return scan_http(sc, buf, pos, len);
}

static ev2_scan_e scan(scan_t *sc, const char *buf, apr_size_t len)
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
    return scan_payload(sc, buf, pos, len);
}

ev2_scan_e ev2_reqscan_req(const char *buf, apr_size_t len, apr_size_t limit,
                           apr_size_t body_max, apr_size_t *header_len)
{
    scan_t sc;
    ev2_scan_e e;

    sc.body_max = body_max;
    sc.header_len = 0;
    e = scan(&sc, buf, len);
    if (header_len) {
        *header_len = sc.header_len;
    }
    if (sc.header_len == 0 && e == EV2_SCAN_INCOMPLETE && len >= limit) {
        return EV2_SCAN_TOO_LONG;
    }
    if (sc.header_len > limit && e == EV2_SCAN_INCOMPLETE) {
        /* A header longer than the limit: no waiting for its body. */
        return EV2_SCAN_TOO_LONG;
    }
    return e;
}

ev2_scan_e ev2_reqscan(const char *buf, apr_size_t len, apr_size_t limit)
{
    return ev2_reqscan_req(buf, len, limit, 0, NULL);
}
