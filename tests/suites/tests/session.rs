//! Version 2 of the broker: sessions, allocate-and-load, asynchronous allocation, batch free,
//! cancelled loads, the limits query, admission control under load, and version 1 clients
//! against it. Each test starts its own rsheapd; clients in other processes are
//! `broker_client`s.

use std::fs::File;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use rsbinder::{hub, Interface, SIBinder};
use rsheap::SyncDirection;
use rsheap_binder::BROKER_INSTANCE;
use rsheap_suites::broker::{
    buffer_request, code, config, eventually, heap_buffers, into_buffer, open_session, request,
    root_quota, segment, token, ClientProcess, Daemon, SHIPPED_CONFIG,
};
use rsheap_suites::{drain_pools, hash, page_size, scratch_path, write_random_file, RSHEAP};
use vendor_rsheap::aidl::vendor::rsheap::{
    Buffer::Buffer as AidlBuffer,
    BufferRequest::BufferRequest,
    IAllocationCallback::{BnAllocationCallback, IAllocationCallback},
    IHeapBroker,
    ILoadObserver::{BnLoadObserver, ILoadObserver},
    Usage::Usage,
};

const MIB: i64 = 1 << 20;
const INVALID: i32 = IHeapBroker::ERROR_INVALID_ARGUMENT;
const QUOTA: i32 = IHeapBroker::ERROR_QUOTA_EXCEEDED;
const NOT_FOUND: i32 = IHeapBroker::ERROR_NOT_FOUND;
const CANCELLED: i32 = IHeapBroker::ERROR_CANCELLED;
const CLOSED: i32 = IHeapBroker::ERROR_SESSION_CLOSED;

/// The contents of a buffer the broker handed over.
fn contents(made: AidlBuffer, len: usize) -> Vec<u8> {
    let buffer = into_buffer(made.fd);
    let mapping = buffer.map().expect("map");
    let _access = buffer.cpu_access(SyncDirection::Read).expect("sync");
    let mut bytes = vec![0; len];
    mapping.read_at(0, &mut bytes).expect("in the buffer");
    bytes
}

#[test]
fn a_session_owns_its_buffers_until_it_closes() {
    let (_daemon, broker) = Daemon::start(SHIPPED_CONFIG);
    let page = page_size() as i64;
    let (_token, session) = open_session(&broker);
    let (_other_token, other) = open_session(&broker);
    let made = session
        .allocate(&buffer_request(3 * page, Usage::SCRATCH))
        .expect("allocate");
    let id = made.info.id;
    assert_eq!(session.listBuffers().expect("list").len(), 1);
    // Another session of the same uid sees nothing of it.
    assert!(other.listBuffers().expect("list").is_empty());
    assert_eq!(code(other.free(id)), NOT_FOUND);
    assert_eq!(heap_buffers(&broker, RSHEAP).0, 1);
    drop(made);

    session.close().expect("close");
    assert_eq!(heap_buffers(&broker, RSHEAP).0, 0);
    assert_eq!(code(session.listBuffers()), CLOSED);
    assert_eq!(
        code(session.allocate(&buffer_request(page, Usage::SCRATCH))),
        CLOSED
    );
    assert_eq!(code(session.free(id)), CLOSED);
    assert_eq!(code(session.getLimits()), CLOSED);
    // Closing twice is harmless; the other session is untouched.
    session.close().expect("close again");
    other
        .allocate(&buffer_request(page, Usage::SCRATCH))
        .expect("the other session still allocates");
}

#[test]
fn a_session_nobody_holds_any_more_ends() {
    let (_daemon, broker) = Daemon::start(SHIPPED_CONFIG);
    let (token, session) = open_session(&broker);
    let made = session
        .allocate(&buffer_request(4 * page_size() as i64, Usage::SCRATCH))
        .expect("allocate");
    drop(made);
    assert_eq!(heap_buffers(&broker, RSHEAP).0, 1);
    // The token lives on: only the session object is let go.
    drop(session);
    eventually(10, "the dropped session's buffer freed", || {
        heap_buffers(&broker, RSHEAP).0 == 0
    });
    drop(token);
}

