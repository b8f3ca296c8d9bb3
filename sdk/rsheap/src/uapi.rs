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

/// `struct rsheap_transfer` of `/dev/rsheap` (`kmod/include/uapi/linux/rsheap.h`): a LOAD or
/// STORE request and its result.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct RsheapTransfer {
    /// `sizeof(struct rsheap_transfer)` as the caller knows it.
    pub size: u32,
    /// `RSHEAP_TRANSFER_*` flags.
    pub flags: u32,
    /// The file: a regular file or a block device.
    pub file_fd: i32,
    /// A dma-buf of an rsheap heap.
    pub buf_fd: i32,
    /// Where in the file the range starts.
    pub file_offset: u64,
    /// Where in the buffer the range starts.
    pub buf_offset: u64,
    /// Bytes to move.
    pub length: u64,
    /// Out: bytes moved.
    pub bytes: u64,
    /// Out: how many of `bytes` moved by direct I/O.
    pub direct_bytes: u64,
}

impl RsheapTransfer {
    /// A request of this version, with `size` set.
    pub fn new() -> Self {
        Self {
            size: RSHEAP_TRANSFER_SIZE_VER0,
            ..Self::default()
        }
    }
}

/// `RSHEAP_TRANSFER_SIZE_VER0`: the size of the first version of [`RsheapTransfer`].
pub const RSHEAP_TRANSFER_SIZE_VER0: u32 = 56;
/// `RSHEAP_TRANSFER_BUFFERED`: never use direct I/O.
pub const RSHEAP_TRANSFER_BUFFERED: u32 = 1 << 0;
/// `RSHEAP_IOC_MAGIC`.
pub const RSHEAP_IOC_MAGIC: u8 = 0xB9;

ioctl_readwrite!(
    /// `RSHEAP_IOC_LOAD`: file to buffer.
    rsheap_ioc_load,
    RSHEAP_IOC_MAGIC,
    0x00,
    RsheapTransfer
);
ioctl_readwrite!(
    /// `RSHEAP_IOC_STORE`: buffer to file.
    rsheap_ioc_store,
    RSHEAP_IOC_MAGIC,
    0x01,
    RsheapTransfer
);

/// `struct rsheap_charge`: a buffer to charge to the account of an open file of
/// `/dev/rsheap`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct RsheapCharge {
    /// `sizeof(struct rsheap_charge)` as the caller knows it.
    pub size: u32,
    /// A dma-buf of an rsheap heap, not charged before.
    pub buf_fd: i32,
}

/// `RSHEAP_CHARGE_SIZE_VER0`: the size of the first version of [`RsheapCharge`].
pub const RSHEAP_CHARGE_SIZE_VER0: u32 = 8;

/// `struct rsheap_account`: what the buffers charged to an account hold now.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct RsheapAccount {
    /// `sizeof(struct rsheap_account)` as the caller knows it.
    pub size: u32,
    /// 0.
    pub flags: u32,
    /// Out: live buffers charged to the account.
    pub buffers: u64,
    /// Out: their bytes.
    pub bytes: u64,
}

/// `RSHEAP_ACCOUNT_SIZE_VER0`: the size of the first version of [`RsheapAccount`].
pub const RSHEAP_ACCOUNT_SIZE_VER0: u32 = 24;

ioctl_readwrite!(
    /// `RSHEAP_IOC_CHARGE`: charges a buffer to this open file's account until its release.
    rsheap_ioc_charge,
    RSHEAP_IOC_MAGIC,
    0x02,
    RsheapCharge
);
ioctl_readwrite!(
    /// `RSHEAP_IOC_ACCOUNT`: what this open file's account holds.
    rsheap_ioc_account,
    RSHEAP_IOC_MAGIC,
    0x03,
    RsheapAccount
);

/// `struct rsheap_share`: a read-only export to make of a buffer, and its new file descriptor.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct RsheapShare {
    /// `sizeof(struct rsheap_share)` as the caller knows it.
    pub size: u32,
    /// A dma-buf of an rsheap heap open for reading, or a read-only export of one.
    pub buf_fd: i32,
    /// `O_CLOEXEC` or 0.
    pub fd_flags: u32,
    /// Out: the read-only export's new file descriptor.
    pub ro_fd: i32,
}

/// `RSHEAP_SHARE_SIZE_VER0`: the size of the first version of [`RsheapShare`].
pub const RSHEAP_SHARE_SIZE_VER0: u32 = 16;

