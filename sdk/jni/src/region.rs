//! `dev.rsheap.Region`'s native methods, and [`Region`], a CPU mapping of part of a buffer that
//! Java `ByteBuffer`s point into.
//!
//! A `ByteBuffer` over native memory cannot be told that the memory went away: touching it
//! after an `munmap` kills the process. So a region is never unmapped while a `ByteBuffer`
//! may still reach it. When its buffer closes, the region is *retired*: an anonymous private
//! mapping replaces it in place (`MAP_FIXED`, atomically for other threads), so stale
//! accesses read zeros and write to scratch memory of this process, never to the freed
//! buffer, and the dma-buf's mapping is gone at once. The region's address range is given
//! back only when Java has seen the `ByteBuffer` collected (a phantom reference) and
//! releases it.

use std::ffi::c_void;
use std::num::NonZeroUsize;
use std::os::fd::AsFd;
use std::ptr::NonNull;
use std::sync::{Mutex, PoisonError};

use jni::objects::{JByteBuffer, JClass};
use jni::sys::{jint, jlong};
use jni::{native_method, Env, NativeMethod};
use nix::sys::mman::{mmap, mmap_anonymous, munmap, MapFlags, ProtFlags};

use crate::errors::{Failure, Result, ThrowRsheapException};
use crate::handle;

/// The native methods of `dev.rsheap.Region`.
pub const METHODS: &[NativeMethod] = &[
    native_method! {
        static fn native_view(region: jlong, offset: jlong, length: jint) -> java.nio.ByteBuffer,
        error_policy = ThrowRsheapException,
    },
    native_method! {
        static fn native_retire(region: jlong),
        error_policy = ThrowRsheapException,
    },
    native_method! {
        static fn native_release(region: jlong),
        error_policy = ThrowRsheapException,
    },
];

/// The alignment that lets rsheap map a 2 MiB chunk with one page-table entry.
const HUGE_ALIGN: usize = 2 << 20;

/// A mapping of bytes `offset..offset + len` of a buffer, or, once retired, anonymous memory
/// in its place.
///
/// # Invariants
///
/// `start..start + len` is a mapping this value made and owns: nothing else unmaps or
/// replaces it while the value lives, and `Drop` unmaps it.
pub struct Region {
    start: NonNull<c_void>,
    len: NonZeroUsize,
    /// Where in the buffer the mapping starts; a multiple of the page size.
    offset: u64,
    /// Whether anonymous memory replaced the buffer's.
    retired: Mutex<bool>,
}

// SAFETY: A mapping belongs to the whole process: any thread may use, replace and unmap it.
// The pointer is only an address here.
unsafe impl Send for Region {}
// SAFETY: As for `Send`; the one mutable state, `retired`, sits behind a mutex.
unsafe impl Sync for Region {}

impl Region {
    /// Maps the whole pages of `buffer` that hold `offset..offset + len`, readable and
    /// writable.
    pub fn map(buffer: &rsheap::Buffer, offset: u64, len: u64) -> Result<Self> {
        let size = buffer.len() as u64;
        let end = offset
            .checked_add(len)
            .filter(|&end| len > 0 && end <= size)
            .ok_or_else(|| {
                Failure::Argument(format!(
                    "{len} bytes at offset {offset} are not inside the buffer's {size}"
                ))
            })?;
        let page = rsheap::page_size() as u64;
        let first = offset
            .checked_rem(page)
            .and_then(|skew| offset.checked_sub(skew))
            .ok_or_else(|| Failure::Argument("no page size".into()))?;
        // The buffer's size is a whole number of pages, so rounding up stays inside it.
        let last = end
            .checked_add(page.saturating_sub(1))
            .and_then(|end| end.checked_div(page))
            .and_then(|pages| pages.checked_mul(page))
            .map_or(size, |rounded| rounded.min(size));
        let len = usize::try_from(last.saturating_sub(first))
            .ok()
            .and_then(NonZeroUsize::new)
            .ok_or_else(|| Failure::Argument("the range does not fit the address space".into()))?;
        let file_offset = i64::try_from(first)
            .map_err(|_| Failure::Argument(format!("offset {first} is out of range")))?;
        let placement = if len.get() >= HUGE_ALIGN {
            reserve_aligned(len, first)?
        } else {
            None
        };
        let flags = if placement.is_some() {
            MapFlags::MAP_SHARED | MapFlags::MAP_FIXED
        } else {
            MapFlags::MAP_SHARED
        };
        let prot = ProtFlags::PROT_READ | ProtFlags::PROT_WRITE;
        // SAFETY: Either a new mapping the kernel places, or one over the address range
        // reserved above, which nothing else uses.
        let mapped = unsafe { mmap(placement, len, prot, flags, buffer.as_fd(), file_offset) };
        let start = mapped.map_err(|errno| {
            if let Some(reserved) = placement.and_then(|at| NonNull::new(at.get() as *mut c_void)) {
                // SAFETY: The reservation is this call's and unused.
                let _ = unsafe { munmap(reserved, len.get()) };
            }
            Failure::Rsheap(rsheap::Error::Os {
                what: format!("mmap {len} bytes at offset {first} of buffer"),
                errno,
            })
        })?;
        // INVARIANT: The mapping was made here and is owned from now on.
        Ok(Self {
            start,
            len,
            offset: first,
            retired: Mutex::new(false),
        })
    }

