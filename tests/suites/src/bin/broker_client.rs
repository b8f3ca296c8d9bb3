//! A broker client in a process of its own, for the broker suite: it plays one role, reports
//! on stdout line by line, and is often killed by the test.
//!
//! `broker_client [--uid UID] ROLE ...`, where ROLE is
//! - `hold COUNT BYTES`: allocates COUNT buffers, fills and checks them, says `ready`, sleeps;
//! - `load-loop PATH`: allocates a buffer the size of the file, says `ready`, then loads the
//!   file into it again and again;
//! - `cycles COUNT SEED`: COUNT rounds of allocate, map, write, check, free; says `done COUNT`;
//! - `probe ID...`: tries to free and to load into each id (another client's), says the error
//!   code of each call, then the number of buffers it sees, as `probe CODES... buffers N`;
//! - `session-hold COUNT BYTES`: as `hold`, through a version 2 session;
//! - `session-churn ROUNDS BYTES`: says `ready`, then ROUNDS rounds of allocating a buffer
//!   through a session, touching each page and freeing it, retrying on `ERROR_BUSY`; says
//!   `done ROUNDS busy RETRIES`.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};

use rsbinder::ParcelFileDescriptor;
use rsheap::Buffer;
use rsheap_suites::broker::{
    buffer_request, error_code, open_session, request, token, wait_for_broker,
};
use rsheap_suites::fill_and_check;
use vendor_rsheap::aidl::vendor::rsheap::{
    FileSegment::FileSegment, IHeapBroker::ERROR_BUSY, Usage::Usage,
};

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--uid") {
        let uid: u32 = args[1].parse().expect("a numeric uid");
        let uid = nix::unistd::Uid::from_raw(uid);
        nix::unistd::setresuid(uid, uid, uid).expect("setresuid");
        args.drain(..2);
    }
    let broker = wait_for_broker();
    let client = token();
    let say = |line: &str| {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}").expect("stdout");
        out.flush().expect("stdout");
    };
    match args.first().map(String::as_str) {
        Some("hold") => hold(&args, &say, |bytes| {
            broker
                .allocate(&client, &request(bytes, Usage::CAMERA_FRAME))
                .expect("allocate")
                .fd
        }),
        Some("load-loop") => {
            let file = File::open(&args[1]).expect("open the file");
            let len = file.metadata().expect("stat").len() as i64;
            let made = broker
                .allocate(&client, &request(len, Usage::MODEL_WEIGHTS))
                .expect("allocate");
            let id = made.info.id;
            say("ready");
            loop {
                let segment = FileSegment {
                    file: Some(ParcelFileDescriptor::new(file.try_clone().expect("dup"))),
                    fileOffset: 0,
                    length: -1,
                    bufferOffset: 0,
                };
                broker.loadFile(&client, id, &segment).expect("load");
            }
        }
        Some("cycles") => {
            let count: usize = args[1].parse().expect("count");
            let seed: u64 = args[2].parse().expect("seed");
            let mut rng = fastrand::Rng::with_seed(seed);
            for round in 0..count {
                let size = rng.i64(1..=64) * 4096 - rng.i64(0..4096);
                let made = broker
                    .allocate(&client, &request(size, Usage::SCRATCH))
                    .expect("allocate");
                let id = made.info.id;
                let buffer = into_buffer(made.fd.expect("an fd"));
                assert!(
                    buffer.len() as i64 >= size,
                    "round {round}: buffer too small"
                );
                fill_and_check(&buffer, (seed as usize + round) as u8);
                drop(buffer);
                broker.free(&client, id).expect("free");
            }
            let left = broker.listBuffers(&client).expect("list").len();
            assert_eq!(left, 0, "buffers left after the cycles");
            say(&format!("done {count}"));
        }
        Some("probe") => {
            let mut codes = Vec::new();
            let file = File::open("/proc/self/exe").expect("open a file");
            for id in &args[1..] {
                let id: i64 = id.parse().expect("an id");
                let freed = broker
                    .free(&client, id)
                    .expect_err("free another client's buffer");
                codes.push(error_code(&freed).expect("a service error"));
                let segment = FileSegment {
                    file: Some(ParcelFileDescriptor::new(file.try_clone().expect("dup"))),
                    fileOffset: 0,
                    length: 4096,
                    bufferOffset: 0,
                };
                let loaded = broker
                    .loadFile(&client, id, &segment)
                    .expect_err("load into another client's buffer");
                codes.push(error_code(&loaded).expect("a service error"));
            }
            let seen = broker.listBuffers(&client).expect("list").len();
            let codes: Vec<String> = codes.iter().map(i32::to_string).collect();
            say(&format!("probe {} buffers {seen}", codes.join(" ")));
        }
        Some("session-hold") => {
            let (_token, session) = open_session(&broker);
            hold(&args, &say, |bytes| {
                session
                    .allocate(&buffer_request(bytes, Usage::CAMERA_FRAME))
                    .expect("allocate")
                    .fd
            })
        }
        Some("session-churn") => {
            let rounds: usize = args[1].parse().expect("rounds");
            let bytes: i64 = args[2].parse().expect("bytes");
            let (_token, session) = open_session(&broker);
            let mut busy = 0u64;
            say("ready");
            let mut round = 0;
            while round < rounds {
                let made = match session.allocate(&buffer_request(bytes, Usage::SCRATCH)) {
                    Ok(made) => made,
                    Err(status) if error_code(&status) == Ok(ERROR_BUSY) => {
                        busy += 1;
                        std::thread::sleep(std::time::Duration::from_millis(5));
                        continue;
                    }
                    Err(status) => panic!("allocate: {status:?}"),
                };
                let id = made.info.id;
                let buffer = into_buffer(made.fd.expect("an fd"));
                fill_and_check(&buffer, round as u8);
                drop(buffer);
                session.free(id).expect("free");
                round += 1;
            }
            say(&format!("done {rounds} busy {busy}"));
        }
        _ => panic!("unknown role {args:?}"),
    }
}

/// The `hold` roles: allocates `args[1]` buffers of `args[2]` bytes, fills and checks each,
/// says `ready` and sleeps holding them.
fn hold(
    args: &[String],
    say: &dyn Fn(&str),
    allocate: impl Fn(i64) -> Option<ParcelFileDescriptor>,
) -> ! {
    let count: usize = args[1].parse().expect("count");
    let bytes: i64 = args[2].parse().expect("bytes");
    let held: Vec<Buffer> = (0..count)
        .map(|index| {
            let buffer = into_buffer(allocate(bytes).expect("an fd"));
            fill_and_check(&buffer, index as u8);
            buffer
        })
        .collect();
    say("ready");
    loop {
        std::thread::park();
        let _ = &held;
    }
}

fn into_buffer(fd: ParcelFileDescriptor) -> Buffer {
    let fd: OwnedFd = fd.into();
    assert!(fd.as_raw_fd() >= 0);
    Buffer::from_fd(fd).expect("a dma-buf")
}
