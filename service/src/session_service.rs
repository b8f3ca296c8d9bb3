//! `IHeapSession` over binder: one object per session, holding it, so a call reaches its
//! session without a look-up or a shared lock.
//!
//! A session ends by `close()`, by the death of the token it was opened with, or when its
//! binder object is dropped because no client holds it any more. Death notices and drops
//! only hand the session to the broker's reaper.

use std::sync::{Arc, Weak};

use rsheap_binder::{
    calling_uid, is_remote, link_to_death, DeathLink, ParcelFileDescriptor, Result as BinderResult,
    SpIBinder, Strong,
};
use vendor_rsheap::aidl::vendor::rsheap::{
    Buffer::Buffer, BufferInfo::BufferInfo, BufferRequest::BufferRequest, FileSegment::FileSegment,
    IAllocationCallback::IAllocationCallback, IHeapSession::IHeapSession,
    ILoadObserver::ILoadObserver, SessionLimits::SessionLimits,
};

use crate::broker::Broker;
use crate::convert::{self, clamp, status, AllocationReply, SessionLoadObserver};
use crate::error::{BrokerError, Result};
use crate::session::Session;

/// The binder object of one session.
pub struct SessionService {
    broker: Arc<Broker>,
    session: Arc<Session>,
    /// Ends the session when the client's token dies; dropping it cancels that.
    _death: DeathLink,
}

impl SessionService {
    /// Opens a session for `uid` and `pid`, watched through `token`.
    pub fn open(
        broker: &Arc<Broker>,
        token: &SpIBinder,
        uid: u32,
        pid: i32,
    ) -> Result<Strong<dyn IHeapSession>> {
        if !is_remote(token) {
            return Err(BrokerError::invalid(
                "the session token must be a binder of the caller",
            ));
        }
        let session = broker.open_session(uid, pid)?;
        let (weak_broker, weak_session) = (Arc::downgrade(broker), Arc::downgrade(&session));
        let death = link_to_death(token, move || died(&weak_broker, &weak_session));
        let death = match death {
            Ok(death) => death,
            Err(err) => {
                broker.close_session(&session);
                return Err(BrokerError::invalid(format!(
                    "cannot watch the session token: {err}"
                )));
            }
        };
        Ok(rsheap_binder::new_session_binder(Self {
            broker: broker.clone(),
            session,
            _death: death,
        }))
    }

    /// Runs a call of the session's own uid, turning broker errors into binder statuses.
    fn serve<T>(&self, call: impl FnOnce(&Session) -> Result<T>) -> BinderResult<T> {
        let uid = calling_uid();
        if uid != self.session.uid() {
            return Err(status(&BrokerError::invalid(format!(
                "this session belongs to uid {}, not {uid}",
                self.session.uid()
            ))));
        }
        call(&self.session).map_err(|err| status(&err))
    }
}

fn died(broker: &Weak<Broker>, session: &Weak<Session>) {
    if let (Some(broker), Some(session)) = (broker.upgrade(), session.upgrade()) {
        broker.close_later(&session);
    }
}

impl Drop for SessionService {
    fn drop(&mut self) {
        self.broker.close_later(&self.session);
    }
}

impl rsheap_binder::Interface for SessionService {}

impl IHeapSession for SessionService {
    fn r#allocate(&self, request: &BufferRequest) -> BinderResult<Buffer> {
        self.serve(|_| {
            let request = convert::request(request)?;
            let mut made = self.broker.allocate_batch(&self.session, vec![request])?;
            made.pop()
                .map(convert::buffer)
                .ok_or_else(|| BrokerError::invalid("no buffer allocated"))
        })
    }

    fn r#allocateBatch(&self, requests: &[BufferRequest]) -> BinderResult<Vec<Buffer>> {
        self.serve(|_| {
            let requests = requests
                .iter()
                .map(convert::request)
                .collect::<Result<_>>()?;
            let made = self.broker.allocate_batch(&self.session, requests)?;
            Ok(made.into_iter().map(convert::buffer).collect())
        })
    }

    fn r#allocateAsync(
        &self,
        requests: &[BufferRequest],
        cookie: i64,
        callback: &Strong<dyn IAllocationCallback>,
    ) -> BinderResult<()> {
        self.serve(|_| {
            let requests = requests
                .iter()
                .map(convert::request)
                .collect::<Result<_>>()?;
            let reply = Box::new(AllocationReply {
                callback: callback.clone(),
                cookie,
            });
            self.broker.allocate_async(&self.session, requests, reply)
        })
    }

    fn r#loadFile(&self, buffer_id: i64, segment: &FileSegment) -> BinderResult<i64> {
        self.serve(|session| {
            self.broker
                .load(session, buffer_id, convert::segment(segment)?)
                .map(clamp)
        })
    }

    fn r#loadFileAsync(
        &self,
        buffer_id: i64,
        segment: &FileSegment,
        observer: &Strong<dyn ILoadObserver>,
    ) -> BinderResult<()> {
        self.serve(|session| {
            let observer = Box::new(SessionLoadObserver(observer.clone()));
            self.broker
                .load_async(session, buffer_id, convert::segment(segment)?, observer)
        })
    }

    fn r#cancelLoads(&self, buffer_id: i64) -> BinderResult<()> {
        self.serve(|session| self.broker.cancel_loads(session, buffer_id))
    }

    fn r#free(&self, buffer_id: i64) -> BinderResult<()> {
        self.serve(|session| self.broker.free(session, buffer_id))
    }

    fn r#freeBatch(&self, buffer_ids: &[i64]) -> BinderResult<()> {
        self.serve(|session| self.broker.free_batch(session, buffer_ids))
    }

    fn r#listBuffers(&self) -> BinderResult<Vec<BufferInfo>> {
        self.serve(|session| {
            Ok(self
                .broker
                .list(session)?
                .into_iter()
                .map(convert::info)
                .collect())
        })
    }

    fn r#shareReadOnly(&self, buffer_id: i64) -> BinderResult<ParcelFileDescriptor> {
        self.serve(|session| {
            self.broker
                .share_read_only(session, buffer_id)
                .map(ParcelFileDescriptor::new)
        })
    }

    fn r#getLimits(&self) -> BinderResult<SessionLimits> {
        self.serve(|session| self.broker.limits(session).map(convert::limits))
    }

    fn r#close(&self) -> BinderResult<()> {
        self.serve(|session| {
            self.broker.close_session(session);
            Ok(())
        })
    }
}
