// SPDX-License-Identifier: GPL-2.0
/*
 * C shim of rsheap.ko.
 *
 * Rust cannot build the kernel's ops tables against its C headers, nor call
 * static inlines and macros.  This file holds exactly those pieces: the ops
 * tables (whose callbacks unpack the core's structs and call one Rust function
 * each), the dma-buf exports, the control device's ioctl ABI, the pools'
 * zeroing thread, the pools' page lists, one-line forwarders for static
 * inlines and macros, and the namespace imports.  All policy lives in Rust.
 */

#include <linux/blkdev.h>
#include <linux/bvec.h>
#include <linux/completion.h>
#include <linux/dma-buf.h>
#include <linux/dma-heap.h>
#include <linux/dma-mapping.h>
#include <linux/err.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/highmem.h>
#include <linux/huge_mm.h>
#include <linux/iosys-map.h>
#include <linux/kthread.h>
#include <linux/miscdevice.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/pfn_t.h>
#include <linux/platform_device.h>
#include <linux/scatterlist.h>
#include <linux/sched/signal.h>
#include <linux/shrinker.h>
#include <linux/slab.h>
#include <linux/stat.h>
#include <linux/timer.h>
#include <linux/uaccess.h>
#include <linux/uio.h>
#include <linux/version.h>
#include <linux/vmalloc.h>
#include <linux/vmstat.h>
#include <linux/wait.h>

#include <uapi/linux/rsheap.h>

#include "rsheap_shim.h"

/*
 * The PMD path needs vmf_insert_pfn_pmd(), which the Kbuild enables
 * (RSHEAP_PMD_PFNMAP) only where the target kernel exports it.
 */
#if defined(CONFIG_ARCH_SUPPORTS_PMD_PFNMAP) && defined(RSHEAP_PMD_PFNMAP)
#define RSHEAP_PMD_FAULTS
#endif

/*
 * Where the kernel's THP code applies its sysfs policy to huge PFN mappings,
 * it calls a huge_fault handler with THP in "madvise" mode (Android's default)
 * only for VMAs marked VM_HUGEPAGE.  "mm/huge_memory: bypass THP tuneables for
 * huge pfnmap mappings" stopped that, since the policy governs compaction and
 * PFN mappings have none: in v7.3, backported to 6.12.115.  Only kernels
 * without it get the mark, which would otherwise show the VMA as one the user
 * asked huge pages for.
 */
#if defined(RSHEAP_PMD_FAULTS) &&					\
	LINUX_VERSION_CODE < KERNEL_VERSION(7, 3, 0) &&			\
	!(LINUX_VERSION_CODE >= KERNEL_VERSION(6, 12, 115) &&		\
	  LINUX_VERSION_CODE < KERNEL_VERSION(6, 13, 0))
#define RSHEAP_MARK_VM_HUGEPAGE
#endif

MODULE_IMPORT_NS(DMA_BUF);
MODULE_IMPORT_NS(DMA_BUF_HEAP);

/* Module parameters. */

static bool mem_accounting;
module_param(mem_accounting, bool, 0444);
MODULE_PARM_DESC(mem_accounting,
		 "Charge buffer pages to the allocating memory cgroup; pages are then not pooled (default: off)");

static int pool_limit_mb = -1;
module_param(pool_limit_mb, int, 0444);
MODULE_PARM_DESC(pool_limit_mb,
		 "Page pool budget in MiB: -1 for a quarter of RAM (default), 0 for no pool");

bool rsheap_param_mem_accounting(void)
{
	return mem_accounting;
}

int rsheap_param_pool_limit_mb(void)
{
	return pool_limit_mb;
}

/*
 * x86 PAT keeps one memory type per RAM page and refuses a second
 * write-combined user mapping of the same pages, and x86 DMA is cache-coherent:
 * there the uncached heap's mappings stay cached, which is correct.
 */
static pgprot_t rsheap_pgprot_writecombine(pgprot_t prot)
{
#ifdef CONFIG_X86
	return prot;
#else
	return pgprot_writecombine(prot);
#endif
}

/* dma_heap_ops */

static struct dma_buf *op_allocate(struct dma_heap *heap, unsigned long len,
				       u32 fd_flags, u64 heap_flags)
{
	return rsheap_heap_allocate(dma_heap_get_drvdata(heap), len, fd_flags,
				    heap_flags);
}

#ifdef RSHEAP_HEAP_POOL_SIZE
static long op_get_pool_size(struct dma_heap *heap)
{
	return rsheap_heap_pool_bytes(dma_heap_get_drvdata(heap));
}
#endif

