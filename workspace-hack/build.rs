//! Empty: a package's `[build-dependencies]` are only resolved when it has a build script,
//! and this crate's are there to fix the features of the host-side crates.

fn main() {}
