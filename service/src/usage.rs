//! What a buffer is for, as the broker's logic sees it.
//!
//! The AIDL `Usage` enum crosses binder; this is its counterpart inside the broker, with the
//! key the configuration file uses and the short tag that starts a buffer's dma-buf name.

/// What a buffer is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BufferUsage {
    /// Camera frames.
    CameraFrame,
    /// Model weights.
    ModelWeights,
    /// A compiled model.
    ModelExecutable,
    /// Anything else.
    Scratch,
}

impl BufferUsage {
    /// Every usage.
    pub const ALL: [Self; 4] = [
        Self::CameraFrame,
        Self::ModelWeights,
        Self::ModelExecutable,
        Self::Scratch,
    ];

    /// The key of the usage's table in the configuration file.
    pub fn config_key(self) -> &'static str {
        match self {
            Self::CameraFrame => "camera_frame",
            Self::ModelWeights => "model_weights",
            Self::ModelExecutable => "model_executable",
            Self::Scratch => "scratch",
        }
    }

    /// The usage whose configuration key is `key`.
    pub fn from_config_key(key: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|usage| usage.config_key() == key)
    }

    /// The first part of the dma-buf name of the usage's buffers: short, so that
    /// `<tag>-<pid>-<id>` fits the kernel's 31 bytes for any pid and a 15-digit id.
    pub fn name_tag(self) -> &'static str {
        match self {
            Self::CameraFrame => "camera",
            Self::ModelWeights => "weights",
            Self::ModelExecutable => "exec",
            Self::Scratch => "scratch",
        }
    }
}
