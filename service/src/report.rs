//! The broker's dump: heaps, sessions, uids and buffers, as `dumpsys` shows them.

use std::fmt::Write as _;

use crate::broker::Broker;
use crate::quota::mib;

impl Broker {
    /// A readable account of everything the broker holds, session by session.
    pub fn dump(&self) -> String {
        let mut out = String::new();
        let (queued, running) = self.loader.activity();
        let (allocations_queued, allocating) = self.workers.activity();
        let _ = writeln!(
            out,
            "rsheapd: loads queued {queued}, running {running}; allocations queued \
             {allocations_queued}, running {allocating}\n"
        );
        let _ = writeln!(out, "heaps:");
        let _ = writeln!(
            out,
            "  {:<20} {:>7} {:>8} {:>12} {:>12} {:>9}",
            "heap", "cached", "buffers", "MiB", "allocations", "failures"
        );
        for heap in self.heaps.stats() {
            let _ = writeln!(
                out,
                "  {:<20} {:>7} {:>8} {:>12.1} {:>12} {:>9}",
                heap.name,
                heap.cached,
                heap.buffers,
                heap.bytes as f64 / (1 << 20) as f64,
                heap.allocations,
                heap.failures
            );
        }
        let sessions = self.open_sessions();
        let _ = writeln!(out, "\nsessions:");
        let _ = writeln!(
            out,
            "  {:>7} {:>6} {:>8} {:>8} {:>12}",
            "session", "uid", "pid", "buffers", "MiB"
        );
        for session in &sessions {
            let (buffers, bytes) = session.totals();
            let _ = writeln!(
                out,
                "  {:>7} {:>6} {:>8} {:>8} {:>12.1}",
                session.id(),
                session.uid(),
                session.pid(),
                buffers,
                bytes as f64 / (1 << 20) as f64,
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
        for (uid, ledger) in self.ledgers() {
            let held = ledger.held();
            let quota = ledger.quota();
            let _ = writeln!(
                out,
                "  {uid:>6} {:>8} {:>8} {:>12.1}   {} in {} buffers{}",
                ledger.sessions(),
                held.buffers,
                held.bytes as f64 / (1 << 20) as f64,
                mib(quota.bytes),
                quota.buffers,
                if ledger.has_account() {
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
        for session in &sessions {
            for desc in session.list() {
                let _ = writeln!(
                    out,
                    "  {:>7} {:>8} {:>12} {:<18} {:<17} {:<31} {}",
                    session.id(),
                    desc.id,
                    desc.size,
                    desc.heap,
                    desc.usage.config_key(),
                    desc.name,
                    desc.debug_name
                );
            }
        }
        out
    }
}
