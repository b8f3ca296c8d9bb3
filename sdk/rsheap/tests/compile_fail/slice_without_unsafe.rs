//! A slice of shared memory is a promise only the caller can make: safe code cannot ask.

fn main() -> rsheap::Result<()> {
    let buffer = rsheap::Heap::open("rsheap")?.allocate(4096)?;
    let mapping = buffer.map()?;
    let bytes: &[u8] = mapping.as_slice();
    println!("{}", bytes.len());
    Ok(())
}
