//! Builds the test guests for wasm so the tests can load them.

fn main() {
    let hostile = eerp_guest_build::build("eerp-guest-hostile", "tests/guests/hostile");
    println!("cargo:rustc-env=EERP_HOSTILE_WASM={}", hostile.display());
    let seed = eerp_guest_build::build("eerp-guest-seed", "tests/guests/seed");
    println!("cargo:rustc-env=EERP_SEED_WASM={}", seed.display());
}
