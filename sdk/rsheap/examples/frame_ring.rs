//! A camera-like frame ring: a producer thread fills NV12 frames into a ring of broker
//! buffers while a consumer thread checks them, each through its own mapping and inside
//! CPU-access brackets, as a camera HAL and its client would across processes.
//!
//! ```text
//! cargo run --example frame_ring -- [frames]
//! ```

use std::process::ExitCode;
use std::sync::mpsc;
use std::time::Instant;

use rsheap::{AllocationOptions, Broker, BrokerBuffer, SyncDirection, Usage};

const WIDTH: usize = 1920;
const HEIGHT: usize = 1080;
/// An NV12 frame: a full-size luma plane and a half-size interleaved chroma plane.
const FRAME_BYTES: usize = WIDTH * HEIGHT * 3 / 2;
/// Buffers in the ring: one being filled, one being read, two queued.
const RING: usize = 4;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("frame_ring: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let frames: usize = match std::env::args().nth(1) {
        Some(text) => text
            .parse()
            .map_err(|_| format!("{text:?} is not a frame count"))?,
        None => 120,
    };
    let broker = Broker::connect()?;
    let options = AllocationOptions {
        debug_name: Some("frame ring".into()),
        ..AllocationOptions::usage(Usage::CAMERA_FRAME)
    };
    let ring = (0..RING)
        .map(|_| broker.allocate(FRAME_BYTES, &options))
        .collect::<Result<Vec<_>, _>>()?;
    println!(
        "ring of {RING} {WIDTH}x{HEIGHT} NV12 frames ({FRAME_BYTES} bytes each) on heap {}: {}",
        ring[0].heap(),
        ring.iter()
            .map(BrokerBuffer::name)
            .collect::<Vec<_>>()
            .join(", ")
    );

    let start = Instant::now();
    let checked = run_ring(&ring, frames)?;
    let elapsed = start.elapsed();
    println!(
        "{checked} frames produced and checked in {:.0} ms: {:.1} frames/s",
        elapsed.as_secs_f64() * 1e3,
        checked as f64 / elapsed.as_secs_f64()
    );
    for buffer in ring {
        broker.free(buffer)?;
    }
    Ok(())
}

/// Runs `frames` frames through the ring and returns how many the consumer checked.
fn run_ring(ring: &[BrokerBuffer], frames: usize) -> Result<usize, rsheap::Error> {
    // Slots travel from producer to consumer with a filled frame, and back when read.
    let (filled_tx, filled_rx) = mpsc::sync_channel::<(usize, usize)>(RING);
    let (free_tx, free_rx) = mpsc::sync_channel::<usize>(RING);
    for slot in 0..RING {
        free_tx
            .send(slot)
            .expect("the ring has room for every slot");
    }
    std::thread::scope(|scope| {
        let producer = scope.spawn(move || -> Result<(), rsheap::Error> {
            let mut mappings = ring
                .iter()
                .map(|buffer| buffer.buffer().map())
                .collect::<Result<Vec<_>, _>>()?;
            // Frames are painted here and copied in: the consumer's mapping shares the
            // memory, so no slice of it may be held.
            let mut pixels = vec![0; FRAME_BYTES];
            for frame in 0..frames {
                let Ok(slot) = free_rx.recv() else { break };
                paint(&mut pixels, frame);
                let access = ring[slot].buffer().cpu_access(SyncDirection::Write)?;
                mappings[slot].write_at(0, &pixels)?;
                access.end()?;
                if filled_tx.send((slot, frame)).is_err() {
                    break;
                }
            }
            Ok(())
        });
        let consumer = scope.spawn(move || -> Result<usize, rsheap::Error> {
            let mappings = ring
                .iter()
                .map(|buffer| buffer.buffer().map())
                .collect::<Result<Vec<_>, _>>()?;
            let mut pixels = vec![0; FRAME_BYTES];
            let mut checked = 0;
            for (slot, frame) in filled_rx {
                let access = ring[slot].buffer().cpu_access(SyncDirection::Read)?;
                mappings[slot].read_at(0, &mut pixels)?;
                access.end()?;
                if let Some(at) = first_wrong(&pixels, frame) {
                    panic!("frame {frame}: byte {at} in slot {slot} is not what was written");
                }
                checked += 1;
                // The producer stops taking slots after the last frame.
                let _ = free_tx.send(slot);
            }
            Ok(checked)
        });
        producer.join().expect("the producer does not panic")?;
        consumer.join().expect("the consumer does not panic")
    })
}

/// The value of byte `at` of frame `frame`: a gradient that moves each frame.
fn pixel(frame: usize, at: usize) -> u8 {
    (at / 64 + frame * 7) as u8
}

fn paint(pixels: &mut [u8], frame: usize) {
    for (at, byte) in pixels.iter_mut().enumerate() {
        *byte = pixel(frame, at);
    }
}

fn first_wrong(pixels: &[u8], frame: usize) -> Option<usize> {
    pixels
        .iter()
        .enumerate()
        .position(|(at, &byte)| byte != pixel(frame, at))
}
