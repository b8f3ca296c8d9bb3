//! `IHeapBroker` over binder: opens sessions, and serves version 1's token calls.
//!
//! This module and [`crate::session_service`] are the only ones that know binder. They
//! identify callers (the kernel-vouched calling uid and pid), link to each client token's
//! death to end its session, convert AIDL parcelables to the broker's types (in
//! [`crate::convert`]), and turn [`BrokerError`]s into service-specific errors with their
//! messages.
//!
//! A version 1 client names itself by a token binder on every call; each token of a uid is
//! one implicit session. They are found in the caller's uid's short list, bounded by
//! `limits.sessions_per_uid`, so no call looks through another uid's clients.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use rsheap_binder::{
    calling_pid, calling_uid, is_remote, link_to_death, DeathLink, Dump, Result as BinderResult,
    SpIBinder, Strong,
};
use vendor_rsheap::aidl::vendor::rsheap::{
    AllocationRequest::AllocationRequest, Buffer::Buffer, BufferInfo::BufferInfo,
    FileSegment::FileSegment, HeapInfo::HeapInfo, IHeapBroker::IHeapBroker,
    IHeapSession::IHeapSession, ILoadCallback::ILoadCallback,
};

use crate::broker::Broker;
use crate::convert::{self, clamp, status, status_v1, CallbackObserver};
use crate::error::{BrokerError, Result};
use crate::session::Session;
use crate::session_service::SessionService;
use crate::sync::lock;

/// Uids allowed to read the dump: root, system and shell, as `dumpsys` callers are.
const DUMP_UIDS: [u32; 3] = [0, 1000, 2000];

/// A version 1 client: its token, its session, and the link that ends the session when the
/// token dies.
struct TokenSession {
    token: SpIBinder,
    session: Arc<Session>,
    /// Dropping it cancels the death notice.
    _death: DeathLink,
}

/// Version 1 clients, by uid.
type TokenSessions = Mutex<HashMap<u32, Vec<TokenSession>>>;

/// The `IHeapBroker` binder object.
pub struct HeapBrokerService {
    broker: Arc<Broker>,
    tokens: Arc<TokenSessions>,
}

impl HeapBrokerService {
    /// Serves `broker`.
    pub fn new(broker: Arc<Broker>) -> Self {
        Self {
            broker,
            tokens: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The binder to register.
    pub fn into_binder(self) -> Strong<dyn IHeapBroker> {
        rsheap_binder::new_broker_binder(self)
    }

    /// The session of the version 1 client the caller is with `token`, opened and linked to
    /// the token's death on first sight.
    fn token_session(&self, token: &SpIBinder) -> Result<Arc<Session>> {
        let uid = calling_uid();
        if let Some(session) = self.find(uid, token) {
            return Ok(session);
        }
        if !is_remote(token) {
            return Err(BrokerError::invalid(
                "the client token must be a binder of the caller",
            ));
        }
        let session = self.broker.open_session(uid, calling_pid())?;
        let (broker, tokens, weak) = (
            Arc::downgrade(&self.broker),
            Arc::downgrade(&self.tokens),
            Arc::downgrade(&session),
        );
        let death = link_to_death(token, move || token_died(uid, &weak, &broker, &tokens));
        let death = match death {
            Ok(death) => death,
            Err(err) => {
                self.broker.close_session(&session);
                return Err(BrokerError::invalid(format!(
                    "cannot watch the client token: {err}"
                )));
            }
        };
        let mut tokens = lock(&self.tokens);
        let list = tokens.entry(uid).or_default();
        // Another call with the same token may have got there first.
        if let Some(winner) = list.iter().find(|t| t.token == *token) {
            let winner = winner.session.clone();
            drop(tokens);
            drop(death);
            self.broker.close_session(&session);
            return Ok(winner);
        }
        list.push(TokenSession {
            token: token.clone(),
            session: session.clone(),
            _death: death,
        });
        Ok(session)
    }

    fn find(&self, uid: u32, token: &SpIBinder) -> Option<Arc<Session>> {
        lock(&self.tokens)
            .get(&uid)?
            .iter()
            .find(|t| t.token == *token)
            .map(|t| t.session.clone())
    }
}

/// What a version 1 client's death does: forget its token and end its session.
fn token_died(
    uid: u32,
    session: &Weak<Session>,
    broker: &Weak<Broker>,
    tokens: &Weak<TokenSessions>,
) {
    let (Some(session), Some(broker)) = (session.upgrade(), broker.upgrade()) else {
        return;
    };
    if let Some(tokens) = tokens.upgrade() {
        // The entry is dropped outside the lock: dropping its link unlinks from the binder.
        let gone: Vec<TokenSession> = {
            let mut tokens = lock(&tokens);
            let Some(list) = tokens.get_mut(&uid) else {
                return;
            };
            let (gone, kept) = list
                .drain(..)
                .partition(|t| Arc::ptr_eq(&t.session, &session));
            *list = kept;
            if list.is_empty() {
                tokens.remove(&uid);
            }
            gone
        };
        drop(gone);
    }
    broker.close_later(&session);
}

/// Runs a version 1 call, with version 1's error codes. A panic aborts the broker, as on a
/// device (`panic = "abort"`); the crate's lints keep input from reaching one.
fn serve_v1<T>(call: impl FnOnce() -> Result<T>) -> BinderResult<T> {
    call().map_err(|err| status_v1(&err))
}

impl Dump for HeapBrokerService {
    /// `--json` asks for the report as JSON; other arguments are refused with their usage.
    fn dump(&self, out: &mut dyn std::io::Write, args: &[String]) -> std::io::Result<()> {
        let text = if !DUMP_UIDS.contains(&calling_uid()) {
            "permission denied: only root, system and shell may dump rsheapd\n".to_owned()
        } else if args.is_empty() {
            self.broker.dump()
        } else if args == ["--json"] {
            self.broker.dump_json()
        } else {
            format!("rsheapd: unknown dump arguments {args:?}; usage: dump [--json]\n")
        };
        out.write_all(text.as_bytes())
    }
}

rsheap_binder::impl_interface_with_dump!(HeapBrokerService);

impl IHeapBroker for HeapBrokerService {
    fn r#getHeaps(&self) -> BinderResult<Vec<HeapInfo>> {
        Ok(self
            .broker
            .heaps()
            .into_iter()
            .map(convert::heap_info)
            .collect())
    }

    fn r#openSession(&self, token: &SpIBinder) -> BinderResult<Strong<dyn IHeapSession>> {
        SessionService::open(&self.broker, token, calling_uid(), calling_pid())
            .map_err(|err| status(&err))
    }

