/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * memtrim.c - see memtrim.h.
 */

#include <sys/mman.h>
#include <unistd.h>

#include <apr_allocator.h>

#include "memtrim.h"

/* APR sizes blocks in units of 4 KiB: a block of index i spans
 * (i + 1) x 4 KiB, header included. */
#define BLOCK_UNIT_SHIFT 12

/* The header of the block whose first structure is obj, or NULL if what
 * precedes obj does not look like one. */
static apr_memnode_t *block_of(const void *obj)
{
    apr_memnode_t *n = (apr_memnode_t *)((char *)obj - APR_MEMNODE_T_SIZE);
    apr_size_t size = ((apr_size_t)n->index + 1) << BLOCK_UNIT_SHIFT;

    if (n->endp != (char *)n + size
        || n->first_avail <= (const char *)obj || n->first_avail > n->endp) {
        return NULL;
    }
    return n;
}

static apr_size_t page_size(void)
{
    static apr_size_t size;

    if (!size) {
        long v = sysconf(_SC_PAGESIZE);

        size = v > 0 ? (apr_size_t)v : 4096;
    }
    return size;
}

#if APR_POOL_DEBUG

/* Debug pools are not laid out in blocks: nothing to trim. */
static apr_size_t trim_block(const void *obj, ev2_trim_mark_t *mark)
{
    (void)obj;
    (void)mark;
    return 0;
}

#else

static apr_size_t trim_block(const void *obj, ev2_trim_mark_t *mark)
{
    apr_memnode_t *n;
    apr_size_t ps = page_size();
    apr_uintptr_t lo, hi;

    if (!obj || !(n = block_of(obj)) || n->first_avail == mark->first_avail) {
        return 0;
    }
    mark->first_avail = n->first_avail;
    /* Whole pages only, from the first one APR has not handed out any of
     * to the block's end. */
    lo = ((apr_uintptr_t)n->first_avail + ps - 1) & ~(apr_uintptr_t)(ps - 1);
    hi = (apr_uintptr_t)n->endp & ~(apr_uintptr_t)(ps - 1);
    if (hi <= lo || madvise((void *)lo, hi - lo, MADV_DONTNEED) != 0) {
        return 0;
    }
    return hi - lo;
}

#endif

apr_size_t ev2_trim_pool(apr_pool_t *p, ev2_trim_mark_t *mark)
{
    return trim_block(p, mark);
}

apr_size_t ev2_trim_bucket_alloc(apr_bucket_alloc_t *ba,
                                 ev2_trim_mark_t *mark)
{
    return trim_block(ba, mark);
}
