//! The `dastra-connect` binary.
fn main() {}
