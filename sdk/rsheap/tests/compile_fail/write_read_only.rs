//! A read-only mapping has no way to write.

fn main() -> rsheap::Result<()> {
    let buffer = rsheap::Heap::open("rsheap")?.allocate(4096)?;
    let shared = buffer.share_read_only()?;
    let mut mapping = shared.map_read_only()?;
    mapping.write_at(0, &[1])?;
    Ok(())
}
