// SPDX-License-Identifier: GPL-2.0

//! The target kernel's base page size.

use super::bindings::consts;

/// log2 of the base page size.
pub(crate) const PAGE_SHIFT: usize = consts::PAGE_SHIFT;
/// The base page size in bytes: 4 KiB, 16 KiB or 64 KiB.
pub(crate) const PAGE_SIZE: usize = consts::PAGE_SIZE;

const _: () = assert!(PAGE_SIZE == 1 << PAGE_SHIFT);
