//! The header's constants and structures, laid out as C lays them out.

use std::ffi::{c_char, c_void};

use rsheap::{BufferInfo, HeapInfo, Span};

/// `RSHEAP_USAGE_*`: the AIDL `Usage` values.
pub const USAGE_CAMERA_FRAME: i32 = rsheap::Usage::CAMERA_FRAME.0;
/// `RSHEAP_USAGE_MODEL_WEIGHTS`.
pub const USAGE_MODEL_WEIGHTS: i32 = rsheap::Usage::MODEL_WEIGHTS.0;
/// `RSHEAP_USAGE_MODEL_EXECUTABLE`.
pub const USAGE_MODEL_EXECUTABLE: i32 = rsheap::Usage::MODEL_EXECUTABLE.0;
/// `RSHEAP_USAGE_SCRATCH`.
pub const USAGE_SCRATCH: i32 = rsheap::Usage::SCRATCH.0;

/// `RSHEAP_SYNC_READ`.
pub const SYNC_READ: i32 = 1;
/// `RSHEAP_SYNC_WRITE`.
pub const SYNC_WRITE: i32 = 2;
/// `RSHEAP_SYNC_READ_WRITE`.
pub const SYNC_READ_WRITE: i32 = 3;

/// `RSHEAP_MAP_READ`.
pub const MAP_READ: i32 = 1;
/// `RSHEAP_MAP_READ_WRITE`.
pub const MAP_READ_WRITE: i32 = 3;

/// `RSHEAP_NAME_SIZE`: the name fields' size, their NUL included.
pub const NAME_SIZE: usize = 64;

/// `RsheapAllocationOptions`.
#[repr(C)]
#[derive(Debug)]
pub struct RsheapAllocationOptions {
    /// An `RSHEAP_USAGE_*` value.
    pub usage: i32,
    /// Whether CPU access goes through the caches.
    pub cached: bool,
    /// A heap to use instead of the usage's, or NULL.
    pub heap: *const c_char,
    /// Free text for the broker's listings, or NULL.
    pub debug_name: *const c_char,
}

/// `RsheapSpan`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RsheapSpan {
    /// Where in the file the data starts.
    pub file_offset: u64,
    /// Where in the buffer it goes.
    pub buffer_offset: u64,
    /// Bytes to move, or `RSHEAP_TO_END`.
    pub length: u64,
}

impl From<RsheapSpan> for Span {
    fn from(span: RsheapSpan) -> Self {
        // RSHEAP_TO_END is UINT64_MAX, as `Span::TO_END` is.
        Span {
            file_offset: span.file_offset,
            buffer_offset: span.buffer_offset,
            len: span.length,
        }
    }
}

/// `RsheapBufferInfo`.
#[repr(C)]
#[derive(Debug)]
pub struct RsheapBufferInfo {
    /// The broker's id of the buffer.
    pub id: i64,
    /// Its size in bytes.
    pub size: u64,
    /// Its `RSHEAP_USAGE_*` value.
    pub usage: i32,
    /// Whether CPU access goes through the caches.
    pub cached: bool,
    /// The heap it came from.
    pub heap: [c_char; NAME_SIZE],
    /// Its dma-buf name.
    pub name: [c_char; NAME_SIZE],
    /// Its debug name, or "".
    pub debug_name: [c_char; NAME_SIZE],
}

impl From<&BufferInfo> for RsheapBufferInfo {
    fn from(info: &BufferInfo) -> Self {
        Self {
            id: info.id,
            size: u64::try_from(info.size).unwrap_or(0),
            usage: info.usage.0,
            cached: info.cached,
            heap: c_name(&info.heap),
            name: c_name(&info.name),
            debug_name: c_name(&info.debugName),
        }
    }
}

/// `RsheapHeapInfo`.
#[repr(C)]
#[derive(Debug)]
pub struct RsheapHeapInfo {
    /// The heap's name.
    pub name: [c_char; NAME_SIZE],
    /// Whether CPU access goes through the caches.
    pub cached: bool,
    /// Bit n set for each usage n it serves.
    pub usages: u32,
    /// Buffers alive now.
    pub buffers: u32,
    /// Their bytes.
    pub bytes: u64,
    /// Allocations since the broker started.
    pub allocations: u64,
    /// Allocations that failed.
    pub failures: u64,
}

impl From<&HeapInfo> for RsheapHeapInfo {
    fn from(info: &HeapInfo) -> Self {
        let usages = info
            .usages
            .iter()
            .filter_map(|usage| 1u32.checked_shl(u32::try_from(usage.0).ok()?))
            .fold(0, |all, bit| all | bit);
        Self {
            name: c_name(&info.name),
            cached: info.cached,
            usages,
            buffers: u32::try_from(info.buffers).unwrap_or(0),
            bytes: u64::try_from(info.bytes).unwrap_or(0),
            allocations: u64::try_from(info.allocations).unwrap_or(0),
            failures: u64::try_from(info.failures).unwrap_or(0),
        }
    }
}

/// `RsheapProgressCallback`: `false` cancels the load.
pub type RsheapProgressCallback =
    Option<unsafe extern "C" fn(context: *mut c_void, done: u64, total: u64) -> bool>;

/// `name` as a NUL-terminated field, cut at a character boundary to fit.
fn c_name(name: &str) -> [c_char; NAME_SIZE] {
    let mut field = [0; NAME_SIZE];
    // Index 0 is always a boundary, so this finds one.
    let end = (0..NAME_SIZE)
        .rev()
        .find(|&end| end <= name.len() && name.is_char_boundary(end))
        .unwrap_or(0);
    for (slot, byte) in field.iter_mut().zip(name.bytes().take(end)) {
        *slot = byte as c_char;
    }
    field
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(field: &[c_char; NAME_SIZE]) -> String {
        let bytes: Vec<u8> = field
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn names_are_cut_to_fit_at_a_character_boundary() {
        assert_eq!(text(&c_name("rsheap")), "rsheap");
        let long = "é".repeat(40);
        let cut = text(&c_name(&long));
        assert_eq!(
            cut.len(),
            62,
            "62 bytes of two-byte characters, then the NUL"
        );
        assert!(long.starts_with(&cut));
        assert_eq!(c_name(&"x".repeat(100))[NAME_SIZE - 1], 0);
    }

    #[test]
    fn heap_usages_become_bits() {
        let info = HeapInfo {
            name: "rsheap".into(),
            usages: vec![rsheap::Usage::CAMERA_FRAME, rsheap::Usage::SCRATCH],
            buffers: -1,
            ..Default::default()
        };
        let c = RsheapHeapInfo::from(&info);
        assert_eq!(c.usages, 0b1001);
        assert_eq!(c.buffers, 0, "a broken broker's negative count reads as 0");
    }
}