#[test]
fn a_session_of_a_killed_client_gives_back_its_memory() {
    let (_daemon, broker) = Daemon::start(SHIPPED_CONFIG);
    let mut holder = ClientProcess::spawn(&["session-hold", "3", &(2 * MIB).to_string()]);
    assert_eq!(holder.line(), "ready");
    assert_eq!(heap_buffers(&broker, RSHEAP), (3, 6 * MIB));
    rsheap_suites::kill_and_reap(holder.pid());
    eventually(10, "the dead client's buffers freed", || {
        heap_buffers(&broker, RSHEAP).0 == 0
    });
    holder.child.wait().ok();
}

#[test]
fn sessions_per_uid_are_bounded_and_version_1_tokens_count() {
    let (_daemon, broker) = Daemon::start(&config(&[(
        "sessions_per_uid = 32",
        "sessions_per_uid = 3",
    )]));
    let page = page_size() as i64;
    let (_a, first) = open_session(&broker);
    let (_b, _second) = open_session(&broker);
    // A version 1 client's token is the third.
    let v1 = token();
    broker
        .allocate(&v1, &request(page, Usage::SCRATCH))
        .expect("a version 1 call");
    let extra = token();
    assert_eq!(code(broker.openSession(&extra)), QUOTA);
    assert_eq!(
        code(broker.allocate(&extra, &request(page, Usage::SCRATCH))),
        QUOTA
    );
    let limits = first.getLimits().expect("limits");
    assert_eq!((limits.sessions, limits.maxSessions), (3, 3));
    first.close().expect("close");
    broker.openSession(&extra).expect("room after a close");
}

#[test]
fn allocate_and_load_hands_over_loaded_buffers_or_nothing() {
    let (_daemon, broker) = Daemon::start(SHIPPED_CONFIG);
    let page = page_size() as i64;
    let path = scratch_path("session-weights");
    let len = 8 * MIB + 3 * page + 100;
    write_random_file(&path, len as u64, 17);
    let file = File::open(&path).expect("open");
    let expected = hash(&std::fs::read(&path).expect("read"));
    let (_token, session) = open_session(&broker);

    let weights = BufferRequest {
        allocation: request(len, Usage::MODEL_WEIGHTS),
        load: Some(segment(&file, 0, -1, 0)),
    };
    let made = session.allocate(&weights).expect("allocate and load");
    assert_eq!(hash(&contents(made, len as usize)), expected);

    // A batch: the second request loads the file's second page into its own start.
    let batch = vec![
        BufferRequest {
            allocation: request(page, Usage::SCRATCH),
            load: None,
        },
        BufferRequest {
            allocation: request(page, Usage::MODEL_WEIGHTS),
            load: Some(segment(&file, page, page, 0)),
        },
    ];
    let mut made = session.allocateBatch(&batch).expect("batch");
    let second = made.pop().expect("two buffers");
    let data = std::fs::read(&path).expect("read");
    let page_bytes = data
        .get(page as usize..2 * page as usize)
        .expect("the file's second page");
    assert_eq!(contents(second, page as usize), page_bytes);

    // A segment that does not fit its buffer fails the whole request, and nothing stays.
    let before = (
        session.listBuffers().expect("list").len(),
        heap_buffers(&broker, RSHEAP),
    );
    let too_long = BufferRequest {
        allocation: request(page, Usage::MODEL_WEIGHTS),
        load: Some(segment(&file, 0, 2 * page, 0)),
    };
    assert_eq!(code(session.allocate(&too_long)), INVALID);
    let bad_batch = vec![weights_request(page), too_long];
    assert_eq!(code(session.allocateBatch(&bad_batch)), INVALID);
    let after = (
        session.listBuffers().expect("list").len(),
        heap_buffers(&broker, RSHEAP),
    );
    assert_eq!(before, after);
    std::fs::remove_file(&path).expect("remove");
}

fn weights_request(size: i64) -> BufferRequest {
    buffer_request(size, Usage::MODEL_WEIGHTS)
}

