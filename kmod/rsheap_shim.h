/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The boundary between rsheap's Rust core and its C shim.
 *
 * Ownership: the Rust side owns every rsheap object (heaps, buffers, read-only
 * exports, attachments' sg tables).  The C side owns only the ops tables the kernel
 * calls through, which Rust cannot build without the kernel's C layouts of
 * `struct dma_buf_ops` and `struct dma_heap_ops`.  Each C callback unpacks the core's structs and calls one Rust
 * function below; a buffer, or a read-only export, crosses the boundary as the
 * opaque `void *` that Rust handed out (`dma_buf->priv`).
 */

#ifndef RSHEAP_SHIM_H
#define RSHEAP_SHIM_H

#include <linux/dma-direction.h>
#include <linux/gfp_types.h>
#include <linux/types.h>

#include <linux/mm_types.h>
#include <linux/pgtable.h>

struct bio_vec;
struct device;
struct dma_buf;
struct file;
struct dma_heap;
struct list_head;
struct page;
struct scatterlist;
struct seq_file;
struct sg_table;
struct shrinker;
struct vm_area_struct;
struct vm_fault;

/* Implemented in C, called from Rust. */
bool rsheap_param_mem_accounting(void);
int rsheap_param_pool_limit_mb(void);
struct dma_heap *rsheap_heap_add(const char *name, void *heap);
struct dma_buf *rsheap_dmabuf_export(void *buffer, size_t size, u32 fd_flags,
				     const char *exp_name);
struct dma_buf *rsheap_readonly_export(void *readonly, size_t size,
				       const char *exp_name);
gfp_t rsheap_gfp_high_order(void);
gfp_t rsheap_gfp_low_order(void);
unsigned long rsheap_totalram_pages(void);
bool rsheap_fatal_signal_pending(void);
void rsheap_cond_resched(void);
void rsheap_sg_set_page(struct scatterlist *sg, struct page *page,
			unsigned int len);
unsigned long rsheap_page_to_pfn(struct page *page);
void rsheap_dma_unmap_sgtable(struct device *dev, struct sg_table *sgt,
			      enum dma_data_direction dir, unsigned long attrs);
void rsheap_dma_sync_sgtable_for_cpu(struct device *dev, struct sg_table *sgt,
				     enum dma_data_direction dir);
void rsheap_dma_sync_sgtable_for_device(struct device *dev,
					struct sg_table *sgt,
					enum dma_data_direction dir);
void *rsheap_vmap(struct page **pages, unsigned int count, bool writecombine);
void rsheap_vunmap(const void *addr);
void rsheap_invalidate_kernel_vmap_range(void *addr, int size);
void rsheap_flush_kernel_vmap_range(void *addr, int size);
void rsheap_clear_page(struct page *page);
void rsheap_account_reclaimable(struct page *page, long nr_pages);
struct shrinker *rsheap_shrinker_register(void *pools);
struct device *rsheap_heap_dma_device(struct dma_heap *heap);
int rsheap_flush_bvecs(struct device *dev, const struct bio_vec *bvec,
		       unsigned long nr_segs);
struct list_head *rsheap_page_list_new(void);
void rsheap_page_list_free(struct list_head *list);
void rsheap_page_list_add(struct list_head *list, struct page *page);
struct page *rsheap_page_list_take(struct list_head *list);
int rsheap_vma_setup(struct vm_area_struct *vma, void *buffer,
		     bool writecombine);
bool rsheap_vma_writable(const struct vm_area_struct *vma);
void rsheap_vma_clear_maywrite(struct vm_area_struct *vma);
int rsheap_vma_map_pfns(struct vm_area_struct *vma, unsigned long addr,
			unsigned long pfn, unsigned long size);
vm_fault_t rsheap_vmf_insert_pfn(struct vm_fault *vmf, unsigned long addr,
				 unsigned long pfn);
vm_fault_t rsheap_vmf_insert_pfn_pmd(struct vm_fault *vmf, unsigned long pfn);
unsigned int rsheap_pmd_order(void);

/* rsheap_stats.c: sysfs and debugfs views of the counters. */
int rsheap_sysfs_create(void *inventory, bool uncached);
void rsheap_debugfs_create(void *inventory);

/* The counters rsheap_stat() reads; @index picks a heap or a pool order. */
enum rsheap_stat_id {
	RSHEAP_STAT_BUFFERS,
	RSHEAP_STAT_BYTES,
	RSHEAP_STAT_POOL_BYTES,
	RSHEAP_STAT_POOL_PENDING_BYTES,
	RSHEAP_STAT_POOL_LIMIT_BYTES,
	RSHEAP_STAT_POOL_CHUNK_BYTES,
	RSHEAP_STAT_POOL_HITS,
	RSHEAP_STAT_POOL_ZEROED,
	RSHEAP_STAT_POOL_FREED,
	RSHEAP_STAT_SHRINKER_COUNTS,
	RSHEAP_STAT_SHRINKER_SCANS,
	RSHEAP_STAT_SHRINKER_FREED_BYTES,
};

/* The heaps, as @index of RSHEAP_STAT_BUFFERS and RSHEAP_STAT_BYTES. */
#define RSHEAP_HEAP_CACHED	0
#define RSHEAP_HEAP_UNCACHED	1

/* What a file (or a dma-buf's file) may be used for: rsheap_file_access(). */
#define RSHEAP_ACCESS_READ	(1U << 0)
#define RSHEAP_ACCESS_WRITE	(1U << 1)
#define RSHEAP_ACCESS_APPEND	(1U << 2)
#define RSHEAP_ACCESS_DIRECT	(1U << 3)

void *rsheap_dmabuf_get(int fd, struct dma_buf **dmabuf, bool *read_only);
void rsheap_dmabuf_put(struct dma_buf *dmabuf);
unsigned int rsheap_dmabuf_access(struct dma_buf *dmabuf);
unsigned int rsheap_file_access(struct file *file);
unsigned int rsheap_file_type(struct file *file);
u64 rsheap_file_size(struct file *file);
void rsheap_file_dio_align(struct file *file, u32 *offset_align,
			   u32 *mem_align);
ssize_t rsheap_file_rw(struct file *file, bool write, bool direct, u64 pos,
		       const struct bio_vec *bvec, unsigned long nr_segs,
		       size_t count);
int rsheap_ctl_register(void);
void rsheap_ctl_deregister(void);
struct rsheap_pool_worker;
int rsheap_pool_worker_start(struct rsheap_pool_worker **out);
void rsheap_pool_worker_wake(struct rsheap_pool_worker *worker,
			     const void *pools);
void rsheap_pool_worker_stop(struct rsheap_pool_worker *worker);

/* Implemented in Rust (ops.rs), called from C. */
struct dma_buf *rsheap_heap_allocate(void *heap, unsigned long len,
				     u32 fd_flags, u64 heap_flags);
long rsheap_heap_pool_bytes(void *heap);
int rsheap_buffer_attach(void *buffer, const void *key, struct device *dev);
void rsheap_buffer_detach(void *buffer, const void *key);
struct sg_table *rsheap_buffer_map(void *buffer, const void *key,
				   enum dma_data_direction dir);
void rsheap_buffer_unmap(void *buffer, const void *key,
			 enum dma_data_direction dir);
int rsheap_buffer_begin_cpu_access(void *buffer, enum dma_data_direction dir);
int rsheap_buffer_end_cpu_access(void *buffer, enum dma_data_direction dir);
int rsheap_buffer_mmap(void *buffer, struct vm_area_struct *vma,
		       unsigned long start, unsigned long end,
		       unsigned long pgoff);
vm_fault_t rsheap_buffer_fault(void *buffer, struct vm_fault *vmf,
			       unsigned long address, unsigned long start,
			       unsigned long end, unsigned long pgoff,
			       unsigned int order);
void *rsheap_buffer_vmap(void *buffer);
void rsheap_buffer_vunmap(void *buffer);
void rsheap_buffer_release(void *buffer);
void *rsheap_readonly_buffer(void *readonly);
struct sg_table *rsheap_readonly_map(void *readonly, const void *key,
				     enum dma_data_direction dir);
int rsheap_readonly_mmap(void *readonly, struct vm_area_struct *vma,
			 unsigned long start, unsigned long end,
			 unsigned long pgoff);
void rsheap_readonly_release(void *readonly);
struct dma_buf *rsheap_ctl_share_readonly(int buf_fd, u32 fd_flags);
unsigned long rsheap_pools_count(void *pools);
unsigned long rsheap_pools_scan(void *pools, unsigned long nr_to_scan);
void rsheap_pools_zero_pending(void *pools);
int rsheap_stats_show(void *inventory, struct seq_file *m);
u64 rsheap_stat(void *inventory, unsigned int stat, unsigned int index);
int rsheap_ctl_transfer(bool store, u32 flags, int file_fd, int buf_fd,
			u64 file_offset, u64 buf_offset, u64 length,
			u64 *bytes, u64 *direct_bytes);
void *rsheap_account_new(void);
void rsheap_account_put(void *account);
int rsheap_ctl_charge(void *account, int buf_fd);
void rsheap_ctl_account(void *account, u64 *buffers, u64 *bytes);

#endif /* RSHEAP_SHIM_H */
