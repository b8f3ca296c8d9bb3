// SPDX-License-Identifier: GPL-2.0
/*
 * Where rsheap's counters can be read: sysfs, for production (Android user
 * builds mount no debugfs), one value per file under /sys/kernel/rsheap/:
 *
 *   heaps/<heap>/buffers, heaps/<heap>/bytes     live buffers of each heap
 *   pool/bytes, pool/pending_bytes, pool/limit_bytes
 *   pool/chunk_2m_bytes, chunk_1m_bytes, chunk_64k_bytes, chunk_page_bytes
 *   pool/hits, pool/zeroed_chunks, pool/freed_chunks
 *   shrinker/count_calls, shrinker/scan_calls, shrinker/freed_bytes
 *
 * and debugfs, /sys/kernel/debug/rsheap/stats, the same as one table.  The
 * values come from Rust (rsheap_stat(), rsheap_stats_show()); this file only
 * builds the kernel's tables for them.
 */

#include <linux/debugfs.h>
#include <linux/kobject.h>
#include <linux/seq_file.h>
#include <linux/sysfs.h>

#include "rsheap_shim.h"

/* The inventory the values are read from; set once, before any file exists. */
static void *rsheap_inventory;

/* A read-only sysfs file showing one counter. */
struct rsheap_stat_attr {
	struct kobj_attribute attr;
	unsigned int stat;
	unsigned int index;
};

static ssize_t stat_show(struct kobject *kobj, struct kobj_attribute *attr,
			 char *buf)
{
	const struct rsheap_stat_attr *stat =
		container_of(attr, struct rsheap_stat_attr, attr);

	return sysfs_emit(buf, "%llu\n",
			  rsheap_stat(rsheap_inventory, stat->stat,
				      stat->index));
}

#define RSHEAP_STAT_ATTR(_var, _name, _stat, _index)			\
	static struct rsheap_stat_attr _var = {				\
		.attr = __ATTR(_name, 0444, stat_show, NULL),		\
		.stat = _stat,						\
		.index = _index,					\
	}

#define RSHEAP_HEAP_ATTRS(_heap, _index)				\
	RSHEAP_STAT_ATTR(_heap##_buffers, buffers, RSHEAP_STAT_BUFFERS,	\
			 _index);					\
	RSHEAP_STAT_ATTR(_heap##_bytes, bytes, RSHEAP_STAT_BYTES, _index); \
	static struct attribute *_heap##_attrs[] = {			\
		&_heap##_buffers.attr.attr,				\
		&_heap##_bytes.attr.attr,				\
		NULL,							\
	};								\
	static const struct attribute_group _heap##_group = {		\
		.attrs = _heap##_attrs,					\
	}

RSHEAP_HEAP_ATTRS(cached, RSHEAP_HEAP_CACHED);
RSHEAP_HEAP_ATTRS(uncached, RSHEAP_HEAP_UNCACHED);

RSHEAP_STAT_ATTR(pool_bytes, bytes, RSHEAP_STAT_POOL_BYTES, 0);
RSHEAP_STAT_ATTR(pool_pending, pending_bytes, RSHEAP_STAT_POOL_PENDING_BYTES, 0);
RSHEAP_STAT_ATTR(pool_limit, limit_bytes, RSHEAP_STAT_POOL_LIMIT_BYTES, 0);
RSHEAP_STAT_ATTR(pool_2m, chunk_2m_bytes, RSHEAP_STAT_POOL_CHUNK_BYTES, 0);
RSHEAP_STAT_ATTR(pool_1m, chunk_1m_bytes, RSHEAP_STAT_POOL_CHUNK_BYTES, 1);
RSHEAP_STAT_ATTR(pool_64k, chunk_64k_bytes, RSHEAP_STAT_POOL_CHUNK_BYTES, 2);
RSHEAP_STAT_ATTR(pool_page, chunk_page_bytes, RSHEAP_STAT_POOL_CHUNK_BYTES, 3);
RSHEAP_STAT_ATTR(pool_hits, hits, RSHEAP_STAT_POOL_HITS, 0);
RSHEAP_STAT_ATTR(pool_zeroed, zeroed_chunks, RSHEAP_STAT_POOL_ZEROED, 0);
RSHEAP_STAT_ATTR(pool_freed, freed_chunks, RSHEAP_STAT_POOL_FREED, 0);

static struct attribute *pool_attrs[] = {
	&pool_bytes.attr.attr,	 &pool_pending.attr.attr, &pool_limit.attr.attr,
	&pool_2m.attr.attr,	 &pool_1m.attr.attr,	  &pool_64k.attr.attr,
	&pool_page.attr.attr,	 &pool_hits.attr.attr,	  &pool_zeroed.attr.attr,
	&pool_freed.attr.attr,	 NULL,
};

static const struct attribute_group pool_group = {
	.name = "pool",
	.attrs = pool_attrs,
};

RSHEAP_STAT_ATTR(shrink_counts, count_calls, RSHEAP_STAT_SHRINKER_COUNTS, 0);
RSHEAP_STAT_ATTR(shrink_scans, scan_calls, RSHEAP_STAT_SHRINKER_SCANS, 0);
RSHEAP_STAT_ATTR(shrink_freed, freed_bytes, RSHEAP_STAT_SHRINKER_FREED_BYTES, 0);

static struct attribute *shrinker_attrs[] = {
	&shrink_counts.attr.attr,
	&shrink_scans.attr.attr,
	&shrink_freed.attr.attr,
	NULL,
};

static const struct attribute_group shrinker_group = {
	.name = "shrinker",
	.attrs = shrinker_attrs,
};

static const struct attribute_group *rsheap_groups[] = {
	&pool_group,
	&shrinker_group,
	NULL,
};

/* A directory of the heaps directory for one heap, with its group. */
static int rsheap_heap_dir(struct kobject *heaps, const char *name,
			   const struct attribute_group *group)
{
	struct kobject *dir = kobject_create_and_add(name, heaps);
	int ret;

	if (!dir)
		return -ENOMEM;
	ret = sysfs_create_group(dir, group);
	if (ret)
		kobject_put(dir);
	return ret;
}

/*
 * Creates /sys/kernel/rsheap for @inventory, which lives for good; without
 * @uncached, only the cached heap has a directory.  A failure leaves what was
 * made: the files are read-only views, and the module never unloads.
 */
int rsheap_sysfs_create(void *inventory, bool uncached)
{
	struct kobject *root, *heaps;
	int ret;

	rsheap_inventory = inventory;
	root = kobject_create_and_add("rsheap", kernel_kobj);
	if (!root)
		return -ENOMEM;
	ret = sysfs_create_groups(root, rsheap_groups);
	if (ret)
		return ret;
	heaps = kobject_create_and_add("heaps", root);
	if (!heaps)
		return -ENOMEM;
	ret = rsheap_heap_dir(heaps, "rsheap", &cached_group);
	if (ret || !uncached)
		return ret;
	return rsheap_heap_dir(heaps, "rsheap-uncached", &uncached_group);
}

/* debugfs: /sys/kernel/debug/rsheap/stats, formatted by Rust. */

static int stats_show(struct seq_file *m, void *unused)
{
	return rsheap_stats_show(m->private, m);
}
DEFINE_SHOW_ATTRIBUTE(stats);

void rsheap_debugfs_create(void *inventory)
{
	struct dentry *dir = debugfs_create_dir("rsheap", NULL);

	debugfs_create_file("stats", 0444, dir, inventory, &stats_fops);
}
