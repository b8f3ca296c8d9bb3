//! `java.io.FileDescriptor` objects to and from file descriptor numbers.
//!
//! Java has no public way to read or set the number a `FileDescriptor` holds, so this reads
//! and writes its field, as the platform's own JNI helpers do (libnativehelper's
//! `jniGetFDFromFileDescriptor`): `descriptor` on Android, `fd` on OpenJDK; [`init`] finds
//! which one this runtime has.

use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd, RawFd};
use std::sync::OnceLock;

use jni::objects::{JClass, JObject};
use jni::strings::JNIStr;
use jni::{jni_sig, jni_str, Env, JValue};

use crate::classes;
use crate::errors::{Failure, Result};

/// The name of `FileDescriptor`'s `int` field.
static FIELD: OnceLock<&'static JNIStr> = OnceLock::new();

/// Finds the field of `class`, `java.io.FileDescriptor`, that holds the number.
pub fn init(env: &mut Env<'_>, class: &JClass<'_>) -> jni::errors::Result<()> {
    let android = jni_str!("descriptor");
    let name = match env.get_field_id(class, android, jni_sig!("I")) {
        Ok(_) => android,
        Err(jni::errors::Error::FieldNotFound { .. }) => {
            let openjdk = jni_str!("fd");
            env.get_field_id(class, openjdk, jni_sig!("I"))?;
            openjdk
        }
        Err(err) => return Err(err),
    };
    let _ = FIELD.set(name);
    Ok(())
}

fn field() -> Result<&'static JNIStr> {
    FIELD
        .get()
        .copied()
        .ok_or_else(|| Failure::Argument("rsheap_jni's JNI_OnLoad did not run".into()))
}

/// The number `descriptor` holds; refuses a null or closed one.
pub fn raw_fd(env: &mut Env<'_>, descriptor: &JObject<'_>) -> Result<RawFd> {
    if descriptor.is_null() {
        return Err(Failure::Argument("the FileDescriptor is null".into()));
    }
    let fd = env.get_field(descriptor, field()?, jni_sig!("I"))?.i()?;
    if fd < 0 {
        return Err(Failure::Argument("the FileDescriptor is not open".into()));
    }
    Ok(fd)
}

/// A new `FileDescriptor` that owns `fd`; `fd` is closed if it cannot be made.
pub fn new_file_descriptor<'local>(env: &mut Env<'local>, fd: OwnedFd) -> Result<JObject<'local>> {
    let object = env.new_object(&classes::get()?.file_descriptor, jni_sig!(() -> void), &[])?;
    env.set_field(
        &object,
        field()?,
        jni_sig!("I"),
        JValue::Int(fd.as_raw_fd()),
    )?;
    // The FileDescriptor owns the number now.
    let _ = fd.into_raw_fd();
    Ok(object)
}
