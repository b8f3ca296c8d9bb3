//! rsheapd's configuration file: heaps per usage, per-uid quotas and limits.
//!
//! The file is TOML (the tree's default is `service/rsheapd.toml`). [`Config::parse`] checks
//! all of it before the broker starts, and every mistake is reported with the key it concerns,
//! so a bad file stops the daemon at boot with a message instead of failing clients later.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::usage::BufferUsage;

/// Where rsheapd reads its configuration unless told otherwise.
pub const DEFAULT_PATH: &str = "/vendor/etc/rsheapd.toml";

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The text is not TOML of the expected shape.
    #[error("{0}")]
    Syntax(#[from] basic_toml::Error),
    /// A value is out of range or inconsistent.
    #[error("{key}: {problem}")]
    Invalid {
        /// The key, dotted (`quota.uid.1000.mib`).
        key: String,
        /// What is wrong with it.
        problem: String,
    },
}

/// How much one uid may hold at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    /// Bytes over all its buffers.
    pub bytes: u64,
    /// Buffers.
    pub buffers: u32,
}

/// The heaps a usage allocates from, in order of preference.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeapChoice {
    /// For cached buffers.
    pub cached: Vec<String>,
    /// For uncached buffers.
    pub uncached: Vec<String>,
}

impl HeapChoice {
    /// The heaps for buffers that are `cached` or not.
    pub fn for_caching(&self, cached: bool) -> &[String] {
        if cached {
            &self.cached
        } else {
            &self.uncached
        }
    }
}

/// Limits on what clients can ask of the broker at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The largest single buffer, in bytes.
    pub max_buffer_bytes: u64,
    /// Threads running file loads.
    pub load_workers: usize,
    /// Loads one client may have queued or running.
    pub loads_per_client: usize,
    /// Synchronous loads that may wait at once (each holds a binder thread).
    pub sync_loads: usize,
    /// Sessions one uid may hold open at once, version 1 client tokens included.
    pub sessions_per_uid: usize,
    /// Threads running large allocations.
    pub allocation_workers: usize,
    /// Allocations queued for those threads at once, synchronous and asynchronous.
    pub queued_allocations: usize,
    /// Synchronous large allocations that may wait at once (each holds a binder thread).
    pub sync_allocations: usize,
}

/// Binder threads rsheapd serves with.
pub const BINDER_THREADS: usize = 16;
/// Binder threads that never wait for a load or a large allocation, so small calls are
/// always answered.
pub const FREE_BINDER_THREADS: usize = 4;
/// Binder threads that may wait for loads and large allocations together.
pub const WAITING_BINDER_THREADS: usize = BINDER_THREADS - FREE_BINDER_THREADS;

/// A checked configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Heaps per usage; every usage has an entry.
    pub heaps: BTreeMap<BufferUsage, HeapChoice>,
    /// The quota of uids without one of their own.
    pub default_quota: Quota,
    /// Quotas by uid.
    pub uid_quotas: BTreeMap<u32, Quota>,
    /// Limits.
    pub limits: Limits,
}