/// What an asynchronous allocation reported.
#[derive(Clone, Debug)]
enum Allocation {
    Made(Vec<i64>),
    Failed(i32, String),
}

#[derive(Default)]
struct Allocations {
    done: Mutex<Vec<(i64, Allocation)>>,
    changed: Condvar,
}

impl Allocations {
    fn wait(&self, cookie: i64) -> Allocation {
        let start = Instant::now();
        let mut done = self.done.lock().expect("lock");
        loop {
            if let Some((_, found)) = done.iter().find(|(c, _)| *c == cookie) {
                return found.clone();
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "no answer for {cookie}"
            );
            done = self
                .changed
                .wait_timeout(done, Duration::from_secs(1))
                .expect("lock")
                .0;
        }
    }
}

struct AllocationCallback(Arc<Allocations>);

impl Interface for AllocationCallback {}

impl IAllocationCallback for AllocationCallback {
    fn onAllocated(&self, cookie: i64, buffers: &[AidlBuffer]) -> rsbinder::BinderResult<()> {
        let ids = buffers.iter().map(|b| b.info.id).collect();
        self.0
            .done
            .lock()
            .expect("lock")
            .push((cookie, Allocation::Made(ids)));
        self.0.changed.notify_all();
        Ok(())
    }

    fn onFailed(&self, cookie: i64, error: i32, message: &str) -> rsbinder::BinderResult<()> {
        let failed = Allocation::Failed(error, message.to_owned());
        self.0.done.lock().expect("lock").push((cookie, failed));
        self.0.changed.notify_all();
        Ok(())
    }
}

#[test]
fn asynchronous_allocations_report_with_the_codes_of_synchronous_ones() {
    let (_daemon, broker) = Daemon::start(&root_quota(256, 64));
    let page = page_size() as i64;
    let (_token, session) = open_session(&broker);
    let allocations = Arc::new(Allocations::default());
    let callback = BnAllocationCallback::new_binder(AllocationCallback(allocations.clone()));

    let batch: Vec<_> = [page, 64 * MIB, 3 * page]
        .into_iter()
        .map(|size| buffer_request(size, Usage::SCRATCH))
        .collect();
    session.allocateAsync(&batch, 7, &callback).expect("queued");
    let Allocation::Made(ids) = allocations.wait(7) else {
        panic!("the batch failed");
    };
    assert_eq!(ids.len(), 3);
    let listed: Vec<i64> = session
        .listBuffers()
        .expect("list")
        .iter()
        .map(|b| b.id)
        .collect();
    assert_eq!(listed, ids);

    // Checked before queueing: the same codes as the synchronous call.
    assert_eq!(
        code(session.allocateAsync(&[buffer_request(0, Usage::SCRATCH)], 8, &callback)),
        INVALID
    );
    assert_eq!(
        code(session.allocateAsync(&[buffer_request(512 * MIB, Usage::SCRATCH)], 9, &callback)),
        QUOTA
    );

    // A load that cannot finish fails the batch through the callback, with nothing kept.
    let path = scratch_path("session-async-load");
    write_random_file(&path, 96 * MIB as u64, 3);
    let file = File::open(&path).expect("open");
    let loading = BufferRequest {
        allocation: request(96 * MIB, Usage::MODEL_WEIGHTS),
        load: Some(segment(&file, 0, -1, 0)),
    };
    session
        .allocateAsync(&[loading], 10, &callback)
        .expect("queued");
    session.close().expect("close while it runs");
    match allocations.wait(10) {
        Allocation::Failed(error, message) => {
            assert!(
                [CANCELLED, CLOSED].contains(&error),
                "error {error}: {message}"
            );
        }
        Allocation::Made(ids) => {
            // It may have finished before the close; the close freed it then.
            assert_eq!(ids.len(), 1);
        }
    }
    eventually(30, "everything freed", || {
        heap_buffers(&broker, RSHEAP).0 == 0
    });
    std::fs::remove_file(&path).expect("remove");
}

