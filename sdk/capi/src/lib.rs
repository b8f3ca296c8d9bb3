//! rsheap's C API, `include/rsheap/rsheap.h`: the `rsheap` crate for HALs written in C and
//! C++, which would otherwise have to speak the AIDL themselves and lose what the crate adds
//! (reconnection to a restarted broker, load progress and cancellation, mapping placement,
//! the direct path with the uncached fallback).
//!
//! Each `extern "C"` function checks its raw arguments at the boundary ([`args`]), makes one
//! call into the crate, and turns its error into a negative errno ([`errors`]); a session also
//! records the broker's error code and message for `rsheap_session_error_*`. Handles are boxed
//! values whose addresses C holds: [`session::RsheapSession`], [`heap::RsheapHeap`] and
//! [`buffer::RsheapBuffer`]. Nothing unwinds across the boundary: the library is built to
//! abort on a panic, and no input may reach one.
//!
//! The header and these definitions are checked against each other by this crate's tests
//! (layouts, constants, and the exported names against `librsheap_capi.map.txt`, the version
//! script that Soong, and the rig, link the shared library with).

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

mod args;
pub mod buffer;
mod errors;
pub mod heap;
pub mod session;
pub mod types;

/// `rsheap_page_size`: the system's page size.
#[unsafe(no_mangle)]
pub extern "C" fn rsheap_page_size() -> usize {
    rsheap::page_size()
}

#[cfg(test)]
mod header_tests;
