/*
 * Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * You may obtain a copy of the License at
 *
 *     http://www.apache.org/licenses/LICENSE-2.0
 *
 * Unless required by applicable law or agreed to in writing, software
 * distributed under the License is distributed on an "AS IS" BASIS,
 * WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
 * See the License for the specific language governing permissions and
 * limitations under the License.
 */

/*
 * benchcli: small helper clients for bench/run (mod_mpm_event2 benchmarks).
 *
 *   benchcli idle   HOST PORT N TIMEOUT PATH
 *       Opens N keep-alive connections, sends one request on each and keeps
 *       them idle.  Prints "READY ..." once every connection has answered or
 *       failed (or TIMEOUT seconds passed).  Then reads commands on stdin:
 *         PROBE  -> sends one more request on every connection still open and
 *                   prints "PROBE alive=A answered=B" (within TIMEOUT s)
 *         QUIT / EOF -> closes everything and exits.
 *
 *   benchcli slow   HOST PORT N INTERVAL DURATION [KIND]
 *       N slow clients, reconnecting when the server closes them; runs
 *       DURATION seconds, prints "SLOW ...".  KIND:
 *         header      (default) a request line and then one header byte
 *                     every INTERVAL seconds, never finishing the header;
 *         body        a whole POST header (Content-Length: 8192), then one
 *                     body byte every INTERVAL seconds (slow POST);
 *         tls-header  a full TLS handshake, then the same as "header" inside
 *                     TLS: the start of the header in one record, then one
 *                     byte every INTERVAL seconds, each its own TLS record;
 *         tls-hello   a real TLS ClientHello (made by OpenSSL for each
 *                     connection), sent over plain TCP one byte every
 *                     INTERVAL seconds (the first byte at once).
 *
 *   benchcli normal HOST PORT CONC DURATION TIMEOUT PATH EXPECT_LEN [tls]
 *       CONC concurrent clients, each opening a new connection per request
 *       ("Connection: close"), for DURATION seconds; a request not answered
 *       within TIMEOUT seconds counts as a timeout.  Prints "NORMAL ..." with
 *       counts and latency percentiles of the served requests.  With "tls"
 *       every connection is HTTPS: a full handshake (no session resumption)
 *       before the request, all inside the TIMEOUT and the latency.
 *
 * Everything is non-blocking with poll(2), so 10,000+ connections are fine
 * (given ulimit -n).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

enum { ST_FREE, ST_CONNECTING, ST_HANDSHAKE, ST_SENDING, ST_READING, ST_IDLE,
       ST_DEAD };

#define HBUF 4096

typedef struct {
    int fd;
    int state;
    double t0;          /* start of the current request */
    double next;        /* slow mode: time of the next byte */
    size_t sent;        /* bytes of the request sent */
    char hdr[HBUF];
    size_t hlen;        /* bytes of header buffered */
    long hdr_end;       /* -1 until the header end was seen */
    long clen;          /* content-length, -1 if none */
    long body;          /* body bytes seen */
    int status;
    SSL *ssl;           /* TLS connection, NULL on plain TCP */
    short tls_want;     /* POLLIN/POLLOUT the TLS engine waits for, or 0 */
} conn_t;

static struct sockaddr_in g_addr;
/* Client context; g_tls: connections made by open_conn() speak TLS. */
static SSL_CTX *g_ctx;
static int g_tls;
static volatile sig_atomic_t g_stop;

static void on_term(int sig)
{
    (void)sig;
    g_stop = 1;
}
static char g_req[1024];
static size_t g_reqlen;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void kill_conn(conn_t *c)
{
    if (c->ssl)
        SSL_free(c->ssl);
    c->ssl = NULL;
    c->tls_want = 0;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->state = ST_DEAD;
}

/* ------------------------------------------------------------------ */
/* TLS                                                                  */

/* The client context: no certificate check (the bench's certificate is
 * self-signed), ALPN http/1.1, no session cache, so every connection makes
 * a full handshake.  An EOF without close_notify reads as a plain EOF. */
