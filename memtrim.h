/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * memtrim.h - give the kernel back the unused tail of a connection's memory
 * blocks while the connection is idle.
 *
 * A connection's pool and its bucket allocator each start in one APR
 * memory block of 8 KiB, of which an idle HTTP/1.1 keep-alive connection
 * uses one page (measured: 2.6 KiB of the pool's, 1.4 KiB of the bucket
 * allocator's).  The blocks come from a shared allocator, so they have
 * usually served a request before and the rest of them is resident too.
 * Trimming hands the whole pages behind the block's first free byte back
 * with madvise(MADV_DONTNEED): they read as zeros and cost nothing until
 * APR hands that space out and it is written again.  Nothing that is in
 * use is touched; only space APR has not handed out.
 *
 * This reads APR's public block header (apr_memnode_t, apr_allocator.h)
 * at the start of the block that holds the pool, or the bucket allocator:
 * APR 1.x puts either structure right behind the header of its first
 * block.  The header is checked for consistency first (its size index
 * matches its end pointer, the first free byte lies inside the block,
 * behind the structure); if it does not look like one, nothing is done.
 *
 * The caller keeps one ev2_trim_mark_t per block and passes it every time:
 * a block is only trimmed again once APR has handed out more of it since
 * the last trim (otherwise the call is two loads and a compare).
 *
 * Threads: the caller must own the pool / bucket allocator (no other
 * thread allocating from it).  APR only; no httpd symbols.
 */

#ifndef EV2_MEMTRIM_H
#define EV2_MEMTRIM_H

#include <apr_pools.h>
#include <apr_buckets.h>

/** Where the block's free space began at its last trim; zero-initialise. */
typedef struct {
    const char *first_avail;
} ev2_trim_mark_t;

/** Trim the first block of pool p.  Returns the bytes given back. */
apr_size_t ev2_trim_pool(apr_pool_t *p, ev2_trim_mark_t *mark);

/** Trim the first block of bucket allocator ba.  Returns the bytes given
 *  back. */
apr_size_t ev2_trim_bucket_alloc(apr_bucket_alloc_t *ba,
                                 ev2_trim_mark_t *mark);

#endif /* EV2_MEMTRIM_H */
