// SPDX-License-Identifier: GPL-2.0
/*
 * Test-only module, never shipped: lets the emulator suites and benchmarks
 * call dma_buf_vmap() and map a dma-buf for a device in a direction of their
 * choosing, which user space cannot, on any dma-buf, and read the
 * memory type of a user mapping, which user space cannot see.
 *
 * Write "<fd> <mode>" to /sys/kernel/debug/rsheap_vmap_probe, then read the
 * result from the same open file:
 *   time   vmap and vunmap once:      "vmap_ns=N vunmap_ns=N"
 *   sum    also add up the mapping's 64-bit words: "... sum=HEX"
 *   twice  vmap twice, compare the addresses, vunmap twice: "... same=0|1"
 *   to_dev, from_dev, bidir
 *          attach the probe's own device, map for DMA in that direction
 *          (DMA_TO_DEVICE, DMA_FROM_DEVICE, DMA_BIDIRECTIONAL), unmap and
 *          detach: "mapped=1", or the map's error as the write's
 *
 * Write "<address>" (in hex, a mapped page of the writer's address space) to
 * /sys/kernel/debug/rsheap_prot_probe, then read from the same open file
 * "writecombine=0|1": whether the page's protection is already what
 * pgprot_writecombine() makes of it (on arm64, the Normal-NC memory type).
 */

#include <linux/debugfs.h>
#include <linux/dma-buf.h>
#include <linux/dma-mapping.h>
#include <linux/iosys-map.h>
#include <linux/ktime.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/platform_device.h>
#include <linux/slab.h>
#include <linux/uaccess.h>

MODULE_IMPORT_NS(DMA_BUF);

struct probe_result {
	char text[128];
	size_t len;
};

static int probe_open(struct inode *inode, struct file *file)
{
	file->private_data = kzalloc(sizeof(struct probe_result), GFP_KERNEL);
	return file->private_data ? 0 : -ENOMEM;
}

static int probe_release(struct inode *inode, struct file *file)
{
	kfree(file->private_data);
	return 0;
}

static u64 sum_words(const u64 *words, size_t len)
{
	u64 sum = 0;
	size_t i;

	for (i = 0; i < len / sizeof(u64); i++) {
		sum += words[i];
		if (!(i % 65536))
			cond_resched();
	}
	return sum;
}

/* The device the DMA modes attach, as an importing driver's would be. */
static struct platform_device *probe_pdev;

static int dma_probe(struct dma_buf *dmabuf, enum dma_data_direction dir,
		     struct probe_result *result)
{
	struct dma_buf_attachment *attach;
	struct sg_table *sgt;

	if (!probe_pdev)
		return -ENODEV;
	attach = dma_buf_attach(dmabuf, &probe_pdev->dev);
	if (IS_ERR(attach))
		return PTR_ERR(attach);
	sgt = dma_buf_map_attachment_unlocked(attach, dir);
	if (IS_ERR(sgt)) {
		dma_buf_detach(dmabuf, attach);
		return PTR_ERR(sgt);
	}
	dma_buf_unmap_attachment_unlocked(attach, sgt, dir);
	dma_buf_detach(dmabuf, attach);
	result->len = scnprintf(result->text, sizeof(result->text),
				"mapped=1\n");
	return 0;
}

static int probe(struct dma_buf *dmabuf, const char *mode,
		 struct probe_result *result)
{
	struct iosys_map map, again;
	u64 start, mapped, unmapped;
	int ret, same = -1;
	u64 sum = 0;

	start = ktime_get_ns();
	ret = dma_buf_vmap_unlocked(dmabuf, &map);
	mapped = ktime_get_ns();
	if (ret)
		return ret;
	if (map.is_iomem) {
		dma_buf_vunmap_unlocked(dmabuf, &map);
		return -EOPNOTSUPP;
	}
	if (!strcmp(mode, "sum"))
		sum = sum_words(map.vaddr, dmabuf->size);
	if (!strcmp(mode, "twice")) {
		ret = dma_buf_vmap_unlocked(dmabuf, &again);
		if (ret) {
			dma_buf_vunmap_unlocked(dmabuf, &map);
			return ret;
		}
		same = again.vaddr == map.vaddr;
		dma_buf_vunmap_unlocked(dmabuf, &again);
	}
	unmapped = ktime_get_ns();
	dma_buf_vunmap_unlocked(dmabuf, &map);
	unmapped = ktime_get_ns() - unmapped;

	result->len = scnprintf(result->text, sizeof(result->text),
				"vmap_ns=%llu vunmap_ns=%llu sum=%llx same=%d\n",
				mapped - start, unmapped, sum, same);
	return 0;
}

