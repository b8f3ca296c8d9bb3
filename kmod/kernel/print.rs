// SPDX-License-Identifier: GPL-2.0

//! Printing to the kernel log: `pr_emerg!`, `pr_err!`, `pr_warn!`, and the rate-limited
//! `pr_warn_ratelimited!` and `pr_info_ratelimited!`, which share one limit (10 messages in 5
//! seconds, the kernel's default) so that no caller can flood the log.
//!
//! A message is formatted by Rust into a buffer on the stack and handed to `_printk` as a
//! string, never as `%pA`: that format reads a `core::fmt::Arguments` laid out by the kernel's
//! own Rust compiler (and exists only with `CONFIG_RUST`). Messages longer than
//! [`MESSAGE_MAX`] bytes are cut there.

use core::fmt::{self, Write};

use super::bindings::{self, c_int};

/// The longest message printed whole.
const MESSAGE_MAX: usize = 256;

/// A log level: the `KERN_*` prefix, with the module's prefix, as a C format string.
pub(crate) struct Level(&'static [u8]);

/// `KERN_EMERG`.
pub(crate) const EMERG: Level = Level(b"\x010rsheap: %.*s\0");
/// `KERN_ERR`.
pub(crate) const ERR: Level = Level(b"\x013rsheap: %.*s\0");
/// `KERN_WARNING`.
pub(crate) const WARNING: Level = Level(b"\x014rsheap: %.*s\0");
/// `KERN_INFO`.
pub(crate) const INFO: Level = Level(b"\x016rsheap: %.*s\0");

/// A message being formatted.
struct Message {
    text: [u8; MESSAGE_MAX],
    len: usize,
}

impl Write for Message {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = self.text.get_mut(self.len..).unwrap_or_default();
        for (slot, byte) in room.iter_mut().zip(s.bytes()) {
            *slot = byte;
            self.len += 1;
        }
        Ok(())
    }
}

/// Prints `args` at `level`; used by the `pr_*!` macros.
pub(crate) fn print(level: Level, args: fmt::Arguments<'_>) {
    let mut message = Message {
        text: [0; MESSAGE_MAX],
        len: 0,
    };
    // `Message` never fails; a formatting impl that does leaves what it wrote.
    let _ = message.write_fmt(args);
    // `len` is at most `MESSAGE_MAX`, which fits an `int`.
    let len = message.len as c_int;
    // SAFETY: The level is a NUL-terminated format taking a length and a pointer to that many
    // bytes, which `message` holds.
    unsafe { bindings::_printk(level.0.as_ptr().cast(), len, message.text.as_ptr()) };
}

/// Prints `args` at `level` unless the module's messages exceed their rate limit.
pub(crate) fn print_ratelimited(level: Level, args: fmt::Arguments<'_>) {
    // SAFETY: No preconditions; the limit's state is the C side's own.
    if unsafe { bindings::rsheap_printk_ratelimit() } {
        print(level, args);
    }
}

/// Prints an emergency message.
macro_rules! pr_emerg {
    ($($arg:tt)*) => {
        $crate::kernel::print::print($crate::kernel::print::EMERG, format_args!($($arg)*))
    };
}

/// Prints an error.
macro_rules! pr_err {
    ($($arg:tt)*) => {
        $crate::kernel::print::print($crate::kernel::print::ERR, format_args!($($arg)*))
    };
}

/// Prints a warning.
macro_rules! pr_warn {
    ($($arg:tt)*) => {
        $crate::kernel::print::print($crate::kernel::print::WARNING, format_args!($($arg)*))
    };
}

/// Prints a warning, rate-limited: for failures of the system (memory, devices) that a caller
/// sees only as an errno.
macro_rules! pr_warn_ratelimited {
    ($($arg:tt)*) => {
        $crate::kernel::print::print_ratelimited(
            $crate::kernel::print::WARNING,
            format_args!($($arg)*),
        )
    };
}

/// Prints an informational message, rate-limited: why a caller's request was refused, with the
/// values, where the errno alone does not say.
macro_rules! pr_info_ratelimited {
    ($($arg:tt)*) => {
        $crate::kernel::print::print_ratelimited(
            $crate::kernel::print::INFO,
            format_args!($($arg)*),
        )
    };
}

pub(crate) use {pr_emerg, pr_err, pr_info_ratelimited, pr_warn, pr_warn_ratelimited};