impl Config {
    /// Reads and checks the configuration at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text)
    }

    /// Parses and checks configuration text.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let file: File = basic_toml::from_str(text)?;
        let mut heaps = BTreeMap::new();
        for (name, choice) in file.usage {
            let usage = BufferUsage::from_config_key(&name).ok_or_else(|| {
                invalid(
                    format!("usage.{name}"),
                    format!(
                        "unknown usage; the usages are {}",
                        BufferUsage::ALL.map(BufferUsage::config_key).join(", ")
                    ),
                )
            })?;
            for (list, heaps) in [("cached", &choice.cached), ("uncached", &choice.uncached)] {
                let key = format!("usage.{name}.{list}");
                if heaps.is_empty() {
                    return Err(invalid(key, "lists no heap".into()));
                }
                for heap in heaps {
                    if !is_heap_name(heap) {
                        return Err(invalid(key, format!("{heap:?} is not a heap name")));
                    }
                }
            }
            heaps.insert(
                usage,
                HeapChoice {
                    cached: choice.cached,
                    uncached: choice.uncached,
                },
            );
        }
        if let Some(missing) = BufferUsage::ALL
            .into_iter()
            .find(|u| !heaps.contains_key(u))
        {
            return Err(invalid(
                format!("usage.{}", missing.config_key()),
                "missing: every usage needs its heaps".into(),
            ));
        }

        let default_quota = file.quota.default.check("quota.default")?;
        let mut uid_quotas = BTreeMap::new();
        for (uid, quota) in file.quota.uid {
            let key = format!("quota.uid.{uid}");
            let number: u32 = uid
                .parse()
                .map_err(|_| invalid(key.clone(), "not a numeric uid".into()))?;
            uid_quotas.insert(number, quota.check(&key)?);
        }

        let limits = file.limits;
        let max_buffer_bytes = mib(limits.max_buffer_mib, "limits.max_buffer_mib")?;
        for (key, value, most) in [
            ("limits.load_workers", limits.load_workers, 64),
            ("limits.loads_per_client", limits.loads_per_client, 4096),
            ("limits.sync_loads", limits.sync_loads, 64),
            ("limits.sessions_per_uid", limits.sessions_per_uid, 1024),
            ("limits.allocation_workers", limits.allocation_workers, 16),
            ("limits.queued_allocations", limits.queued_allocations, 4096),
            ("limits.sync_allocations", limits.sync_allocations, 64),
        ] {
            if value == 0 || value > most {
                return Err(invalid(
                    key.into(),
                    format!("{value} is not within 1..={most}"),
                ));
            }
        }
        let waiting = limits.sync_loads.saturating_add(limits.sync_allocations);
        if waiting > WAITING_BINDER_THREADS {
            return Err(invalid(
                "limits.sync_loads".into(),
                format!(
                    "sync_loads + sync_allocations is {waiting}, but only \
                     {WAITING_BINDER_THREADS} of the {BINDER_THREADS} binder threads may wait"
                ),
            ));
        }
        Ok(Self {
            heaps,
            default_quota,
            uid_quotas,
            limits: Limits {
                max_buffer_bytes,
                load_workers: limits.load_workers,
                loads_per_client: limits.loads_per_client,
                sync_loads: limits.sync_loads,
                sessions_per_uid: limits.sessions_per_uid,
                allocation_workers: limits.allocation_workers,
                queued_allocations: limits.queued_allocations,
                sync_allocations: limits.sync_allocations,
            },
        })
    }

    /// The quota of `uid`.
    pub fn quota(&self, uid: u32) -> Quota {
        self.uid_quotas
            .get(&uid)
            .copied()
            .unwrap_or(self.default_quota)
    }

    /// Every heap the configuration names, each once, in order of first mention.
    pub fn heap_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for choice in self.heaps.values() {
            for name in choice.cached.iter().chain(&choice.uncached) {
                if !names.contains(&name.as_str()) {
                    names.push(name);
                }
            }
        }
        names
    }
}

fn invalid(key: String, problem: String) -> ConfigError {
    ConfigError::Invalid { key, problem }
}

/// `value` MiB in bytes, if positive and below 1 TiB.
fn mib(value: u64, key: &str) -> Result<u64, ConfigError> {
    if value == 0 || value > 1 << 20 {
        return Err(invalid(
            key.into(),
            format!("{value} MiB is not within 1..=1048576"),
        ));
    }
    Ok(value << 20)
}

