/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * faultinj.c - an LD_PRELOAD shim that makes chosen library calls fail
 * with a chosen errno, for the fault-injection tests (t/server/fault_*.t).
 *
 * Build: gcc -shared -fPIC -O2 -o faultinj.so faultinj.c -ldl
 *        (make t/fault/faultinj.so; make test builds it).
 *
 * Configuration, from the environment:
 *   EV2_FAULT="SPEC[,SPEC...]"   faults active for the whole run
 *   EV2_FAULT_FILE=PATH          faults read from PATH, active while it
 *                                exists; the file is looked at again at
 *                                most every 20 ms per process, and a change
 *                                of its contents starts new counters
 *   EV2_FAULT_PIDFILE=PATH       httpd's PidFile, for pid= below
 *   EV2_FAULT_LOG=PATH           one line "pid FUNC ERRNO" appended per
 *                                injected failure (tests count them; it
 *                                costs three system calls per failure)
 *
 * SPEC is FUNC:ERRNO[:OPTION...], the errno by name (EMFILE) or number.
 * FUNC is one of
 *   accept accept4        -1/errno
 *   epoll_ctl epoll_wait  -1/errno (epoll_wait also fails epoll_pwait)
 *   eventfd_write         write() on an eventfd only (-1/errno); the fd
 *                         is checked with readlink(/proc/self/fd/N) on
 *                         every write while such a spec is active (not
 *                         cached: fstat cannot tell anonymous inodes apart
 *                         and descriptors are reused)
 *   pthread_create        returns the errno
 *   fork                  -1/errno
 *   malloc                NULL/errno
 *   apr_pool_create_ex apr_pool_create_unmanaged_ex
 *                         *newpool = NULL, returns the errno (as APR does
 *                         on failure, but without calling an abort
 *                         function: see "abort")
 * OPTIONs:
 *   after=N     let the first N matching calls through (default 0)
 *   count=N     then fail N calls (default: every call)
 *   pid=parent  only in the process whose pid is in EV2_FAULT_PIDFILE
 *   pid=child   only in processes whose parent is that process
 *   pid=any     everywhere (default); a process whose role is not known yet
 *               (no pid file) matches only pid=any
 *   op=add|mod|del   epoll_ctl: only that operation
 *   from=STR    only calls made from an object whose path contains STR
 *               (dladdr of the return address), e.g. from=mod_mpm_event2
 *   eat         accept/accept4: really accept the connection and close
 *               it, then fail (what a real ECONNABORTED looks like)
 *   abort       apr_pool_create*: call the pool's abort function the way
 *               APR does on a real allocation failure (httpd's aborts)
 * Example: EV2_FAULT="accept4:EMFILE:after=5:count=20:pid=child"
 *
 * Counters are per process (a child starts from what its parent had at
 * fork(); pid=child specs are never counted in the parent) and atomic, so
 * the shim is thread-safe.  Spec sets read from the file rotate through
 * four static tables: a reader never sees a table rewritten unless it
 * stalls across three reloads (60 ms or more), and then at worst makes one
 * wrong fault decision.  The shim never calls malloc itself; malloc
 * requests go to __libc_malloc, and a per-thread guard keeps the shim's
 * own work out of its wrappers.
 */

#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

enum {
    F_ACCEPT, F_ACCEPT4, F_EPOLL_CTL, F_EPOLL_WAIT, F_EVENTFD_WRITE,
    F_PTHREAD_CREATE, F_FORK, F_MALLOC, F_POOL_CREATE, F_POOL_UNMANAGED,
    F_NUM
};

static const char *const func_names[F_NUM] = {
    "accept", "accept4", "epoll_ctl", "epoll_wait", "eventfd_write",
    "pthread_create", "fork", "malloc", "apr_pool_create_ex",
    "apr_pool_create_unmanaged_ex"
};

enum { ROLE_ANY, ROLE_PARENT, ROLE_CHILD };

#define MAX_SPECS 16
#define SPEC_TEXT 1024

typedef struct {
    int func;
    int err;
    long after;
    long count;          /* -1: unlimited */
    int role;
    int op;              /* epoll_ctl op, 0: any */
    int eat;
    int call_abort;
    char from[64];
    long seen;           /* matching calls so far (atomic) */
} spec_t;

typedef struct {
    int n;
    unsigned int mask;   /* bit per func with a spec */
    spec_t specs[MAX_SPECS];
} specset_t;

static specset_t env_set;
static specset_t file_sets[4];
static specset_t *file_cur;          /* atomic pointer; NULL: none */
static unsigned int file_next;       /* next table to fill */
static int initialized;
static const char *fault_file;
static const char *pid_file;
static const char *log_file;

/* File change detection (updated by the one thread doing a reload). */
static long long next_check_ns;      /* atomic */
static int reloading;                /* atomic flag */
static struct stat file_st;
static int file_present;

/* Role cache: valid for cached_pid only. */
static pid_t cached_pid;
static int cached_role;

static __thread int in_shim;

/* ---- the real functions ---------------------------------------------- */

extern void *__libc_malloc(size_t size);

static int (*real_accept)(int, struct sockaddr *, socklen_t *);
static int (*real_accept4)(int, struct sockaddr *, socklen_t *, int);
static int (*real_epoll_ctl)(int, int, int, struct epoll_event *);
static int (*real_epoll_wait)(int, struct epoll_event *, int, int);
static int (*real_epoll_pwait)(int, struct epoll_event *, int, int,
                               const sigset_t *);
static ssize_t (*real_write)(int, const void *, size_t);
static int (*real_pthread_create)(pthread_t *, const pthread_attr_t *,
                                  void *(*)(void *), void *);
static pid_t (*real_fork)(void);
typedef int (*abortfn_t)(int);
static int (*real_pool_create_ex)(void **, void *, abortfn_t, void *);
static int (*real_pool_unmanaged_ex)(void **, abortfn_t, void *);
static abortfn_t (*real_pool_abort_get)(void *);

static void *next_sym(const char *name)
{
    void *p;

    in_shim++;
    p = dlsym(RTLD_NEXT, name);
    in_shim--;
    return p;
}

#define RESOLVE(var, name) \
    do { \
        if (!(var)) { \
            *(void **)&(var) = next_sym(name); \
        } \
    } while (0)

/* ---- parsing ---------------------------------------------------------- */

static const struct { const char *name; int val; } errnos[] = {
    { "EMFILE", EMFILE }, { "ENFILE", ENFILE }, { "ENOMEM", ENOMEM },
    { "ECONNABORTED", ECONNABORTED }, { "EAGAIN", EAGAIN },
    { "EINTR", EINTR }, { "EBADF", EBADF }, { "EINVAL", EINVAL },
    { "ENOSPC", ENOSPC }, { "EPERM", EPERM }, { "EIO", EIO },
    { "ENOBUFS", ENOBUFS }, { "EPROTO", EPROTO }, { "ENETDOWN", ENETDOWN },
    { "EFAULT", EFAULT }, { "ENOENT", ENOENT }, { "EEXIST", EEXIST },
    { NULL, 0 }
};

static int parse_long(const char *s, size_t len, long *out)
{
    long v = 0;
    size_t i;

    if (len == 0) {
        return -1;
    }
    for (i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

static int token_is(const char *s, size_t len, const char *word)
{
    return strlen(word) == len && strncmp(s, word, len) == 0;
}

/* Parse one FUNC:ERRNO[:OPT...] of len bytes into sp; 0 if valid. */
static int parse_spec(const char *s, size_t len, spec_t *sp)
{
    const char *end = s + len;
    int field = 0;

    memset(sp, 0, sizeof(*sp));
    sp->func = -1;
    sp->count = -1;
    while (s < end) {
        const char *colon = memchr(s, ':', (size_t)(end - s));
        size_t n = colon ? (size_t)(colon - s) : (size_t)(end - s);
        long v;
        int i;

        if (field == 0) {
            for (i = 0; i < F_NUM; i++) {
                if (token_is(s, n, func_names[i])) {
                    sp->func = i;
                }
            }
            if (token_is(s, n, "apr_pool_create")) {
                sp->func = F_POOL_CREATE;
            }
            if (token_is(s, n, "write")) {
                sp->func = F_EVENTFD_WRITE;
            }
            if (sp->func < 0) {
                return -1;
            }
        }
        else if (field == 1) {
            if (parse_long(s, n, &v) == 0) {
                sp->err = (int)v;
            }
            else {
                for (i = 0; errnos[i].name; i++) {
                    if (token_is(s, n, errnos[i].name)) {
                        sp->err = errnos[i].val;
                    }
                }
            }
            if (sp->err <= 0) {
                return -1;
            }
        }
        else if (n > 6 && strncmp(s, "after=", 6) == 0) {
            if (parse_long(s + 6, n - 6, &sp->after) != 0) {
                return -1;
            }
        }
        else if (n > 6 && strncmp(s, "count=", 6) == 0) {
            if (parse_long(s + 6, n - 6, &sp->count) != 0) {
                return -1;
            }
        }
        else if (token_is(s, n, "pid=parent")) {
            sp->role = ROLE_PARENT;
        }
        else if (token_is(s, n, "pid=child")) {
            sp->role = ROLE_CHILD;
        }
        else if (token_is(s, n, "pid=any")) {
            sp->role = ROLE_ANY;
        }
        else if (token_is(s, n, "op=add")) {
            sp->op = EPOLL_CTL_ADD;
        }
        else if (token_is(s, n, "op=mod")) {
            sp->op = EPOLL_CTL_MOD;
        }
        else if (token_is(s, n, "op=del")) {
            sp->op = EPOLL_CTL_DEL;
        }
        else if (n > 5 && strncmp(s, "from=", 5) == 0
                 && n - 5 < sizeof(sp->from)) {
            memcpy(sp->from, s + 5, n - 5);
            sp->from[n - 5] = '\0';
        }
        else if (token_is(s, n, "eat")) {
            sp->eat = 1;
        }
        else if (token_is(s, n, "abort")) {
            sp->call_abort = 1;
        }
        else {
            return -1;
        }
        field++;
        s += n + (colon ? 1 : 0);
    }
    return field >= 2 ? 0 : -1;
}

/* Parse comma/newline separated specs; bad ones are reported on stderr
 * and skipped. */
static void parse_set(const char *text, size_t len, specset_t *set)
{
    const char *s = text, *end = text + len;

    set->n = 0;
    set->mask = 0;
    while (s < end && set->n < MAX_SPECS) {
        size_t n = 0;

        while (s < end && (*s == ',' || *s == '\n' || *s == ' '
                           || *s == '\r' || *s == '\t')) {
            s++;
        }
        while (s + n < end && s[n] != ',' && s[n] != '\n' && s[n] != ' '
               && s[n] != '\r' && s[n] != '\t') {
            n++;
        }
        if (n == 0) {
            break;
        }
        if (parse_spec(s, n, &set->specs[set->n]) == 0) {
            set->mask |= 1u << set->specs[set->n].func;
            set->n++;
        }
        else {
            static const char msg[] = "faultinj: ignoring bad spec: ";

            if (write(2, msg, sizeof(msg) - 1) < 0
                || write(2, s, n) < 0 || write(2, "\n", 1) < 0) {
                /* nowhere to complain */
            }
        }
        s += n;
    }
}

/* ---- the control file ------------------------------------------------- */

static long long now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void reload_file(void)
{
    struct stat st;
    long long now = now_ns();
    long long due = __atomic_load_n(&next_check_ns, __ATOMIC_RELAXED);

    if (now < due) {
        return;
    }
    if (__atomic_exchange_n(&reloading, 1, __ATOMIC_ACQUIRE)) {
        return;
    }
    __atomic_store_n(&next_check_ns, now + 20000000LL, __ATOMIC_RELAXED);
    if (stat(fault_file, &st) != 0) {
        if (file_present) {
            file_present = 0;
            __atomic_store_n(&file_cur, NULL, __ATOMIC_RELEASE);
        }
    }
    else if (!file_present || st.st_ino != file_st.st_ino
             || st.st_size != file_st.st_size
             || st.st_mtim.tv_sec != file_st.st_mtim.tv_sec
             || st.st_mtim.tv_nsec != file_st.st_mtim.tv_nsec) {
        char buf[SPEC_TEXT];
        ssize_t got = 0;
        int fd = open(fault_file, O_RDONLY | O_CLOEXEC);

        if (fd >= 0) {
            got = read(fd, buf, sizeof(buf));
            close(fd);
        }
        if (got >= 0) {
            specset_t *set = &file_sets[file_next];

            file_next = (file_next + 1) % 4;
            parse_set(buf, (size_t)got, set);
            file_st = st;
            file_present = 1;
            __atomic_store_n(&file_cur, set, __ATOMIC_RELEASE);
        }
    }
    __atomic_store_n(&reloading, 0, __ATOMIC_RELEASE);
}

/* ---- deciding --------------------------------------------------------- */

static pid_t read_pidfile(void)
{
    char buf[32];
    ssize_t got;
    pid_t pid = 0;
    int fd, i;

    if (!pid_file || (fd = open(pid_file, O_RDONLY | O_CLOEXEC)) < 0) {
        return 0;
    }
    got = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    for (i = 0; i < got && buf[i] >= '0' && buf[i] <= '9'; i++) {
        pid = pid * 10 + (buf[i] - '0');
    }
    return pid;
}

/* ROLE_PARENT, ROLE_CHILD, or ROLE_ANY when not known (yet). */
static int my_role(void)
{
    pid_t me = getpid(), parent;

    if (__atomic_load_n(&cached_pid, __ATOMIC_ACQUIRE) == me) {
        return __atomic_load_n(&cached_role, __ATOMIC_RELAXED);
    }
    parent = read_pidfile();
    if (parent <= 0) {
        return ROLE_ANY;
    }
    if (parent == me) {
        __atomic_store_n(&cached_role, ROLE_PARENT, __ATOMIC_RELAXED);
    }
    else if (parent == getppid()) {
        __atomic_store_n(&cached_role, ROLE_CHILD, __ATOMIC_RELAXED);
    }
    else {
        return ROLE_ANY;
    }
    __atomic_store_n(&cached_pid, me, __ATOMIC_RELEASE);
    return cached_role;
}

static void log_fault(int func, int err)
{
    char line[128];
    size_t n = 0;
    char digits[24];
    int d = 0, fd;
    unsigned long v = (unsigned long)getpid();
    const char *name = func_names[func];

    if (!log_file) {
        return;
    }
    do {
        digits[d++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (d) {
        line[n++] = digits[--d];
    }
    line[n++] = ' ';
    while (*name && n < 100) {
        line[n++] = *name++;
    }
    line[n++] = ' ';
    v = (unsigned long)err;
    do {
        digits[d++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (d) {
        line[n++] = digits[--d];
    }
    line[n++] = '\n';
    fd = open(log_file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
    if (fd >= 0) {
        if (write(fd, line, n) < 0) {
            /* the test will see fewer lines */
        }
        close(fd);
    }
}

static int caller_matches(const spec_t *sp, const void *caller)
{
    Dl_info info;

    if (!sp->from[0]) {
        return 1;
    }
    if (!caller || !dladdr(caller, &info) || !info.dli_fname) {
        return 0;
    }
    return strstr(info.dli_fname, sp->from) != NULL;
}

static spec_t *match_in(specset_t *set, int func, int op,
                        const void *caller)
{
    int i;

    if (!set || !(set->mask & (1u << func))) {
        return NULL;
    }
    for (i = 0; i < set->n; i++) {
        spec_t *sp = &set->specs[i];
        long k;

        if (sp->func != func || (sp->op && sp->op != op)) {
            continue;
        }
        if (sp->role != ROLE_ANY && my_role() != sp->role) {
            continue;
        }
        if (!caller_matches(sp, caller)) {
            continue;
        }
        k = __atomic_fetch_add(&sp->seen, 1, __ATOMIC_RELAXED);
        if (k >= sp->after && (sp->count < 0 || k < sp->after + sp->count)) {
            return sp;
        }
    }
    return NULL;
}

/* The spec that makes this call fail, or NULL. */
static spec_t *should_fail(int func, int op, const void *caller)
{
    spec_t *sp;

    if (!initialized || in_shim) {
        return NULL;
    }
    in_shim++;
    if (fault_file) {
        reload_file();
    }
    sp = match_in(&env_set, func, op, caller);
    if (!sp) {
        sp = match_in(__atomic_load_n(&file_cur, __ATOMIC_ACQUIRE), func, op,
                      caller);
    }
    if (sp) {
        log_fault(func, sp->err);
    }
    in_shim--;
    return sp;
}

/* Cheap test used before anything else: may func fail at all? */
static int maybe(int func)
{
    specset_t *f;

    if (!initialized) {
        return 0;
    }
    if (env_set.mask & (1u << func)) {
        return 1;
    }
    if (!fault_file) {
        return 0;
    }
    if (!in_shim) {
        in_shim++;
        reload_file();
        in_shim--;
    }
    f = __atomic_load_n(&file_cur, __ATOMIC_ACQUIRE);
    return f && (f->mask & (1u << func));
}

__attribute__((constructor))
static void faultinj_init(void)
{
    const char *spec = getenv("EV2_FAULT");

    in_shim++;
    fault_file = getenv("EV2_FAULT_FILE");
    pid_file = getenv("EV2_FAULT_PIDFILE");
    log_file = getenv("EV2_FAULT_LOG");
    if (fault_file && !*fault_file) {
        fault_file = NULL;
    }
    if (log_file && !*log_file) {
        log_file = NULL;
    }
    if (spec) {
        parse_set(spec, strlen(spec), &env_set);
    }
    RESOLVE(real_accept, "accept");
    RESOLVE(real_accept4, "accept4");
    RESOLVE(real_epoll_ctl, "epoll_ctl");
    RESOLVE(real_epoll_wait, "epoll_wait");
    RESOLVE(real_epoll_pwait, "epoll_pwait");
    RESOLVE(real_write, "write");
    RESOLVE(real_pthread_create, "pthread_create");
    RESOLVE(real_fork, "fork");
    in_shim--;
    initialized = 1;
}

/* ---- the wrappers ----------------------------------------------------- */

#define CALLER __builtin_return_address(0)

int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    spec_t *sp;

    RESOLVE(real_accept4, "accept4");
    if (maybe(F_ACCEPT4) && (sp = should_fail(F_ACCEPT4, 0, CALLER))) {
        if (sp->eat) {
            int c = real_accept4(fd, NULL, NULL, SOCK_CLOEXEC);

            if (c < 0) {
                return -1;      /* nothing was waiting: report that */
            }
            close(c);
        }
        errno = sp->err;
        return -1;
    }
    return real_accept4(fd, addr, len, flags);
}

int accept(int fd, struct sockaddr *addr, socklen_t *len)
{
    spec_t *sp;

    RESOLVE(real_accept, "accept");
    if (maybe(F_ACCEPT) && (sp = should_fail(F_ACCEPT, 0, CALLER))) {
        if (sp->eat) {
            int c = real_accept(fd, NULL, NULL);

            if (c < 0) {
                return -1;
            }
            close(c);
        }
        errno = sp->err;
        return -1;
    }
    return real_accept(fd, addr, len);
}

int epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
    spec_t *sp;

    RESOLVE(real_epoll_ctl, "epoll_ctl");
    if (maybe(F_EPOLL_CTL) && (sp = should_fail(F_EPOLL_CTL, op, CALLER))) {
        errno = sp->err;
        return -1;
    }
    return real_epoll_ctl(epfd, op, fd, ev);
}

int epoll_wait(int epfd, struct epoll_event *evs, int max, int timeout)
{
    spec_t *sp;

    RESOLVE(real_epoll_wait, "epoll_wait");
    if (maybe(F_EPOLL_WAIT) && (sp = should_fail(F_EPOLL_WAIT, 0, CALLER))) {
        errno = sp->err;
        return -1;
    }
    return real_epoll_wait(epfd, evs, max, timeout);
}

int epoll_pwait(int epfd, struct epoll_event *evs, int max, int timeout,
                const sigset_t *mask)
{
    spec_t *sp;

    RESOLVE(real_epoll_pwait, "epoll_pwait");
    if (maybe(F_EPOLL_WAIT) && (sp = should_fail(F_EPOLL_WAIT, 0, CALLER))) {
        errno = sp->err;
        return -1;
    }
    return real_epoll_pwait(epfd, evs, max, timeout, mask);
}

static int is_eventfd(int fd)
{
    char path[40], target[64];
    ssize_t n;
    int k = 0, d = 0;
    char digits[16];
    unsigned int v = (unsigned int)fd;
    static const char prefix[] = "/proc/self/fd/";
    static const char want[] = "anon_inode:[eventfd]";

    if (fd < 0) {
        return 0;
    }
    memcpy(path, prefix, sizeof(prefix) - 1);
    k = sizeof(prefix) - 1;
    do {
        digits[d++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (d) {
        path[k++] = digits[--d];
    }
    path[k] = '\0';
    n = readlink(path, target, sizeof(target));
    return n == (ssize_t)(sizeof(want) - 1)
           && memcmp(target, want, sizeof(want) - 1) == 0;
}

ssize_t write(int fd, const void *buf, size_t len)
{
    spec_t *sp;

    RESOLVE(real_write, "write");
    if (maybe(F_EVENTFD_WRITE) && !in_shim && is_eventfd(fd)
        && (sp = should_fail(F_EVENTFD_WRITE, 0, CALLER))) {
        errno = sp->err;
        return -1;
    }
    return real_write(fd, buf, len);
}

int pthread_create(pthread_t *t, const pthread_attr_t *attr,
                   void *(*fn)(void *), void *arg)
{
    spec_t *sp;

    RESOLVE(real_pthread_create, "pthread_create");
    if (maybe(F_PTHREAD_CREATE)
        && (sp = should_fail(F_PTHREAD_CREATE, 0, CALLER))) {
        return sp->err;
    }
    return real_pthread_create(t, attr, fn, arg);
}

pid_t fork(void)
{
    spec_t *sp;

    RESOLVE(real_fork, "fork");
    if (maybe(F_FORK) && (sp = should_fail(F_FORK, 0, CALLER))) {
        errno = sp->err;
        return -1;
    }
    return real_fork();
}

void *malloc(size_t size)
{
    spec_t *sp;

    if (maybe(F_MALLOC) && (sp = should_fail(F_MALLOC, 0, CALLER))) {
        errno = sp->err;
        return NULL;
    }
    return __libc_malloc(size);
}

static int pool_failure(spec_t *sp, void **newpool, abortfn_t fn,
                        void *parent)
{
    *newpool = NULL;
    if (sp->call_abort) {
        if (!fn && parent) {
            RESOLVE(real_pool_abort_get, "apr_pool_abort_get");
            if (real_pool_abort_get) {
                fn = real_pool_abort_get(parent);
            }
        }
        if (fn) {
            fn(sp->err);
        }
    }
    return sp->err;
}

int apr_pool_create_ex(void **newpool, void *parent, abortfn_t fn,
                       void *allocator)
{
    spec_t *sp;

    RESOLVE(real_pool_create_ex, "apr_pool_create_ex");
    if (maybe(F_POOL_CREATE) && (sp = should_fail(F_POOL_CREATE, 0, CALLER))) {
        return pool_failure(sp, newpool, fn, parent);
    }
    return real_pool_create_ex(newpool, parent, fn, allocator);
}

int apr_pool_create_unmanaged_ex(void **newpool, abortfn_t fn,
                                 void *allocator)
{
    spec_t *sp;

    RESOLVE(real_pool_unmanaged_ex, "apr_pool_create_unmanaged_ex");
    if (maybe(F_POOL_UNMANAGED)
        && (sp = should_fail(F_POOL_UNMANAGED, 0, CALLER))) {
        return pool_failure(sp, newpool, fn, NULL);
    }
    return real_pool_unmanaged_ex(newpool, fn, allocator);
}
