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
 *  - the HTTP/2 connection preface (24 bytes; it contains an empty line at
 *    byte 18, so it is recognised by its prefix, not by the empty line);
 *  - a TLS record (a ClientHello): its 5-byte header and the length it
 *    announces;
 *  - a PROXY protocol v1 line or v2 block is skipped, and what follows it
 *    must be complete in turn.
 * Anything longer than the caller's limit without being complete is
 * handed over as it is (httpd's own limits answer it).
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
 *  most the caller can look at (its peek buffer). */
ev2_scan_e ev2_reqscan(const char *buf, apr_size_t len, apr_size_t limit);

#endif /* EV2_REQSCAN_H */