/// A name `/dev/dma_heap` could hold.
fn is_heap_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The file as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    usage: BTreeMap<String, UsageEntry>,
    quota: QuotaSection,
    limits: LimitsSection,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UsageEntry {
    cached: Vec<String>,
    uncached: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QuotaSection {
    default: QuotaEntry,
    #[serde(default)]
    uid: BTreeMap<String, QuotaEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QuotaEntry {
    mib: u64,
    buffers: u32,
}

impl QuotaEntry {
    fn check(&self, key: &str) -> Result<Quota, ConfigError> {
        if self.buffers == 0 {
            return Err(invalid(format!("{key}.buffers"), "must be positive".into()));
        }
        Ok(Quota {
            bytes: mib(self.mib, &format!("{key}.mib"))?,
            buffers: self.buffers,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsSection {
    max_buffer_mib: u64,
    load_workers: usize,
    loads_per_client: usize,
    sync_loads: usize,
    #[serde(default = "default_sessions_per_uid")]
    sessions_per_uid: usize,
    #[serde(default = "default_allocation_workers")]
    allocation_workers: usize,
    #[serde(default = "default_queued_allocations")]
    queued_allocations: usize,
    #[serde(default = "default_sync_allocations")]
    sync_allocations: usize,
}

// Defaults for the limits a version 1 configuration file lacks.
fn default_sessions_per_uid() -> usize {
    32
}
fn default_allocation_workers() -> usize {
    2
}
fn default_queued_allocations() -> usize {
    64
}
fn default_sync_allocations() -> usize {
    4
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED: &str = include_str!("../rsheapd.toml");

    #[test]
    fn the_shipped_file_is_valid() {
        let config = Config::parse(SHIPPED).expect("rsheapd.toml parses");
        assert_eq!(config.default_quota.bytes, 4096 << 20);
        assert_eq!(
            config.heaps[&BufferUsage::CameraFrame].for_caching(false),
            ["rsheap-uncached", "system-uncached"]
        );
        assert_eq!(
            config.heap_names(),
            ["rsheap", "system", "rsheap-uncached", "system-uncached"]
        );
        assert_eq!(config.quota(1234), config.default_quota);
    }

    #[test]
    fn uid_quotas_override_the_default() {
        let text = format!("{SHIPPED}\n[quota.uid.1047]\nmib = 16\nbuffers = 2\n");
        let config = Config::parse(&text).expect("parses");
        assert_eq!(
            config.quota(1047),
            Quota {
                bytes: 16 << 20,
                buffers: 2
            }
        );
    }

    /// Each mistake is refused with the key it concerns.
    #[test]
    fn a_version_1_file_gets_the_default_session_and_allocation_limits() {
        let old: String = SHIPPED
            .lines()
            .filter(|line| {
                ![
                    "sessions_per_uid",
                    "allocation_workers",
                    "queued_allocations",
                    "sync_allocations",
                ]
                .iter()
                .any(|key| line.starts_with(key))
            })
            .map(|line| format!("{line}\n"))
            .collect();
        let limits = Config::parse(&old).expect("a version 1 file").limits;
        assert_eq!(limits, Config::parse(SHIPPED).expect("shipped").limits);
    }

    #[test]
    fn mistakes_name_their_key() {
        let cases = [
            (SHIPPED.replace("[usage.scratch]", "[usage.bogus]"), "usage.bogus"),
            (
                SHIPPED.replace("[usage.scratch]\ncached = [\"rsheap\", \"system\"]", "[usage.scratch]\ncached = []"),
                "usage.scratch.cached",
            ),
            (SHIPPED.replace("\"system-uncached\"]\n\n# What", "\"../x\"]\n\n# What"), "usage.scratch.uncached"),
            (SHIPPED.replace("mib = 4096, buffers = 4096", "mib = 0, buffers = 1"), "quota.default.mib"),
            (SHIPPED.replace("mib = 4096, buffers = 4096", "mib = 1, buffers = 0"), "quota.default.buffers"),
            (format!("{SHIPPED}\n[quota.uid.camera]\nmib = 1\nbuffers = 1\n"), "quota.uid.camera"),
            (SHIPPED.replace("load_workers = 2", "load_workers = 0"), "limits.load_workers"),
            (SHIPPED.replace("sync_loads = 8", "sync_loads = 1000"), "limits.sync_loads"),
            // More waiting loads and allocations than binder threads can spare.
            (SHIPPED.replace("sync_loads = 8", "sync_loads = 9"), "limits.sync_loads"),
            (SHIPPED.replace("sync_allocations = 4", "sync_allocations = 13"), "limits.sync_loads"),
            (SHIPPED.replace("sessions_per_uid = 32", "sessions_per_uid = 0"), "limits.sessions_per_uid"),
            (SHIPPED.replace("allocation_workers = 2", "allocation_workers = 17"), "limits.allocation_workers"),
            (SHIPPED.replace("max_buffer_mib = 4096", "max_buffer_mib = 0"), "limits.max_buffer_mib"),
            (
                SHIPPED.replace(
                    "[usage.scratch]\ncached = [\"rsheap\", \"system\"]\nuncached = [\"rsheap-uncached\", \"system-uncached\"]\n",
                    "",
                ),
                "usage.scratch",
            ),
        ];
        for (text, key) in cases {
            match Config::parse(&text) {
                Err(ConfigError::Invalid { key: got, .. }) => assert_eq!(got, key),
                other => panic!("{key}: expected a refusal, got {other:?}"),
            }
        }
    }

    #[test]
    fn unknown_keys_and_bad_syntax_are_refused() {
        let extra = SHIPPED.replace("[limits]", "[limits]\nturbo = true");
        let err = Config::parse(&extra).expect_err("unknown key");
        assert!(err.to_string().contains("turbo"), "{err}");
        assert!(matches!(
            Config::parse("[usage"),
            Err(ConfigError::Syntax(_))
        ));
    }
}
