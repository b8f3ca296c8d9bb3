/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The boundary between the module's Rust kernel interfaces (the Rust files in kernel/) and
 * their C side, kernel/support.c: what Rust cannot call directly because it is
 * a macro or a static inline in C, or a lock whose layout depends on the
 * kernel's configuration.
 */

#ifndef RSHEAP_KERNEL_SUPPORT_H
#define RSHEAP_KERNEL_SUPPORT_H

#include <linux/types.h>

struct mutex;
struct page;
struct spinlock;

/*
 * Lock classes, so lockdep tells rsheap's locks apart: each lock is set up with
 * the key and name of its class.  kernel/consts.c hands the numbers to Rust.
 */
enum rsheap_lock_class {
	RSHEAP_LOCK_BUFFER_INNER,
	RSHEAP_LOCK_BUFFER_TRANSFER,
	RSHEAP_LOCK_PAGE_POOL,
	RSHEAP_LOCK_CLASSES,
};

/* Implemented in C, called from Rust. */
void *rsheap_kmalloc(size_t size, gfp_t flags);
void *rsheap_kvmalloc(size_t size, gfp_t flags);
struct page *rsheap_alloc_pages(gfp_t gfp, unsigned int order);
struct page *rsheap_nth_page(struct page *page, unsigned long n);
struct mutex *rsheap_mutex_new(unsigned int class);
void rsheap_mutex_free(struct mutex *lock);
void rsheap_mutex_lock(struct mutex *lock);
int rsheap_mutex_lock_interruptible(struct mutex *lock);
void rsheap_mutex_unlock(struct mutex *lock);
struct spinlock *rsheap_spinlock_new(unsigned int class);
void rsheap_spinlock_free(struct spinlock *lock);
void rsheap_spin_lock(struct spinlock *lock);
void rsheap_spin_unlock(struct spinlock *lock);
bool rsheap_printk_ratelimit(void);
void __noreturn rsheap_bug(void);

/* Implemented in Rust (rsheap_main.rs), called from C. */
int rsheap_init(void);

#endif /* RSHEAP_KERNEL_SUPPORT_H */
