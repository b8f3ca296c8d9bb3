//! Client library for rsheap, the dma-buf heap stack for camera and NPU pipelines.
//!
//! [`Broker`] gets buffers from rsheapd, the broker, which picks the heap for a usage, names
//! and accounts them, and loads files into them. [`Heap`] allocates dma-bufs straight from a
//! `/dev/dma_heap` node (rsheap's own heaps or any other, such as the in-tree `system` heap). A
//! [`Buffer`] owns the dma-buf file descriptor; [`Buffer::map`] gives a [`Mapping`] of its
//! memory, which safe code reads and writes by copying, since devices and other processes
//! share that memory and a Rust slice over it would be unsound; and [`Buffer::cpu_access`]
//! brackets CPU access with the dma-buf sync ioctl, as the dma-buf rules require when devices
//! share the buffer. [`FileIo`] loads file contents into buffers of rsheap's heaps and stores
//! them back, by direct I/O where the file allows. An [`Account`] counts the buffers charged
//! to it for as long as they live, which is how the broker holds quotas.
//! [`Buffer::share_read_only`] makes a read-only export of a buffer, for a process that may
//! read it and nothing else, as the kernel enforces.
//!
//! ```no_run
//! use rsheap::{Heap, SyncDirection};
//!
//! let heap = Heap::open("rsheap")?;
//! let buffer = heap.allocate(8 << 20)?;
//! let mut mapping = buffer.map()?;
//! {
//!     let _access = buffer.cpu_access(SyncDirection::Write)?;
//!     mapping.fill(0xa5);
//! }
//! # Ok::<(), rsheap::Error>(())
//! ```

// Devices build Rust with `-C panic=abort`, and so does this workspace: a panic ends the
// process. No input may reach one, so the operations that can panic are refused here.
#![cfg_attr(
    not(test),
    deny(
        clippy::arithmetic_side_effects,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic,
        clippy::unwrap_used
    )
)]

mod account;
mod broker;
mod buffer;
mod error;
mod file_io;
mod heap;
mod read_only;
pub mod uapi;

pub use account::{Account, AccountUsage};
pub use broker::{
    AllocationOptions, Broker, BrokerBuffer, BrokerErrorCode, BufferInfo, BufferSpec, FileLoad,
    FreeBatchError, HeapInfo, SessionLimits, Usage, CONNECT_TIMEOUT, MAX_BATCH,
};
pub use buffer::{page_size, Buffer, CpuAccess, Mapping, ReadOnlyMapping, SyncDirection};
pub use error::{Error, Result};
pub use file_io::{FileIo, IoPath, Span, Transferred, CONTROL_DEVICE, PROGRESS_STEP};
pub use heap::{heap_names, Heap, HEAP_DIR};