static int tls_init(void)
{
    static const unsigned char alpn[] = "\x08http/1.1";
    g_ctx = SSL_CTX_new(TLS_client_method());
    if (!g_ctx)
        return -1;
    SSL_CTX_set_verify(g_ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_session_cache_mode(g_ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(g_ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_mode(g_ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (SSL_CTX_set_alpn_protos(g_ctx, alpn, sizeof(alpn) - 1) != 0)
        return -1;
    return 0;
}

/* After an SSL_* call returned r <= 0: 0 when it only has to wait (and
 * c->tls_want says for what), -1 when the connection failed or ended. */
static int tls_wait(conn_t *c, int r)
{
    switch (SSL_get_error(c->ssl, r)) {
    case SSL_ERROR_WANT_READ:
        c->tls_want = POLLIN;
        return 0;
    case SSL_ERROR_WANT_WRITE:
        c->tls_want = POLLOUT;
        return 0;
    default:
        c->tls_want = 0;
        ERR_clear_error();
        return -1;
    }
}

/* One handshake step: 1 done, 0 waiting, -1 failed. */
static int tls_handshake(conn_t *c)
{
    int r = SSL_do_handshake(c->ssl);
    if (r == 1) {
        c->tls_want = 0;
        return 1;
    }
    return tls_wait(c, r);
}

/* recv(2) semantics over either TLS or TCP: > 0 bytes, 0 EOF, -1 with
 * errno EAGAIN (wait) or another errno (failed). */
static ssize_t conn_recv(conn_t *c, void *buf, size_t len)
{
    int r;
    if (!c->ssl)
        return recv(c->fd, buf, len, 0);
    r = SSL_read(c->ssl, buf, len > 65536 ? 65536 : (int)len);
    if (r > 0) {
        c->tls_want = 0;
        return r;
    }
    if (SSL_get_error(c->ssl, r) == SSL_ERROR_ZERO_RETURN) {
        c->tls_want = 0;
        return 0;
    }
    errno = tls_wait(c, r) == 0 ? EAGAIN : ECONNRESET;
    return -1;
}

/* send(2) semantics likewise; over TLS every call is one record (partial
 * writes are off, and the bench never sends more than a record holds). */
static ssize_t conn_send(conn_t *c, const void *data, size_t len)
{
    int r;
    if (!c->ssl)
        return send(c->fd, data, len, MSG_NOSIGNAL);
    r = SSL_write(c->ssl, data, (int)len);
    if (r > 0) {
        c->tls_want = 0;
        return r;
    }
    errno = tls_wait(c, r) == 0 ? EAGAIN : ECONNRESET;
    return -1;
}

/* The TCP connection is up: plain connections go on to send, TLS ones to
 * the handshake. */
static int after_connect(conn_t *c)
{
    if (!g_tls) {
        c->state = ST_SENDING;
        return 0;
    }
    c->ssl = SSL_new(g_ctx);
    if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1) {
        ERR_clear_error();
        return -1;
    }
    SSL_set_connect_state(c->ssl);
    c->state = ST_HANDSHAKE;
    c->tls_want = POLLOUT;
    return 0;
}

/* A ClientHello exactly as OpenSSL sends it for a new connection: a
 * handshake started into memory BIOs, whose first flight is taken.
 * Returns its length (0 on failure). */
static size_t make_client_hello(unsigned char *buf, size_t cap)
{
    SSL *s = SSL_new(g_ctx);
    BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
    size_t len = 0;
    int r;
    if (!s || !rb || !wb) {
        SSL_free(s);
        BIO_free(rb);
        BIO_free(wb);
        ERR_clear_error();
        return 0;
    }
    SSL_set_bio(s, rb, wb);     /* s owns both now */
    SSL_set_connect_state(s);
    r = SSL_do_handshake(s);
    if (r <= 0 && SSL_get_error(s, r) == SSL_ERROR_WANT_READ) {
        size_t pend = BIO_ctrl_pending(wb);
        if (pend > 0 && pend <= cap && BIO_read(wb, buf, (int)pend) == (int)pend)
            len = pend;
    }
    SSL_free(s);
    ERR_clear_error();
    return len;
}

/* ------------------------------------------------------------------ */
/* connections                                                          */

static int open_conn(conn_t *c)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    if (fd < 0)
        return -1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->fd = fd;
    c->sent = 0;
    c->hlen = 0;
    c->hdr_end = -1;
    c->clen = -1;
    c->body = 0;
    c->status = 0;
    c->ssl = NULL;
    c->tls_want = 0;
    c->t0 = now();
    if (connect(fd, (struct sockaddr *)&g_addr, sizeof(g_addr)) == 0) {
        if (after_connect(c) < 0) {
            kill_conn(c);
            return -1;
        }
    }
    else if (errno == EINPROGRESS) {
        c->state = ST_CONNECTING;
    }
    else {
        close(fd);
        c->fd = -1;
        c->state = ST_DEAD;
        return -1;
    }
    return 0;
}

static void reset_response(conn_t *c)
{
    c->hlen = 0;
    c->hdr_end = -1;
    c->clen = -1;
    c->body = 0;
    c->status = 0;
    c->sent = 0;
}

/* Parses the buffered header once complete. */
static void parse_header(conn_t *c)
{
    char *p, *end;
    c->hdr[c->hlen < HBUF ? c->hlen : HBUF - 1] = '\0';
    end = strstr(c->hdr, "\r\n\r\n");
    if (!end)
        return;
    c->hdr_end = (end - c->hdr) + 4;
    if (strncmp(c->hdr, "HTTP/1.", 7) == 0 && strlen(c->hdr) > 12)
        c->status = atoi(c->hdr + 9);
    for (p = c->hdr; p && p < end; p = strstr(p, "\r\n")) {
        p += 2;
        if (strncasecmp(p, "Content-Length:", 15) == 0) {
            c->clen = atol(p + 15);
            break;
        }
    }
    c->body = (long)c->hlen - c->hdr_end;
}

/*
 * Reads what is available.  Returns 1 when a full response was received,
 * 0 when more is needed, -1 on EOF/error (2 = EOF after a response without
 * Content-Length, which counts as complete).
 */
static int read_response(conn_t *c)
{
    char buf[65536];
    for (;;) {
        ssize_t n = conn_recv(c, buf, sizeof(buf));
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (n == 0) {
            if (c->hdr_end >= 0 && c->clen < 0)
                return 2;
            return -1;
        }
        if (c->hdr_end < 0) {
            size_t room = HBUF - 1 - c->hlen;
            size_t k = (size_t)n < room ? (size_t)n : room;
            memcpy(c->hdr + c->hlen, buf, k);
            c->hlen += k;
            parse_header(c);
            if (c->hdr_end < 0) {
                if (c->hlen >= HBUF - 1)
                    return -1;
                continue;
            }
            c->body += (long)(n - k);
        }
        else {
            c->body += n;
        }
        if (c->clen >= 0 && c->body >= c->clen)
            return 1;
    }
}

static int send_some(conn_t *c, const char *data, size_t len)
{
    while (c->sent < len) {
        ssize_t n = conn_send(c, data + c->sent, len - c->sent);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            if (errno == EINTR)
                continue;
            return -1;
        }
        c->sent += n;
    }
    return 1;
}

static int connect_done(conn_t *c)
{
    int err = 0;
    socklen_t l = sizeof(err);
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0 || err)
        return -1;
    return after_connect(c);
}

