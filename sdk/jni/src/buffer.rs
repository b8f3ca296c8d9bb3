//! `dev.rsheap.BufferState`'s native methods: a broker buffer (`rsheap::BrokerBuffer`) held as
//! the handle of a Java `Buffer`'s state.
//!
//! Mappings are [`Region`]s of their own, each with its own handle, so that they can outlive
//! the buffer as anonymous memory (see [`crate::region`]). Loads report progress to a
//! `LoadListener` on the calling thread, with the calling thread's JNI environment: the SDK's
//! progress callback is not `Send`, so it cannot run anywhere else, and no thread needs
//! attaching.

use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use jni::objects::{JClass, JObject, JString};
use jni::sys::{jboolean, jint, jlong};
use jni::{jni_sig, jni_str, native_method, Env, JValue, NativeMethod};
use rsheap::{Broker, BrokerBuffer, Span, SyncDirection};

use crate::errors::{Failure, Result, ThrowRsheapException};
use crate::fd;
use crate::handle;
use crate::region::Region;

/// The native methods of `dev.rsheap.BufferState`.
pub const METHODS: &[NativeMethod] = &[
    native_method! {
        static fn native_map(buffer: jlong, offset: jlong, length: jlong) -> jlong,
        error_policy = ThrowRsheapException,
    },
    native_method! {
        static fn native_load(
            broker: jlong,
            buffer: jlong,
            path: JString,
            file: java.io.FileDescriptor,
            file_offset: jlong,
            buffer_offset: jlong,
            length: jlong,
            listener: dev.rsheap.LoadListener,
        ) -> jlong,
        error_policy = ThrowRsheapException,
    },
    native_method! {
        static fn native_cancel_loads(broker: jlong, buffer: jlong),
        error_policy = ThrowRsheapException,
    },
    native_method! {
        static fn native_free(broker: jlong, buffer: jlong),
        error_policy = ThrowRsheapException,
    },
    native_method! {
        static fn native_sync(buffer: jlong, start: jboolean, direction: jint),
        error_policy = ThrowRsheapException,
    },
    native_method! {
        static fn native_dup_fd(buffer: jlong) -> java.io.FileDescriptor,
        error_policy = ThrowRsheapException,
    },
    native_method! {
        static fn native_share_read_only(broker: jlong, buffer: jlong) -> java.io.FileDescriptor,
        error_policy = ThrowRsheapException,
    },
];

/// `long nativeMap(long buffer, long offset, long length)`: a new region mapping the pages
/// that hold the range, for `Region.nativeView` to make ByteBuffers over.
fn native_map<'local>(
    _env: &mut Env<'local>,
    _class: JClass<'local>,
    buffer: jlong,
    offset: jlong,
    length: jlong,
) -> Result<jlong> {
    let offset = u64::try_from(offset)
        .map_err(|_| Failure::Argument(format!("offset {offset} is negative")))?;
    let length = u64::try_from(length)
        .map_err(|_| Failure::Argument(format!("length {length} is negative")))?;
    // SAFETY: Java passes the handle of an open Buffer and holds its lock, which keeps
    // `nativeFree` from taking it during the call.
    let buffer = unsafe { handle::borrow::<BrokerBuffer>(buffer) }?;
    let region = Region::map(buffer.buffer(), offset, length)?;
    Ok(handle::into_handle(region))
}

/// The span of a load from Java's arguments; `length` -1 loads to the end of the file.
pub fn span(file_offset: jlong, buffer_offset: jlong, length: jlong) -> Result<Span> {
    let offset = |value: jlong, what: &str| {
        u64::try_from(value).map_err(|_| Failure::Argument(format!("{what} {value} is negative")))
    };
    Ok(Span {
        file_offset: offset(file_offset, "file offset")?,
        buffer_offset: offset(buffer_offset, "buffer offset")?,
        // The SDK's "to the end of the file".
        len: if length == -1 {
            Span::TO_END
        } else {
            offset(length, "length")?
        },
    })
}

/// `long nativeLoad(long broker, long buffer, String path, FileDescriptor file,
/// long fileOffset, long bufferOffset, long length, LoadListener listener)`: loads the file
/// at `path`, or else `file`, through the broker and returns the bytes loaded.
#[allow(clippy::too_many_arguments)]
fn native_load<'local>(
    env: &mut Env<'local>,
    _class: JClass<'local>,
    broker: jlong,
    buffer: jlong,
    path: JString<'local>,
    file: JObject<'local>,
    file_offset: jlong,
    buffer_offset: jlong,
    length: jlong,
    listener: JObject<'local>,
) -> Result<jlong> {
    let span = span(file_offset, buffer_offset, length)?;
    let opened = if path.is_null() {
        None
    } else {
        let path = path.try_to_string(env)?;
        Some(
            std::fs::File::open(Path::new(&path))
                .map_err(|err| rsheap::Error::Os {
                    what: format!("open {path}"),
                    errno: err
                        .raw_os_error()
                        .map_or(nix::errno::Errno::EIO, nix::errno::Errno::from_raw),
                })
                .map_err(Failure::Rsheap)?,
        )
    };
    let borrowed = match &opened {
        Some(file) => file.as_fd(),
        None => {
            let raw = fd::raw_fd(env, &file)?;
            // SAFETY: The caller keeps the FileDescriptor open for the duration of the call,
            // as `Buffer.loadFile`'s Javadoc requires; the SDK duplicates it at once.
            unsafe { BorrowedFd::borrow_raw(raw) }
        }
    };
    // SAFETY: Java passes the handles of an open HeapBroker and an open Buffer and holds
    // both their locks, which keep `close()` from taking them during the call.
    let (broker, buffer) = unsafe {
        (
            handle::borrow::<Broker>(broker)?,
            handle::borrow::<BrokerBuffer>(buffer)?,
        )
    };
    let mut report = |done: u64, total: u64| {
        if !listener.is_null() {
            on_progress(env, &listener, done, total);
        }
    };
    let loaded = broker.load_file_with_progress(buffer, &borrowed, span, &mut report)?;
    if env.exception_check() {
        // The listener threw: its exception is what Java sees.
        return Err(jni::errors::Error::JavaException.into());
    }
    Ok(i64::try_from(loaded).unwrap_or(i64::MAX))
}

