// SPDX-License-Identifier: GPL-2.0
/*
 * Constants of the target kernel that rsheap's Rust needs at compile time.
 *
 * This file is compiled to assembly only and never linked.  Each
 * RSHEAP_CONST() leaves a line "->RSHEAP name type value" that the Kbuild turns
 * into `pub(crate) const name: type = value;` in consts.rs, the way the kernel
 * generates asm-offsets.h.  The values depend on the architecture and the
 * configuration (page size, GFP bits, errno numbers, struct layouts), so they
 * are read from the kernel's own headers instead of being written down.
 */

#include <linux/bvec.h>
#include <linux/dma-mapping.h>
#include <linux/errno.h>
#include <linux/fcntl.h>
#include <linux/gfp.h>
#include <linux/mm_types.h>
#include <linux/scatterlist.h>
#include <linux/stat.h>

#include "kernel/support.h"
#include "rsheap_shim.h"

#define RSHEAP_CONST(name, type, value) \
	asm volatile("\n.ascii \"->RSHEAP " #name " " #type " %0\"" \
		     : : "i" (value))

/* The layout of a C struct that Rust declares field by field. */
#define RSHEAP_LAYOUT(prefix, type)					\
	RSHEAP_CONST(prefix##_SIZE, usize, sizeof(type));		\
	RSHEAP_CONST(prefix##_ALIGN, usize, __alignof__(type))
#define RSHEAP_OFFSET(name, type, member) \
	RSHEAP_CONST(name, usize, offsetof(type, member))

void rsheap_consts(void);

void rsheap_consts(void)
{
	RSHEAP_CONST(PAGE_SHIFT, usize, PAGE_SHIFT);
	RSHEAP_CONST(PAGE_SIZE, usize, PAGE_SIZE);

	RSHEAP_CONST(GFP_KERNEL, u32, (__force u32)GFP_KERNEL);
	RSHEAP_CONST(GFP_ACCOUNT, u32, (__force u32)__GFP_ACCOUNT);

	RSHEAP_CONST(DMA_BIDIRECTIONAL, u32, DMA_BIDIRECTIONAL);
	RSHEAP_CONST(DMA_TO_DEVICE, u32, DMA_TO_DEVICE);
	RSHEAP_CONST(DMA_ATTR_SKIP_CPU_SYNC, usize, DMA_ATTR_SKIP_CPU_SYNC);

	RSHEAP_CONST(VM_FAULT_SIGBUS, u32, (__force u32)VM_FAULT_SIGBUS);
	RSHEAP_CONST(VM_FAULT_NOPAGE, u32, (__force u32)VM_FAULT_NOPAGE);
	RSHEAP_CONST(VM_FAULT_FALLBACK, u32, (__force u32)VM_FAULT_FALLBACK);

	RSHEAP_CONST(O_CLOEXEC, u32, O_CLOEXEC);

	RSHEAP_CONST(S_IFREG, u32, S_IFREG);
	RSHEAP_CONST(S_IFBLK, u32, S_IFBLK);
	RSHEAP_CONST(S_IFDIR, u32, S_IFDIR);
	RSHEAP_CONST(S_IFIFO, u32, S_IFIFO);
	RSHEAP_CONST(S_IFSOCK, u32, S_IFSOCK);

	RSHEAP_CONST(EINTR, i32, EINTR);
	RSHEAP_CONST(EBADF, i32, EBADF);
	RSHEAP_CONST(ENOMEM, i32, ENOMEM);
	RSHEAP_CONST(ENOTBLK, i32, ENOTBLK);
	RSHEAP_CONST(EACCES, i32, EACCES);
	RSHEAP_CONST(EBUSY, i32, EBUSY);
	RSHEAP_CONST(EEXIST, i32, EEXIST);
	RSHEAP_CONST(EISDIR, i32, EISDIR);
	RSHEAP_CONST(EINVAL, i32, EINVAL);
	RSHEAP_CONST(ESPIPE, i32, ESPIPE);
	RSHEAP_CONST(EOVERFLOW, i32, EOVERFLOW);
	RSHEAP_CONST(EOPNOTSUPP, i32, EOPNOTSUPP);
	RSHEAP_CONST(ERESTARTSYS, i32, ERESTARTSYS);
	RSHEAP_CONST(EXDEV, i32, EXDEV);
	RSHEAP_CONST(ENODEV, i32, ENODEV);
	RSHEAP_CONST(MAX_ERRNO, i32, MAX_ERRNO);

	RSHEAP_CONST(LOCK_BUFFER_INNER, u32, RSHEAP_LOCK_BUFFER_INNER);
	RSHEAP_CONST(LOCK_BUFFER_TRANSFER, u32, RSHEAP_LOCK_BUFFER_TRANSFER);
	RSHEAP_CONST(LOCK_PAGE_POOL, u32, RSHEAP_LOCK_PAGE_POOL);

	RSHEAP_CONST(STAT_BUFFERS, u32, RSHEAP_STAT_BUFFERS);
	RSHEAP_CONST(STAT_BYTES, u32, RSHEAP_STAT_BYTES);
	RSHEAP_CONST(STAT_POOL_BYTES, u32, RSHEAP_STAT_POOL_BYTES);
	RSHEAP_CONST(STAT_POOL_PENDING_BYTES, u32, RSHEAP_STAT_POOL_PENDING_BYTES);
	RSHEAP_CONST(STAT_POOL_LIMIT_BYTES, u32, RSHEAP_STAT_POOL_LIMIT_BYTES);
	RSHEAP_CONST(STAT_POOL_CHUNK_BYTES, u32, RSHEAP_STAT_POOL_CHUNK_BYTES);
	RSHEAP_CONST(STAT_POOL_HITS, u32, RSHEAP_STAT_POOL_HITS);
	RSHEAP_CONST(STAT_POOL_ZEROED, u32, RSHEAP_STAT_POOL_ZEROED);
	RSHEAP_CONST(STAT_POOL_FREED, u32, RSHEAP_STAT_POOL_FREED);
	RSHEAP_CONST(STAT_SHRINKER_COUNTS, u32, RSHEAP_STAT_SHRINKER_COUNTS);
	RSHEAP_CONST(STAT_SHRINKER_SCANS, u32, RSHEAP_STAT_SHRINKER_SCANS);
	RSHEAP_CONST(STAT_SHRINKER_FREED_BYTES, u32, RSHEAP_STAT_SHRINKER_FREED_BYTES);
	RSHEAP_CONST(HEAP_CACHED, u32, RSHEAP_HEAP_CACHED);
	RSHEAP_CONST(HEAP_UNCACHED, u32, RSHEAP_HEAP_UNCACHED);

	RSHEAP_LAYOUT(SG_TABLE, struct sg_table);
	RSHEAP_OFFSET(SG_TABLE_SGL, struct sg_table, sgl);
	RSHEAP_OFFSET(SG_TABLE_NENTS, struct sg_table, nents);
	RSHEAP_OFFSET(SG_TABLE_ORIG_NENTS, struct sg_table, orig_nents);
	RSHEAP_LAYOUT(BIO_VEC, struct bio_vec);
	RSHEAP_OFFSET(BIO_VEC_PAGE, struct bio_vec, bv_page);
	RSHEAP_OFFSET(BIO_VEC_LEN, struct bio_vec, bv_len);
	RSHEAP_OFFSET(BIO_VEC_OFFSET, struct bio_vec, bv_offset);
}