static const struct dma_heap_ops rsheap_heap_ops = {
	.allocate = op_allocate,
#ifdef RSHEAP_HEAP_POOL_SIZE
	.get_pool_size = op_get_pool_size,
#endif
};

struct dma_heap *rsheap_heap_add(const char *name, void *heap)
{
	struct dma_heap_export_info exp_info = {
		.name = name,
		.ops = &rsheap_heap_ops,
		.priv = heap,
	};
	/*
	 * The dma-heap core has no way to remove a heap, and its allocate op
	 * points into this module: the module has no exit function, so it can
	 * never unload.
	 */
	return dma_heap_add(&exp_info);
}

/* dma_buf_ops: each unpacks the core's structs and calls into Rust. */

static int op_attach(struct dma_buf *dmabuf,
			 struct dma_buf_attachment *attachment)
{
	return rsheap_buffer_attach(dmabuf->priv, attachment, attachment->dev);
}

static void op_detach(struct dma_buf *dmabuf,
			  struct dma_buf_attachment *attachment)
{
	rsheap_buffer_detach(dmabuf->priv, attachment);
}

static struct sg_table *op_map_dma_buf(struct dma_buf_attachment *attachment,
					   enum dma_data_direction dir)
{
	return rsheap_buffer_map(attachment->dmabuf->priv, attachment, dir);
}

static void op_unmap_dma_buf(struct dma_buf_attachment *attachment,
				 struct sg_table *table,
				 enum dma_data_direction dir)
{
	rsheap_buffer_unmap(attachment->dmabuf->priv, attachment, dir);
}

static int op_begin_cpu_access(struct dma_buf *dmabuf,
				   enum dma_data_direction dir)
{
	return rsheap_buffer_begin_cpu_access(dmabuf->priv, dir);
}

static int op_end_cpu_access(struct dma_buf *dmabuf,
				 enum dma_data_direction dir)
{
	return rsheap_buffer_end_cpu_access(dmabuf->priv, dir);
}

static int op_mmap(struct dma_buf *dmabuf, struct vm_area_struct *vma)
{
	return rsheap_buffer_mmap(dmabuf->priv, vma, vma->vm_start, vma->vm_end,
				  vma->vm_pgoff);
}

/*
 * vm_operations_struct of mapped buffers: mmap() maps what no PMD will, and
 * PMD faults map the rest when touched.
 */

/*
 * The buffer a VMA maps is in vm_private_data (rsheap_vma_setup()), whichever
 * dma-buf, the buffer's own or a read-only export of it, the VMA's file is.
 */
static vm_fault_t op_vm_huge_fault(struct vm_fault *vmf, unsigned int order)
{
	struct vm_area_struct *vma = vmf->vma;

	return rsheap_buffer_fault(vma->vm_private_data, vmf, vmf->address,
				   vma->vm_start, vma->vm_end, vma->vm_pgoff,
				   order);
}

static vm_fault_t op_vm_fault(struct vm_fault *vmf)
{
	return op_vm_huge_fault(vmf, 0);
}

static const struct vm_operations_struct rsheap_vm_ops = {
	.fault = op_vm_fault,
#ifdef RSHEAP_PMD_FAULTS
	.huge_fault = op_vm_huge_fault,
#endif
};

int rsheap_vma_setup(struct vm_area_struct *vma, void *buffer,
		     bool writecombine)
{
	/* PFN mappings cannot be copied on write. */
	if (is_cow_mapping(vma->vm_flags)) {
		pr_info_ratelimited("rsheap: refused a private (copy-on-write) mapping\n");
		return -EINVAL;
	}
	vm_flags_set(vma, VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP);
#ifdef RSHEAP_MARK_VM_HUGEPAGE
	vm_flags_set(vma, VM_HUGEPAGE);
#endif
	if (writecombine)
		vma->vm_page_prot =
			rsheap_pgprot_writecombine(vma->vm_page_prot);
	vma->vm_ops = &rsheap_vm_ops;
	/* The VMA holds its file, which keeps the buffer alive. */
	vma->vm_private_data = buffer;
	return 0;
}

bool rsheap_vma_writable(const struct vm_area_struct *vma)
{
	return vma->vm_flags & VM_WRITE;
}

void rsheap_vma_clear_maywrite(struct vm_area_struct *vma)
{
	vm_flags_clear(vma, VM_MAYWRITE);
}

