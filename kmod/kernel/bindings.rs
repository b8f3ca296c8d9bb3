// SPDX-License-Identifier: GPL-2.0

//! Raw declarations of the C functions, types and constants rsheap's Rust uses: kernel exports
//! called directly, the forwarders of `support.c`, and the target kernel's constants.
//!
//! Structures that Rust only handles behind pointers are opaque. The two it builds itself,
//! `struct sg_table` and `struct bio_vec`, are declared field by field and checked against the
//! target kernel's layout at compile time.

#![allow(non_camel_case_types)]

pub(crate) use core::ffi::{c_char, c_int, c_uint, c_void};

/// C's `unsigned long`, which the kernel keeps pointer-sized on every architecture.
pub(crate) type c_ulong = usize;

/// Constants of the target kernel, generated from `consts.c`.
pub(crate) mod consts {
    include!(env!("RSHEAP_CONSTS"));
}

/// Declares C types that Rust only handles behind pointers.
macro_rules! opaque_types {
    ($($(#[$doc:meta])* $name:ident;)*) => {
        $(
            $(#[$doc])*
            #[repr(C)]
            pub(crate) struct $name {
                _private: [u8; 0],
            }
        )*
    };
}

pub(crate) use opaque_types;

opaque_types! {
    /// `struct page`.
    page;
    /// `struct device`.
    device;
    /// `struct file`.
    file;
    /// `struct scatterlist`.
    scatterlist;
    /// `struct seq_file`.
    seq_file;
    /// `struct list_head`.
    list_head;
    /// `struct vm_area_struct`.
    vm_area_struct;
    /// `struct mutex`.
    mutex;
    /// `spinlock_t`.
    spinlock;
}

/// `gfp_t`.
pub(crate) type gfp_t = c_uint;
/// `vm_fault_t`.
pub(crate) type vm_fault_t = c_uint;
/// `enum dma_data_direction`.
pub(crate) type dma_data_direction = c_uint;

/// `struct sg_table`.
#[repr(C)]
pub(crate) struct sg_table {
    pub(crate) sgl: *mut scatterlist,
    pub(crate) nents: c_uint,
    pub(crate) orig_nents: c_uint,
}

/// `struct bio_vec`.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct bio_vec {
    pub(crate) bv_page: *mut page,
    pub(crate) bv_len: c_uint,
    pub(crate) bv_offset: c_uint,
}

const _: () = {
    use core::mem::{align_of, offset_of, size_of};
    assert!(size_of::<sg_table>() == consts::SG_TABLE_SIZE);
    assert!(align_of::<sg_table>() == consts::SG_TABLE_ALIGN);
    assert!(offset_of!(sg_table, sgl) == consts::SG_TABLE_SGL);
    assert!(offset_of!(sg_table, nents) == consts::SG_TABLE_NENTS);
    assert!(offset_of!(sg_table, orig_nents) == consts::SG_TABLE_ORIG_NENTS);
    assert!(size_of::<bio_vec>() == consts::BIO_VEC_SIZE);
    assert!(align_of::<bio_vec>() == consts::BIO_VEC_ALIGN);
    assert!(offset_of!(bio_vec, bv_page) == consts::BIO_VEC_PAGE);
    assert!(offset_of!(bio_vec, bv_len) == consts::BIO_VEC_LEN);
    assert!(offset_of!(bio_vec, bv_offset) == consts::BIO_VEC_OFFSET);
};

// `struct page` is opaque, which the `improper_ctypes` lint cannot know; only pointers to these
// types cross the boundary.
#[allow(improper_ctypes)]
extern "C" {
    // Kernel exports.
    pub(crate) fn _printk(fmt: *const c_char, ...) -> c_int;
    pub(crate) fn kfree(ptr: *const c_void);
    pub(crate) fn kvfree(ptr: *const c_void);
    pub(crate) fn __free_pages(page: *mut page, order: c_uint);
    pub(crate) fn ktime_get() -> i64;
    pub(crate) fn sg_alloc_table(table: *mut sg_table, nents: c_uint, gfp: gfp_t) -> c_int;
    pub(crate) fn sg_free_table(table: *mut sg_table);
    pub(crate) fn sg_next(sg: *mut scatterlist) -> *mut scatterlist;
    pub(crate) fn dma_map_sgtable(
        dev: *mut device,
        sgt: *mut sg_table,
        dir: dma_data_direction,
        attrs: c_ulong,
    ) -> c_int;
    pub(crate) fn fget(fd: c_uint) -> *mut file;
    pub(crate) fn fput(file: *mut file);
    pub(crate) fn seq_write(seq: *mut seq_file, data: *const c_void, len: usize) -> c_int;

    // support.c.
    pub(crate) fn rsheap_kmalloc(size: usize, flags: gfp_t) -> *mut c_void;
    pub(crate) fn rsheap_kvmalloc(size: usize, flags: gfp_t) -> *mut c_void;
    pub(crate) fn rsheap_alloc_pages(gfp: gfp_t, order: c_uint) -> *mut page;
    pub(crate) fn rsheap_nth_page(page: *mut page, n: c_ulong) -> *mut page;
    pub(crate) fn rsheap_mutex_new(class: c_uint) -> *mut mutex;
    pub(crate) fn rsheap_mutex_free(lock: *mut mutex);
    pub(crate) fn rsheap_mutex_lock(lock: *mut mutex);
    pub(crate) fn rsheap_mutex_lock_interruptible(lock: *mut mutex) -> c_int;
    pub(crate) fn rsheap_mutex_unlock(lock: *mut mutex);
    pub(crate) fn rsheap_spinlock_new(class: c_uint) -> *mut spinlock;
    pub(crate) fn rsheap_spinlock_free(lock: *mut spinlock);
    pub(crate) fn rsheap_spin_lock(lock: *mut spinlock);
    pub(crate) fn rsheap_spin_unlock(lock: *mut spinlock);
    pub(crate) fn rsheap_printk_ratelimit() -> bool;
    pub(crate) fn rsheap_bug() -> !;
}
