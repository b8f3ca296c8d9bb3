//! A mapping borrows its buffer: it cannot outlive the file descriptor it maps.

fn main() -> rsheap::Result<()> {
    let heap = rsheap::Heap::open("rsheap")?;
    let buffer = heap.allocate(4096)?;
    let mapping = buffer.map()?;
    drop(buffer);
    println!("{}", mapping.len());
    Ok(())
}
