/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * fuzz_reqscan.c - libFuzzer target for ev2_reqscan() and
 * ev2_reqscan_req() (reqscan.h).  The
 * first byte picks the limit (none, the length, one more, or a small
 * number); the rest is what a client sent.  Invariants:
 *
 *  - no read past len: the bytes are copied to a heap buffer of exactly
 *    their size, and every shorter prefix is scanned with the rest of
 *    that buffer poisoned for ASan;
 *  - the result is one of the three values, and the limit only turns
 *    INCOMPLETE into TOO_LONG, exactly when len >= limit;
 *  - monotonic: once a prefix is COMPLETE, so is every longer prefix,
 *    and the input extended by a few tails; bytes past the shortest
 *    complete prefix, changed, change nothing;
 *  - behind a whole PROXY v1 line or v2 block, the answer is the one for
 *    what follows it alone;
 *  - for plain HTTP/1.x (no TLS record, h2 preface or PROXY header at the
 *    start, nor a prefix of one) every prefix gets the answer of a slow
 *    reference below that splits the bytes into lines the way httpd
 *    reads them;
 *  - with bodies (check_bodies): no answer before the header's, bounded
 *    waiting, monotonic.
 */

#include <sanitizer/asan_interface.h>

#include "reqscan.h"
#include "fuzz_input.h"

#define NO_LIMIT ((apr_size_t)-1)

/* Prefixes beyond this many bytes are sampled, not all scanned; the
 * reference (quadratic over all prefixes) checks every prefix up to
 * REF_ALL bytes, then every REF_STEP-th, the whole input and both sides
 * of the point where the answer turns COMPLETE. */
#define SWEEP_ALL 1024
#define REF_ALL 256
#define REF_STEP 16

static const char h2_preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
static const char proxy2_sig[] = "\r\n\r\n\0\r\nQUIT\n";

/* ---- the reference: plain HTTP/1.x, byte by byte ---- */

/* Whether b[0 .. n) and w[0 .. nw) agree on their common length (b could
 * still become w, or starts with it). */
static int agrees(const unsigned char *b, size_t n, const char *w, size_t nw)
{
    size_t i;

    for (i = 0; i < n && i < nw; i++) {
        if (b[i] != (unsigned char)w[i]) {
            return 0;
        }
    }
    return 1;
}

/* Whether the reference applies: something that is not, and cannot
 * become, one of the other kinds of start. */
static int plain_http(const unsigned char *b, size_t n)
{
    if (n == 0) {
        return 1;
    }
    return b[0] != 0x16
           && !agrees(b, n, h2_preface, sizeof(h2_preface) - 1)
           && !agrees(b, n, proxy2_sig, 12)
           && !agrees(b, n, "PROXY ", 6);
}

/* The next line from *start: its length without the LF and without one
 * CR before it (as httpd's ap_rgetline strips them) in *clen, and *start
 * moved past the LF.  0 if no LF follows. */
static int next_line(const unsigned char *b, size_t n, size_t *start,
                     size_t *clen)
{
    size_t i;

    for (i = *start; i < n; i++) {
        if (b[i] == '\n') {
            size_t len = i - *start;

            if (len > 0 && b[i - 1] == '\r') {
                len--;
            }
            *clen = len;
            *start = i + 1;
            return 1;
        }
    }
    return 0;
}

/* A request line names a version when it ends in " HTTP/" and three more
 * bytes. */
static int ends_in_version(const unsigned char *line, size_t len)
{
    return len >= 9
           && line[len - 9] == ' ' && line[len - 8] == 'H'
           && line[len - 7] == 'T' && line[len - 6] == 'T'
           && line[len - 5] == 'P' && line[len - 4] == '/';
}

/* A line (without its line end) of spaces and tabs only. */
static int only_blanks(const unsigned char *l, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++) {
        if (l[i] != ' ' && l[i] != '\t') {
            return 0;
        }
    }
    return 1;
}

/* The first line of a field (without its line end) that httpd refuses
 * whatever its mode. */
static int refused_field(const unsigned char *l, size_t len)
{
    size_t i;

    for (i = 0; i < len && l[i] != ':'; i++) {
        if (l[i] == ' ' || l[i] == '\t' || l[i] == '\v' || l[i] == '\f'
            || l[i] == '\r') {
            return 1;
        }
    }
    return i == len || i == 0;
}

static ev2_scan_e reference(const unsigned char *b, size_t n)
{
    size_t start = 0, line, clen, field = 0, field_len = 0;
    int have_field = 0;

    /* Empty lines before the request line are skipped. */
    do {
        line = start;
        if (!next_line(b, n, &start, &clen)) {
            return EV2_SCAN_INCOMPLETE;
        }
    } while (clen == 0);
    if (!ends_in_version(b + line, clen)) {
        return EV2_SCAN_COMPLETE;       /* HTTP/0.9 or junk */
    }
    /* Field lines up to an empty one.  httpd answers 400 before it, in
     * any HttpProtocolOptions mode, at a first field line that begins
     * with white space, at a folded line of nothing but white space, and
     * at a field it refuses when it reads the next unfolded line: no ':'
     * in the field's first line, nothing before the ':', or white space
     * in the name. */
    for (;;) {
        line = start;
        if (!next_line(b, n, &start, &clen)) {
            return EV2_SCAN_INCOMPLETE;
        }
        if (clen == 0) {
            return EV2_SCAN_COMPLETE;
        }
        if (b[line] == ' ' || b[line] == '\t') {
            if (!have_field || only_blanks(b + line, clen)) {
                return EV2_SCAN_COMPLETE;
            }
        }
        else {
            if (have_field && refused_field(b + field, field_len)) {
                return EV2_SCAN_COMPLETE;
            }
            field = line;
            field_len = clen;
            have_field = 1;
        }
    }
}