/* Maps [addr, addr + size) of @vma, being set up by mmap(), from page @pfn. */
int rsheap_vma_map_pfns(struct vm_area_struct *vma, unsigned long addr,
			unsigned long pfn, unsigned long size)
{
	return remap_pfn_range(vma, addr, pfn, size, vma->vm_page_prot);
}

vm_fault_t rsheap_vmf_insert_pfn(struct vm_fault *vmf, unsigned long addr,
				 unsigned long pfn)
{
	return vmf_insert_pfn(vmf->vma, addr, pfn);
}

vm_fault_t rsheap_vmf_insert_pfn_pmd(struct vm_fault *vmf, unsigned long pfn)
{
#ifdef RSHEAP_PMD_FAULTS
	return vmf_insert_pfn_pmd(vmf, __pfn_to_pfn_t(pfn, PFN_DEV),
				  vmf->flags & FAULT_FLAG_WRITE);
#else
	return VM_FAULT_FALLBACK;
#endif
}

unsigned int rsheap_pmd_order(void)
{
#ifdef RSHEAP_PMD_FAULTS
	return PMD_ORDER;
#else
	return 0;
#endif
}

static int buffer_vmap(void *buffer, struct iosys_map *map)
{
	void *vaddr = rsheap_buffer_vmap(buffer);

	if (IS_ERR(vaddr))
		return PTR_ERR(vaddr);
	iosys_map_set_vaddr(map, vaddr);
	return 0;
}

static void buffer_vunmap(void *buffer, struct iosys_map *map)
{
	rsheap_buffer_vunmap(buffer);
	iosys_map_clear(map);
}

static int op_vmap(struct dma_buf *dmabuf, struct iosys_map *map)
{
	return buffer_vmap(dmabuf->priv, map);
}

static void op_vunmap(struct dma_buf *dmabuf, struct iosys_map *map)
{
	buffer_vunmap(dmabuf->priv, map);
}

static void op_release(struct dma_buf *dmabuf)
{
	rsheap_buffer_release(dmabuf->priv);
}

static const struct dma_buf_ops rsheap_buf_ops = {
	.attach = op_attach,
	.detach = op_detach,
	.map_dma_buf = op_map_dma_buf,
	.unmap_dma_buf = op_unmap_dma_buf,
	.begin_cpu_access = op_begin_cpu_access,
	.end_cpu_access = op_end_cpu_access,
	.mmap = op_mmap,
	.vmap = op_vmap,
	.vunmap = op_vunmap,
	.release = op_release,
};

/*
 * DEFINE_DMA_BUF_EXPORT_INFO sets .owner = THIS_MODULE, so every live buffer
 * holds a reference on this module.
 */
struct dma_buf *rsheap_dmabuf_export(void *buffer, size_t size, u32 fd_flags,
				     const char *exp_name)
{
	DEFINE_DMA_BUF_EXPORT_INFO(exp_info);

	exp_info.exp_name = exp_name;
	exp_info.ops = &rsheap_buf_ops;
	exp_info.size = size;
	exp_info.flags = fd_flags;
	exp_info.priv = buffer;
	return dma_buf_export(&exp_info);
}

/*
 * dma_buf_ops of read-only exports (readonly.rs): the same buffer behind a
 * second dma-buf, whose priv is Rust's ReadOnly.  Device maps and CPU mmaps go
 * through Rust's read-only checks; every other op is the buffer's own.
 */

static void *ro_buffer(struct dma_buf *dmabuf)
{
	return rsheap_readonly_buffer(dmabuf->priv);
}

static int op_ro_attach(struct dma_buf *dmabuf,
			struct dma_buf_attachment *attachment)
{
	return rsheap_buffer_attach(ro_buffer(dmabuf), attachment,
				    attachment->dev);
}

static void op_ro_detach(struct dma_buf *dmabuf,
			 struct dma_buf_attachment *attachment)
{
	rsheap_buffer_detach(ro_buffer(dmabuf), attachment);
}

static struct sg_table *op_ro_map_dma_buf(struct dma_buf_attachment *attachment,
					  enum dma_data_direction dir)
{
	return rsheap_readonly_map(attachment->dmabuf->priv, attachment, dir);
}

static void op_ro_unmap_dma_buf(struct dma_buf_attachment *attachment,
				struct sg_table *table,
				enum dma_data_direction dir)
{
	rsheap_buffer_unmap(ro_buffer(attachment->dmabuf), attachment, dir);
}

