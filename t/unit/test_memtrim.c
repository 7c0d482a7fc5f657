/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * test_memtrim.c - unit tests for memtrim.h: the unused tail pages of a
 * pool's or a bucket allocator's first block go back to the kernel, what
 * is in use stays intact, and the space trimmed is still usable.
 *
 * Residency is read with mincore(2).  The blocks come from an allocator
 * of our own, as in the MPM (one allocator shared by connection pools).
 */

#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <apr_allocator.h>
#include <apr_buckets.h>
#include <apr_pools.h>
#include <apr_strings.h>

#include "memtrim.h"
#include "tap.h"

typedef struct {
    apr_allocator_t *allocator;
    apr_pool_t *root;
} fixture_t;

static void setup(fixture_t *f)
{
    require_is(apr_allocator_create(&f->allocator), APR_SUCCESS);
    require_is(apr_pool_create_ex(&f->root, NULL, NULL, f->allocator),
               APR_SUCCESS);
    apr_allocator_owner_set(f->allocator, f->root);
}

static void teardown(fixture_t *f)
{
    apr_pool_destroy(f->root);
}

static apr_uintptr_t page_size(void)
{
    return (apr_uintptr_t)sysconf(_SC_PAGESIZE);
}

static apr_uintptr_t page_of(const void *addr)
{
    return (apr_uintptr_t)addr & ~(page_size() - 1);
}

/* Whether the page holding addr is resident. */
static int is_resident(const void *addr)
{
    unsigned char vec = 0;

    require(mincore((void *)page_of(addr), 1, &vec) == 0);
    return vec & 1;
}

/* The block APR placed obj at the start of (what memtrim.c checks). */
static apr_memnode_t *block_of(const void *obj)
{
    return (apr_memnode_t *)((char *)obj - APR_MEMNODE_T_SIZE);
}

/* A pool whose first block has been written all over, then cleared: the
 * state of a recycled connection pool. */
static apr_pool_t *used_pool(fixture_t *f)
{
    apr_pool_t *p;
    apr_memnode_t *n;
    char *mem;

    require_is(apr_pool_create(&p, f->root), APR_SUCCESS);
    n = block_of(p);
    mem = apr_palloc(p, (apr_size_t)(n->endp - n->first_avail));
    memset(mem, 0xa5, (apr_size_t)(n->endp - mem));
    apr_pool_clear(p);
    return p;
}

static void pool_tail_pages_are_released(void)
{
    fixture_t f;
    apr_pool_t *p;
    apr_memnode_t *n;
    char *kept, *last;
    apr_size_t got, want;

    setup(&f);
    p = used_pool(&f);
    n = block_of(p);
    kept = apr_pstrdup(p, "still here");
    last = n->endp - 1;
    ok(is_resident(last));

    /* Expected: from the first page APR handed out none of, to the end. */
    want = page_of(n->endp) - page_of(n->first_avail + page_size() - 1);
    ok(want >= page_size());
    got = ev2_trim_pool(p, &(ev2_trim_mark_t){ NULL });
    is(got, want);
    ok(!is_resident(last));
    ok(is_resident(kept));
    ok(strcmp(kept, "still here") == 0);

    /* What was trimmed is handed out again and holds what is written. */
    {
        apr_size_t left = (apr_size_t)(n->endp - n->first_avail);
        char *more = apr_palloc(p, left);

        memset(more, 0x3c, left);
        ok(more[left - 1] == 0x3c && more[0] == 0x3c);
        ok(strcmp(kept, "still here") == 0);
    }
    teardown(&f);
}

static void mark_skips_a_block_that_did_not_grow(void)
{
    fixture_t f;
    apr_pool_t *p;
    ev2_trim_mark_t mark = { NULL };
    apr_memnode_t *n;

    setup(&f);
    p = used_pool(&f);
    n = block_of(p);
    ok(ev2_trim_pool(p, &mark) > 0);
    ok(mark.first_avail == n->first_avail);

    /* Touch the trimmed page again without APR handing out more: a
     * second call with the same mark does nothing. */
    memset(n->endp - 16, 1, 16);
    ok(is_resident(n->endp - 1));
    is(ev2_trim_pool(p, &mark), 0);
    ok(is_resident(n->endp - 1));

    /* Once APR handed out more, the mark no longer matches. */
    apr_palloc(p, 64);
    ok(ev2_trim_pool(p, &mark) > 0);
    ok(!is_resident(n->endp - 1));
    ok(mark.first_avail == n->first_avail);
    teardown(&f);
}

static void full_block_gives_nothing_back(void)
{
    fixture_t f;
    apr_pool_t *p;
    apr_memnode_t *n;

    setup(&f);
    p = used_pool(&f);
    n = block_of(p);
    /* Leave less than a page free. */
    apr_palloc(p, (apr_size_t)(n->endp - n->first_avail) - 512);
    is(ev2_trim_pool(p, &(ev2_trim_mark_t){ NULL }), 0);
    ok(is_resident(n->endp - 1));
    teardown(&f);
}

static void bucket_alloc_tail_pages_are_released(void)
{
    fixture_t f;
    apr_pool_t *p;
    apr_bucket_alloc_t *ba;
    apr_memnode_t *n;
    void *small[8];
    int i;

    setup(&f);
    /* Leave recycled, fully written blocks on the allocator's free list,
     * as a busy child does. */
    apr_pool_destroy(used_pool(&f));
    require_is(apr_pool_create(&p, f.root), APR_SUCCESS);
    ba = apr_bucket_alloc_create(p);
    require(ba != NULL);
    n = block_of(ba);
    memset(n->first_avail, 0x5a, (apr_size_t)(n->endp - n->first_avail));
    for (i = 0; i < 8; i++) {
        small[i] = apr_bucket_alloc(64, ba);
        memset(small[i], i, 64);
    }
    ok(is_resident(n->endp - 1));

    ok(ev2_trim_bucket_alloc(ba, &(ev2_trim_mark_t){ NULL }) > 0);
    ok(!is_resident(n->endp - 1));
    for (i = 0; i < 8; i++) {
        ok(((unsigned char *)small[i])[63] == (unsigned char)i);
        apr_bucket_free(small[i]);
    }
    /* The allocator carves the trimmed space again without trouble. */
    for (i = 0; i < 64; i++) {
        void *m = apr_bucket_alloc(100, ba);

        require(m != NULL);
        memset(m, 0xee, 100);
    }
    apr_bucket_alloc_destroy(ba);
    teardown(&f);
}

/* Memory that is not an APR block (its would-be header is zeros) is left
 * alone. */
static void not_a_block_is_left_alone(void)
{
    static char area[3 * 4096] __attribute__((aligned(4096)));

    memset(area, 0, sizeof(area));
    is(ev2_trim_pool((apr_pool_t *)(void *)(area + APR_MEMNODE_T_SIZE),
                     &(ev2_trim_mark_t){ NULL }), 0);
    is(ev2_trim_bucket_alloc(NULL, &(ev2_trim_mark_t){ NULL }), 0);
    area[sizeof(area) - 1] = 1;
    ok(area[sizeof(area) - 1] == 1);
}

static const tap_test_t tests[] = {
    TAP_TEST(pool_tail_pages_are_released),
    TAP_TEST(mark_skips_a_block_that_did_not_grow),
    TAP_TEST(full_block_gives_nothing_back),
    TAP_TEST(bucket_alloc_tail_pages_are_released),
    TAP_TEST(not_a_block_is_left_alone),
    TAP_END
};

int main(int argc, char **argv)
{
    return tap_main(tests, argc, argv);
}
