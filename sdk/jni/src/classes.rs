//! The Java classes the native methods build objects of, looked up once at load time, and the
//! constructors of the value classes `HeapInfo` and `BufferInfo`.
//!
//! They are looked up in `JNI_OnLoad`, where `FindClass` searches the class loader of the
//! class that loaded the library; on Android, threads that did not start in Java cannot find
//! application classes, so nothing looks them up later.

use std::sync::OnceLock;

use jni::objects::{JClass, JObject};
use jni::refs::Global;
use jni::{jni_sig, jni_str, Env, JValue};
use rsheap::{BufferInfo, HeapInfo, SessionLimits};

use crate::errors::Result;

/// Global references to the classes, kept for the life of the library.
pub struct Classes {
    /// `dev.rsheap.Buffer`.
    pub buffer: Global<JClass<'static>>,
    /// `dev.rsheap.BufferInfo`.
    pub buffer_info: Global<JClass<'static>>,
    /// `dev.rsheap.HeapInfo`.
    pub heap_info: Global<JClass<'static>>,
    /// `dev.rsheap.RsheapException`.
    pub rsheap_exception: Global<JClass<'static>>,
    /// `dev.rsheap.SessionLimits`.
    pub session_limits: Global<JClass<'static>>,
    /// `java.io.FileDescriptor`.
    pub file_descriptor: Global<JClass<'static>>,
}

static CLASSES: OnceLock<Classes> = OnceLock::new();

/// Looks the classes up, once; later calls (a second class loader loading the library) keep
/// the first ones.
pub fn init(env: &mut Env<'_>) -> jni::errors::Result<()> {
    if CLASSES.get().is_some() {
        return Ok(());
    }
    let mut global = |name| -> jni::errors::Result<Global<JClass<'static>>> {
        let class = env.find_class(name)?;
        env.new_global_ref(class)
    };
    let classes = Classes {
        buffer: global(jni_str!("dev/rsheap/Buffer"))?,
        buffer_info: global(jni_str!("dev/rsheap/BufferInfo"))?,
        heap_info: global(jni_str!("dev/rsheap/HeapInfo"))?,
        rsheap_exception: global(jni_str!("dev/rsheap/RsheapException"))?,
        session_limits: global(jni_str!("dev/rsheap/SessionLimits"))?,
        file_descriptor: global(jni_str!("java/io/FileDescriptor"))?,
    };
    crate::fd::init(env, &classes.file_descriptor)?;
    let _ = CLASSES.set(classes);
    Ok(())
}

/// The classes [`init`] looked up.
pub fn get() -> jni::errors::Result<&'static Classes> {
    CLASSES.get().ok_or(jni::errors::Error::NullPtr(
        "rsheap_jni's JNI_OnLoad did not run",
    ))
}

/// `new BufferInfo(id, size, heap, usage, cached, name, debugName)`. Makes four local
/// references: callers in loops run it in a local frame of its own.
pub fn buffer_info<'local>(env: &mut Env<'local>, info: &BufferInfo) -> Result<JObject<'local>> {
    let heap = env.new_string(&info.heap)?;
    let name = env.new_string(&info.name)?;
    let debug_name = env.new_string(&info.debugName)?;
    let object = env.new_object(
        &get()?.buffer_info,
        jni_sig!(
            (id: jlong, size: jlong, heap: java.lang.String, usage: jint, cached: jboolean,
             name: java.lang.String, debug_name: java.lang.String) -> void
        ),
        &[
            JValue::Long(info.id),
            JValue::Long(info.size),
            JValue::Object(&heap),
            JValue::Int(info.usage.0),
            JValue::Bool(info.cached),
            JValue::Object(&name),
            JValue::Object(&debug_name),
        ],
    )?;
    Ok(object)
}

/// `new HeapInfo(name, cached, usages, buffers, bytes, allocations, failures)`. Makes three
/// local references: callers in loops run it in a local frame of its own.
pub fn heap_info<'local>(env: &mut Env<'local>, info: &HeapInfo) -> Result<JObject<'local>> {
    let name = env.new_string(&info.name)?;
    let values: Vec<i32> = info.usages.iter().map(|usage| usage.0).collect();
    let usages = env.new_int_array(values.len())?;
    usages.set_region(env, 0, &values)?;
    let object = env.new_object(
        &get()?.heap_info,
        jni_sig!(
            (name: java.lang.String, cached: jboolean, usages: jint[], buffers: jint,
             bytes: jlong, allocations: jlong, failures: jlong) -> void
        ),
        &[
            JValue::Object(&name),
            JValue::Bool(info.cached),
            JValue::Object(&usages),
            JValue::Int(info.buffers),
            JValue::Long(info.bytes),
            JValue::Long(info.allocations),
            JValue::Long(info.failures),
        ],
    )?;
    Ok(object)
}

/// `new SessionLimits(maxBufferSize, maxBatch, pageSize, quotaBytes, quotaBuffers, usedBytes,
/// usedBuffers, sessions, maxSessions, directLoads, readOnlySharing)`.
pub fn session_limits<'local>(
    env: &mut Env<'local>,
    limits: &SessionLimits,
) -> Result<JObject<'local>> {
    let long = |value: u64| JValue::Long(i64::try_from(value).unwrap_or(i64::MAX));
    let int = |value: u64| JValue::Int(i32::try_from(value).unwrap_or(i32::MAX));
    let object = env.new_object(
        &get()?.session_limits,
        jni_sig!(
            (max_buffer_size: jlong, max_batch: jint, page_size: jint, quota_bytes: jlong,
             quota_buffers: jint, used_bytes: jlong, used_buffers: jint, sessions: jint,
             max_sessions: jint, direct_loads: jboolean, read_only_sharing: jboolean) -> void
        ),
        &[
            long(limits.max_buffer_size),
            int(limits.max_batch as u64),
            int(limits.page_size as u64),
            long(limits.quota_bytes),
            int(limits.quota_buffers),
            long(limits.used_bytes),
            int(limits.used_buffers),
            int(limits.sessions),
            int(limits.max_sessions),
            JValue::Bool(limits.direct_loads),
            JValue::Bool(limits.read_only_sharing),
        ],
    )?;
    Ok(object)
}
