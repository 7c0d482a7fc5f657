/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * runner.c - runs the tests of one binary, each in a forked child under
 * alarm(), and prints TAP.  See tap.h for the interface.
 *
 * The parent stays single-threaded and never initialises APR: each child
 * starts from a clean process image (fork of a quiet parent), sets up APR
 * itself and tears it down, so one test's threads, pools or crash cannot
 * leak into the next, and sanitizers report per test.
 */

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <apr_general.h>

#include "tap.h"

static int failures;            /* in the child: failed checks so far */
static double timeout_s;

double tap_timeout_s(void)
{
    return timeout_s;
}

void tap_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;

    failures++;
    fprintf(stderr, "#   failed at %s line %d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
}

void tap_abort_test(void)
{
    /* exit(), not _exit(): the leak checker and sanitizer summaries run
     * from exit handlers. */
    fflush(stdout);
    exit(1);
}

static double read_multiplier(void)
{
    const char *s = getenv("EV2_TEST_TIMEOUT_MULTIPLIER");
    char *end;
    double m;

    if (!s || !*s) {
        return 1.0;
    }
    errno = 0;
    m = strtod(s, &end);
    if (errno || *end || !(m > 0)) {
        fprintf(stderr, "# ignoring EV2_TEST_TIMEOUT_MULTIPLIER=%s\n", s);
        return 1.0;
    }
    return m;
}

/* The limit rounded up to whole seconds, as alarm() wants, never 0 (which
 * would cancel the alarm instead of arming it). */
static unsigned int timeout_whole_s(void)
{
    unsigned int s = (unsigned int)timeout_s;

    if ((double)s < timeout_s || s == 0) {
        s++;
    }
    return s;
}

static void __attribute__((noreturn)) run_child(const tap_test_t *t)
{
    alarm(timeout_whole_s());
    if (apr_initialize() != APR_SUCCESS) {
        fprintf(stderr, "# apr_initialize() failed\n");
        exit(1);
    }
    t->fn();
    apr_terminate();
    fflush(stdout);
    exit(failures ? 1 : 0);
}

/* Run one test; returns 1 if it passed. */
static int run_one(const tap_test_t *t, int number)
{
    pid_t pid;
    int status;

    /* Anything still buffered would be printed twice, by both processes. */
    fflush(stdout);
    fflush(stderr);
    pid = fork();
    if (pid < 0) {
        printf("not ok %d - %s\n# fork() failed: %s\n", number, t->name,
               strerror(errno));
        return 0;
    }
    if (pid == 0) {
        run_child(t);
    }

    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            printf("not ok %d - %s\n# waitpid(%ld) failed: %s\n", number,
                   t->name, (long)pid, strerror(errno));
            return 0;
        }
    }

    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        printf("ok %d - %s\n", number, t->name);
        return 1;
    }
    printf("not ok %d - %s\n", number, t->name);
    fflush(stdout);
    /* Why, on stderr: prove shows stderr even when not verbose. */
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM) {
        fprintf(stderr, "# %s timed out after %u s (deadlock?)\n", t->name,
                timeout_whole_s());
    }
    else if (WIFSIGNALED(status)) {
        fprintf(stderr, "# %s killed by signal %d (%s)\n", t->name,
                WTERMSIG(status), strsignal(WTERMSIG(status)));
    }
    else {
        fprintf(stderr, "# %s failed (exit status %d)\n", t->name,
                WEXITSTATUS(status));
    }
    return 0;
}

static int is_selected(const char *name, int argc, char **argv)
{
    int i;

    if (argc <= 1) {
        return 1;
    }
    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], name) == 0) {
            return 1;
        }
    }
    return 0;
}

int tap_main(const tap_test_t *tests, int argc, char **argv)
{
    const tap_test_t *t;
    int planned = 0, number = 0, failed = 0;

    if (argc == 2 && strcmp(argv[1], "--list") == 0) {
        for (t = tests; t->name; t++) {
            printf("%s\n", t->name);
        }
        return 0;
    }

    for (t = tests; t->name; t++) {
        if (is_selected(t->name, argc, argv)) {
            planned++;
        }
    }
    if (planned == 0) {
        fprintf(stderr, "no test matches; try --list\n");
        return 2;
    }

    timeout_s = TAP_DEFAULT_TIMEOUT_S * read_multiplier();
    printf("1..%d\n", planned);
    for (t = tests; t->name; t++) {
        if (is_selected(t->name, argc, argv)) {
            failed += !run_one(t, ++number);
        }
    }
    fflush(stdout);
    return failed ? 1 : 0;
}