static ssize_t probe_write(struct file *file, const char __user *ubuf,
			   size_t count, loff_t *ppos)
{
	struct probe_result *result = file->private_data;
	enum dma_data_direction dir = DMA_NONE;
	char buf[32], mode[9];
	struct dma_buf *dmabuf;
	int fd, ret;

	if (count >= sizeof(buf))
		return -EINVAL;
	if (copy_from_user(buf, ubuf, count))
		return -EFAULT;
	buf[count] = '\0';
	if (sscanf(buf, "%d %8s", &fd, mode) != 2)
		return -EINVAL;
	if (!strcmp(mode, "to_dev"))
		dir = DMA_TO_DEVICE;
	else if (!strcmp(mode, "from_dev"))
		dir = DMA_FROM_DEVICE;
	else if (!strcmp(mode, "bidir"))
		dir = DMA_BIDIRECTIONAL;
	else if (strcmp(mode, "time") && strcmp(mode, "sum") &&
		 strcmp(mode, "twice"))
		return -EINVAL;

	dmabuf = dma_buf_get(fd);
	if (IS_ERR(dmabuf))
		return PTR_ERR(dmabuf);
	if (dir != DMA_NONE)
		ret = dma_probe(dmabuf, dir, result);
	else
		ret = probe(dmabuf, mode, result);
	dma_buf_put(dmabuf);
	return ret ? ret : count;
}

static ssize_t probe_read(struct file *file, char __user *ubuf, size_t count,
			  loff_t *ppos)
{
	struct probe_result *result = file->private_data;

	return simple_read_from_buffer(ubuf, count, ppos, result->text,
				       result->len);
}

/* The memory type of the page mapped at @addr in the calling process. */
static int prot_probe(unsigned long addr, struct probe_result *result)
{
	struct follow_pfnmap_args args = { .address = addr };
	struct mm_struct *mm = current->mm;
	bool writecombine = false;
	int ret;

	mmap_read_lock(mm);
	args.vma = vma_lookup(mm, addr);
	if (!args.vma) {
		mmap_read_unlock(mm);
		return -EFAULT;
	}
	ret = follow_pfnmap_start(&args);
	if (!ret) {
		writecombine = pgprot_val(pgprot_writecombine(args.pgprot)) ==
			       pgprot_val(args.pgprot);
		follow_pfnmap_end(&args);
	}
	mmap_read_unlock(mm);
	if (ret)
		return ret;
	result->len = scnprintf(result->text, sizeof(result->text),
				"writecombine=%d\n", writecombine);
	return 0;
}

static ssize_t prot_write(struct file *file, const char __user *ubuf,
			  size_t count, loff_t *ppos)
{
	unsigned long addr;
	int ret;

	ret = kstrtoul_from_user(ubuf, count, 16, &addr);
	if (ret)
		return ret;
	ret = prot_probe(addr, file->private_data);
	return ret ? ret : count;
}

static const struct file_operations prot_fops = {
	.owner = THIS_MODULE,
	.open = probe_open,
	.release = probe_release,
	.write = prot_write,
	.read = probe_read,
	.llseek = default_llseek,
};

static const struct file_operations probe_fops = {
	.owner = THIS_MODULE,
	.open = probe_open,
	.release = probe_release,
	.write = probe_write,
	.read = probe_read,
	.llseek = default_llseek,
};

static struct dentry *probe_file, *prot_file;

static int __init probe_init(void)
{
	probe_pdev = platform_device_register_simple("rsheap_vmap_probe",
						     PLATFORM_DEVID_NONE, NULL, 0);
	if (IS_ERR(probe_pdev)) {
		probe_pdev = NULL;
	} else if (dma_coerce_mask_and_coherent(&probe_pdev->dev,
						DMA_BIT_MASK(64))) {
		platform_device_unregister(probe_pdev);
		probe_pdev = NULL;
	}
	probe_file = debugfs_create_file("rsheap_vmap_probe", 0600, NULL, NULL,
					 &probe_fops);
	prot_file = debugfs_create_file("rsheap_prot_probe", 0600, NULL, NULL,
					&prot_fops);
	return 0;
}

static void __exit probe_exit(void)
{
	debugfs_remove(prot_file);
	debugfs_remove(probe_file);
	if (probe_pdev)
		platform_device_unregister(probe_pdev);
}

module_init(probe_init);
module_exit(probe_exit);
MODULE_DESCRIPTION("rsheap test probe: dma_buf_vmap, DMA mappings and mapping memory types from user space");
MODULE_LICENSE("GPL");