#[test]
fn batch_frees_are_all_or_none() {
    let (_daemon, broker) = Daemon::start(SHIPPED_CONFIG);
    let page = page_size() as i64;
    let (_token, session) = open_session(&broker);
    let requests: Vec<_> = (0..3)
        .map(|_| buffer_request(page, Usage::SCRATCH))
        .collect();
    let ids: Vec<i64> = session
        .allocateBatch(&requests)
        .expect("batch")
        .iter()
        .map(|b| b.info.id)
        .collect();
    let [a, b, c] = ids[..] else {
        panic!("three buffers");
    };
    assert_eq!(code(session.freeBatch(&[a, b, 1])), NOT_FOUND);
    assert_eq!(code(session.freeBatch(&[a, a])), INVALID);
    assert_eq!(session.listBuffers().expect("list").len(), 3);
    session.freeBatch(&[c, a]).expect("free two");
    let left: Vec<i64> = session
        .listBuffers()
        .expect("list")
        .iter()
        .map(|b| b.id)
        .collect();
    assert_eq!(left, vec![b]);
    session
        .freeBatch(&[])
        .expect("an empty batch frees nothing");
    session.freeBatch(&[b]).expect("free the last");
    assert_eq!(heap_buffers(&broker, RSHEAP).0, 0);
}

/// What a session's asynchronous load reported.
#[derive(Default)]
struct LoadEvents {
    progress: Mutex<Vec<i64>>,
    complete: Mutex<Option<(i64, i32, String)>>,
    changed: Condvar,
}

struct Observer(Arc<LoadEvents>);

impl Interface for Observer {}

impl ILoadObserver for Observer {
    fn onProgress(&self, _id: i64, done: i64, _total: i64) -> rsbinder::BinderResult<()> {
        self.0.progress.lock().expect("lock").push(done);
        self.0.changed.notify_all();
        Ok(())
    }

    fn onComplete(
        &self,
        _id: i64,
        bytes: i64,
        error: i32,
        message: Option<&str>,
    ) -> rsbinder::BinderResult<()> {
        *self.0.complete.lock().expect("lock") =
            Some((bytes, error, message.unwrap_or_default().to_owned()));
        self.0.changed.notify_all();
        Ok(())
    }
}

#[test]
fn cancelling_a_load_stops_it_and_keeps_the_buffer() {
    let (_daemon, broker) = Daemon::start(&root_quota(1024, 64));
    let path = scratch_path("session-cancel");
    let len = 512 * MIB;
    write_random_file(&path, len as u64, 5);
    let file = File::open(&path).expect("open");
    let (_token, session) = open_session(&broker);
    let made = session
        .allocate(&buffer_request(len, Usage::MODEL_WEIGHTS))
        .expect("allocate");
    let id = made.info.id;
    assert_eq!(code(session.cancelLoads(id + 1_000_000)), NOT_FOUND);

    let events = Arc::new(LoadEvents::default());
    let observer = BnLoadObserver::new_binder(Observer(events.clone()));
    rsheap_suites::drop_caches();
    session
        .loadFileAsync(id, &segment(&file, 0, -1, 0), &observer)
        .expect("queued");
    session.cancelLoads(id).expect("cancel");
    let start = Instant::now();
    let mut complete = events.complete.lock().expect("lock");
    while complete.is_none() {
        assert!(start.elapsed() < Duration::from_secs(60), "no completion");
        complete = events
            .changed
            .wait_timeout(complete, Duration::from_secs(1))
            .expect("lock")
            .0;
    }
    let (bytes, error, message) = complete.clone().expect("complete");
    drop(complete);
    // A load that finished before the cancel reached it is fine; otherwise it stopped early.
    if error != 0 {
        assert_eq!(error, CANCELLED, "{message}");
        assert!(bytes < len, "a cancelled load moved everything");
    }
    // The buffer stays, and loads again.
    assert_eq!(session.listBuffers().expect("list").len(), 1);
    let loaded = session
        .loadFile(id, &segment(&file, 0, MIB, 0))
        .expect("load after the cancel");
    assert_eq!(loaded, MIB);
    std::fs::remove_file(&path).expect("remove");
}

