//! Nor can it take a writable slice.

fn main() -> rsheap::Result<()> {
    let buffer = rsheap::Heap::open("rsheap")?.allocate(4096)?;
    let mut mapping = buffer.map()?;
    mapping.as_mut_slice().fill(1);
    Ok(())
}
