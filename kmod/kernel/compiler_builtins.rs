// SPDX-License-Identifier: GPL-2.0

//! The `compiler_builtins` crate rustc links into every staticlib.
//!
//! rustc expects one crate marked `#![compiler_builtins]` to provide the intrinsics LLVM may
//! call. The kernel provides `memcpy` and friends itself, and rsheap's code uses no 128-bit
//! division or floating point, so this crate defines nothing: after LTO an intrinsic the
//! module needed would show as an undefined symbol, which the KMI check reports.

#![feature(compiler_builtins)]
#![compiler_builtins]
#![no_builtins]
#![no_std]
#![allow(internal_features)]
