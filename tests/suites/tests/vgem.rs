//! A device importing an rsheap buffer: vgem attaches and maps it through the dma-buf core
//! (the attach, map_dma_buf, unmap and detach ops), while the CPU keeps access through sync.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd};

use nix::{ioctl_readwrite, ioctl_write_ptr};
use rsheap::{Heap, SyncDirection};
use rsheap_suites::{page_size, pattern, pattern_mismatch, RSHEAP, RSHEAP_UNCACHED};

/// `struct drm_prime_handle`.
#[repr(C)]
#[derive(Default)]
struct DrmPrimeHandle {
    handle: u32,
    flags: u32,
    fd: i32,
}

/// `struct drm_gem_close`.
#[repr(C)]
#[derive(Default)]
struct DrmGemClose {
    handle: u32,
    pad: u32,
}

ioctl_readwrite!(
    /// `DRM_IOCTL_PRIME_FD_TO_HANDLE`.
    drm_prime_fd_to_handle,
    b'd',
    0x2e,
    DrmPrimeHandle
);
ioctl_write_ptr!(
    /// `DRM_IOCTL_GEM_CLOSE`.
    drm_gem_close,
    b'd',
    0x09,
    DrmGemClose
);

/// Opens the vgem device; the test kernel has no other DRM driver.
fn open_vgem() -> File {
    let device = std::fs::canonicalize("/sys/class/drm/card0/device").expect("card0 has a device");
    assert!(device.ends_with("vgem"), "card0 is {}", device.display());
    File::options()
        .read(true)
        .write(true)
        .open("/dev/dri/card0")
        .expect("open /dev/dri/card0")
}

fn try_import(vgem: &File, fd: i32) -> nix::Result<u32> {
    let mut prime = DrmPrimeHandle {
        fd,
        ..Default::default()
    };
    // SAFETY: A valid `drm_prime_handle` for the duration of the call.
    unsafe { drm_prime_fd_to_handle(vgem.as_raw_fd(), &mut prime) }?;
    Ok(prime.handle)
}

fn import(vgem: &File, fd: i32) -> u32 {
    try_import(vgem, fd).expect("vgem imports the buffer")
}

fn close(vgem: &File, handle: u32) {
    // SAFETY: A valid `drm_gem_close` for the duration of the call.
    unsafe { drm_gem_close(vgem.as_raw_fd(), &DrmGemClose { handle, pad: 0 }) }
        .expect("close the GEM handle");
}

#[test]
fn vgem_imports_buffers_and_cpu_sync_round_trips() {
    let vgem = open_vgem();
    for (heap, len) in [
        (RSHEAP, page_size()),
        (RSHEAP, 1 << 20),
        (RSHEAP, (17 << 20) + page_size()),
        (RSHEAP_UNCACHED, 3 << 20),
    ] {
        let heap = Heap::open(heap).expect("open heap");
        let buffer = heap.allocate(len).expect("allocate");
        let handle = import(&vgem, buffer.as_fd().as_raw_fd());
        // Importing the same dma-buf again yields the same GEM object.
        assert_eq!(import(&vgem, buffer.as_fd().as_raw_fd()), handle);
        let mut mapping = buffer.map().expect("map");
        {
            let _access = buffer
                .cpu_access(SyncDirection::Write)
                .expect("begin CPU write");
            mapping
                .write_at(0, &pattern(9, mapping.len()))
                .expect("write the pattern");
        }
        {
            let _access = buffer
                .cpu_access(SyncDirection::Read)
                .expect("begin CPU read");
            assert_eq!(pattern_mismatch(&mapping.to_vec(), 0, 9), None);
        }
        drop(mapping);
        close(&vgem, handle);
    }
}

#[test]
fn buffers_freed_while_imported_stay_alive_until_the_importer_lets_go() {
    let vgem = open_vgem();
    let heap = Heap::open(RSHEAP).expect("open heap");
    let buffer = heap.allocate(8 << 20).expect("allocate");
    let handle = import(&vgem, buffer.as_fd().as_raw_fd());
    drop(buffer);
    // The GEM object holds the dma-buf; releasing it now runs detach and release.
    close(&vgem, handle);
}

#[test]
fn an_importer_that_maps_for_writing_cannot_import_a_read_only_export() {
    let vgem = open_vgem();
    for heap in [RSHEAP, RSHEAP_UNCACHED] {
        let buffer = Heap::open(heap)
            .expect("open heap")
            .allocate(2 * page_size())
            .expect("allocate");
        let shared = buffer.share_read_only().expect("share read-only");
        // vgem maps what it imports bidirectionally, at once.
        assert_eq!(
            try_import(&vgem, shared.as_fd().as_raw_fd()),
            Err(nix::errno::Errno::EACCES),
            "{heap}: import of the read-only export"
        );
        let handle = import(&vgem, buffer.as_fd().as_raw_fd());
        close(&vgem, handle);
    }
}

/// Counts the DMA API's sync events for vgem's device in the trace (lines like
/// `dma_sync_sg_for_cpu: vgem dir=BIDIRECTIONAL ...`), by event name.
#[cfg(target_arch = "aarch64")]
fn vgem_syncs(trace: &str, event: &str) -> usize {
    let wanted = format!(" {event}: vgem ");
    trace.lines().filter(|line| line.contains(&wanted)).count()
}

// On QEMU's virt machine vgem's platform device has no firmware node and is not DMA-coherent,
// so syncing its mapping is real cache maintenance; TCG models no caches, so the test checks
// that the calls happen rather than what they do to the data.
#[cfg(target_arch = "aarch64")]
#[test]
fn cpu_access_syncs_the_importers_mapping_unless_the_heap_is_uncached() {
    use std::path::Path;
    let tracing = Path::new("/sys/kernel/tracing");
    let events = ["dma_sync_sg_for_cpu", "dma_sync_sg_for_device"];
    let enable = |on: &str| {
        for event in events {
            std::fs::write(tracing.join("events/dma").join(event).join("enable"), on)
                .expect("switch a DMA trace event");
        }
    };
    enable("1");
    let vgem = open_vgem();
    for (heap, syncs) in [(RSHEAP, true), (RSHEAP_UNCACHED, false)] {
        std::fs::write(tracing.join("trace"), "").expect("clear the trace");
        let buffer = Heap::open(heap)
            .expect("open heap")
            .allocate(4 << 20)
            .expect("allocate");
        let handle = import(&vgem, buffer.as_fd().as_raw_fd());
        for direction in [SyncDirection::Write, SyncDirection::Read] {
            let access = buffer.cpu_access(direction).expect("begin CPU access");
            access.end().expect("end CPU access");
        }
        let trace = std::fs::read_to_string(tracing.join("trace")).expect("read the trace");
        for event in events {
            let count = vgem_syncs(&trace, event);
            if syncs {
                assert!(count >= 2, "{heap}: {count} {event} for vgem:\n{trace}");
            } else {
                assert_eq!(count, 0, "{heap}: {event} for vgem:\n{trace}");
            }
        }
        close(&vgem, handle);
    }
    enable("0");
}
