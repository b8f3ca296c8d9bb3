//! Large allocations, on a small pool of worker threads with admission control.
//!
//! Making a large buffer from a cold pool zeroes all of its memory, which takes time, so it
//! never runs on a binder thread: a synchronous allocation waits for a worker (and only so
//! many may wait, [`Limits::sync_allocations`], so binder threads stay free for small calls),
//! an asynchronous one returns at once. The queue holds at most
//! [`Limits::queued_allocations`] jobs; past that, callers get `BUSY` at once instead of
//! waiting without bound.
//!
//! Locking: `queue` is held only to add or take a job, never while one runs.

use std::collections::VecDeque;
use std::sync::{mpsc, Arc, Condvar, Mutex};

use crate::config::Limits;
use crate::error::{BrokerError, BrokerErrorCode, Result};
use crate::sync::lock;

type Job = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    running: usize,
    sync_waiting: usize,
}

struct Shared {
    queue: Mutex<Queue>,
    work: Condvar,
    limits: Limits,
}

/// The pool of allocation workers.
pub struct Workers {
    shared: Arc<Shared>,
}

impl Workers {
    /// Starts `limits.allocation_workers` workers.
    pub fn start(limits: Limits) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            work: Condvar::new(),
            limits,
        });
        for index in 0..limits.allocation_workers {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("rsheapd-alloc-{index}"))
                .spawn(move || worker(&shared))?;
        }
        Ok(Self { shared })
    }

    /// Runs `job` on a worker and waits for its result.
    pub fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (sender, receiver) = mpsc::sync_channel(1);
        {
            let mut queue = lock(&self.shared.queue);
            if queue.sync_waiting >= self.shared.limits.sync_allocations {
                return Err(BrokerError::new(
                    BrokerErrorCode::Busy,
                    format!(
                        "{} synchronous allocations are waiting already; allocate asynchronously",
                        queue.sync_waiting
                    ),
                ));
            }
            self.push(
                &mut queue,
                Box::new(move || {
                    let _ = sender.send(job());
                }),
            )?;
            queue.sync_waiting = queue.sync_waiting.saturating_add(1);
        }
        let result = receiver.recv().unwrap_or_else(|_| {
            Err(BrokerError::new(
                BrokerErrorCode::Io,
                "the allocation was lost",
            ))
        });
        let mut queue = lock(&self.shared.queue);
        queue.sync_waiting = queue.sync_waiting.saturating_sub(1);
        drop(queue);
        result
    }

    /// Queues `job` to run on a worker.
    pub fn submit(&self, job: impl FnOnce() + Send + 'static) -> Result<()> {
        let mut queue = lock(&self.shared.queue);
        self.push(&mut queue, Box::new(job))
    }

    fn push(&self, queue: &mut Queue, job: Job) -> Result<()> {
        let most = self.shared.limits.queued_allocations;
        if queue.jobs.len() >= most {
            return Err(BrokerError::new(
                BrokerErrorCode::Busy,
                format!("{most} allocations are queued already; try again"),
            ));
        }
        queue.jobs.push_back(job);
        self.shared.work.notify_one();
        Ok(())
    }

    /// Allocations queued and running, for the dump.
    pub fn activity(&self) -> (usize, usize) {
        let queue = lock(&self.shared.queue);
        (queue.jobs.len(), queue.running)
    }
}

fn worker(shared: &Shared) {
    loop {
        let job = {
            let mut queue = lock(&shared.queue);
            loop {
                if let Some(job) = queue.jobs.pop_front() {
                    queue.running = queue.running.saturating_add(1);
                    break job;
                }
                queue = shared.work.wait(queue).unwrap_or_else(|e| e.into_inner());
            }
        };
        job();
        let mut queue = lock(&shared.queue);
        queue.running = queue.running.saturating_sub(1);
    }
}