ioctl_readwrite!(
    /// `RSHEAP_IOC_SHARE_READONLY`: a new file descriptor of a read-only dma-buf over the same
    /// pages, which the kernel lets nobody write through.
    rsheap_ioc_share_readonly,
    RSHEAP_IOC_MAGIC,
    0x04,
    RsheapShare
);

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};
    use std::path::Path;
    use std::process::Command;

    /// Compiles a program against `rsheap.h` that prints the struct's layout and the ioctl
    /// numbers, and checks this mirror against it.
    #[test]
    fn rsheap_transfer_mirrors_the_c_header() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let include = root.join("kmod/include/uapi");
        let out = std::env::temp_dir().join(format!("rsheap-uapi-layout-{}", std::process::id()));
        let program = r#"
            #include <stddef.h>
            #include <stdio.h>
            #include <linux/rsheap.h>
            #define FIELD(s, f) printf("%zu ", offsetof(struct s, f))
            int main(void) {
                printf("%zu %d ", sizeof(struct rsheap_transfer), RSHEAP_TRANSFER_SIZE_VER0);
                FIELD(rsheap_transfer, size); FIELD(rsheap_transfer, flags);
                FIELD(rsheap_transfer, file_fd); FIELD(rsheap_transfer, buf_fd);
                FIELD(rsheap_transfer, file_offset); FIELD(rsheap_transfer, buf_offset);
                FIELD(rsheap_transfer, length); FIELD(rsheap_transfer, bytes);
                FIELD(rsheap_transfer, direct_bytes);
                printf("%u %lu %lu ", RSHEAP_TRANSFER_BUFFERED,
                       (unsigned long)RSHEAP_IOC_LOAD, (unsigned long)RSHEAP_IOC_STORE);
                printf("%zu %d ", sizeof(struct rsheap_charge), RSHEAP_CHARGE_SIZE_VER0);
                FIELD(rsheap_charge, size); FIELD(rsheap_charge, buf_fd);
                printf("%zu %d ", sizeof(struct rsheap_account), RSHEAP_ACCOUNT_SIZE_VER0);
                FIELD(rsheap_account, size); FIELD(rsheap_account, flags);
                FIELD(rsheap_account, buffers); FIELD(rsheap_account, bytes);
                printf("%lu %lu ", (unsigned long)RSHEAP_IOC_CHARGE,
                       (unsigned long)RSHEAP_IOC_ACCOUNT);
                printf("%zu %d ", sizeof(struct rsheap_share), RSHEAP_SHARE_SIZE_VER0);
                FIELD(rsheap_share, size); FIELD(rsheap_share, buf_fd);
                FIELD(rsheap_share, fd_flags); FIELD(rsheap_share, ro_fd);
                printf("%lu\n", (unsigned long)RSHEAP_IOC_SHARE_READONLY);
                return 0;
            }
        "#;
        let source = out.with_extension("c");
        std::fs::write(&source, program).unwrap();
        let status = Command::new("cc")
            .arg("-I")
            .arg(&include)
            .arg("-o")
            .arg(&out)
            .arg(&source)
            .status()
            .expect("run cc");
        assert!(status.success(), "the uapi header does not compile");
        let printed = Command::new(&out).output().expect("run the layout program");
        let _ = std::fs::remove_file(&source);
        let _ = std::fs::remove_file(&out);
        let c: Vec<u64> = String::from_utf8_lossy(&printed.stdout)
            .split_whitespace()
            .map(|n| n.parse().unwrap())
            .collect();
        let rust = vec![
            size_of::<RsheapTransfer>() as u64,
            RSHEAP_TRANSFER_SIZE_VER0.into(),
            offset_of!(RsheapTransfer, size) as u64,
            offset_of!(RsheapTransfer, flags) as u64,
            offset_of!(RsheapTransfer, file_fd) as u64,
            offset_of!(RsheapTransfer, buf_fd) as u64,
            offset_of!(RsheapTransfer, file_offset) as u64,
            offset_of!(RsheapTransfer, buf_offset) as u64,
            offset_of!(RsheapTransfer, length) as u64,
            offset_of!(RsheapTransfer, bytes) as u64,
            offset_of!(RsheapTransfer, direct_bytes) as u64,
            RSHEAP_TRANSFER_BUFFERED.into(),
            nix::request_code_readwrite!(RSHEAP_IOC_MAGIC, 0x00, size_of::<RsheapTransfer>())
                as u64,
            nix::request_code_readwrite!(RSHEAP_IOC_MAGIC, 0x01, size_of::<RsheapTransfer>())
                as u64,
            size_of::<RsheapCharge>() as u64,
            RSHEAP_CHARGE_SIZE_VER0.into(),
            offset_of!(RsheapCharge, size) as u64,
            offset_of!(RsheapCharge, buf_fd) as u64,
            size_of::<RsheapAccount>() as u64,
            RSHEAP_ACCOUNT_SIZE_VER0.into(),
            offset_of!(RsheapAccount, size) as u64,
            offset_of!(RsheapAccount, flags) as u64,
            offset_of!(RsheapAccount, buffers) as u64,
            offset_of!(RsheapAccount, bytes) as u64,
            nix::request_code_readwrite!(RSHEAP_IOC_MAGIC, 0x02, size_of::<RsheapCharge>()) as u64,
            nix::request_code_readwrite!(RSHEAP_IOC_MAGIC, 0x03, size_of::<RsheapAccount>()) as u64,
            size_of::<RsheapShare>() as u64,
            RSHEAP_SHARE_SIZE_VER0.into(),
            offset_of!(RsheapShare, size) as u64,
            offset_of!(RsheapShare, buf_fd) as u64,
            offset_of!(RsheapShare, fd_flags) as u64,
            offset_of!(RsheapShare, ro_fd) as u64,
            nix::request_code_readwrite!(RSHEAP_IOC_MAGIC, 0x04, size_of::<RsheapShare>()) as u64,
        ];
        assert_eq!(rust, c, "uapi.rs and rsheap.h disagree");
    }
}
