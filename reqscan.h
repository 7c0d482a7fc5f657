/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * reqscan.h - is a request header complete?  The listener peeks at what a
 * client has sent so far (recv with MSG_PEEK: nothing is consumed, httpd's
 * filters later read the bytes exactly as sent) and asks ev2_reqscan()
 * whether a worker can now read the header without waiting for the
 * client.  Pure: no httpd, no sockets, no allocation; any thread.
 *
 * What counts as complete:
 *  - an HTTP/1.x request line and its header fields up to the empty line
 *    (CRLF or bare LF line ends; blank lines before the request line are
 *    skipped, as httpd does);
 *  - a first line without an HTTP/ version (HTTP/0.9 or junk): httpd
 *    answers it from the line alone;
 *  - header fields that httpd refuses in every HttpProtocolOptions mode
 *    before the header ends (a first field line that starts with white
 *    space, a folded line of white space alone, a field with no ':' or
 *    no name or white space in its name once the next unfolded line is
 *    in): httpd answers 400 from the lines already there;
 *  - the HTTP/2 connection preface (24 bytes; it contains an empty line at
 *    byte 18, so it is recognised by its prefix, not by the empty line);
 *  - a TLS record (a ClientHello): its 5-byte header and the length it
 *    announces;
 *  - a PROXY protocol v1 line or v2 block is skipped, and what follows it
 *    must be complete in turn.
 * Anything longer than the caller's limit without being complete is
 * handed over as it is (httpd's own limits answer it).  With
 * ev2_reqscan_req(), a request body of bounded size must be there too.
 */

#ifndef EV2_REQSCAN_H
#define EV2_REQSCAN_H

#include <apr.h>

typedef enum {
    EV2_SCAN_INCOMPLETE = 0,    /* wait for more bytes */
    EV2_SCAN_COMPLETE,          /* a worker can read it without waiting */
    EV2_SCAN_TOO_LONG           /* limit bytes and still incomplete */
} ev2_scan_e;

/** Scan the len bytes at buf (what the client sent so far); limit is the
 *  most the caller can look at (its peek buffer).  The header alone. */
ev2_scan_e ev2_reqscan(const char *buf, apr_size_t len, apr_size_t limit);

/** The same, and an HTTP/1.x request with a body is complete only once
 *  its body is there too, if it is of at most body_max bytes: a
 *  Content-Length of up to body_max, or a chunked body until its last
 *  chunk and trailer (incomplete while fewer than body_max bytes followed
 *  the header).  Complete at the header, as ev2_reqscan() says it, when
 *  the body is longer, when the client sent "Expect: 100-continue" (it
 *  waits for httpd's answer), or when the framing is one httpd rejects
 *  (two lengths, a bad number, a coding other than chunked last, a folded
 *  field): httpd answers those itself.  body_max 0 is ev2_reqscan().
 *  limit bounds the header: TOO_LONG if it is incomplete at limit bytes,
 *  or complete but longer than limit with its body still to come.  If
 *  header_len is not NULL it receives the header's length once the header
 *  is whole (the empty line included), else 0: INCOMPLETE with a non-zero
 *  header_len means only body bytes are missing. */
ev2_scan_e ev2_reqscan_req(const char *buf, apr_size_t len, apr_size_t limit,
                           apr_size_t body_max, apr_size_t *header_len);

#endif /* EV2_REQSCAN_H */