static int op_ro_begin_cpu_access(struct dma_buf *dmabuf,
				  enum dma_data_direction dir)
{
	return rsheap_buffer_begin_cpu_access(ro_buffer(dmabuf), dir);
}

static int op_ro_end_cpu_access(struct dma_buf *dmabuf,
				enum dma_data_direction dir)
{
	return rsheap_buffer_end_cpu_access(ro_buffer(dmabuf), dir);
}

static int op_ro_mmap(struct dma_buf *dmabuf, struct vm_area_struct *vma)
{
	return rsheap_readonly_mmap(dmabuf->priv, vma, vma->vm_start,
				    vma->vm_end, vma->vm_pgoff);
}

static int op_ro_vmap(struct dma_buf *dmabuf, struct iosys_map *map)
{
	return buffer_vmap(ro_buffer(dmabuf), map);
}

static void op_ro_vunmap(struct dma_buf *dmabuf, struct iosys_map *map)
{
	buffer_vunmap(ro_buffer(dmabuf), map);
}

static void op_ro_release(struct dma_buf *dmabuf)
{
	rsheap_readonly_release(dmabuf->priv);
}

static const struct dma_buf_ops rsheap_ro_buf_ops = {
	.attach = op_ro_attach,
	.detach = op_ro_detach,
	.map_dma_buf = op_ro_map_dma_buf,
	.unmap_dma_buf = op_ro_unmap_dma_buf,
	.begin_cpu_access = op_ro_begin_cpu_access,
	.end_cpu_access = op_ro_end_cpu_access,
	.mmap = op_ro_mmap,
	.vmap = op_ro_vmap,
	.vunmap = op_ro_vunmap,
	.release = op_ro_release,
};

/*
 * A read-only export of @size bytes over @readonly, its file opened O_RDONLY;
 * it has a reservation object of its own.
 */
struct dma_buf *rsheap_readonly_export(void *readonly, size_t size,
				       const char *exp_name)
{
	DEFINE_DMA_BUF_EXPORT_INFO(exp_info);

	exp_info.exp_name = exp_name;
	exp_info.ops = &rsheap_ro_buf_ops;
	exp_info.size = size;
	exp_info.flags = O_RDONLY;
	exp_info.priv = readonly;
	return dma_buf_export(&exp_info);
}

/*
 * Forwarders for macros and static inlines.  The GFP masks are the in-tree
 * system heap's: high orders never enter reclaim, never warn and never retry.
 */

gfp_t rsheap_gfp_high_order(void)
{
	return ((GFP_HIGHUSER | __GFP_ZERO | __GFP_NOWARN | __GFP_NORETRY) &
		~__GFP_RECLAIM) | __GFP_COMP;
}

gfp_t rsheap_gfp_low_order(void)
{
	return GFP_HIGHUSER | __GFP_ZERO;
}

unsigned long rsheap_totalram_pages(void)
{
	return totalram_pages();
}

bool rsheap_fatal_signal_pending(void)
{
	return fatal_signal_pending(current);
}

void rsheap_cond_resched(void)
{
	cond_resched();
}

void rsheap_sg_set_page(struct scatterlist *sg, struct page *page,
			unsigned int len)
{
	sg_set_page(sg, page, len, 0);
}

unsigned long rsheap_page_to_pfn(struct page *page)
{
	return page_to_pfn(page);
}

void rsheap_dma_unmap_sgtable(struct device *dev, struct sg_table *sgt,
			      enum dma_data_direction dir, unsigned long attrs)
{
	dma_unmap_sgtable(dev, sgt, dir, attrs);
}

void rsheap_dma_sync_sgtable_for_cpu(struct device *dev, struct sg_table *sgt,
				     enum dma_data_direction dir)
{
	dma_sync_sgtable_for_cpu(dev, sgt, dir);
}

void rsheap_dma_sync_sgtable_for_device(struct device *dev,
					struct sg_table *sgt,
					enum dma_data_direction dir)
{
	dma_sync_sgtable_for_device(dev, sgt, dir);
}

void *rsheap_vmap(struct page **pages, unsigned int count, bool writecombine)
{
	pgprot_t prot = PAGE_KERNEL;

	if (writecombine)
		prot = rsheap_pgprot_writecombine(prot);
	return vmap(pages, count, VM_MAP, prot);
}

void rsheap_vunmap(const void *addr)
{
	vunmap(addr);
}

void rsheap_invalidate_kernel_vmap_range(void *addr, int size)
{
	invalidate_kernel_vmap_range(addr, size);
}

