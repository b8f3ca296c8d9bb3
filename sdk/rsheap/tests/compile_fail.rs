//! What the type system refuses: safe code cannot reach the mapped bytes as slices, and even
//! `unsafe` code cannot hold two views of one mapping of which one writes. Each case under
//! `compile_fail/` is a program that must not compile, with the error it gets; rebuild the
//! `.stderr` files with `TRYBUILD=overwrite cargo test -p rsheap --test compile_fail`.

#[test]
fn aliasing_views_of_a_mapping_do_not_compile() {
    trybuild::TestCases::new().compile_fail("tests/compile_fail/*.rs");
}
