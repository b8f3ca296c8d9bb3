// SPDX-License-Identifier: GPL-2.0

//! The kernel interfaces rsheap's Rust uses, compiled into the module.
//!
//! A GKI kernel exports only the C symbols its KMI symbol lists name, and no list names a Rust
//! symbol; the mangled names of the kernel's own `kernel` crate also carry the hashes of one
//! compiler and one build. A module that linked against the kernel's Rust could therefore not
//! load on a phone. rsheap instead carries the little it needs, in the manner of the
//! Rust-for-Linux abstractions it follows: errors, allocation, reference counting, locks and
//! printing, each a safe wrapper over C calls declared in [`bindings`]. With its own `core`
//! (see the Kbuild), the module imports nothing but C symbols, and does not need the kernel to
//! have `CONFIG_RUST` at all.
//!
//! Where the C side is a macro, a static inline or a structure whose layout depends on the
//! configuration, `support.c` wraps it; `consts.c` hands compile-time values to Rust.

pub(crate) mod alloc;
pub(crate) mod bindings;
pub(crate) mod error;
pub(crate) mod page;
pub(crate) mod prelude;
pub(crate) mod print;
pub(crate) mod sync;
pub(crate) mod time;