#[test]
fn the_broker_shares_buffers_read_only_as_the_kernel_enforces() {
    use nix::sys::mman::{mmap, MapFlags, ProtFlags};
    use std::num::NonZeroUsize;
    let (_daemon, broker) = Daemon::start(SHIPPED_CONFIG);
    let page = page_size() as i64;
    let path = scratch_path("session-readonly");
    let len = 4 * page;
    write_random_file(&path, len as u64, 23);
    let file = File::open(&path).expect("open");
    let (_token, session) = open_session(&broker);
    assert!(session.getLimits().expect("limits").readOnlySharing);
    let weights = BufferRequest {
        allocation: request(len, Usage::MODEL_WEIGHTS),
        load: Some(segment(&file, 0, -1, 0)),
    };
    let made = session.allocate(&weights).expect("allocate and load");
    let id = made.info.id;
    let shared = session.shareReadOnly(id).expect("share read-only");
    let shared = rsheap::Buffer::from_fd(shared.into()).expect("a dma-buf");
    let flags = nix::fcntl::fcntl(
        std::os::fd::AsRawFd::as_raw_fd(&std::os::fd::AsFd::as_fd(&shared)),
        nix::fcntl::FcntlArg::F_GETFL,
    )
    .expect("flags");
    assert_eq!(flags & libc::O_ACCMODE, libc::O_RDONLY);
    // Writable mappings are refused; a readable one shows what the broker loaded.
    // SAFETY: A fresh mapping of a file descriptor this test owns; it is never used.
    let writable = unsafe {
        mmap(
            None,
            NonZeroUsize::new(len as usize).expect("a length"),
            ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
            MapFlags::MAP_SHARED,
            &shared,
            0,
        )
    };
    assert_eq!(writable.err(), Some(nix::errno::Errno::EACCES));
    let data = std::fs::read(&path).expect("read");
    {
        let mapping = shared.map_read_only().expect("map read-only");
        assert_eq!(hash(&mapping.to_vec()), hash(&data));
    }
    // The memory counts against the uid while the read-only copy lives, freed or not.
    drop(made);
    session.free(id).expect("free");
    let limits = session.getLimits().expect("limits");
    assert_eq!((limits.usedBytes, limits.usedBuffers), (len, 1));
    drop(shared);
    let limits = session.getLimits().expect("limits");
    assert_eq!((limits.usedBytes, limits.usedBuffers), (0, 0));

    assert_eq!(code(session.shareReadOnly(id)), NOT_FOUND);
    let mut on_system = request(page, Usage::SCRATCH);
    on_system.heap = Some(rsheap_suites::SYSTEM.into());
    let made = session
        .allocate(&BufferRequest {
            allocation: on_system,
            load: None,
        })
        .expect("a system heap buffer");
    assert_eq!(
        code(session.shareReadOnly(made.info.id)),
        IHeapBroker::ERROR_UNSUPPORTED
    );
    std::fs::remove_file(&path).expect("remove");
}

#[test]
fn the_limits_say_what_a_session_may_allocate() {
    let (_daemon, broker) = Daemon::start(&root_quota(64, 10));
    let page = page_size() as i64;
    let (_token, session) = open_session(&broker);
    let limits = session.getLimits().expect("limits");
    assert_eq!(limits.maxBufferSize, 4096 * MIB);
    assert_eq!(limits.maxBatch, IHeapBroker::MAX_BATCH);
    assert_eq!(limits.pageSize as i64, page);
    assert_eq!((limits.quotaBytes, limits.quotaBuffers), (64 * MIB, 10));
    assert_eq!((limits.usedBytes, limits.usedBuffers), (0, 0));
    assert!(limits.directLoads, "rsheap.ko is loaded: loads go direct");

    // Use counts until the memory is released, not until the broker frees it.
    let made = session
        .allocate(&buffer_request(5 * page, Usage::SCRATCH))
        .expect("allocate");
    session.free(made.info.id).expect("free");
    let limits = session.getLimits().expect("limits");
    assert_eq!((limits.usedBytes, limits.usedBuffers), (5 * page, 1));
    drop(made);
    let limits = session.getLimits().expect("limits");
    assert_eq!((limits.usedBytes, limits.usedBuffers), (0, 0));
}

