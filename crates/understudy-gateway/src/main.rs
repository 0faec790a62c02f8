//! The `understudy` binary.
fn main() {}
