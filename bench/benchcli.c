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
 *   benchcli slow   HOST PORT N INTERVAL DURATION [body]
 *       N slow clients: each sends a request line and then one header byte
 *       every INTERVAL seconds, never finishing the header; reconnects when
 *       the server closes.  Runs DURATION seconds, prints "SLOW ...".
 *       With "body": a whole POST header (Content-Length: 8192), then one
 *       body byte every INTERVAL seconds (slow POST).
 *
 *   benchcli normal HOST PORT CONC DURATION TIMEOUT PATH EXPECT_LEN
 *       CONC concurrent clients, each opening a new connection per request
 *       ("Connection: close"), for DURATION seconds; a request not answered
 *       within TIMEOUT seconds counts as a timeout.  Prints "NORMAL ..." with
 *       counts and latency percentiles of the served requests.
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

enum { ST_FREE, ST_CONNECTING, ST_SENDING, ST_READING, ST_IDLE, ST_DEAD };

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
} conn_t;

static struct sockaddr_in g_addr;
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
    c->t0 = now();
    if (connect(fd, (struct sockaddr *)&g_addr, sizeof(g_addr)) == 0) {
        c->state = ST_SENDING;
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

static void kill_conn(conn_t *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->state = ST_DEAD;
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
        ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
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
        ssize_t n = send(c->fd, data + c->sent, len - c->sent, MSG_NOSIGNAL);
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
    c->state = ST_SENDING;
    return 0;
}

static short want_events(conn_t *c)
{
    switch (c->state) {
    case ST_CONNECTING:
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

static int mode_slow(int n, double interval, double duration,
                     int is_body)
{
    conn_t *cs = calloc(n, sizeof(conn_t));
    struct pollfd *pfd = calloc(n + 1, sizeof(struct pollfd));
    int *idx = calloc(n + 1, sizeof(int));
    double end = now() + duration;
    long opened = 0, closed = 0, responses = 0, bytes = 0;
    int i, still = 0;
    /* A header that never ends, or a whole header and a body of 8 KiB
     * that never ends (the DURATION is far below 8192 x INTERVAL). */
    const char *start = is_body
        ? "POST /index.html HTTP/1.1\r\nHost: 127.0.0.1\r\n"
          "Content-Type: application/x-www-form-urlencoded\r\n"
          "Content-Length: 8192\r\n\r\n"
        : "GET /index.html HTTP/1.1\r\nHost: 127.0.0.1\r\n"
          "X-Slow: ";
    size_t slen = strlen(start);

    if (!cs || !pfd || !idx)
        return 1;
    for (i = 0; i < n; i++) {
        cs[i].fd = -1;
        if (open_conn(&cs[i]) == 0)
            opened++;
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
                if (open_conn(c) == 0)
                    opened++;
                else
                    continue;
            }
            if (c->state == ST_READING && t >= c->next) {
                /* one more header byte */
                ssize_t r = send(c->fd, "a", 1, MSG_NOSIGNAL);
                if (r == 1)
                    bytes++;
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
            if (c->state == ST_SENDING) {
                int r = send_some(c, start, slen);
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
                /* the server answered (e.g. 408/400) or closed */
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
    for (i = 0; i < n; i++) {
        if (cs[i].state == ST_READING)
            still++;
        if (cs[i].fd >= 0)
            close(cs[i].fd);
    }
    printf("SLOW opened=%ld closed_by_server=%ld responses=%ld still_open=%d "
           "bytes_sent=%ld\n", opened, closed, responses, still, bytes);
    return 0;
}

/* ------------------------------------------------------------------ */
/* normal mode                                                          */

static int cmpd(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int mode_normal(int conc, double duration, double timeout,
                       long expect)
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
            if (c->state == ST_CONNECTING || c->state == ST_SENDING
                || c->state == ST_READING) {
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
                kill_conn(c);
                c->state = ST_FREE;
            }
        }
    }
    for (i = 0; i < conc; i++)
        if (cs[i].fd >= 0) {
            close(cs[i].fd);
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
    if (strcmp(mode, "slow") == 0 && argc >= 7)
        return mode_slow(atoi(argv[4]), atof(argv[5]), atof(argv[6]),
                         argc >= 8 && strcmp(argv[7], "body") == 0);
    if (strcmp(mode, "normal") == 0 && argc >= 9) {
        g_reqlen = snprintf(g_req, sizeof(g_req),
                            "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                            "Connection: close\r\n\r\n", argv[7]);
        return mode_normal(atoi(argv[4]), atof(argv[5]), atof(argv[6]),
                           atol(argv[8]));
    }
    fprintf(stderr, "bad arguments\n");
    return 2;
}
