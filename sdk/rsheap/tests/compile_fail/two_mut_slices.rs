//! Even under `unsafe`, one mapping gives one writable slice at a time.

fn main() -> rsheap::Result<()> {
    let buffer = rsheap::Heap::open("rsheap")?.allocate(4096)?;
    let mut mapping = buffer.map()?;
    // SAFETY: The buffer is this program's alone (the point is what the borrow checker says).
    let first = unsafe { mapping.as_mut_slice() };
    // SAFETY: As above.
    let second = unsafe { mapping.as_mut_slice() };
    first[0] = second[0];
    Ok(())
}
