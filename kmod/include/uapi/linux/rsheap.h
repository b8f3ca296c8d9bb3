/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * rsheap control device: file I/O straight into and out of rsheap buffers,
 * accounts that count buffers for as long as they live, and read-only
 * sharing of a buffer.
 *
 * /dev/rsheap moves bytes between a file and a dma-buf exported by an rsheap
 * heap (/dev/dma_heap/rsheap or /dev/dma_heap/rsheap-uncached), without a CPU
 * mapping of the buffer and, where the file allows, without the page cache:
 *
 *   RSHEAP_IOC_LOAD   file -> buffer
 *   RSHEAP_IOC_STORE  buffer -> file
 *
 * Paths.  The part of the range that meets the file's direct I/O alignment
 * (statx STATX_DIOALIGN: file offset, length and buffer offset) moves by
 * direct I/O into or out of the buffer's pages; an unaligned head or tail,
 * and files without direct I/O, go through the page cache.  The result says
 * how many bytes moved and how many of them by direct I/O.
 *
 * Ranges.  Offsets and lengths are 64-bit; a range that overflows gives
 * EOVERFLOW, a buffer range outside the buffer EINVAL.  A LOAD stops at the
 * end of the file, as read(2) does: the short count is returned and the
 * buffer past it is left untouched (if the file shrinks during the LOAD, the
 * bytes past the count are unspecified).  A STORE may extend the file.  A
 * length of 0 moves nothing and succeeds.
 *
 * Ending early.  A transfer moves its range in steps, one after the other:
 * the next step is issued only once the one before has completed in full.  An
 * error, or a step that moves less than it asked for (the file ended, the file
 * system is full), ends the transfer: once bytes have moved, with the count so
 * far, as read(2) and write(2) do; else with the error.  Nothing is issued past
 * the step that stopped, so nothing past it changes: not in the buffer for a
 * LOAD, not in the file for a STORE, and a STORE leaves the file no longer than
 * the bytes it reports (the file system undoes a failed extending write).
 * Within the step that failed, as with a failed read(2) or write(2), the bytes
 * the device had already moved may have changed.  The first step moves at most
 * 16 MiB.
 *
 * Errors, besides those of read(2) and write(2):
 *   EBADF    a descriptor is not open; the file is not open for reading
 *            (LOAD) or writing (STORE); the buffer is not open for writing
 *            (LOAD) or reading (STORE)
 *   EACCES   LOAD into a read-only export (RSHEAP_IOC_SHARE_READONLY)
 *   EINVAL   buf_fd is not a dma-buf; unknown flags; size is smaller than
 *            RSHEAP_TRANSFER_SIZE_VER0; the range lies outside the buffer;
 *            the file is neither a regular file nor a block device; STORE to
 *            a file opened with O_APPEND
 *   EXDEV    buf_fd is a dma-buf of another exporter
 *   EISDIR   file_fd is a directory
 *   ESPIPE   file_fd is a pipe or a socket
 *   E2BIG    size is larger than a page, or larger than the kernel's struct
 *            with extra bytes that are not zero
 *
 * A refusal the errno alone does not explain (which descriptor, which value)
 * is also logged, rate-limited, to the kernel log.
 *
 * Concurrency.  Transfers on one buffer run one at a time: a second LOAD or
 * STORE on the same buffer waits for the first (a signal ends the wait with
 * EINTR, or a restart).  CPU and device access to a buffer during a transfer
 * of it is the caller's to order, as for any DMA.  Around the transfer the
 * buffer gets the same cache maintenance as DMA_BUF_IOCTL_SYNC.
 *
 * Accounts.  Each open file of /dev/rsheap is an account.  RSHEAP_IOC_CHARGE
 * charges a buffer to it: the buffer counts there (RSHEAP_IOC_ACCOUNT) from
 * then until its release, when its last file descriptor, mapping and device
 * attachment are gone, whoever held them.  A buffer is charged at most once
 * (EBUSY after that).  A broker that gives buffers to clients charges each to
 * the client's account and holds quotas against what the account reports, so
 * a client cannot free a buffer to the broker, keep a copy of its fd and
 * allocate again.  An account lives while its file is open or a buffer
 * charged to it lives.  CHARGE fails as a transfer does for a bad buf_fd
 * (EBADF, EINVAL, EXDEV), and with EBUSY for a buffer charged before; ACCOUNT
 * with EINVAL for flags other than 0.  Both take sizes as the transfers do.
 *
 * Read-only sharing.  RSHEAP_IOC_SHARE_READONLY gives a new file descriptor
 * of a second dma-buf that rsheap exports over the same pages, and that the
 * kernel lets no one write through: a broker can hand a buffer (model weights
 * it loaded, say) to a less trusted process, which sees every later write to
 * the original and can change nothing.  The read-only export holds a
 * reference on the dma-buf it was made from, dropped at its own release, so
 * the memory lives until the original's last file descriptor, mapping and
 * attachment and every read-only export's are gone; it stays charged to the
 * account the original is charged to, if any.  The new file is open
 * O_RDONLY (O_CLOEXEC as @fd_flags says), and reopening it through
 * /proc/<pid>/fd fails as for any dma-buf (ENXIO).  What it allows:
 *
 *   mmap      PROT_READ, MAP_SHARED.  A writable mapping fails with EACCES,
 *             and a mapping never becomes writable (mprotect fails with
 *             EACCES): rsheap refuses VM_WRITE and clears VM_MAYWRITE itself,
 *             whatever file the mapping was made through, so a driver that
 *             maps the dma-buf for its own file cannot make it writable
 *             either.  MAP_PRIVATE fails with EINVAL, as for any rsheap
 *             buffer (EACCES if also PROT_WRITE).
 *   devices   map_dma_buf only for DMA_TO_DEVICE, device reads; any other
 *             direction fails with EACCES.  An importer that maps
 *             bidirectionally, as most GPU drivers do at import, cannot
 *             import it.
 *   kernel    vmap works and gives a writable kernel mapping: kernel
 *             importers are trusted, as they can reach the pages anyway.
 *   sync      DMA_BUF_IOCTL_SYNC works in every direction; with no way to
 *             write, a write bracket only costs its cache maintenance.
 *   fences    The export has a reservation object of its own: fences on the
 *             original are not seen through it, and fences added to it
 *             (DMA_BUF_IOCTL_IMPORT_SYNC_FILE) hold up nobody else.
 *   control   LOAD into it fails with EACCES.  STORE from it works (it only
 *             reads the buffer).  CHARGE fails with EINVAL: charge the
 *             original instead.  SHARE_READONLY of it gives another read-only
 *             export of the same pages.
 *
 * SHARE_READONLY errors: EBADF if buf_fd is not open, or not open for
 * reading; EINVAL if it is not a dma-buf, for fd_flags other than O_CLOEXEC,
 * and for a size smaller than RSHEAP_SHARE_SIZE_VER0; EXDEV for a dma-buf of
 * another exporter; E2BIG as for the other requests; EMFILE with no free
 * file descriptor; ENOMEM.
 *
 * Signals.  A fatal signal stops a transfer between its steps, which are
 * sized to take about 100 ms each (16 MiB to 1 GiB), once the running step
 * completes; the bytes already moved are reported.  Other signals do not
 * interrupt a transfer.
 */