/* ---- helpers ---- */

/* ev2_reqscan_req of a copy of b (n bytes): with body_max 0, the header
 * alone, as ev2_reqscan. */
static ev2_scan_e scan_req_copy(const unsigned char *b, size_t n,
                                apr_size_t limit, apr_size_t body_max)
{
    char *copy = malloc(n ? n : 1);
    ev2_scan_e e;

    CHECK(copy != NULL);
    memcpy(copy, b, n);
    e = ev2_reqscan_req(copy, n, limit, body_max, NULL);
    free(copy);
    return e;
}

/* ev2_reqscan of a copy of b (n bytes). */
static ev2_scan_e scan_copy(const unsigned char *b, size_t n,
                            apr_size_t limit)
{
    return scan_req_copy(b, n, limit, 0);
}

/* b (n bytes) followed by t (nt bytes), scanned without a limit. */
static ev2_scan_e scan_joined(const unsigned char *b, size_t n,
                              const void *t, size_t nt)
{
    unsigned char *j = malloc(n + nt ? n + nt : 1);
    ev2_scan_e e;

    CHECK(j != NULL);
    memcpy(j, b, n);
    memcpy(j + n, t, nt);
    e = scan_copy(j, n + nt, NO_LIMIT);
    free(j);
    return e;
}

/* Where what follows a whole PROXY header starts, or 0 if the input does
 * not start with one. */
static size_t after_proxy(const unsigned char *b, size_t n)
{
    size_t i;

    if (n >= 16 && memcmp(b, proxy2_sig, 12) == 0) {
        size_t block = 16 + (((size_t)b[14] << 8) | b[15]);

        return block <= n ? block : 0;
    }
    if (n >= 6 && memcmp(b, "PROXY ", 6) == 0) {
        for (i = 6; i < n; i++) {
            if (b[i] == '\n') {
                return i + 1;
            }
        }
    }
    return 0;
}

/* The body-aware scan (ev2_reqscan_req) of buf[0 .. n), for each of a few
 * body bounds, against the header-only answer u of the same bytes:
 *  - body_max 0 is the header-only scan, header_len aside;
 *  - never COMPLETE with the header INCOMPLETE; a header length is
 *    reported only when the header-only scan of all the bytes is
 *    COMPLETE, and one byte less than it is INCOMPLETE with bodies;
 *  - waiting for a body stays within the bound: INCOMPLETE with a header
 *    means fewer than body_max bytes follow it;
 *  - monotonic over sampled prefixes, as the header-only scan. */