    fn r#allocate(&self, client: &SpIBinder, request: &AllocationRequest) -> BinderResult<Buffer> {
        serve_v1(|| {
            let session = self.token_session(client)?;
            let mut made = self
                .broker
                .allocate_batch(&session, vec![convert::spec(request)?])?;
            made.pop()
                .map(convert::buffer)
                .ok_or_else(|| BrokerError::invalid("no buffer allocated"))
        })
    }

    fn r#allocateBatch(
        &self,
        client: &SpIBinder,
        requests: &[AllocationRequest],
    ) -> BinderResult<Vec<Buffer>> {
        serve_v1(|| {
            let session = self.token_session(client)?;
            let requests = requests.iter().map(convert::spec).collect::<Result<_>>()?;
            let made = self.broker.allocate_batch(&session, requests)?;
            Ok(made.into_iter().map(convert::buffer).collect())
        })
    }

    fn r#loadFile(
        &self,
        client: &SpIBinder,
        buffer_id: i64,
        segment: &FileSegment,
    ) -> BinderResult<i64> {
        serve_v1(|| {
            let session = self.token_session(client)?;
            self.broker
                .load(&session, buffer_id, convert::segment(segment)?)
                .map(clamp)
        })
    }

    fn r#loadFileAsync(
        &self,
        client: &SpIBinder,
        buffer_id: i64,
        segment: &FileSegment,
        callback: &Strong<dyn ILoadCallback>,
    ) -> BinderResult<()> {
        serve_v1(|| {
            let session = self.token_session(client)?;
            let observer = Box::new(CallbackObserver(callback.clone()));
            self.broker
                .load_async(&session, buffer_id, convert::segment(segment)?, observer)
        })
    }

    fn r#free(&self, client: &SpIBinder, buffer_id: i64) -> BinderResult<()> {
        serve_v1(|| {
            let session = self.token_session(client)?;
            self.broker.free(&session, buffer_id)
        })
    }

    fn r#listBuffers(&self, client: &SpIBinder) -> BinderResult<Vec<BufferInfo>> {
        serve_v1(|| {
            let session = self.token_session(client)?;
            Ok(self
                .broker
                .list(&session)?
                .into_iter()
                .map(convert::info)
                .collect())
        })
    }
}