#ifndef _UAPI_LINUX_RSHEAP_H
#define _UAPI_LINUX_RSHEAP_H

#include <linux/ioctl.h>
#include <linux/types.h>

/* Never use direct I/O: every byte goes through the page cache. */
#define RSHEAP_TRANSFER_BUFFERED	(1U << 0)

#define RSHEAP_TRANSFER_FLAGS		(RSHEAP_TRANSFER_BUFFERED)

/**
 * struct rsheap_transfer - a LOAD or STORE request and its result
 * @size:		in: sizeof(struct rsheap_transfer) as the caller knows
 *			it, at most a page; later versions only append fields
 * @flags:		in: RSHEAP_TRANSFER_* flags
 * @file_fd:		in: the file, a regular file or a block device
 * @buf_fd:		in: a dma-buf of an rsheap heap
 * @file_offset:	in: where in the file the range starts
 * @buf_offset:		in: where in the buffer the range starts
 * @length:		in: bytes to move
 * @bytes:		out: bytes moved
 * @direct_bytes:	out: how many of @bytes moved by direct I/O
 */
struct rsheap_transfer {
	__u32 size;
	__u32 flags;
	__s32 file_fd;
	__s32 buf_fd;
	__u64 file_offset;
	__u64 buf_offset;
	__u64 length;
	__u64 bytes;
	__u64 direct_bytes;
};

/* The size of the first version of struct rsheap_transfer. */
#define RSHEAP_TRANSFER_SIZE_VER0	56

/**
 * struct rsheap_charge - a buffer to charge to this open file's account
 * @size:		in: sizeof(struct rsheap_charge) as the caller knows it
 * @buf_fd:		in: a dma-buf of an rsheap heap, not charged before
 */
struct rsheap_charge {
	__u32 size;
	__s32 buf_fd;
};

#define RSHEAP_CHARGE_SIZE_VER0		8

/**
 * struct rsheap_account - what this open file's account holds now
 * @size:		in: sizeof(struct rsheap_account) as the caller knows it
 * @flags:		in: 0
 * @buffers:		out: live buffers charged to the account
 * @bytes:		out: their bytes
 */
struct rsheap_account {
	__u32 size;
	__u32 flags;
	__u64 buffers;
	__u64 bytes;
};

#define RSHEAP_ACCOUNT_SIZE_VER0	24

/**
 * struct rsheap_share - a read-only export to make of a buffer
 * @size:		in: sizeof(struct rsheap_share) as the caller knows it
 * @buf_fd:		in: a dma-buf of an rsheap heap, open for reading, or a
 *			read-only export of one
 * @fd_flags:		in: O_CLOEXEC or 0
 * @ro_fd:		out: the read-only export's new file descriptor
 */
struct rsheap_share {
	__u32 size;
	__s32 buf_fd;
	__u32 fd_flags;
	__s32 ro_fd;
};

#define RSHEAP_SHARE_SIZE_VER0		16

#define RSHEAP_IOC_MAGIC		0xB9

/*
 * The kernel matches these by type and number; the size encoded in them is
 * the first version's and the struct's @size field says which version it is.
 */
#define RSHEAP_IOC_LOAD		_IOWR(RSHEAP_IOC_MAGIC, 0x00, struct rsheap_transfer)
#define RSHEAP_IOC_STORE	_IOWR(RSHEAP_IOC_MAGIC, 0x01, struct rsheap_transfer)
#define RSHEAP_IOC_CHARGE	_IOWR(RSHEAP_IOC_MAGIC, 0x02, struct rsheap_charge)
#define RSHEAP_IOC_ACCOUNT	_IOWR(RSHEAP_IOC_MAGIC, 0x03, struct rsheap_account)
#define RSHEAP_IOC_SHARE_READONLY	_IOWR(RSHEAP_IOC_MAGIC, 0x04, struct rsheap_share)

#endif /* _UAPI_LINUX_RSHEAP_H */
