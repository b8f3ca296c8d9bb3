//! Two mappings of one buffer are two views of the same memory: neither gives safe code a
//! writable slice, so the two cannot alias.

fn main() -> rsheap::Result<()> {
    let buffer = rsheap::Heap::open("rsheap")?.allocate(4096)?;
    let mut first = buffer.map()?;
    let mut second = buffer.map()?;
    let a = first.as_mut_slice();
    let b = second.as_mut_slice();
    a[0] = 1;
    assert_eq!(b[0], 1);
    Ok(())
}
