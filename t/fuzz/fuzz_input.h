/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * fuzz_input.h - helpers shared by the libFuzzer targets in t/fuzz: take
 * numbers and strings from the fuzzer's bytes (zeros once they run out,
 * so every input is usable), and CHECK(), which reports a broken
 * invariant and aborts so that libFuzzer records the input as a crash.
 */

#ifndef EV2_FUZZ_INPUT_H
#define EV2_FUZZ_INPUT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const uint8_t *p;
    size_t left;
} fuzz_in_t;

static inline uint64_t fuzz_bytes(fuzz_in_t *in, size_t n)
{
    uint64_t v = 0;
    size_t i;

    for (i = 0; i < n; i++) {
        v <<= 8;
        if (in->left) {
            v |= *in->p++;
            in->left--;
        }
    }
    return v;
}

static inline uint8_t fuzz_u8(fuzz_in_t *in)
{
    return (uint8_t)fuzz_bytes(in, 1);
}

static inline uint32_t fuzz_u32(fuzz_in_t *in)
{
    return (uint32_t)fuzz_bytes(in, 4);
}

static inline int64_t fuzz_i64(fuzz_in_t *in)
{
    return (int64_t)fuzz_bytes(in, 8);
}

/* A number in [lo, hi] (lo <= hi).  One tag byte first: 0 and 1 give the
 * bounds themselves, 2 a small offset from lo, anything else a 4-byte
 * value folded into the range, so the ends and small values are as easy
 * for the fuzzer to reach as the middle. */
static inline int64_t fuzz_range(fuzz_in_t *in, int64_t lo, int64_t hi)
{
    uint64_t span = (uint64_t)hi - (uint64_t)lo;
    uint8_t tag = fuzz_u8(in);
    uint64_t v;

    switch (tag % 8) {
    case 0:
        return lo;
    case 1:
        return hi;
    case 2:
        v = fuzz_u8(in);
        break;
    default:
        v = fuzz_u32(in);
        break;
    }
    if (span != UINT64_MAX) {
        v %= span + 1;
    }
    return (int64_t)((uint64_t)lo + v);
}

/* The rest of the input as a NUL-terminated string (cut at 255 bytes or
 * at an embedded NUL). */
static inline const char *fuzz_rest_string(fuzz_in_t *in, char *buf,
                                           size_t size)
{
    size_t n = in->left < size - 1 ? in->left : size - 1;

    memcpy(buf, in->p, n);
    buf[n] = '\0';
    in->p += n;
    in->left -= n;
    return buf;
}

#define CHECK(cond) \
    do { \
        if (!(cond)) { \
            fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, \
                    __LINE__, #cond); \
            abort(); \
        } \
    } while (0)

#endif /* EV2_FUZZ_INPUT_H */
