//! Builds the hostile test guest for wasm so the tests can load it.

fn main() {
    let hostile = eerp_guest_build::build("eerp-guest-hostile", "tests/guests/hostile");
    println!("cargo:rustc-env=EERP_HOSTILE_WASM={}", hostile.display());
}