void rsheap_flush_kernel_vmap_range(void *addr, int size)
{
	flush_kernel_vmap_range(addr, size);
}

void rsheap_clear_page(struct page *page)
{
	clear_highpage(page);
}

void rsheap_account_reclaimable(struct page *page, long nr_pages)
{
	mod_node_page_state(page_pgdat(page), NR_KERNEL_MISC_RECLAIMABLE,
			    nr_pages);
}

/*
 * The pools keep their chunks on lists through page->lru, which belongs to
 * the owner of a page that is on no LRU list: pooling a chunk costs no memory.
 * The caller serialises access to each list.
 */

struct list_head *rsheap_page_list_new(void)
{
	struct list_head *list = kmalloc(sizeof(*list), GFP_KERNEL);

	if (list)
		INIT_LIST_HEAD(list);
	return list;
}

void rsheap_page_list_free(struct list_head *list)
{
	kfree(list);
}

void rsheap_page_list_add(struct list_head *list, struct page *page)
{
	list_add(&page->lru, list);
}

struct page *rsheap_page_list_take(struct list_head *list)
{
	struct page *page = list_first_entry_or_null(list, struct page, lru);

	if (page)
		list_del(&page->lru);
	return page;
}

/* The page pools' shrinker. */

static unsigned long op_count(struct shrinker *shrinker,
			      struct shrink_control *sc)
{
	unsigned long pages = rsheap_pools_count(shrinker->private_data);

	return pages ? pages : SHRINK_EMPTY;
}

static unsigned long op_scan(struct shrinker *shrinker,
			     struct shrink_control *sc)
{
	unsigned long freed = rsheap_pools_scan(shrinker->private_data,
						sc->nr_to_scan);

	return freed ? freed : SHRINK_STOP;
}

struct shrinker *rsheap_shrinker_register(void *pools)
{
	struct shrinker *shrinker = shrinker_alloc(0, "rsheap-pool");

	if (!shrinker)
		return NULL;
	shrinker->count_objects = op_count;
	shrinker->scan_objects = op_scan;
	shrinker->private_data = pools;
	shrinker_register(shrinker);
	return shrinker;
}

/*
 * The kthread that zeroes freed chunks.  It is a thread of its own, not a work
 * item, so that it can run at nice 19: zeroing must never preempt the thread
 * whose close() freed the chunks, nor any other work of the CPU, and a
 * workqueue's workers run at nice 0.  The Android common kernel's deferred
 * free thread runs at nice 19 for the same reason.
 *
 * A release does not wake the thread itself: it arms a timer for the next
 * tick, whose callback does.  The wake-up, an IPI to the idle CPU the thread
 * is woken on, would otherwise be paid inside the caller's close(), and a burst
 * of releases (a camera closing its buffers) makes one wake-up, not one each.
 * The delay costs nothing: an allocation that finds no clean chunk zeroes a
 * dirty one itself.
 *
 * Waking records the pools to work on; they are always the same ones, which
 * own the worker and stop it (waiting for a pass) before they go.  The thread
 * sleeps in TASK_IDLE, so an idle worker neither counts as load nor trips the
 * hung-task detector.  Bit 0 of pending is set by a wake and cleared by the
 * thread before a pass, so chunks filed during a pass get another one; a pass
 * under way sees a wake's bit without waiting for the timer.
 */
struct rsheap_pool_worker {
	struct task_struct *task;
	wait_queue_head_t wait;
	struct timer_list timer;
	unsigned long pending;
	void *pools;
};

static int pool_worker_fn(void *data)
{
	struct rsheap_pool_worker *worker = data;

	while (!kthread_should_stop()) {
		wait_event_idle(worker->wait, test_bit(0, &worker->pending) ||
					      kthread_should_stop());
		if (test_and_clear_bit(0, &worker->pending))
			rsheap_pools_zero_pending(READ_ONCE(worker->pools));
	}
	return 0;
}

static void pool_worker_timer(struct timer_list *timer)
{
	struct rsheap_pool_worker *worker = from_timer(worker, timer, timer);

	wake_up(&worker->wait);
}

int rsheap_pool_worker_start(struct rsheap_pool_worker **out)
{
	struct rsheap_pool_worker *worker = kzalloc(sizeof(*worker),
						    GFP_KERNEL);
	struct task_struct *task;

	if (!worker)
		return -ENOMEM;
	init_waitqueue_head(&worker->wait);
	timer_setup(&worker->timer, pool_worker_timer, 0);
	task = kthread_run(pool_worker_fn, worker, "rsheap-pool");
	if (IS_ERR(task)) {
		kfree(worker);
		return PTR_ERR(task);
	}
	sched_set_normal(task, 19);
	worker->task = task;
	*out = worker;
	return 0;
}

