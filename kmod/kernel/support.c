// SPDX-License-Identifier: GPL-2.0
/*
 * The C side of the module's Rust kernel interfaces: the module's entry point,
 * and forwarders for what Rust cannot call directly.
 *
 * Every entry from the kernel into the module is a C function (here and in
 * rsheap_shim.c), so with kCFI the kernel's indirect calls check types that
 * the C compiler computed, whatever the Rust compiler emits.  Rust calls these
 * functions directly, which kCFI does not check.
 */

#include <linux/bug.h>
#include <linux/gfp.h>
#include <linux/init.h>
#include <linux/lockdep.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/ratelimit.h>
#include <linux/slab.h>
#include <linux/spinlock.h>

#include "kernel/support.h"

MODULE_LICENSE("GPL");
MODULE_AUTHOR("rsheap developers");
MODULE_DESCRIPTION("dma-buf system heaps for camera and NPU pipelines");

/*
 * No module_exit: a registered dma-buf heap can never be removed, so the
 * module must never unload, and a module without an exit function cannot be.
 */
static int __init rsheap_module_init(void)
{
	return rsheap_init();
}
module_init(rsheap_module_init);

/* kmalloc(), kvmalloc() and alloc_pages() are macros over allocation tags. */

void *rsheap_kmalloc(size_t size, gfp_t flags)
{
	return kmalloc(size, flags);
}

void *rsheap_kvmalloc(size_t size, gfp_t flags)
{
	return kvmalloc(size, flags);
}

struct page *rsheap_alloc_pages(gfp_t gfp, unsigned int order)
{
	return alloc_pages(gfp, order);
}

/* Struct pages of a block are contiguous only through nth_page(). */
struct page *rsheap_nth_page(struct page *page, unsigned long n)
{
	return nth_page(page, n);
}

/*
 * Locks.  Their size depends on the configuration (lockdep, debug options), so
 * each is allocated here; mutex_lock() and spin_lock() are macros or inlines.
 */

static struct lock_class_key rsheap_lock_keys[RSHEAP_LOCK_CLASSES];
static const char *const rsheap_lock_names[RSHEAP_LOCK_CLASSES] = {
	[RSHEAP_LOCK_BUFFER_INNER] = "rsheap_buffer_inner",
	[RSHEAP_LOCK_BUFFER_TRANSFER] = "rsheap_buffer_transfer",
	[RSHEAP_LOCK_PAGE_POOL] = "rsheap_page_pool",
};

struct mutex *rsheap_mutex_new(unsigned int class)
{
	struct mutex *lock;

	if (WARN_ON_ONCE(class >= RSHEAP_LOCK_CLASSES))
		return NULL;
	lock = kmalloc(sizeof(*lock), GFP_KERNEL);
	if (!lock)
		return NULL;
	mutex_init(lock);
	lockdep_set_class_and_name(lock, &rsheap_lock_keys[class],
				   rsheap_lock_names[class]);
	return lock;
}

void rsheap_mutex_free(struct mutex *lock)
{
	mutex_destroy(lock);
	kfree(lock);
}

void rsheap_mutex_lock(struct mutex *lock)
{
	mutex_lock(lock);
}

int rsheap_mutex_lock_interruptible(struct mutex *lock)
{
	return mutex_lock_interruptible(lock);
}

void rsheap_mutex_unlock(struct mutex *lock)
{
	mutex_unlock(lock);
}

struct spinlock *rsheap_spinlock_new(unsigned int class)
{
	spinlock_t *lock;

	if (WARN_ON_ONCE(class >= RSHEAP_LOCK_CLASSES))
		return NULL;
	lock = kmalloc(sizeof(*lock), GFP_KERNEL);
	if (!lock)
		return NULL;
	spin_lock_init(lock);
	lockdep_set_class_and_name(lock, &rsheap_lock_keys[class],
				   rsheap_lock_names[class]);
	return lock;
}

void rsheap_spinlock_free(struct spinlock *lock)
{
	kfree(lock);
}

void rsheap_spin_lock(struct spinlock *lock)
{
	spin_lock(lock);
}

void rsheap_spin_unlock(struct spinlock *lock)
{
	spin_unlock(lock);
}

/*
 * One rate limit for every rate-limited message of the module, so that a
 * client repeating a bad request cannot flood the log: the kernel's default
 * of 10 messages per 5 seconds.
 */
bool rsheap_printk_ratelimit(void)
{
	static DEFINE_RATELIMIT_STATE(rsheap_printk_rs, DEFAULT_RATELIMIT_INTERVAL,
				      DEFAULT_RATELIMIT_BURST);

	return __ratelimit(&rsheap_printk_rs);
}

/* The end of a Rust panic, which rsheap's code is written never to reach. */
void rsheap_bug(void)
{
	BUG();
}