#[test]
fn version_1_clients_keep_working_against_the_version_2_broker() {
    use vendor_rsheap_v1::aidl::vendor::rsheap::{
        AllocationRequest::AllocationRequest, IHeapBroker::IHeapBroker as BrokerV1,
        Usage::Usage as UsageV1,
    };
    let (_daemon, _broker) = Daemon::start(SHIPPED_CONFIG);
    let page = page_size() as i64;
    let broker = hub::check_interface::<dyn BrokerV1>(BROKER_INSTANCE).expect("the v1 interface");
    assert_eq!(broker.getInterfaceVersion().expect("version"), 2);
    let client: SIBinder = token();
    let asked = AllocationRequest {
        size: 2 * page,
        usage: UsageV1::MODEL_WEIGHTS,
        heap: None,
        cached: true,
        debugName: Some("v1 weights".into()),
    };
    let made = broker.allocate(&client, &asked).expect("allocate");
    assert_eq!(made.info.size, 2 * page);
    let listed = broker.listBuffers(&client).expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].debugName, "v1 weights");
    let heaps = broker.getHeaps().expect("heaps");
    assert!(heaps.iter().any(|h| h.name == RSHEAP));
    broker.free(&client, made.info.id).expect("free");
    // Errors keep version 1's codes.
    let status = broker
        .free(&client, made.info.id)
        .expect_err("freed already");
    assert_eq!(status.service_specific_error(), NOT_FOUND);
}

#[test]
fn small_calls_are_answered_while_sixteen_clients_churn_large_buffers() {
    const CLIENTS: usize = 16;
    const ROUNDS: usize = 6;
    let (_daemon, broker) = Daemon::start(&root_quota(16384, 256));
    drain_pools();
    let size = (128 * MIB).to_string();
    let rounds = ROUNDS.to_string();
    let mut clients: Vec<ClientProcess> = (0..CLIENTS)
        .map(|_| ClientProcess::spawn(&["session-churn", &rounds, &size]))
        .collect();
    for client in &mut clients {
        assert_eq!(client.line(), "ready");
    }
    let (_token, session) = open_session(&broker);
    let page = page_size() as i64;
    let mut latencies = Vec::new();
    let finished = Arc::new(Mutex::new(0usize));
    let waiters: Vec<_> = clients
        .into_iter()
        .map(|mut client| {
            let finished = finished.clone();
            std::thread::spawn(move || {
                let line = client.line();
                *finished.lock().expect("lock") += 1;
                client.child.wait().ok();
                line
            })
        })
        .collect();
    while *finished.lock().expect("lock") < CLIENTS {
        let start = Instant::now();
        broker.getHeaps().expect("getHeaps");
        let made = session
            .allocate(&buffer_request(page, Usage::SCRATCH))
            .expect("a small allocation");
        session.free(made.info.id).expect("free");
        let took = start.elapsed();
        assert!(
            took < Duration::from_secs(10),
            "a small call took {took:?} while the clients churned"
        );
        latencies.push(took);
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut busy = 0u64;
    for waiter in waiters {
        let line = waiter.join().expect("a client");
        let parts: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            parts.get(..2),
            Some(&["done", rounds.as_str()][..]),
            "{line}"
        );
        busy += parts
            .get(3)
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0);
    }
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    println!(
        "{CLIENTS} clients x {ROUNDS} rounds of 128 MiB: {} small calls (getHeaps + page \
         allocate + free), p50 {:?}, p99 {:?}, max {:?}; clients retried {busy} times on BUSY",
        latencies.len(),
        at(0.5),
        at(0.99),
        at(1.0)
    );
    assert_eq!(heap_buffers(&broker, RSHEAP).0, 0);
}