static void check_bodies(const unsigned char *buf, size_t n, ev2_scan_e u)
{
    static const apr_size_t bounds[] = { 0, 1, 16, 65536 };
    size_t i, k, step = n > 256 ? n / 256 + 1 : 1;

    for (i = 0; i < sizeof(bounds) / sizeof(bounds[0]); i++) {
        apr_size_t hl = 7;
        ev2_scan_e e = ev2_reqscan_req((const char *)buf, n, NO_LIMIT,
                                       bounds[i], &hl);
        int prev_complete = 1;

        CHECK(e == EV2_SCAN_INCOMPLETE || e == EV2_SCAN_COMPLETE);
        CHECK(hl <= n);
        if (bounds[i] == 0) {
            CHECK(e == u);
        }
        if (u == EV2_SCAN_INCOMPLETE) {
            CHECK(e == EV2_SCAN_INCOMPLETE && hl == 0);
        }
        if (hl > 0) {
            CHECK(u == EV2_SCAN_COMPLETE);
            if (hl > 1) {
                CHECK(ev2_reqscan_req((const char *)buf, hl - 1, NO_LIMIT,
                                      bounds[i], NULL)
                      == EV2_SCAN_INCOMPLETE);
            }
        }
        if (e == EV2_SCAN_INCOMPLETE && hl > 0) {
            CHECK(n - hl < bounds[i]);
        }
        for (k = n + 1; k-- > 0;) {
            ev2_scan_e ek;

            if (k != n && k % step != 0) {
                continue;
            }
            ek = scan_req_copy(buf, k, NO_LIMIT, bounds[i]);
            if (ek == EV2_SCAN_COMPLETE) {
                CHECK(prev_complete);
            }
            prev_complete = ek == EV2_SCAN_COMPLETE;
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const tails[] = {
        "\r\n\r\n", "\n", "\0", "\x16\x03\x01\x00\x00", "PROXY ",
        "GET / HTTP/1.1\r\n\r\n"
    };
    unsigned char *buf;
    size_t n, k, c, i, step;
    apr_size_t limit;
    ev2_scan_e r, u, e;
    int prev_complete;
    size_t prev_k = 0;
    uint8_t tag;

    if (size == 0) {
        return 0;
    }
    tag = data[0];
    data++;
    n = size - 1;
    if (tag < 0x40) {
        limit = NO_LIMIT;
    }
    else if (tag < 0x80) {
        limit = n;
    }
    else if (tag < 0xc0) {
        limit = n + 1;
    }
    else {
        limit = tag - 0xc0;
    }

    buf = malloc(n ? n : 1);
    CHECK(buf != NULL);
    memcpy(buf, data, n);

    /* The whole input, with and without the limit. */
    r = ev2_reqscan((const char *)buf, n, limit);
    u = ev2_reqscan((const char *)buf, n, NO_LIMIT);
    CHECK(r == EV2_SCAN_INCOMPLETE || r == EV2_SCAN_COMPLETE
          || r == EV2_SCAN_TOO_LONG);
    CHECK(u == EV2_SCAN_INCOMPLETE || u == EV2_SCAN_COMPLETE);
    if (u == EV2_SCAN_INCOMPLETE && n >= limit) {
        CHECK(r == EV2_SCAN_TOO_LONG);
    }
    else {
        CHECK(r == u);
    }

    /* Every prefix (sampled past SWEEP_ALL), longest first, with the
     * bytes beyond it poisoned: INCOMPLETE up to c, COMPLETE from c. */
    c = n + 1;
    prev_complete = 1;
    step = n > SWEEP_ALL ? n / SWEEP_ALL + 1 : 1;
    for (k = n + 1; k-- > 0;) {
        if (k != n && k > SWEEP_ALL && k % step != 0) {
            continue;
        }
        if (k < n) {
            ASAN_POISON_MEMORY_REGION(buf + k, n - k);
            CHECK(__asan_address_is_poisoned(buf + k));
        }
        e = ev2_reqscan((const char *)buf, k, NO_LIMIT);
        CHECK(e == EV2_SCAN_INCOMPLETE || e == EV2_SCAN_COMPLETE);
        if (e == EV2_SCAN_COMPLETE) {
            /* The next longer prefix scanned was COMPLETE too. */
            CHECK(prev_complete);
            c = k;
        }
        if (k == n || k <= REF_ALL || k % REF_STEP == 0
            || prev_complete != (e == EV2_SCAN_COMPLETE)) {
            if (plain_http(buf, k)) {
                CHECK(e == reference(buf, k));
            }
            /* The longer side of a turn, unpoisoned for the reference. */
            if (k != n && prev_complete != (e == EV2_SCAN_COMPLETE)) {
                ASAN_UNPOISON_MEMORY_REGION(buf + k, prev_k - k);
                if (plain_http(buf, prev_k)) {
                    CHECK(reference(buf, prev_k) == EV2_SCAN_COMPLETE);
                }
                ASAN_POISON_MEMORY_REGION(buf + k, n - k);
            }
        }
        prev_complete = e == EV2_SCAN_COMPLETE;
        prev_k = k;
    }
    ASAN_UNPOISON_MEMORY_REGION(buf, n);
    CHECK((u == EV2_SCAN_COMPLETE) == (c <= n));

    if (u == EV2_SCAN_COMPLETE) {
        /* Longer inputs starting with it stay COMPLETE ... */
        for (i = 0; i < sizeof(tails) / sizeof(tails[0]); i++) {
            size_t nt = tails[i][0] ? strlen(tails[i]) : 1;

            CHECK(scan_joined(buf, n, tails[i], nt) == EV2_SCAN_COMPLETE);
        }
        CHECK(scan_joined(buf, n, buf, n) == EV2_SCAN_COMPLETE);
        /* ... and so do other bytes after the shortest complete prefix. */
        if (c < n) {
            static const unsigned char fill[] = { '\n', '\r', 0, 0x16 };
            unsigned char *m = malloc(n);

            CHECK(m != NULL);
            for (i = 0; i < sizeof(fill); i++) {
                memcpy(m, buf, n);
                memset(m + c, fill[i], n - c);
                CHECK(scan_copy(m, n, NO_LIMIT) == EV2_SCAN_COMPLETE);
            }
            for (k = c; k < n; k++) {
                m[k] = (unsigned char)~buf[k];
            }
            CHECK(scan_copy(m, n, NO_LIMIT) == EV2_SCAN_COMPLETE);
            free(m);
        }
    }

    /* A PROXY header is skipped and what follows judged on its own
     * (unless that is, or could be, a PROXY header in turn). */
    if ((k = after_proxy(buf, n)) != 0) {
        const unsigned char *rest = buf + k;
        size_t nr = n - k;

        if (!agrees(rest, nr, proxy2_sig, 12)
            && !agrees(rest, nr, "PROXY ", 6)) {
            CHECK(u == scan_copy(rest, nr, NO_LIMIT));
        }
    }

    check_bodies(buf, n, u);

    free(buf);
    return 0;
}
