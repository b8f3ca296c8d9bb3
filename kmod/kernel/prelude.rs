// SPDX-License-Identifier: GPL-2.0

//! What most of rsheap's files use.

pub(crate) use super::alloc::{KBox, KVec, GFP_KERNEL};
pub(crate) use super::error::{code::*, Error, Result};
pub(crate) use super::print::{pr_err, pr_info_ratelimited, pr_warn, pr_warn_ratelimited};
