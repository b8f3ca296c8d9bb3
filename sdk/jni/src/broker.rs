//! `dev.rsheap.HeapBroker`'s native methods: a connection to rsheapd, an `rsheap::Broker`
//! held as the HeapBroker's handle.
//!
//! The SDK's `Broker` is a session with rsheapd and reconnects by itself after rsheapd
//! restarts, so one HeapBroker object serves across restarts. Closing it drops the `Broker`,
//! which ends its session: the broker frees whatever the session still held.
//! `HeapBroker.close()` frees its open buffers through the broker first, so that each closes
//! on the Java side too.

use std::os::fd::BorrowedFd;

use jni::objects::{JClass, JLongArray, JObject, JObjectArray, JString};
use jni::refs::Global;
use jni::sys::{jboolean, jint, jlong};
use jni::{jni_sig, native_method, Env, JValue, NativeMethod};
use rsheap::{AllocationOptions, Broker, BrokerBuffer, BufferSpec, FileLoad, Usage};

use crate::classes;
use crate::errors::{Failure, Result, ThrowRsheapException};
use crate::fd;
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
        static fn native_allocate_batch(
            owner: dev.rsheap.HeapBroker,
            handle: jlong,
            numbers: jlong[],
            heaps: java.lang.String[],
            debug_names: java.lang.String[],
            files: java.io.FileDescriptor[],
        ) -> dev.rsheap.Buffer[],
        error_policy = ThrowRsheapException,
    },
    native_method! {
        static fn native_free_batch(handle: jlong, buffers: jlong[]),
        error_policy = ThrowRsheapException,
    },
    native_method! {
        static fn native_limits(handle: jlong) -> dev.rsheap.SessionLimits,
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
    new_buffer(env, &owner, broker, buffer)
}

/// A new `Buffer(owner, handle, info)` owning `buffer`, which is freed again if the object
/// cannot be made. Makes five local references.
fn new_buffer<'local>(
    env: &mut Env<'local>,
    owner: &JObject<'_>,
    broker: &Broker,
    buffer: BrokerBuffer,
) -> Result<JObject<'local>> {
    let info = match classes::buffer_info(env, buffer.info()) {
        Ok(info) => info,
        Err(err) => {
            let _ = broker.free(buffer);
            return Err(err);
        }
    };
    let native = handle::into_handle(buffer);
    let object = env.new_object(
        &classes::get()?.buffer,
        jni_sig!((broker: dev.rsheap.HeapBroker, handle: jlong, info: dev.rsheap.BufferInfo) -> void),
        &[
            JValue::Object(owner),
            JValue::Long(native),
            JValue::Object(&info),
        ],
    );
    object.map_err(|err| {
        // SAFETY: The handle was made above, and no Java object holds it.
        if let Some(buffer) = unsafe { handle::take::<BrokerBuffer>(native) } {
            let _ = broker.free(*buffer);
        }
        err.into()
    })
}

/// The numbers of one request in `nativeAllocateBatch`'s `numbers`: size, usage, cached (0
/// or 1), file offset, length, buffer offset.
const REQUEST_NUMBERS: usize = 6;