static short want_events(conn_t *c)
{
    if (c->ssl && c->tls_want)
        return c->tls_want;
    switch (c->state) {
    case ST_CONNECTING:
    case ST_HANDSHAKE:
    case ST_SENDING:
        return POLLOUT;
    case ST_READING:
    case ST_IDLE:
        return POLLIN;
    default:
        return 0;
    }
}

/* ------------------------------------------------------------------ */
/* idle mode                                                            */

/* Drives all connections in ST_CONNECTING/SENDING/READING until they are
 * IDLE or DEAD or the deadline passes.  Returns number answered 2xx. */
static int drive_requests(conn_t *cs, int n, struct pollfd *pfd, int *idx,
                          double deadline, int *failed)
{
    int answered = 0;
    *failed = 0;
    for (;;) {
        int np = 0, i, rc;
        double t = now();
        for (i = 0; i < n; i++) {
            if (cs[i].state == ST_CONNECTING || cs[i].state == ST_SENDING
                || cs[i].state == ST_READING) {
                pfd[np].fd = cs[i].fd;
                pfd[np].events = want_events(&cs[i]);
                pfd[np].revents = 0;
                idx[np++] = i;
            }
        }
        if (np == 0 || t >= deadline)
            break;
        rc = poll(pfd, np, (int)((deadline - t) * 1000) + 1);
        if (rc < 0 && errno != EINTR)
            break;
        for (i = 0; i < np && rc > 0; i++) {
            conn_t *c = &cs[idx[i]];
            if (!pfd[i].revents)
                continue;
            if (c->state == ST_CONNECTING && connect_done(c) < 0) {
                kill_conn(c);
                (*failed)++;
                continue;
            }
            if (c->state == ST_SENDING) {
                int r = send_some(c, g_req, g_reqlen);
                if (r < 0) {
                    kill_conn(c);
                    (*failed)++;
                    continue;
                }
                if (r == 1)
                    c->state = ST_READING;
                continue;
            }
            if (c->state == ST_READING) {
                int r = read_response(c);
                if (r == 1 || r == 2) {
                    if (c->status >= 200 && c->status < 300)
                        answered++;
                    else
                        (*failed)++;
                    if (r == 2) {
                        kill_conn(c);
                    }
                    else {
                        c->state = ST_IDLE;
                        reset_response(c);
                    }
                }
                else if (r < 0) {
                    kill_conn(c);
                    (*failed)++;
                }
            }
        }
    }
    return answered;
}

