//! A client's session: the buffers it owns, and whether it has ended.
//!
//! Each session has its own lock, so calls of different sessions never contend, and the
//! binder object of a session holds it directly: no call looks a session up in a table.
//!
//! Locking: `state` is held only to read or change the buffer table, never across an
//! allocation, a load, a binder call or a wait.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::error::{BrokerError, Result};
use crate::quota::UidLedger;
use crate::sync::lock;
use crate::usage::BufferUsage;

/// Identifies a session for the broker's lifetime.
pub type SessionId = u64;

/// What a client is told of one of its buffers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BufferDesc {
    /// Its id.
    pub id: i64,
    /// Bytes.
    pub size: u64,
    /// The heap it came from.
    pub heap: String,
    /// What it is for.
    pub usage: BufferUsage,
    /// Whether CPU access is cached.
    pub cached: bool,
    /// Its dma-buf name.
    pub name: String,
    /// The requester's debug name, or empty.
    pub debug_name: String,
}

/// One buffer of a session.
#[derive(Debug)]
pub(crate) struct Record {
    pub(crate) desc: BufferDesc,
    /// The heap's index in the broker's heaps.
    pub(crate) heap: usize,
    pub(crate) buffer: Arc<rsheap::Buffer>,
    /// Whether the uid's kernel account counts the buffer (else its ledger does, until the
    /// buffer is freed).
    pub(crate) charged: bool,
}

#[derive(Debug)]
struct State {
    /// Set once, when the session ends; the table is empty from then on.
    closed: bool,
    buffers: BTreeMap<i64, Record>,
}

/// A session.
#[derive(Debug)]
pub struct Session {
    id: SessionId,
    pid: i32,
    ledger: Arc<UidLedger>,
    state: Mutex<State>,
}

impl Session {
    pub(crate) fn new(id: SessionId, pid: i32, ledger: Arc<UidLedger>) -> Self {
        Self {
            id,
            pid,
            ledger,
            state: Mutex::new(State {
                closed: false,
                buffers: BTreeMap::new(),
            }),
        }
    }

    /// Its id.
    pub fn id(&self) -> SessionId {
        self.id
    }

    /// The uid that opened it.
    pub fn uid(&self) -> u32 {
        self.ledger.uid()
    }

    /// The pid that opened it; it goes into its buffers' names.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    pub(crate) fn ledger(&self) -> &Arc<UidLedger> {
        &self.ledger
    }

    /// Fails once the session has ended.
    pub(crate) fn check_open(&self) -> Result<()> {
        if lock(&self.state).closed {
            return Err(BrokerError::closed());
        }
        Ok(())
    }

    /// Adds new buffers, unless the session ended while they were made: then they come back.
    pub(crate) fn insert(&self, records: Vec<Record>) -> std::result::Result<(), Vec<Record>> {
        let mut state = lock(&self.state);
        if state.closed {
            return Err(records);
        }
        state
            .buffers
            .extend(records.into_iter().map(|record| (record.desc.id, record)));
        Ok(())
    }

    /// Takes buffer `id` out.
    pub(crate) fn remove(&self, id: i64) -> Result<Record> {
        let mut state = lock(&self.state);
        if state.closed {
            return Err(BrokerError::closed());
        }
        state
            .buffers
            .remove(&id)
            .ok_or_else(|| BrokerError::not_found(id))
    }

    /// Takes every buffer of `ids` out, or none if one is not found (or named twice).
    pub(crate) fn remove_all(&self, ids: &[i64]) -> Result<Vec<Record>> {
        let mut state = lock(&self.state);
        if state.closed {
            return Err(BrokerError::closed());
        }
        for (index, id) in ids.iter().enumerate() {
            if !state.buffers.contains_key(id) {
                return Err(BrokerError::not_found(*id));
            }
            if ids.get(..index).is_some_and(|before| before.contains(id)) {
                return Err(BrokerError::invalid(format!("buffer {id} is named twice")));
            }
        }
        Ok(ids
            .iter()
            .filter_map(|id| state.buffers.remove(id))
            .collect())
    }

    /// Runs `f` on buffer `id`.
    pub(crate) fn with<T>(&self, id: i64, f: impl FnOnce(&Record) -> T) -> Result<T> {
        let state = lock(&self.state);
        if state.closed {
            return Err(BrokerError::closed());
        }
        state
            .buffers
            .get(&id)
            .map(f)
            .ok_or_else(|| BrokerError::not_found(id))
    }

    /// The descriptions of its buffers, oldest first.
    pub fn list(&self) -> Vec<BufferDesc> {
        lock(&self.state)
            .buffers
            .values()
            .map(|record| record.desc.clone())
            .collect()
    }

    /// Its buffers and their bytes.
    pub(crate) fn totals(&self) -> (usize, u64) {
        let state = lock(&self.state);
        let bytes = state.buffers.values().map(|r| r.desc.size).sum();
        (state.buffers.len(), bytes)
    }

    /// Ends the session and takes its buffers, or `None` if it had ended already.
    pub(crate) fn close(&self) -> Option<Vec<Record>> {
        let mut state = lock(&self.state);
        if state.closed {
            return None;
        }
        state.closed = true;
        Some(std::mem::take(&mut state.buffers).into_values().collect())
    }

    /// Counts one more asynchronous allocation of the session's uid: `BUSY` past its share
    /// of the queue.
    pub(crate) fn start_async_allocation(&self) -> Result<()> {
        self.ledger.start_async_allocation()
    }

    /// Counts one asynchronous allocation less.
    pub(crate) fn end_async_allocation(&self) {
        self.ledger.end_async_allocation();
    }
}
