//! `dev.rsheap.HeapBroker`'s native methods: a connection to rsheapd, an `rsheap::Broker`
//! held as the HeapBroker's handle.
//!
//! The SDK's `Broker` is a session with rsheapd and reconnects by itself after rsheapd
//! restarts, so one HeapBroker object serves across restarts. Closing it drops the `Broker`,
//! which ends its session: the broker frees whatever the session still held.
//! `HeapBroker.close()` frees its open buffers through the broker first, so that each closes
//! on the Java side too.

use jni::objects::{JClass, JObject, JObjectArray, JString};
use jni::refs::Global;
use jni::sys::{jboolean, jint, jlong};
use jni::{jni_sig, native_method, Env, JValue, NativeMethod};
use rsheap::{AllocationOptions, Broker, Usage};

use crate::buffer::NativeBuffer;
use crate::classes;
use crate::errors::{Failure, Result, ThrowRsheapException};
use crate::handle;

/// The native methods of `dev.rsheap.HeapBroker`.
pub const METHODS: &[NativeMethod] = &[
    native_method! {
        static fn native_connect() -> jlong,
        error_policy = ThrowRsheapException,
    },
    native_method! {
        static fn native_close(handle: jlong),
        error_policy = ThrowRsheapException,
    },
    native_method! {
        static fn native_allocate(
            owner: dev.rsheap.HeapBroker,
            handle: jlong,
            size: jlong,
            usage: jint,
            cached: jboolean,
            heap: JString,
            debug_name: JString,
        ) -> dev.rsheap.Buffer,
        error_policy = ThrowRsheapException,
    },
    native_method! {
        static fn native_heaps(handle: jlong) -> dev.rsheap.HeapInfo[],
        error_policy = ThrowRsheapException,
    },
    native_method! {
        static fn native_buffers(handle: jlong) -> dev.rsheap.BufferInfo[],
        error_policy = ThrowRsheapException,
    },
];

/// `long nativeConnect()`: connects to rsheapd, waiting up to `rsheap::CONNECT_TIMEOUT` for
/// it to be registered.
fn native_connect<'local>(_env: &mut Env<'local>, _class: JClass<'local>) -> Result<jlong> {
    Ok(handle::into_handle(Broker::connect()?))
}

/// `void nativeClose(long handle)`: drops the connection.
fn native_close<'local>(
    _env: &mut Env<'local>,
    _class: JClass<'local>,
    handle: jlong,
) -> Result<()> {
    // SAFETY: Java passes the handle of the HeapBroker it is closing, under its write lock, and
    // never passes it again.
    drop(unsafe { handle::take::<Broker>(handle) });
    Ok(())
}

/// `Buffer nativeAllocate(HeapBroker owner, long handle, long size, int usage,
/// boolean cached, String heap, String debugName)`: a new `Buffer` owning the allocation.
#[allow(clippy::too_many_arguments)]
fn native_allocate<'local>(
    env: &mut Env<'local>,
    _class: JClass<'local>,
    owner: JObject<'local>,
    handle: jlong,
    size: jlong,
    usage: jint,
    cached: jboolean,
    heap: JString<'local>,
    debug_name: JString<'local>,
) -> Result<JObject<'local>> {
    let size =
        usize::try_from(size).map_err(|_| Failure::Argument(format!("size {size} is negative")))?;
    let options = AllocationOptions {
        usage: Usage(usage),
        cached,
        heap: optional_string(env, &heap)?,
        debug_name: optional_string(env, &debug_name)?,
    };
    // SAFETY: Java passes the handle of an open HeapBroker and holds its read lock, which
    // keeps `nativeClose` from taking it during the call.
    let broker = unsafe { handle::borrow::<Broker>(handle) }?;
    let buffer = broker.allocate(size, &options)?;
    // From here the allocation is freed again unless a Buffer object comes to own it.
    let info = match classes::buffer_info(env, buffer.info()) {
        Ok(info) => info,
        Err(err) => {
            let _ = broker.free(buffer);
            return Err(err);
        }
    };
    let native = handle::into_handle(NativeBuffer::new(buffer));
    let object = env.new_object(
        &classes::get()?.buffer,
        jni_sig!((broker: dev.rsheap.HeapBroker, handle: jlong, info: dev.rsheap.BufferInfo) -> void),
        &[
            JValue::Object(&owner),
            JValue::Long(native),
            JValue::Object(&info),
        ],
    );
    object.map_err(|err| {
        // SAFETY: The handle was made above, and no Java object holds it.
        if let Some(native) = unsafe { handle::take::<NativeBuffer>(native) } {
            let _ = broker.free(native.into_inner());
        }
        err.into()
    })
}

/// `HeapInfo[] nativeHeaps(long handle)`: the broker's heaps with its accounting.
fn native_heaps<'local>(
    env: &mut Env<'local>,
    _class: JClass<'local>,
    handle: jlong,
) -> Result<JObjectArray<'local>> {
    // SAFETY: Java passes the handle of an open HeapBroker and holds its read lock.
    let broker = unsafe { handle::borrow::<Broker>(handle) }?;
    let heaps = broker.heaps()?;
    object_array(env, &classes::get()?.heap_info, &heaps, classes::heap_info)
}

/// `BufferInfo[] nativeBuffers(long handle)`: this client's buffers, oldest first.
fn native_buffers<'local>(
    env: &mut Env<'local>,
    _class: JClass<'local>,
    handle: jlong,
) -> Result<JObjectArray<'local>> {
    // SAFETY: Java passes the handle of an open HeapBroker and holds its read lock.
    let broker = unsafe { handle::borrow::<Broker>(handle) }?;
    let buffers = broker.buffers()?;
    object_array(
        env,
        &classes::get()?.buffer_info,
        &buffers,
        classes::buffer_info,
    )
}

/// A Java array of `class` with `make(item)` for each of `items`. Each element is made in a
/// local frame of its own: a client may hold thousands of buffers, more than the local
/// reference table of one native call allows.
fn object_array<'local, T>(
    env: &mut Env<'local>,
    class: &Global<JClass<'static>>,
    items: &[T],
    make: for<'frame> fn(&mut Env<'frame>, &T) -> Result<JObject<'frame>>,
) -> Result<JObjectArray<'local>> {
    let array = env.new_object_array(length(items.len())?, class, JObject::null())?;
    for (index, item) in items.iter().enumerate() {
        env.with_local_frame(8, |env| -> Result<()> {
            let element = make(env, item)?;
            array.set_element(env, index, &element)?;
            Ok(())
        })?;
    }
    Ok(array)
}

/// `string`, or `None` for a null reference.
fn optional_string(env: &mut Env<'_>, string: &JString<'_>) -> Result<Option<String>> {
    if string.is_null() {
        return Ok(None);
    }
    Ok(Some(string.try_to_string(env)?))
}

/// A Java array length.
fn length(len: usize) -> Result<i32> {
    i32::try_from(len)
        .map_err(|_| Failure::Argument(format!("{len} elements do not fit a Java array")))
}