/// Calls `listener.onProgress(done, total)`, unless an earlier call threw: then the exception
/// stays pending and the load goes on unreported, because JNI allows no Java calls while an
/// exception is pending.
fn on_progress(env: &mut Env<'_>, listener: &JObject<'_>, done: u64, total: u64) {
    if env.exception_check() {
        return;
    }
    let to_long = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
    // A frame per report, so a long load cannot fill the caller's local reference table.
    let _ = env.with_local_frame(4, |env| -> jni::errors::Result<()> {
        env.call_method(
            listener,
            jni_str!("onProgress"),
            jni_sig!((done: jlong, total: jlong) -> void),
            &[JValue::Long(to_long(done)), JValue::Long(to_long(total))],
        )?;
        Ok(())
    });
}

/// `void nativeCancelLoads(long broker, long buffer)`: cancels the buffer's loads at the
/// broker; a running one ends with `ERROR_CANCELLED` in the thread that waits for it.
fn native_cancel_loads<'local>(
    _env: &mut Env<'local>,
    _class: JClass<'local>,
    broker: jlong,
    buffer: jlong,
) -> Result<()> {
    // SAFETY: Java passes the handles of an open HeapBroker and an open Buffer and holds
    // both their locks (the buffer's shared with the load it cancels).
    let (broker, buffer) = unsafe {
        (
            handle::borrow::<Broker>(broker)?,
            handle::borrow::<BrokerBuffer>(buffer)?,
        )
    };
    Ok(broker.cancel_loads(buffer)?)
}

/// `void nativeFree(long broker, long buffer)`: frees the buffer through the broker, or, with
/// `broker` 0 (the HeapBroker is closed), only closes it here: the broker freed the buffers
/// of the closed connection already. Java retired the buffer's regions first.
fn native_free<'local>(
    _env: &mut Env<'local>,
    _class: JClass<'local>,
    broker: jlong,
    buffer: jlong,
) -> Result<()> {
    // SAFETY: Java passes the handle of the Buffer it is closing, under its lock, and never
    // passes it again.
    let Some(buffer) = (unsafe { handle::take::<BrokerBuffer>(buffer) }) else {
        return Ok(());
    };
    if broker != 0 {
        // SAFETY: Java passes the handle of an open HeapBroker and holds its lock.
        let broker = unsafe { handle::borrow::<Broker>(broker) }?;
        // The buffer is closed here either way. The broker can only fail to free it when it
        // no longer knows it: it restarted (and forgot it) or cannot be reached (and frees it
        // when it sees this client die). Neither leaves anything to undo, so `close()` stays
        // quiet about them.
        let _ = broker.free(*buffer);
    }
    Ok(())
}

/// `void nativeSync(long buffer, boolean start, int direction)`: starts or ends CPU access;
/// `direction` holds `CpuAccess.Direction`'s `DMA_BUF_SYNC_READ` and `_WRITE` flags.
fn native_sync<'local>(
    _env: &mut Env<'local>,
    _class: JClass<'local>,
    buffer: jlong,
    start: jboolean,
    direction: jint,
) -> Result<()> {
    let direction = match direction {
        1 => SyncDirection::Read,
        2 => SyncDirection::Write,
        3 => SyncDirection::ReadWrite,
        other => return Err(Failure::Argument(format!("no sync direction {other}"))),
    };
    // SAFETY: Java passes the handle of an open Buffer and holds its lock, which keeps
    // `nativeFree` from taking it during the call.
    let buffer = unsafe { handle::borrow::<BrokerBuffer>(buffer) }?.buffer();
    if start {
        buffer.begin_cpu_access(direction)?;
    } else {
        buffer.end_cpu_access(direction)?;
    }
    Ok(())
}

/// `FileDescriptor nativeDupFd(long buffer)`: a new descriptor of the dma-buf (close-on-exec),
/// owned by the caller.
fn native_dup_fd<'local>(
    env: &mut Env<'local>,
    _class: JClass<'local>,
    buffer: jlong,
) -> Result<JObject<'local>> {
    // SAFETY: Java passes the handle of an open Buffer and holds its lock.
    let buffer = unsafe { handle::borrow::<BrokerBuffer>(buffer) }?;
    let dup = buffer
        .buffer()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|err| rsheap::Error::Os {
            what: "duplicate the buffer's file descriptor".into(),
            errno: err
                .raw_os_error()
                .map_or(nix::errno::Errno::EIO, nix::errno::Errno::from_raw),
        })?;
    fd::new_file_descriptor(env, dup)
}

/// `FileDescriptor nativeShareReadOnly(long broker, long buffer)`: the broker's read-only
/// dma-buf over the buffer's memory, owned by the caller.
fn native_share_read_only<'local>(
    env: &mut Env<'local>,
    _class: JClass<'local>,
    broker: jlong,
    buffer: jlong,
) -> Result<JObject<'local>> {
    // SAFETY: Java passes the handles of an open HeapBroker and an open Buffer and holds
    // both their locks.
    let (broker, buffer) = unsafe {
        (
            handle::borrow::<Broker>(broker)?,
            handle::borrow::<BrokerBuffer>(buffer)?,
        )
    };
    let shared = broker.share_read_only(buffer)?;
    fd::new_file_descriptor(env, shared.into_fd())
}
