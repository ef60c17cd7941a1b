//! # eerp-guest-build: compile guest crates to wasm from a build script
//!
//! The platform embeds its modules and the test suite its hostile fixture module, so
//! building either must first build those crates for `wasm32-unknown-unknown`. This crate
//! does that from a `build.rs`, so no user can forget a step: it adds the wasm target with
//! `rustup` when it is missing, runs a nested `cargo build` into its own target directory
//! (`target/guests`, so it never waits on the outer build's lock), and copies the `.wasm`
//! into `OUT_DIR`.
//!
//! It must never be used outside build scripts: it reads cargo's build-script environment
//! and panics with an explanation when something is wrong, which is how a build script
//! reports errors.
//!
//! ```no_run
//! // build.rs
//! let wasm = eerp_guest_build::build("eerp-crm", "modules/crm");
//! println!("cargo:rustc-env=EERP_CRM_WASM={}", wasm.display());
//! ```

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-unknown-unknown";
const PROFILE: &str = "wasm-guest";

/// Builds `package` (whose crate lives at `crate_dir`, relative to the workspace root) for
/// wasm and returns the path of its `.wasm` copy in `OUT_DIR`.
///
/// # Panics
/// When the wasm target cannot be installed or the guest does not compile; the message
/// says what to do.
pub fn build(package: &str, crate_dir: &str) -> PathBuf {
    let root = workspace_root();
    for watched in [
        "modules/abi",
        "modules/sdk",
        crate_dir,
        "Cargo.toml",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    ensure_wasm_target();
    let target_dir = root.join("target").join("guests");
    let status = nested_cargo()
        .args([
            "build",
            "--quiet",
            "--target",
            TARGET,
            "--profile",
            PROFILE,
            "-p",
            package,
        ])
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        .status()
        .unwrap_or_else(|e| panic!("could not run cargo to build guest `{package}`: {e}"));
    assert!(
        status.success(),
        "building guest `{package}` for {TARGET} failed (see the errors above)"
    );
    let file = format!("{}.wasm", package.replace('-', "_"));
    let built = target_dir.join(TARGET).join(PROFILE).join(&file);
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR for build scripts"));
    let copy = out.join(&file);
    std::fs::copy(&built, &copy).unwrap_or_else(|e| {
        panic!(
            "guest `{package}` built but {} is missing: {e}",
            built.display()
        )
    });
    copy
}

/// The workspace root: the nearest ancestor of the calling crate with a `Cargo.lock`.
fn workspace_root() -> PathBuf {
    let manifest_dir =
        env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR for build scripts");
    Path::new(&manifest_dir)
        .ancestors()
        .find(|dir| dir.join("Cargo.lock").exists())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(manifest_dir))
}

/// A `cargo` command that does not inherit what the outer build set for itself.
fn nested_cargo() -> Command {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CLIPPY_ARGS",
        "CARGO_PRIMARY_PACKAGE",
        "RUSTFLAGS",
    ] {
        command.env_remove(var);
    }
    command
}

/// Adds the wasm target through rustup when the toolchain lacks it.
fn ensure_wasm_target() {
    if wasm_target_installed() {
        return;
    }
    println!("cargo:warning=installing the {TARGET} target with rustup (first build only)");
    let status = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status();
    match status {
        Ok(s) if s.success() && wasm_target_installed() => {}
        _ => panic!(
            "the {TARGET} Rust target is missing and `rustup target add {TARGET}` did not \
             install it; install it with your toolchain manager and build again"
        ),
    }
}

fn wasm_target_installed() -> bool {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let Ok(output) = Command::new(rustc).args(["--print", "sysroot"]).output() else {
        return false;
    };
    let sysroot = String::from_utf8_lossy(&output.stdout).trim().to_string();
    Path::new(&sysroot)
        .join("lib/rustlib")
        .join(TARGET)
        .join("lib")
        .is_dir()
}