static int mode_idle(int n, double timeout)
{
    conn_t *cs = calloc(n, sizeof(conn_t));
    struct pollfd *pfd = calloc(n + 1, sizeof(struct pollfd));
    int *idx = calloc(n + 1, sizeof(int));
    int i, opened = 0, answered, failed, alive;
    char line[256];
    double deadline;

    if (!cs || !pfd || !idx) {
        printf("READY opened=0 answered=0 failed=%d error=nomem\n", n);
        return 1;
    }
    deadline = now() + timeout;
    /* open in batches of 500 so that the listen backlog is not flooded */
    for (i = 0; i < n; i++)
        cs[i].fd = -1, cs[i].state = ST_FREE;
    answered = 0;
    failed = 0;
    for (i = 0; i < n; i += 500) {
        int j, f = 0, lim = i + 500 < n ? i + 500 : n;
        for (j = i; j < lim; j++) {
            if (open_conn(&cs[j]) == 0)
                opened++;
            else
                failed++;
        }
        {
            double d = now() + 2.0;
            answered += drive_requests(cs, lim, pfd, idx,
                                       d < deadline ? d : deadline, &f);
            failed += f;
        }
    }
    /* give the remaining ones the rest of the time */
    {
        int f = 0;
        answered += drive_requests(cs, n, pfd, idx, deadline, &f);
        failed += f;
    }
    printf("READY opened=%d answered=%d failed=%d\n", opened, answered, failed);
    fflush(stdout);

    while (fgets(line, sizeof(line), stdin)) {
        if (strncmp(line, "PROBE", 5) == 0) {
            int f = 0, a;
            alive = 0;
            for (i = 0; i < n; i++) {
                if (cs[i].state != ST_IDLE)
                    continue;
                /* closed by the server? */
                {
                    char b;
                    ssize_t r = recv(cs[i].fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
                    if (r == 0 || (r < 0 && errno != EAGAIN
                                   && errno != EWOULDBLOCK)) {
                        kill_conn(&cs[i]);
                        continue;
                    }
                }
                alive++;
                reset_response(&cs[i]);
                cs[i].state = ST_SENDING;
            }
            a = drive_requests(cs, n, pfd, idx, now() + timeout, &f);
            printf("PROBE alive=%d answered=%d failed=%d\n", alive, a, f);
            fflush(stdout);
        }
        else if (strncmp(line, "QUIT", 4) == 0) {
            break;
        }
    }
    for (i = 0; i < n; i++)
        if (cs[i].fd >= 0)
            close(cs[i].fd);
    return 0;
}

/* ------------------------------------------------------------------ */
/* slow mode                                                            */

enum { SLOW_HEADER, SLOW_BODY, SLOW_TLS_HEADER, SLOW_TLS_HELLO };

#define HELLO_MAX 4096

/* (Re)opens slow client c; for tls-hello first makes its ClientHello. */
static int slow_open(conn_t *c, unsigned char *hello, size_t *hello_len)
{
    if (hello) {
        *hello_len = make_client_hello(hello, HELLO_MAX);
        if (*hello_len == 0) {
            c->fd = -1;
            c->state = ST_DEAD;
            return -1;
        }
    }
    return open_conn(c);
}

static int mode_slow(int n, double interval, double duration, int kind)
{
    conn_t *cs = calloc(n, sizeof(conn_t));
    struct pollfd *pfd = calloc(n + 1, sizeof(struct pollfd));
    int *idx = calloc(n + 1, sizeof(int));
    unsigned char *hello = NULL;    /* tls-hello: HELLO_MAX bytes a client */
    size_t *hello_len = NULL;
    double end = now() + duration;
    long opened = 0, closed = 0, responses = 0, bytes = 0, handshakes = 0;
    long open_failed = 0;
    int i, still = 0;
    /* A header that never ends, or a whole header and a body of 8 KiB
     * that never ends (the DURATION is far below 8192 x INTERVAL). */
    const char *start = kind == SLOW_BODY
        ? "POST /index.html HTTP/1.1\r\nHost: 127.0.0.1\r\n"
          "Content-Type: application/x-www-form-urlencoded\r\n"
          "Content-Length: 8192\r\n\r\n"
        : "GET /index.html HTTP/1.1\r\nHost: 127.0.0.1\r\n"
          "X-Slow: ";
    size_t slen = strlen(start);

    if (!cs || !pfd || !idx)
        return 1;
    g_tls = (kind == SLOW_TLS_HEADER);
    if (kind == SLOW_TLS_HELLO) {
        hello = malloc((size_t)n * HELLO_MAX);
        hello_len = calloc(n, sizeof(size_t));
        if (!hello || !hello_len)
            return 1;
    }
#define HELLO_OF(i) (hello ? hello + (size_t)(i) * HELLO_MAX : NULL)
#define HELLO_LEN_OF(i) (hello_len ? &hello_len[i] : NULL)
    for (i = 0; i < n; i++) {
        cs[i].fd = -1;
        if (slow_open(&cs[i], HELLO_OF(i), HELLO_LEN_OF(i)) == 0)
            opened++;
        else
            open_failed++;
        cs[i].next = 0;
    }
    while (now() < end && !g_stop) {
        int np = 0, rc;
        double t = now(), wake = end;
        for (i = 0; i < n; i++) {
            conn_t *c = &cs[i];
            if (c->state == ST_DEAD) {
                /* reconnect, at most once per interval */
                if (t < c->next) {
                    if (c->next < wake)
                        wake = c->next;
                    continue;
                }
                c->next = t + interval;
                if (slow_open(c, HELLO_OF(i), HELLO_LEN_OF(i)) == 0) {
                    opened++;
                }
                else {
                    open_failed++;
                    continue;
                }
            }
            if (c->state == ST_READING && t >= c->next) {
                /* one more byte: of the header (in its own TLS record for
                 * tls-header), of the body, or of the ClientHello */
                if (hello) {
                    if (c->sent < hello_len[i]) {
                        ssize_t r = send(c->fd, HELLO_OF(i) + c->sent, 1,
                                         MSG_NOSIGNAL);
                        if (r == 1) {
                            c->sent++;
                            bytes++;
                        }
                    }
                }
                else if (conn_send(c, "a", 1) == 1) {
                    bytes++;
                }
                c->next = t + interval;
            }
            if (c->state == ST_READING && c->next < wake)
                wake = c->next;
            pfd[np].fd = c->fd;
            pfd[np].events = want_events(c);
            pfd[np].revents = 0;
            idx[np++] = i;
        }
        rc = poll(pfd, np, (int)((wake - now()) * 1000) + 1);
        if (rc < 0 && errno != EINTR)
            break;
        for (i = 0; i < np && rc > 0; i++) {
            conn_t *c = &cs[idx[i]];
            if (!pfd[i].revents)
                continue;
            if (c->state == ST_CONNECTING) {
                if (connect_done(c) < 0) {
                    kill_conn(c);
                    c->next = now() + interval;
                    closed++;
                }
                continue;
            }
            if (c->state == ST_HANDSHAKE) {
                int r = tls_handshake(c);
                if (r < 0) {
                    kill_conn(c);
                    c->next = now() + interval;
                    closed++;
                }
                else if (r == 1) {
                    handshakes++;
                    c->state = ST_SENDING;
                }
                continue;
            }
            if (c->state == ST_SENDING) {
                /* the start of the header or the whole POST header; for
                 * tls-hello the first byte of the ClientHello */
                int r = hello
                    ? send_some(c, (const char *)HELLO_OF(idx[i]), 1)
                    : send_some(c, start, slen);
                if (r < 0) {
                    kill_conn(c);
                    c->next = now() + interval;
                    closed++;
                }
                else if (r == 1) {
                    c->state = ST_READING;
                    c->next = now() + interval;
                }
                continue;
            }
            if (c->state == ST_READING) {
                /* the server answered (e.g. 408/400) or closed; over TLS a
                 * read may also just take the server's session tickets */
                int r = read_response(c);
                if (r != 0) {
                    if (c->hdr_end >= 0)
                        responses++;
                    kill_conn(c);
                    c->next = now() + interval;
                    closed++;
                }
            }
        }
    }
#undef HELLO_OF
#undef HELLO_LEN_OF
    for (i = 0; i < n; i++) {
        if (cs[i].state == ST_READING)
            still++;
        kill_conn(&cs[i]);
    }
    printf("SLOW opened=%ld closed_by_server=%ld responses=%ld still_open=%d "
           "bytes_sent=%ld tls_handshakes=%ld open_failed=%ld\n", opened,
           closed, responses, still, bytes, handshakes, open_failed);
    return 0;
}

/* ------------------------------------------------------------------ */
/* normal mode                                                          */

static int cmpd(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The response is complete: over TLS say close_notify (once, without
 * waiting for the server's), then close. */
static void finish_conn(conn_t *c)
{
    if (c->ssl)
        SSL_shutdown(c->ssl);
    ERR_clear_error();
    kill_conn(c);
}

static int mode_normal(int conc, double duration, double timeout,
                       long expect, int tls)
{
    conn_t *cs = calloc(conc, sizeof(conn_t));
    struct pollfd *pfd = calloc(conc + 1, sizeof(struct pollfd));
    int *idx = calloc(conc + 1, sizeof(int));
    size_t lcap = 1 << 20, ln = 0;
    double *lat = malloc(lcap * sizeof(double));
    double end = now() + duration, hard_end = end + timeout;
    long attempted = 0, ok = 0, bad = 0, tmo = 0, err = 0;
    int i;

    if (!cs || !pfd || !idx || !lat)
        return 1;
    g_tls = tls;
    for (i = 0; i < conc; i++) {
        cs[i].fd = -1;
        cs[i].state = ST_FREE;
    }
    for (;;) {
        int np = 0, rc, active = 0;
        double t = now();
        if (t >= hard_end)
            break;
        for (i = 0; i < conc; i++) {
            conn_t *c = &cs[i];
            if ((c->state == ST_FREE || c->state == ST_DEAD) && t < end) {
                attempted++;
                if (open_conn(c) < 0) {
                    err++;
                    continue;
                }
            }
            if (c->state == ST_CONNECTING || c->state == ST_HANDSHAKE
                || c->state == ST_SENDING || c->state == ST_READING) {
                if (t - c->t0 > timeout) {
                    tmo++;
                    kill_conn(c);
                    c->state = ST_FREE;
                    continue;
                }
                active++;
                pfd[np].fd = c->fd;
                pfd[np].events = want_events(c);
                pfd[np].revents = 0;
                idx[np++] = i;
            }
        }
        if (active == 0 && t >= end)
            break;
        rc = poll(pfd, np, 50);
        if (rc < 0 && errno != EINTR)
            break;
        for (i = 0; i < np && rc > 0; i++) {
            conn_t *c = &cs[idx[i]];
            if (!pfd[i].revents)
                continue;
            if (c->state == ST_CONNECTING && connect_done(c) < 0) {
                err++;
                kill_conn(c);
                c->state = ST_FREE;
                continue;
            }
            if (c->state == ST_HANDSHAKE) {
                int r = tls_handshake(c);
                if (r < 0) {
                    err++;
                    kill_conn(c);
                    c->state = ST_FREE;
                    continue;
                }
                if (r == 0)
                    continue;
                c->state = ST_SENDING;  /* and send at once */
            }
            if (c->state == ST_SENDING) {
                int r = send_some(c, g_req, g_reqlen);
                if (r < 0) {
                    err++;
                    kill_conn(c);
                    c->state = ST_FREE;
                }
                else if (r == 1) {
                    c->state = ST_READING;
                }
                continue;
            }
            if (c->state == ST_READING) {
                int r = read_response(c);
                if (r == 0)
                    continue;
                if (r > 0) {
                    if (c->status >= 200 && c->status < 300
                        && (expect < 0 || c->body == expect)) {
                        ok++;
                        if (ln < lcap)
                            lat[ln++] = (now() - c->t0) * 1000.0;
                    }
                    else {
                        bad++;
                    }
                }
                else {
                    err++;
                }
                if (r > 0)
                    finish_conn(c);
                else
                    kill_conn(c);
                c->state = ST_FREE;
            }
        }
    }
    for (i = 0; i < conc; i++)
        if (cs[i].fd >= 0) {
            kill_conn(&cs[i]);
            tmo++; /* still unanswered at the hard end */
        }
    qsort(lat, ln, sizeof(double), cmpd);
    printf("NORMAL attempted=%ld ok=%ld bad=%ld timeout=%ld errors=%ld "
           "p50_ms=%.3f p99_ms=%.3f max_ms=%.3f\n", attempted, ok, bad, tmo,
           err, ln ? lat[ln / 2] : -1.0,
           ln ? lat[(size_t)(ln * 0.99) < ln ? (size_t)(ln * 0.99) : ln - 1]
              : -1.0,
           ln ? lat[ln - 1] : -1.0);
    return 0;
}

int main(int argc, char **argv)
{
    const char *mode;
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_term);
    if (argc < 4) {
        fprintf(stderr, "usage: see the comment at the top of benchcli.c\n");
        return 2;
    }
    mode = argv[1];
    memset(&g_addr, 0, sizeof(g_addr));
    g_addr.sin_family = AF_INET;
    g_addr.sin_port = htons(atoi(argv[3]));
    if (inet_pton(AF_INET, argv[2], &g_addr.sin_addr) != 1) {
        fprintf(stderr, "bad address %s\n", argv[2]);
        return 2;
    }
    if (strcmp(mode, "idle") == 0 && argc >= 7) {
        g_reqlen = snprintf(g_req, sizeof(g_req),
                            "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                            argv[6]);
        return mode_idle(atoi(argv[4]), atof(argv[5]));
    }
    if (strcmp(mode, "slow") == 0 && argc >= 7) {
        const char *k = argc >= 8 ? argv[7] : "header";
        int kind;
        if (strcmp(k, "header") == 0)
            kind = SLOW_HEADER;
        else if (strcmp(k, "body") == 0)
            kind = SLOW_BODY;
        else if (strcmp(k, "tls-header") == 0)
            kind = SLOW_TLS_HEADER;
        else if (strcmp(k, "tls-hello") == 0)
            kind = SLOW_TLS_HELLO;
        else {
            fprintf(stderr, "bad slow kind %s\n", k);
            return 2;
        }
        if ((kind == SLOW_TLS_HEADER || kind == SLOW_TLS_HELLO)
            && tls_init() < 0) {
            fprintf(stderr, "cannot set up TLS\n");
            return 1;
        }
        return mode_slow(atoi(argv[4]), atof(argv[5]), atof(argv[6]), kind);
    }
    if (strcmp(mode, "normal") == 0 && argc >= 9) {
        int tls = argc >= 10 && strcmp(argv[9], "tls") == 0;
        if (argc >= 10 && !tls) {
            fprintf(stderr, "bad normal option %s\n", argv[9]);
            return 2;
        }
        if (tls && tls_init() < 0) {
            fprintf(stderr, "cannot set up TLS\n");
            return 1;
        }
        g_reqlen = snprintf(g_req, sizeof(g_req),
                            "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                            "Connection: close\r\n\r\n", argv[7]);
        return mode_normal(atoi(argv[4]), atof(argv[5]), atof(argv[6]),
                           atol(argv[8]), tls);
    }
    fprintf(stderr, "bad arguments\n");
    return 2;
}
