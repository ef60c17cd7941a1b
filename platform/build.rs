//! Builds the business modules for wasm so the `eerp` binary embeds them.

fn main() {
    let crm = eerp_guest_build::build("eerp-crm", "modules/crm");
    println!("cargo:rustc-env=EERP_CRM_WASM={}", crm.display());
    let inventory = eerp_guest_build::build("eerp-inventory", "modules/inventory");
    println!(
        "cargo:rustc-env=EERP_INVENTORY_WASM={}",
        inventory.display()
    );
}
