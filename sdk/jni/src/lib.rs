//! JNI bindings of rsheap's broker client for the Java API `dev.rsheap`.
//!
//! The library registers the native methods of `dev.rsheap.HeapBroker`,
//! `dev.rsheap.BufferState` and `dev.rsheap.Region` from `JNI_OnLoad`, so a mismatch between the Java declarations and these
//! implementations fails `System.loadLibrary` instead of a later call. Each method is a thin
//! wrapper made by `native_method!`: it catches panics, converts its arguments, calls the
//! `rsheap` SDK once, and turns any failure into a Java exception in one place
//! ([`errors::ThrowRsheapException`]).
//!
//! Native state lives behind `long` handles ([`handle`]): a `HeapBroker` holds an
//! `rsheap::Broker`, a `Buffer` (through its `BufferState`) an `rsheap::BrokerBuffer`, and
//! each mapping a [`region::Region`]. The Java classes check that an object is open and hold
//! a lock across each native call, so a handle is never used after `close()` frees it.

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

mod broker;
mod buffer;
mod classes;
mod errors;
mod fd;
mod handle;
mod region;

use std::ffi::c_void;

use jni::sys::{jint, JNI_ERR, JNI_VERSION_1_6};
use jni::vm::JavaVM;
use jni::{jni_str, Env};

/// Called by the JVM when `System.loadLibrary("rsheap_jni")` loads the library: looks up the
/// classes the natives build objects of and registers the natives.
///
/// # Safety
///
/// Called by the JVM only, with its own `JavaVM` pointer, on a thread attached to it.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn JNI_OnLoad(
    vm: *mut jni::sys::JavaVM,
    _reserved: *mut c_void,
) -> jint {
    // SAFETY: The JVM passes a valid pointer to itself.
    let vm = unsafe { JavaVM::from_raw(vm) };
    // `attach_current_thread` catches panics of the closure and reports Java exceptions as
    // errors; the loading thread is attached already, so this attaches nothing.
    let loaded = std::panic::catch_unwind(|| vm.attach_current_thread(register));
    match loaded {
        Ok(Ok(())) => JNI_VERSION_1_6,
        Ok(Err(err)) => {
            eprintln!("rsheap_jni: cannot register the native methods: {err}");
            JNI_ERR
        }
        Err(_) => {
            eprintln!("rsheap_jni: panicked while registering the native methods");
            JNI_ERR
        }
    }
}

/// Looks up the classes and registers the natives of `HeapBroker`, `BufferState` and
/// `Region`.
fn register(env: &mut Env<'_>) -> jni::errors::Result<()> {
    classes::init(env)?;
    // SAFETY: `native_method!` built every entry from a function whose type matches the
    // entry's JNI signature.
    unsafe {
        env.register_native_methods(jni_str!("dev/rsheap/HeapBroker"), broker::METHODS)?;
        env.register_native_methods(jni_str!("dev/rsheap/BufferState"), buffer::METHODS)?;
        env.register_native_methods(jni_str!("dev/rsheap/Region"), region::METHODS)?;
    }
    Ok(())
}
