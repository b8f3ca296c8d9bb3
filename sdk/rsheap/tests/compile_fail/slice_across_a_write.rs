//! A slice held across a copy into the same mapping: the copy needs the mapping exclusively.

fn main() -> rsheap::Result<()> {
    let buffer = rsheap::Heap::open("rsheap")?.allocate(4096)?;
    let mut mapping = buffer.map()?;
    // SAFETY: The buffer is this program's alone (the point is what the borrow checker says).
    let bytes = unsafe { mapping.as_slice() };
    mapping.write_at(0, &[1])?;
    println!("{}", bytes[0]);
    Ok(())
}