void rsheap_pool_worker_wake(struct rsheap_pool_worker *worker,
			     const void *pools)
{
	WRITE_ONCE(worker->pools, (void *)pools);
	/* Ordered: the pools pointer and the chunks filed before this. */
	if (!test_and_set_bit(0, &worker->pending))
		mod_timer(&worker->timer, jiffies + 1);
}

void rsheap_pool_worker_stop(struct rsheap_pool_worker *worker)
{
	timer_shutdown_sync(&worker->timer);
	kthread_stop(worker->task);
	kfree(worker);
}

/*
 * The device uncached pages are flushed through with the DMA API: the heap's
 * own device, as the Android common kernel's system-uncached heap does, where
 * the kernel has dma_heap_get_dev() (RSHEAP_HEAP_DEV, set by the Kbuild);
 * elsewhere a platform device of the module's own, registered for good on
 * first use.  Either gets a 64-bit DMA mask, so nothing bounces.
 */
struct device *rsheap_heap_dma_device(struct dma_heap *heap)
{
	struct device *dev;
	int ret;

#ifdef RSHEAP_HEAP_DEV
	dev = dma_heap_get_dev(heap);
	if (!dev)
		return ERR_PTR(-ENODEV);
#else
	struct platform_device *pdev;

	pdev = platform_device_register_simple("rsheap", PLATFORM_DEVID_NONE,
					       NULL, 0);
	if (IS_ERR(pdev))
		return ERR_CAST(pdev);
	dev = &pdev->dev;
#endif
	ret = dma_coerce_mask_and_coherent(dev, DMA_BIT_MASK(64));
	if (ret)
		return ERR_PTR(ret);
	return dev;
}

/*
 * Writes back and invalidates the CPU cache lines of the memory @bvec names,
 * by mapping it for DMA to and from @dev and unmapping it again: no
 * allocation, so it cannot fail for want of memory.  Returns 0, or -EIO if a
 * part could not be mapped (and was not flushed).
 */
int rsheap_flush_bvecs(struct device *dev, const struct bio_vec *bvec,
		       unsigned long nr_segs)
{
	int ret = 0;
	unsigned long i;

	for (i = 0; i < nr_segs; i++) {
		dma_addr_t addr = dma_map_page(dev, bvec[i].bv_page,
					       bvec[i].bv_offset,
					       bvec[i].bv_len,
					       DMA_BIDIRECTIONAL);

		if (dma_mapping_error(dev, addr)) {
			ret = -EIO;
			continue;
		}
		dma_unmap_page(dev, addr, bvec[i].bv_len, DMA_BIDIRECTIONAL);
	}
	return ret;
}

/* Buffers and files named by the control device's callers. */

/*
 * The dma-buf open as @fd, if rsheap exported it: its priv (a buffer, or a
 * ReadOnly if *@read_only is set), with a reference in *@dmabuf.
 */
void *rsheap_dmabuf_get(int fd, struct dma_buf **dmabuf, bool *read_only)
{
	struct dma_buf *buf = dma_buf_get(fd);

	if (IS_ERR(buf))
		return ERR_CAST(buf);
	if (buf->ops != &rsheap_buf_ops && buf->ops != &rsheap_ro_buf_ops) {
		dma_buf_put(buf);
		return ERR_PTR(-EXDEV);
	}
	*dmabuf = buf;
	*read_only = buf->ops == &rsheap_ro_buf_ops;
	return buf->priv;
}

void rsheap_dmabuf_put(struct dma_buf *dmabuf)
{
	dma_buf_put(dmabuf);
}

unsigned int rsheap_file_access(struct file *file)
{
	unsigned int access = 0;

	if (file->f_mode & FMODE_READ)
		access |= RSHEAP_ACCESS_READ;
	if (file->f_mode & FMODE_WRITE)
		access |= RSHEAP_ACCESS_WRITE;
	if (file->f_flags & O_APPEND)
		access |= RSHEAP_ACCESS_APPEND;
	if (file->f_mode & FMODE_CAN_ODIRECT)
		access |= RSHEAP_ACCESS_DIRECT;
	return access;
}

unsigned int rsheap_dmabuf_access(struct dma_buf *dmabuf)
{
	return rsheap_file_access(dmabuf->file);
}