#[test]
fn random_session_calls_get_documented_errors_and_never_break_the_broker() {
    use vendor_rsheap::aidl::vendor::rsheap::AllocationRequest::AllocationRequest;
    let (_daemon, broker) = Daemon::start(&root_quota(256, 64));
    let mut rng = fastrand::Rng::with_seed(0x5e55);
    let sessions: Vec<_> = (0..3).map(|_| open_session(&broker)).collect();
    let file = File::open("/proc/self/exe").expect("a file");
    let (pipe_read, _pipe_write) = nix::unistd::pipe().expect("pipe");
    let pipe = File::from(pipe_read);
    let page = page_size() as i64;
    let observer = BnLoadObserver::new_binder(Observer(Arc::new(LoadEvents::default())));
    let allocations = Arc::new(Allocations::default());
    let callback = BnAllocationCallback::new_binder(AllocationCallback(allocations));
    let mut ids: Vec<i64> = vec![0, -1, i64::MAX, i64::MIN];
    let value = |rng: &mut fastrand::Rng| -> i64 {
        match rng.u8(0..6) {
            0 => rng.i64(..),
            1 => rng.i64(-2..=2),
            2 => rng.i64(0..(8 * MIB)),
            3 => i64::MAX - rng.i64(0..2),
            4 => i64::MIN + rng.i64(0..2),
            _ => rng.i64(0..4) * page,
        }
    };
    let mut outcomes = [0usize; 10];
    for round in 0..2000 {
        let session = &sessions[rng.usize(..sessions.len())].1;
        let id = ids[rng.usize(..ids.len())];
        let pick = |rng: &mut fastrand::Rng| if rng.bool() { &file } else { &pipe };
        let requests = |rng: &mut fastrand::Rng| -> Vec<BufferRequest> {
            (0..rng.usize(0..4))
                .map(|_| BufferRequest {
                    allocation: AllocationRequest {
                        size: value(rng),
                        usage: Usage(rng.i32(-2..6)),
                        heap: [
                            None,
                            Some("rsheap"),
                            Some("system"),
                            Some(""),
                            Some("nope/.."),
                        ][rng.usize(..5)]
                        .map(str::to_owned),
                        cached: rng.bool(),
                        debugName: rng
                            .bool()
                            .then(|| (0..rng.usize(0..80)).map(|_| rng.char(..)).collect()),
                    },
                    load: rng
                        .bool()
                        .then(|| segment(pick(rng), value(rng), value(rng), value(rng))),
                })
                .collect()
        };
        let result = match rng.u8(0..11) {
            0 | 1 => {
                let batch = requests(&mut rng);
                session
                    .allocateBatch(&batch)
                    .map(|made| ids.extend(made.iter().map(|b| b.info.id)))
            }
            2 => {
                let batch = requests(&mut rng);
                session.allocateAsync(&batch, round, &callback)
            }
            3 => session.free(id),
            4 => {
                let batch: Vec<i64> = (0..rng.usize(0..4))
                    .map(|_| ids[rng.usize(..ids.len())])
                    .collect();
                session.freeBatch(&batch)
            }
            5 => {
                let seg = segment(
                    pick(&mut rng),
                    value(&mut rng),
                    value(&mut rng),
                    value(&mut rng),
                );
                session.loadFile(id, &seg).map(drop)
            }
            6 => {
                let seg = segment(
                    pick(&mut rng),
                    value(&mut rng),
                    value(&mut rng),
                    value(&mut rng),
                );
                session.loadFileAsync(id, &seg, &observer)
            }
            7 => session.cancelLoads(id),
            8 => session.shareReadOnly(id).map(drop),
            9 => session.getLimits().map(drop),
            _ => session.listBuffers().map(drop),
        };
        match result {
            Ok(()) => outcomes[0] += 1,
            Err(status) => {
                let code = rsheap_suites::broker::error_code(&status)
                    .unwrap_or_else(|other| panic!("{other}"));
                assert!(
                    (1..=9).contains(&code),
                    "undocumented code {code}: {status:?}"
                );
                outcomes[code as usize] += 1;
            }
        }
    }
    eprintln!("outcomes (ok, then by error code): {outcomes:?}");
    assert!(outcomes[0] > 100 && outcomes[INVALID as usize] > 100);
    broker.getHeaps().expect("the broker still answers");
    for (_, session) in &sessions {
        session.close().expect("close");
    }
    eventually(30, "every buffer freed", || {
        heap_buffers(&broker, RSHEAP).0 == 0
    });
}
