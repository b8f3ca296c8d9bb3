//! `dev.rsheap.Buffer`'s native methods, and [`NativeBuffer`], the broker buffer and CPU
//! mapping a `Buffer` holds as its handle.
//!
//! The mapping is made on the first `map()` and lives until `close()`; every `ByteBuffer`
//! `map()` returns points into it, so Java documents that they are valid only until then.
//! Loads report progress to a `LoadListener` on the calling thread, with the calling thread's
//! JNI environment: the SDK's progress callback is not `Send`, so it cannot run anywhere else,
//! and no thread needs attaching.

use std::mem::ManuallyDrop;
use std::path::Path;
use std::ptr::NonNull;
use std::sync::{Mutex, PoisonError};

use jni::objects::{JByteBuffer, JClass, JObject, JString};
use jni::sys::{jboolean, jint, jlong};
use jni::{jni_sig, jni_str, native_method, Env, JValue, NativeMethod};
use rsheap::{Broker, BrokerBuffer, Mapping, Span, SyncDirection};

use crate::errors::{Failure, Result, ThrowRsheapException};
use crate::handle;

/// The native methods of `dev.rsheap.Buffer`.
pub const METHODS: &[NativeMethod] = &[
    native_method! {
        static fn native_map(handle: jlong) -> java.nio.ByteBuffer,
        error_policy = ThrowRsheapException,
    },
    native_method! {
        static fn native_load_file(
            broker: jlong,
            buffer: jlong,
            path: JString,
            file_offset: jlong,
            buffer_offset: jlong,
            length: jlong,
            listener: dev.rsheap.LoadListener,
        ) -> jlong,
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
];

/// A broker buffer and, once mapped, its CPU mapping.
///
/// # Invariants
///
/// `buffer` comes from `Box::leak` and is owned by this value: it is released only by
/// [`NativeBuffer::into_inner`] or `Drop`, and each of them empties `mapping` (which borrows
/// it) first.
pub struct NativeBuffer {
    /// The CPU mapping, made on first use; it borrows `*buffer`.
    mapping: Mutex<Option<SharedMapping>>,
    /// The buffer, boxed so that the mapping's borrow of it stays put.
    buffer: NonNull<BrokerBuffer>,
}

// SAFETY: `NativeBuffer` owns its `BrokerBuffer` as a `Box` would, and `BrokerBuffer` is
// `Send + Sync`; the mapping sits behind a mutex and is itself `Send`.
unsafe impl Send for NativeBuffer {}
// SAFETY: As for `Send`: shared access reaches the buffer only by `&` and the mapping only
// through the mutex.
unsafe impl Sync for NativeBuffer {}

/// A mapping any thread may use and unmap.
struct SharedMapping(Mapping<'static>);

// SAFETY: A mapping is address space of the whole process: any thread may access and unmap
// it. `Mapping` is not `Send` only because it holds a raw pointer.
unsafe impl Send for SharedMapping {}

impl NativeBuffer {
    /// Takes ownership of `buffer`, unmapped.
    pub fn new(buffer: BrokerBuffer) -> Self {
        // INVARIANT: The pointer comes from `Box::leak` and is owned from here on.
        Self {
            mapping: Mutex::new(None),
            buffer: NonNull::from(Box::leak(Box::new(buffer))),
        }
    }

    /// The broker buffer.
    pub fn buffer(&self) -> &BrokerBuffer {
        // SAFETY: By the type invariants `buffer` is live for as long as `self`.
        unsafe { self.buffer.as_ref() }
    }

    /// The start and length of the CPU mapping of the whole buffer, made on the first call.
    fn map(&self) -> Result<(NonNull<u8>, usize)> {
        let mut slot = self.mapping.lock().unwrap_or_else(PoisonError::into_inner);
        let mapping = match slot.take() {
            Some(mapping) => mapping,
            None => {
                // SAFETY: By the type invariants `*self.buffer` outlives every mapping in
                // `self.mapping`, which `into_inner` and `drop` empty before releasing it; so
                // the `'static` borrow never outlives the buffer.
                let buffer: &'static BrokerBuffer = unsafe { self.buffer.as_ref() };
                SharedMapping(buffer.buffer().map()?)
            }
        };
        let mapping = slot.insert(mapping);
        let start = NonNull::new(mapping.0.as_mut_ptr())
            .ok_or_else(|| Failure::Argument("the mapping has no address".into()))?;
        Ok((start, mapping.0.len()))
    }

    /// Unmaps the buffer and gives it back.
    pub fn into_inner(self) -> BrokerBuffer {
        let this = ManuallyDrop::new(self);
        // The mapping goes first: it borrows the buffer.
        drop(
            this.mapping
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        // SAFETY: By the type invariants `buffer` came from `Box::leak` and is owned by
        // `this`, whose `Drop` will not run; the mapping that borrowed it is gone.
        *unsafe { Box::from_raw(this.buffer.as_ptr()) }
    }
}

impl Drop for NativeBuffer {
    fn drop(&mut self) {
        drop(
            self.mapping
                .get_mut()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        // SAFETY: By the type invariants `buffer` came from `Box::leak` and is owned by
        // `self`, which is going away; the mapping that borrowed it is gone.
        drop(unsafe { Box::from_raw(self.buffer.as_ptr()) });
    }
}

/// `ByteBuffer nativeMap(long handle)`: a direct buffer over the whole mapping.
fn native_map<'local>(
    env: &mut Env<'local>,
    _class: JClass<'local>,
    handle: jlong,
) -> Result<JByteBuffer<'local>> {
    // SAFETY: Java passes the handle of an open Buffer and holds its lock, which keeps
    // `nativeFree` from taking it during the call.
    let buffer = unsafe { handle::borrow::<NativeBuffer>(handle) }?;
    let (start, len) = buffer.map()?;
    // SAFETY: The memory stays mapped until `Buffer.close()` frees the handle, and the
    // Javadoc of `Buffer.map()` makes the end of its ByteBuffers' use the caller's duty.
    Ok(unsafe { env.new_direct_byte_buffer(start.as_ptr(), len) }?)
}

/// `long nativeLoadFile(long broker, long buffer, String path, long fileOffset,
/// long bufferOffset, long length, LoadListener listener)`: loads through the broker and
/// returns the bytes loaded; `length` -1 loads to the end of the file.
#[allow(clippy::too_many_arguments)]
fn native_load_file<'local>(
    env: &mut Env<'local>,
    _class: JClass<'local>,
    broker: jlong,
    buffer: jlong,
    path: JString<'local>,
    file_offset: jlong,
    buffer_offset: jlong,
    length: jlong,
    listener: JObject<'local>,
) -> Result<jlong> {
    if path.is_null() {
        return Err(Failure::Argument("the path is null".into()));
    }
    let path = path.try_to_string(env)?;
    let offset = |value: jlong, what: &str| {
        u64::try_from(value).map_err(|_| Failure::Argument(format!("{what} {value} is negative")))
    };
    let span = Span {
        file_offset: offset(file_offset, "file offset")?,
        buffer_offset: offset(buffer_offset, "buffer offset")?,
        // The SDK's "to the end of the file".
        len: if length == -1 {
            u64::MAX
        } else {
            offset(length, "length")?
        },
    };
    // SAFETY: Java passes the handles of an open HeapBroker and an open Buffer and holds
    // both their locks, which keep `close()` from taking them during the call.
    let (broker, buffer) = unsafe {
        (
            handle::borrow::<Broker>(broker)?,
            handle::borrow::<NativeBuffer>(buffer)?,
        )
    };
    let mut report = |done: u64, total: u64| {
        if !listener.is_null() {
            on_progress(env, &listener, done, total);
        }
    };
    let loaded = broker.load_path(buffer.buffer(), Path::new(&path), span, &mut report)?;
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

/// `void nativeFree(long broker, long buffer)`: unmaps the buffer and frees it through the
/// broker, or, with `broker` 0 (the HeapBroker is closed), only closes it here: the broker
/// freed the buffers of the closed connection already.
fn native_free<'local>(
    _env: &mut Env<'local>,
    _class: JClass<'local>,
    broker: jlong,
    buffer: jlong,
) -> Result<()> {
    // SAFETY: Java passes the handle of the Buffer it is closing, under its lock, and never
    // passes it again.
    let Some(buffer) = (unsafe { handle::take::<NativeBuffer>(buffer) }) else {
        return Ok(());
    };
    let buffer = buffer.into_inner();
    if broker != 0 {
        // SAFETY: Java passes the handle of an open HeapBroker and holds its lock.
        let broker = unsafe { handle::borrow::<Broker>(broker) }?;
        // The buffer is closed here either way. The broker can only fail to free it when it
        // no longer knows it: it restarted (and forgot it) or cannot be reached (and frees it
        // when it sees this client die). Neither leaves anything to undo, so `close()` stays
        // quiet about them.
        let _ = broker.free(buffer);
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
    let buffer = unsafe { handle::borrow::<NativeBuffer>(buffer) }?
        .buffer()
        .buffer();
    if start {
        buffer.begin_cpu_access(direction)?;
    } else {
        buffer.end_cpu_access(direction)?;
    }
    Ok(())
}
