/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * tap.h - a tiny test harness for the unit tests, printing TAP.
 *
 * A test binary lists its tests in an array of tap_test_t, ending with
 * {NULL, NULL}, and calls tap_main() from main().  tap_main() runs every
 * test in its own child process under alarm(), so a crash or a deadlock
 * fails that one test and the others still run.  The default limit is
 * TAP_DEFAULT_TIMEOUT_S seconds, multiplied by the environment variable
 * EV2_TEST_TIMEOUT_MULTIPLIER (for slow sanitizer builds).
 *
 * Inside a test, ok()/is()/is_ptr() record a failure and carry on; the
 * require_*() forms end the test at once (use them where continuing would
 * dereference garbage).  Failures print as TAP diagnostics ("# ...") with
 * both values and the source line.
 *
 * Usage: test_foo [--list] [name ...]   (names select which tests run)
 */

#ifndef EV2_TAP_H
#define EV2_TAP_H

#include <stdlib.h>

#define TAP_DEFAULT_TIMEOUT_S 10

typedef struct tap_test_t {
    const char *name;
    void (*fn)(void);
} tap_test_t;

#define TAP_TEST(name) { #name, name }
#define TAP_END { NULL, NULL }

int tap_main(const tap_test_t *tests, int argc, char **argv);

/* Failure bookkeeping for the current test (one per child process). */
void tap_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void tap_abort_test(void) __attribute__((noreturn));

/* The wall-clock limit this test runs under, in seconds: bounded waits
 * inside tests scale with it. */
double tap_timeout_s(void);

#define ok(cond) \
    do { \
        if (!(cond)) { \
            tap_fail(__FILE__, __LINE__, "expected true: %s", #cond); \
        } \
    } while (0)

#define is(got, expected) \
    do { \
        long long tap_got_ = (long long)(got); \
        long long tap_exp_ = (long long)(expected); \
        if (tap_got_ != tap_exp_) { \
            tap_fail(__FILE__, __LINE__, "%s == %s: got %lld, expected %lld", \
                     #got, #expected, tap_got_, tap_exp_); \
        } \
    } while (0)

#define is_ptr(got, expected) \
    do { \
        const void *tap_got_ = (const void *)(got); \
        const void *tap_exp_ = (const void *)(expected); \
        if (tap_got_ != tap_exp_) { \
            tap_fail(__FILE__, __LINE__, "%s == %s: got %p, expected %p", \
                     #got, #expected, tap_got_, tap_exp_); \
        } \
    } while (0)

#define require(cond) \
    do { \
        if (!(cond)) { \
            tap_fail(__FILE__, __LINE__, "required: %s", #cond); \
            tap_abort_test(); \
        } \
    } while (0)

#define require_is(got, expected) \
    do { \
        long long tap_rgot_ = (long long)(got); \
        long long tap_rexp_ = (long long)(expected); \
        if (tap_rgot_ != tap_rexp_) { \
            tap_fail(__FILE__, __LINE__, \
                     "required %s == %s: got %lld, expected %lld", \
                     #got, #expected, tap_rgot_, tap_rexp_); \
            tap_abort_test(); \
        } \
    } while (0)

#endif /* EV2_TAP_H */
