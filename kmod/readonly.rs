// SPDX-License-Identifier: GPL-2.0

//! Read-only exports: a second dma-buf over a buffer's pages that nobody can write through,
//! made by `RSHEAP_IOC_SHARE_READONLY`.
//!
//! A broker that loaded a buffer (model weights, say) hands it to a less trusted process as a
//! read-only export. The kernel enforces what the name says: the export's file is open
//! `O_RDONLY`, so the core refuses writable shared mappings of it; its own mmap op also
//! refuses `VM_WRITE` and clears `VM_MAYWRITE`, whatever file a mapping is made through (a
//! driver may map a dma-buf for a file of its own), so `mprotect` cannot add write later; and
//! devices may map it only to read it (`DMA_TO_DEVICE`). Kernel mappings (`vmap`) stay
//! writable: kernel importers are trusted, and can reach the pages anyway. A LOAD into an
//! export is refused (`transfer.rs`), and so is charging one (`account.rs`): it is not a
//! buffer of its own, and the memory counts where its buffer is charged.
//!
//! An export holds a reference on the dma-buf it was made from (the buffer's own, or another
//! export of it) and drops it at its own release, so the buffer lives at least as long as any
//! export of it. Everything but the device and CPU mappings is the buffer's own op, on the
//! buffer: attachments, CPU-access sync, `vmap`.
//!
//! The rules callers rely on are documented in `include/uapi/linux/rsheap.h`.
//!
//! # Locking
//!
//! An export has no lock of its own and never changes once made. Its ops take the buffer's
//! locks as the buffer's own ops do: the core holds the export's reservation lock around
//! `map_dma_buf`, which comes before [`Buffer`]'s inner mutex as the buffer's own does.

use crate::kernel::bindings::{self, c_int, consts};
use crate::kernel::error::from_err_ptr;
use crate::kernel::prelude::*;

use crate::buffer::{Buffer, VmaRange};
use crate::fd::BufferRef;
use crate::shim::{self, DmaBuf};

/// A read-only export of a buffer; its dma-buf's `priv` points at it.
///
/// # Invariants
///
/// `source` is a reference to the dma-buf the export was made from, held until the export's
/// release, so [`Self::buffer`] lives as long as the export.
pub(crate) struct ReadOnly {
    source: BufferRef,
}

impl ReadOnly {
    /// The buffer whose pages the export shares.
    pub(crate) fn buffer(&self) -> &Buffer {
        self.source.buffer()
    }

    /// Maps attachment `key` for DMA in direction `dir`, which must be `DMA_TO_DEVICE` (the
    /// device reads the buffer): `EACCES` for any other.
    pub(crate) fn map(
        &self,
        key: usize,
        dir: bindings::dma_data_direction,
    ) -> Result<*mut bindings::sg_table> {
        if dir != consts::DMA_TO_DEVICE {
            pr_info_ratelimited!(
                "read-only export: refused a device mapping in DMA direction {}: only \
                 DMA_TO_DEVICE\n",
                dir
            );
            return Err(EACCES);
        }
        self.buffer().map(key, dir)
    }

    /// Sets up `vma` as [`Buffer::mmap`] does, for reading only: a writable mapping fails with
    /// `EACCES`, and the VMA loses `VM_MAYWRITE`, so it can never become writable.
    ///
    /// # Safety
    ///
    /// `vma` must be a VMA being set up by `mmap`, with the mmap lock held for writing, and
    /// `range` its addresses and page offset.
    pub(crate) unsafe fn mmap(
        &self,
        vma: *mut bindings::vm_area_struct,
        range: VmaRange,
    ) -> Result {
        // SAFETY: The caller guarantees `vma` is a VMA being set up.
        if unsafe { shim::rsheap_vma_writable(vma) } {
            pr_info_ratelimited!("read-only export: refused a writable mapping\n");
            return Err(EACCES);
        }
        // SAFETY: The caller's guarantee is the one `Buffer::mmap` needs.
        unsafe { self.buffer().mmap(vma, range) }?;
        // SAFETY: As above; the mmap lock is held for writing, as `vm_flags_clear` needs.
        unsafe { shim::rsheap_vma_clear_maywrite(vma) };
        Ok(())
    }
}

/// `RSHEAP_IOC_SHARE_READONLY`: a new read-only export of the buffer open as `buf_fd`, with
/// the reference `dma_buf_export` returned, for the caller to install as a file descriptor
/// opened with `fd_flags`.
///
/// `EINVAL` for `fd_flags` other than `O_CLOEXEC`, `EBADF` if `buf_fd` is not open for
/// reading, and the errors of [`BufferRef::get`].
pub(crate) fn share(buf_fd: c_int, fd_flags: u32) -> Result<*mut DmaBuf> {
    if fd_flags & !consts::O_CLOEXEC != 0 {
        pr_info_ratelimited!(
            "SHARE_READONLY: refused fd flags {:#x}: only O_CLOEXEC\n",
            fd_flags
        );
        return Err(EINVAL);
    }
    let source = BufferRef::get_for("SHARE_READONLY", buf_fd)?;
    // A descriptor that cannot read the buffer must not turn into one that can.
    if !source.access().read {
        pr_info_ratelimited!(
            "SHARE_READONLY: refused buffer fd {}: not open for reading\n",
            buf_fd
        );
        return Err(EBADF);
    }
    let size = source.buffer().size();
    let name = source.buffer().heap_name();
    // INVARIANT: The reference moves into the export, which keeps it until release.
    let readonly = KBox::into_raw(KBox::new(ReadOnly { source }, GFP_KERNEL)?);
    // SAFETY: `readonly` is live, and its ownership moves to the dma-buf on success; `name`
    // is static.
    let dmabuf = unsafe { shim::rsheap_readonly_export(readonly.cast(), size, name.as_ptr()) };
    from_err_ptr(dmabuf).inspect_err(|_| {
        // SAFETY: The export failed, so `readonly` is still ours and nobody else has seen it.
        drop(unsafe { KBox::from_raw(readonly) });
    })
}