unsigned int rsheap_file_type(struct file *file)
{
	return file_inode(file)->i_mode & S_IFMT;
}

u64 rsheap_file_size(struct file *file)
{
	/* The mapping's host is the block device's inode for device files. */
	return i_size_read(file->f_mapping->host);
}

void rsheap_file_dio_align(struct file *file, u32 *offset_align,
			   u32 *mem_align)
{
	struct kstat stat = {};

	*offset_align = 0;
	*mem_align = 0;
	if (!(file->f_mode & FMODE_CAN_ODIRECT))
		return;
	if (S_ISBLK(file_inode(file)->i_mode)) {
		struct block_device *bdev = file_bdev(file);

		*offset_align = bdev_logical_block_size(bdev);
		*mem_align = bdev_dma_alignment(bdev) + 1;
		return;
	}
	if (vfs_getattr_nosec(&file->f_path, &stat, STATX_DIOALIGN,
			      AT_STATX_SYNC_AS_STAT))
		return;
	if (stat.result_mask & STATX_DIOALIGN) {
		*offset_align = stat.dio_offset_align;
		*mem_align = stat.dio_mem_align;
	}
}

/*
 * A synchronous read or write of @file at @pos into or out of the pages @bvec
 * names: by direct I/O if @direct, else through the page cache (even for a
 * file opened O_DIRECT).  A synchronous kiocb lets the file system wait for
 * its own I/O and end a write's freeze protection itself, on every path
 * (overlayfs and FUSE passthrough included).
 */
ssize_t rsheap_file_rw(struct file *file, bool write, bool direct, u64 pos,
		       const struct bio_vec *bvec, unsigned long nr_segs,
		       size_t count)
{
	struct kiocb kiocb;
	struct iov_iter iter;

	init_sync_kiocb(&kiocb, file);
	kiocb.ki_pos = pos;
	if (direct)
		kiocb.ki_flags |= IOCB_DIRECT;
	else
		kiocb.ki_flags &= ~IOCB_DIRECT;
	iov_iter_bvec(&iter, write ? ITER_SOURCE : ITER_DEST, bvec, nr_segs,
		      count);
	if (write)
		return vfs_iocb_iter_write(file, &kiocb, &iter);
	return vfs_iocb_iter_read(file, &kiocb, &iter);
}

/*
 * The control device /dev/rsheap.  Each open file is an account (Rust's
 * Account, in file->private_data) that buffers can be charged to.  The ioctls
 * decode their versioned uapi structs (copy_struct_from_user: a newer, larger
 * struct of up to a page is accepted if its extra bytes are zero) and hand the
 * fields to Rust.
 */

static_assert(sizeof(struct rsheap_transfer) == RSHEAP_TRANSFER_SIZE_VER0);
static_assert(sizeof(struct rsheap_charge) == RSHEAP_CHARGE_SIZE_VER0);
static_assert(sizeof(struct rsheap_account) == RSHEAP_ACCOUNT_SIZE_VER0);
static_assert(sizeof(struct rsheap_share) == RSHEAP_SHARE_SIZE_VER0);

/*
 * Copies the caller's struct of @ksize bytes at @uarg, whose first field is
 * its own size, of at least @min_size.  Returns that size or a negative errno.
 */
static long rsheap_copy_request(void *req, size_t ksize, size_t min_size,
				void __user *uarg)
{
	u32 usize;
	int ret;

	if (get_user(usize, (u32 __user *)uarg))
		return -EFAULT;
	if (usize < min_size)
		return -EINVAL;
	/* As clone3() and openat2(): never scan more than a page for zeroes. */
	if (usize > PAGE_SIZE)
		return -E2BIG;
	ret = copy_struct_from_user(req, ksize, uarg, usize);
	if (ret)
		return ret;
	return usize;
}

static long rsheap_ctl_transfer_ioctl(bool store, void __user *uarg)
{
	struct rsheap_transfer req;
	u64 bytes = 0, direct_bytes = 0;
	long usize;
	int ret;

	usize = rsheap_copy_request(&req, sizeof(req),
				    RSHEAP_TRANSFER_SIZE_VER0, uarg);
	if (usize < 0)
		return usize;
	ret = rsheap_ctl_transfer(store, req.flags, req.file_fd, req.buf_fd,
				  req.file_offset, req.buf_offset, req.length,
				  &bytes, &direct_bytes);
	if (ret)
		return ret;
	req.bytes = bytes;
	req.direct_bytes = direct_bytes;
	if (copy_to_user(uarg, &req, min_t(size_t, usize, sizeof(req))))
		return -EFAULT;
	return 0;
}