/// `Buffer[] nativeAllocateBatch(HeapBroker owner, long handle, long[] numbers,
/// String[] heaps, String[] debugNames, FileDescriptor[] files)`: allocates a batch, each
/// request [`REQUEST_NUMBERS`] numbers, a heap and a debug name (or null), and a file to load
/// its range of (or null).
#[allow(clippy::too_many_arguments)]
fn native_allocate_batch<'local>(
    env: &mut Env<'local>,
    _class: JClass<'local>,
    owner: JObject<'local>,
    handle: jlong,
    numbers: JLongArray<'local>,
    heaps: JObjectArray<'local, JString<'local>>,
    debug_names: JObjectArray<'local, JString<'local>>,
    files: JObjectArray<'local>,
) -> Result<JObjectArray<'local>> {
    let count = files.len(env)?;
    let mut values = vec![0; count.saturating_mul(REQUEST_NUMBERS)];
    numbers.get_region(env, 0, &mut values)?;
    let mut fds = Vec::with_capacity(count);
    let mut names = Vec::with_capacity(count);
    for index in 0..count {
        let file = files.get_element(env, index)?;
        fds.push(if file.is_null() {
            None
        } else {
            Some(fd::raw_fd(env, &file)?)
        });
        env.delete_local_ref(file);
        let heap = heaps.get_element(env, index)?;
        let debug_name = debug_names.get_element(env, index)?;
        names.push((
            optional_string(env, &heap)?,
            optional_string(env, &debug_name)?,
        ));
        env.delete_local_ref(heap);
        env.delete_local_ref(debug_name);
    }
    let mut specs = Vec::with_capacity(count);
    for ((request, fd), (heap, debug_name)) in
        values.chunks_exact(REQUEST_NUMBERS).zip(&fds).zip(names)
    {
        let &[size, usage, cached, file_offset, length, buffer_offset] = request else {
            return Err(Failure::Argument("a request without its numbers".into()));
        };
        let size = usize::try_from(size)
            .map_err(|_| Failure::Argument(format!("size {size} is negative")))?;
        let usage =
            i32::try_from(usage).map_err(|_| Failure::Argument(format!("no usage {usage}")))?;
        let options = AllocationOptions {
            usage: Usage(usage),
            cached: cached != 0,
            heap,
            debug_name,
        };
        let load = match fd {
            Some(raw) => Some(FileLoad {
                // SAFETY: The caller keeps each FileDescriptor open for the duration of the
                // call, as `HeapBroker.allocateBatch`'s Javadoc requires; the SDK duplicates
                // it before sending.
                file: unsafe { BorrowedFd::borrow_raw(*raw) },
                span: crate::buffer::span(file_offset, buffer_offset, length)?,
            }),
            None => None,
        };
        specs.push(BufferSpec {
            size,
            options,
            load,
        });
    }
    // SAFETY: Java passes the handle of an open HeapBroker and holds its read lock.
    let broker = unsafe { handle::borrow::<Broker>(handle) }?;
    let made = broker.allocate_batch(&specs)?;
    let array = match env.new_object_array(
        length(made.len())?,
        &classes::get()?.buffer,
        JObject::null(),
    ) {
        Ok(array) => array,
        Err(err) => {
            let _ = broker.free_batch(made);
            return Err(err.into());
        }
    };
    let mut made = made.into_iter().enumerate();
    while let Some((index, buffer)) = made.next() {
        let built = env.with_local_frame(8, |env| -> Result<()> {
            let object = new_buffer(env, &owner, broker, buffer)?;
            array.set_element(env, index, &object)?;
            Ok(())
        });
        if let Err(err) = built {
            // The Buffers made so far belong to Java and are reclaimed with the array; the
            // rest are freed here.
            for (_, rest) in made {
                let _ = broker.free(rest);
            }
            return Err(err);
        }
    }
    Ok(array)
}

/// `void nativeFreeBatch(long handle, long[] buffers)`: frees the buffers, whose handles Java
/// hands over (each once), in one call; if the broker refuses the batch (one of them is of a
/// broker that restarted), each is freed alone, quietly, as `Buffer.close()` frees. With
/// `handle` 0 (the HeapBroker is closed) they are only closed here.
fn native_free_batch<'local>(
    env: &mut Env<'local>,
    _class: JClass<'local>,
    handle: jlong,
    buffers: JLongArray<'local>,
) -> Result<()> {
    let mut handles = vec![0; buffers.len(env)?];
    buffers.get_region(env, 0, &mut handles)?;
    let taken: Vec<BrokerBuffer> = handles
        .into_iter()
        // SAFETY: Java hands over each handle of a Buffer it closed, once, and never passes it
        // again.
        .filter_map(|buffer| unsafe { handle::take::<BrokerBuffer>(buffer) })
        .map(|buffer| *buffer)
        .collect();
    if handle == 0 {
        return Ok(());
    }
    // SAFETY: Java passes the handle of an open HeapBroker and holds its read lock.
    let broker = unsafe { handle::borrow::<Broker>(handle) }?;
    if let Err(refused) = broker.free_batch(taken) {
        for buffer in refused.buffers {
            let _ = broker.free(buffer);
        }
    }
    Ok(())
}

/// `SessionLimits nativeLimits(long handle)`: what the session may allocate.
fn native_limits<'local>(
    env: &mut Env<'local>,
    _class: JClass<'local>,
    handle: jlong,
) -> Result<JObject<'local>> {
    // SAFETY: Java passes the handle of an open HeapBroker and holds its read lock.
    let broker = unsafe { handle::borrow::<Broker>(handle) }?;
    let limits = broker.limits()?;
    classes::session_limits(env, &limits)
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
