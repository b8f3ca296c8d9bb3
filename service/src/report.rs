//! The broker's dump: heaps, sessions, uids and buffers, as `dumpsys` shows them, or as
//! JSON for scripts (`dumpsys vendor.rsheap.IHeapBroker/default --json`).
//!
//! Both forms render one [`Report`], taken once, so they always say the same things.

use std::fmt::Write as _;

use serde::Serialize;

use crate::broker::Broker;
use crate::quota::mib;

/// Everything the broker holds at one moment.
#[derive(Serialize)]
struct Report {
    /// Loads waiting for a loader thread.
    loads_queued: usize,
    /// Loads running.
    loads_running: usize,
    /// Large allocations waiting for a worker.
    allocations_queued: usize,
    /// Large allocations running.
    allocations_running: usize,
    heaps: Vec<HeapRow>,
    sessions: Vec<SessionRow>,
    uids: Vec<UidRow>,
    buffers: Vec<BufferRow>,
}

/// One heap and what the broker did with it.
#[derive(Serialize)]
struct HeapRow {
    name: String,
    cached: bool,
    buffers: u64,
    bytes: u64,
    allocations: u64,
    failures: u64,
}

/// One open session.
#[derive(Serialize)]
struct SessionRow {
    session: u64,
    uid: u32,
    pid: i32,
    buffers: usize,
    bytes: u64,
}

/// One uid's use against its quota: live buffers, freed or not, until the kernel releases
/// them.
#[derive(Serialize)]
struct UidRow {
    uid: u32,
    sessions: usize,
    buffers: u32,
    bytes: u64,
    quota_bytes: u64,
    quota_buffers: u32,
    /// Whether rsheap.ko accounts for its buffers; without it they count until freed.
    kernel_account: bool,
}

/// One buffer a session holds.
#[derive(Serialize)]
struct BufferRow {
    session: u64,
    id: i64,
    bytes: u64,
    heap: String,
    usage: &'static str,
    cached: bool,
    name: String,
    debug_name: String,
}

impl Broker {
    /// A readable account of everything the broker holds, session by session.
    pub fn dump(&self) -> String {
        self.report().to_text()
    }

    /// The same account as [`Broker::dump`], as one JSON object.
    pub fn dump_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(&self.report())
            .unwrap_or_else(|err| serde_json::json!({ "error": err.to_string() }).to_string());
        text.push('\n');
        text
    }

    fn report(&self) -> Report {
        let (loads_queued, loads_running) = self.loader.activity();
        let (allocations_queued, allocations_running) = self.workers.activity();
        let heaps = self
            .heaps
            .stats()
            .into_iter()
            .map(|heap| HeapRow {
                name: heap.name,
                cached: heap.cached,
                buffers: heap.buffers,
                bytes: heap.bytes,
                allocations: heap.allocations,
                failures: heap.failures,
            })
            .collect();
        let open = self.open_sessions();
        let mut sessions = Vec::with_capacity(open.len());
        let mut buffers = Vec::new();
        for session in &open {
            let (count, bytes) = session.totals();
            sessions.push(SessionRow {
                session: session.id(),
                uid: session.uid(),
                pid: session.pid(),
                buffers: count,
                bytes,
            });
            buffers.extend(session.list().into_iter().map(|desc| BufferRow {
                session: session.id(),
                id: desc.id,
                bytes: desc.size,
                heap: desc.heap,
                usage: desc.usage.config_key(),
                cached: desc.cached,
                name: desc.name,
                debug_name: desc.debug_name,
            }));
        }
        let uids = self
            .ledgers()
            .into_iter()
            .map(|(uid, ledger)| {
                let (held, quota) = (ledger.held(), ledger.quota());
                UidRow {
                    uid,
                    sessions: ledger.sessions(),
                    buffers: held.buffers,
                    bytes: held.bytes,
                    quota_bytes: quota.bytes,
                    quota_buffers: quota.buffers,
                    kernel_account: ledger.has_account(),
                }
            })
            .collect();
        Report {
            loads_queued,
            loads_running,
            allocations_queued,
            allocations_running,
            heaps,
            sessions,
            uids,
            buffers,
        }
    }
}

impl Report {
    fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "rsheapd: loads queued {}, running {}; allocations queued {}, running {}\n",
            self.loads_queued,
            self.loads_running,
            self.allocations_queued,
            self.allocations_running
        );
        let _ = writeln!(out, "heaps:");
        let _ = writeln!(
            out,
            "  {:<20} {:>7} {:>8} {:>12} {:>12} {:>9}",
            "heap", "cached", "buffers", "MiB", "allocations", "failures"
        );
        for heap in &self.heaps {
            let _ = writeln!(
                out,
                "  {:<20} {:>7} {:>8} {:>12.1} {:>12} {:>9}",
                heap.name,
                heap.cached,
                heap.buffers,
                in_mib(heap.bytes),
                heap.allocations,
                heap.failures
            );
        }
        let _ = writeln!(out, "\nsessions:");
        let _ = writeln!(
            out,
            "  {:>7} {:>6} {:>8} {:>8} {:>12}",
            "session", "uid", "pid", "buffers", "MiB"
        );
        for session in &self.sessions {
            let _ = writeln!(
                out,
                "  {:>7} {:>6} {:>8} {:>8} {:>12.1}",
                session.session,
                session.uid,
                session.pid,
                session.buffers,
                in_mib(session.bytes),
            );
        }
        let _ = writeln!(
            out,
            "\nuids (quota use: live buffers, freed or not, until released):"
        );
        let _ = writeln!(
            out,
            "  {:>6} {:>8} {:>8} {:>12}   quota",
            "uid", "sessions", "buffers", "MiB"
        );
        for uid in &self.uids {
            let _ = writeln!(
                out,
                "  {:>6} {:>8} {:>8} {:>12.1}   {} in {} buffers{}",
                uid.uid,
                uid.sessions,
                uid.buffers,
                in_mib(uid.bytes),
                mib(uid.quota_bytes),
                uid.quota_buffers,
                if uid.kernel_account {
                    ""
                } else {
                    " (no kernel account: counted until freed)"
                }
            );
        }
        let _ = writeln!(out, "\nbuffers:");
        let _ = writeln!(
            out,
            "  {:>7} {:>8} {:>12} {:<18} {:<17} {:<31} debug name",
            "session", "id", "bytes", "heap", "usage", "name"
        );
        for buffer in &self.buffers {
            let _ = writeln!(
                out,
                "  {:>7} {:>8} {:>12} {:<18} {:<17} {:<31} {}",
                buffer.session,
                buffer.id,
                buffer.bytes,
                buffer.heap,
                buffer.usage,
                buffer.name,
                buffer.debug_name
            );
        }
        out
    }
}

fn in_mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}