static long rsheap_ctl_charge_ioctl(void *account, void __user *uarg)
{
	struct rsheap_charge req;
	long usize;

	usize = rsheap_copy_request(&req, sizeof(req), RSHEAP_CHARGE_SIZE_VER0,
				    uarg);
	if (usize < 0)
		return usize;
	return rsheap_ctl_charge(account, req.buf_fd);
}

static long rsheap_ctl_account_ioctl(void *account, void __user *uarg)
{
	struct rsheap_account req;
	u64 buffers = 0, bytes = 0;
	long usize;

	usize = rsheap_copy_request(&req, sizeof(req),
				    RSHEAP_ACCOUNT_SIZE_VER0, uarg);
	if (usize < 0)
		return usize;
	if (req.flags)
		return -EINVAL;
	rsheap_ctl_account(account, &buffers, &bytes);
	req.buffers = buffers;
	req.bytes = bytes;
	if (copy_to_user(uarg, &req, min_t(size_t, usize, sizeof(req))))
		return -EFAULT;
	return 0;
}

/*
 * Rust makes the read-only export; the new file descriptor is reserved, then
 * reported, and only installed once the caller has its number, so a fault on
 * the way out leaves no descriptor behind.
 */
static long rsheap_ctl_share_ioctl(void __user *uarg)
{
	struct rsheap_share req;
	struct dma_buf *dmabuf;
	long usize;
	int fd;

	usize = rsheap_copy_request(&req, sizeof(req), RSHEAP_SHARE_SIZE_VER0,
				    uarg);
	if (usize < 0)
		return usize;
	dmabuf = rsheap_ctl_share_readonly(req.buf_fd, req.fd_flags);
	if (IS_ERR(dmabuf))
		return PTR_ERR(dmabuf);
	fd = get_unused_fd_flags(req.fd_flags);
	if (fd < 0) {
		dma_buf_put(dmabuf);
		return fd;
	}
	req.ro_fd = fd;
	if (copy_to_user(uarg, &req, min_t(size_t, usize, sizeof(req)))) {
		put_unused_fd(fd);
		dma_buf_put(dmabuf);
		return -EFAULT;
	}
	fd_install(fd, dmabuf->file);
	return 0;
}

static long op_ctl_ioctl(struct file *file, unsigned int cmd,
			 unsigned long arg)
{
	void __user *uarg = (void __user *)arg;

	if (_IOC_TYPE(cmd) != RSHEAP_IOC_MAGIC ||
	    _IOC_DIR(cmd) != (_IOC_READ | _IOC_WRITE))
		return -ENOTTY;
	switch (_IOC_NR(cmd)) {
	case _IOC_NR(RSHEAP_IOC_LOAD):
		return rsheap_ctl_transfer_ioctl(false, uarg);
	case _IOC_NR(RSHEAP_IOC_STORE):
		return rsheap_ctl_transfer_ioctl(true, uarg);
	case _IOC_NR(RSHEAP_IOC_CHARGE):
		return rsheap_ctl_charge_ioctl(file->private_data, uarg);
	case _IOC_NR(RSHEAP_IOC_ACCOUNT):
		return rsheap_ctl_account_ioctl(file->private_data, uarg);
	case _IOC_NR(RSHEAP_IOC_SHARE_READONLY):
		return rsheap_ctl_share_ioctl(uarg);
	default:
		return -ENOTTY;
	}
}

static int op_ctl_open(struct inode *inode, struct file *file)
{
	/* misc_open() left the miscdevice here; nothing else needs it. */
	file->private_data = rsheap_account_new();
	return file->private_data ? 0 : -ENOMEM;
}

static int op_ctl_release(struct inode *inode, struct file *file)
{
	rsheap_account_put(file->private_data);
	return 0;
}

static const struct file_operations rsheap_ctl_fops = {
	.owner = THIS_MODULE,
	.open = op_ctl_open,
	.release = op_ctl_release,
	.unlocked_ioctl = op_ctl_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.llseek = noop_llseek,
};

static struct miscdevice rsheap_ctl = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "rsheap",
	.fops = &rsheap_ctl_fops,
};

int rsheap_ctl_register(void)
{
	return misc_register(&rsheap_ctl);
}

void rsheap_ctl_deregister(void)
{
	misc_deregister(&rsheap_ctl);
}