    /// The address of byte `offset` of the buffer and `len` bytes from there, which must lie
    /// within the region.
    fn bytes(&self, offset: u64, len: usize) -> Result<*mut u8> {
        let skew = offset
            .checked_sub(self.offset)
            .and_then(|skew| usize::try_from(skew).ok())
            .filter(|skew| {
                skew.checked_add(len)
                    .is_some_and(|end| end <= self.len.get())
            })
            .ok_or_else(|| {
                Failure::Argument(format!("{len} bytes at {offset} lie outside the mapping"))
            })?;
        Ok(self.start.as_ptr().cast::<u8>().wrapping_add(skew))
    }

    /// Replaces the buffer's memory with anonymous zeroed memory, once. If that fails (no
    /// memory for the new mapping), the buffer stays mapped, which is safe too: its memory
    /// then lives until the region is released.
    fn retire(&self) -> Result<()> {
        let mut retired = self.retired.lock().unwrap_or_else(PoisonError::into_inner);
        if *retired {
            return Ok(());
        }
        let at = NonZeroUsize::new(self.start.as_ptr() as usize);
        // SAFETY: By the type invariants the range is this region's mapping; replacing it with
        // an anonymous one of the same protection keeps every address of it valid.
        unsafe {
            mmap_anonymous(
                at,
                self.len,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_FIXED | MapFlags::MAP_PRIVATE | MapFlags::MAP_NORESERVE,
            )
        }
        .map_err(|errno| {
            Failure::Rsheap(rsheap::Error::Os {
                what: "replace a closed buffer's mapping".into(),
                errno,
            })
        })?;
        *retired = true;
        Ok(())
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: By the type invariants the range is this region's mapping, and the handle's
        // contract guarantees no ByteBuffer reaches it any more. munmap of a valid mapping
        // cannot fail.
        let _ = unsafe { munmap(self.start, self.len.get()) };
    }
}

/// Reserves `len` bytes of address space whose start agrees with `offset` modulo 2 MiB, and
/// returns the start, for a `MAP_FIXED` mapping to replace.
fn reserve_aligned(len: NonZeroUsize, offset: u64) -> Result<Option<NonZeroUsize>> {
    let span = len
        .checked_add(HUGE_ALIGN)
        .ok_or_else(|| Failure::Argument("mapping too large".into()))?;
    // SAFETY: A new inaccessible anonymous mapping that nothing else uses.
    let base = unsafe {
        mmap_anonymous(
            None,
            span,
            ProtFlags::PROT_NONE,
            MapFlags::MAP_PRIVATE | MapFlags::MAP_NORESERVE,
        )
    }
    .map_err(|errno| {
        Failure::Rsheap(rsheap::Error::Os {
            what: "reserve address space".into(),
            errno,
        })
    })?;
    let base_addr = base.as_ptr() as usize;
    // Remainders modulo a power of two, below it: no step here wraps.
    let mask = HUGE_ALIGN.wrapping_sub(1);
    let skew = ((offset as usize & mask)
        .wrapping_add(HUGE_ALIGN)
        .wrapping_sub(base_addr & mask))
        & mask;
    let start = base_addr.wrapping_add(skew);
    // Give back the head before `start` and the tail after the mapping.
    // SAFETY: Both ranges lie within the reservation made above and are unused.
    unsafe {
        if skew > 0 {
            let _ = munmap(base, skew);
        }
        let tail = HUGE_ALIGN.wrapping_sub(skew);
        if let Some(tail_start) = NonNull::new(start.wrapping_add(len.get()) as *mut c_void) {
            if tail > 0 {
                let _ = munmap(tail_start, tail);
            }
        }
    }
    Ok(NonZeroUsize::new(start))
}

