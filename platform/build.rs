//! Builds the business modules for wasm so the `eerp` binary embeds them
//! (`registry::BUILTIN_MODULES` includes each by its environment variable).

fn main() {
    for (package, dir, variable) in [
        ("eerp-crm", "modules/crm", "EERP_CRM_WASM"),
        ("eerp-inventory", "modules/inventory", "EERP_INVENTORY_WASM"),
        (
            "eerp-accounting",
            "modules/accounting",
            "EERP_ACCOUNTING_WASM",
        ),
        ("eerp-hr", "modules/hr", "EERP_HR_WASM"),
    ] {
        let wasm = eerp_guest_build::build(package, dir);
        println!("cargo:rustc-env={variable}={}", wasm.display());
    }
}
