//! Raw mirrors of the kernel's dma-heap and dma-buf user-space interface
//! (`include/uapi/linux/dma-heap.h`, `include/uapi/linux/dma-buf.h`).
//!
//! These are the exact ioctls, for callers that need to pass values the safe API refuses;
//! everything else should use [`crate::Heap`] and [`crate::Buffer`].

use nix::{ioctl_readwrite, ioctl_write_ptr, ioctl_write_ptr_bad, request_code_write};

/// `struct dma_heap_allocation_data`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct DmaHeapAllocationData {
    /// Size of the allocation in bytes.
    pub len: u64,
    /// Out: the new dma-buf's file descriptor.
    pub fd: u32,
    /// `O_CLOEXEC` and access-mode flags for the new file descriptor.
    pub fd_flags: u32,
    /// Heap-specific flags; none are defined.
    pub heap_flags: u64,
}

/// `struct dma_buf_sync`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct DmaBufSync {
    /// `DMA_BUF_SYNC_*` flags.
    pub flags: u64,
}

/// `DMA_BUF_SYNC_READ`.
pub const DMA_BUF_SYNC_READ: u64 = 1;
/// `DMA_BUF_SYNC_WRITE`.
pub const DMA_BUF_SYNC_WRITE: u64 = 2;
/// `DMA_BUF_SYNC_RW`.
pub const DMA_BUF_SYNC_RW: u64 = DMA_BUF_SYNC_READ | DMA_BUF_SYNC_WRITE;
/// `DMA_BUF_SYNC_START`.
pub const DMA_BUF_SYNC_START: u64 = 0;
/// `DMA_BUF_SYNC_END`.
pub const DMA_BUF_SYNC_END: u64 = 4;

/// The longest name `DMA_BUF_SET_NAME` accepts, including the terminating NUL.
pub const DMA_BUF_NAME_LEN: usize = 32;

ioctl_readwrite!(
    /// `DMA_HEAP_IOCTL_ALLOC`.
    dma_heap_ioctl_alloc,
    b'H',
    0x0,
    DmaHeapAllocationData
);
ioctl_write_ptr!(
    /// `DMA_BUF_IOCTL_SYNC`.
    dma_buf_ioctl_sync,
    b'b',
    0,
    DmaBufSync
);
ioctl_write_ptr_bad!(
    /// `DMA_BUF_SET_NAME`: names the buffer with a NUL-terminated string of at most
    /// [`DMA_BUF_NAME_LEN`] bytes, shown in `/proc/<pid>/fdinfo`.
    dma_buf_set_name,
    request_code_write!(b'b', 1, std::mem::size_of::<u64>()),
    std::ffi::c_char
);