/// `ByteBuffer nativeView(long region, long offset, int length)`: a direct buffer over
/// `length` bytes of the region from byte `offset` of the buffer.
fn native_view<'local>(
    env: &mut Env<'local>,
    _class: JClass<'local>,
    region: jlong,
    offset: jlong,
    length: jint,
) -> Result<JByteBuffer<'local>> {
    let offset = u64::try_from(offset)
        .map_err(|_| Failure::Argument(format!("offset {offset} is negative")))?;
    let length = usize::try_from(length)
        .map_err(|_| Failure::Argument(format!("length {length} is negative")))?;
    // SAFETY: Java passes the handle of a region it has not released, and releases it only
    // once no ByteBuffer of it is reachable.
    let region = unsafe { handle::borrow::<Region>(region) }?;
    let start = region.bytes(offset, length)?;
    // SAFETY: The bytes lie within the region, which stays mapped (by the buffer or by
    // anonymous memory) until Java releases it after the ByteBuffer has been collected.
    Ok(unsafe { env.new_direct_byte_buffer(start, length) }?)
}

/// `void nativeRetire(long region)`: puts anonymous memory in place of the buffer's.
fn native_retire<'local>(
    _env: &mut Env<'local>,
    _class: JClass<'local>,
    region: jlong,
) -> Result<()> {
    // SAFETY: Java passes the handle of a region it has not released, under its lock.
    let region = unsafe { handle::borrow::<Region>(region) }?;
    region.retire()
}

/// `void nativeRelease(long region)`: unmaps the region; Java never passes the handle again.
fn native_release<'local>(
    _env: &mut Env<'local>,
    _class: JClass<'local>,
    region: jlong,
) -> Result<()> {
    // SAFETY: Java passes the handle once, under the region's lock, after its ByteBuffer was
    // collected, and never again.
    drop(unsafe { handle::take::<Region>(region) });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memfd(len: usize) -> rsheap::Buffer {
        let fd = nix::sys::memfd::memfd_create(
            c"region-test",
            nix::sys::memfd::MemFdCreateFlag::empty(),
        )
        .unwrap();
        nix::unistd::ftruncate(&fd, len as i64).unwrap();
        rsheap::Buffer::from_fd(fd).unwrap()
    }

    #[test]
    fn a_region_covers_whole_pages_and_retires_to_zeros() {
        let page = rsheap::page_size();
        let buffer = memfd(4 * page);
        let region = Region::map(&buffer, page as u64 + 10, 20).unwrap();
        assert_eq!(region.offset, page as u64);
        assert_eq!(region.len.get(), page);
        let at = region.bytes(page as u64 + 10, 20).unwrap();
        // SAFETY: The region maps these bytes.
        unsafe { at.write(7) };
        assert!(region.bytes(page as u64 - 1, 1).is_err());
        assert!(region.bytes(2 * page as u64 - 1, 2).is_err());
        region.retire().unwrap();
        // SAFETY: Still mapped, now anonymous.
        assert_eq!(unsafe { at.read() }, 0);
        // SAFETY: As above.
        unsafe { at.write(9) };
        region.retire().unwrap();
        drop(region);
        // The buffer kept what was written before the retirement, and only that.
        let again = Region::map(&buffer, page as u64 + 10, 1).unwrap();
        let byte = again.bytes(page as u64 + 10, 1).unwrap();
        // SAFETY: The region maps this byte.
        assert_eq!(unsafe { byte.read() }, 7);
    }

    #[test]
    fn ranges_outside_the_buffer_are_refused() {
        let page = rsheap::page_size();
        let buffer = memfd(2 * page);
        assert!(Region::map(&buffer, 0, 0).is_err());
        assert!(Region::map(&buffer, page as u64, page as u64 + 1).is_err());
        assert!(Region::map(&buffer, u64::MAX, 2).is_err());
        let whole = Region::map(&buffer, 0, 2 * page as u64).unwrap();
        assert_eq!(whole.len.get(), 2 * page);
    }

    #[test]
    fn large_regions_agree_with_their_offset_modulo_2_mib() {
        let buffer = memfd(8 << 20);
        let region = Region::map(&buffer, 1 << 20, 4 << 20).unwrap();
        assert_eq!(region.start.as_ptr() as usize % HUGE_ALIGN, 1 << 20);
    }
}
