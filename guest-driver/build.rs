//! Link-time placement for the guest kernel (x86_64-unknown-none only).
//!
//! The interrupt stubs get a fixed address so the IDT can be a constant
//! in the image instead of a 256-entry loop at boot (about 2 ms of
//! emulated instructions on this machine's KVM). The address must match
//! `ISR_STUBS_BASE` in src/arch/x86_64/entry.rs; the kernel checks it at
//! boot, and lld refuses to link if the image grows into it.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        println!("cargo:rustc-link-arg-bins=--section-start=.nicproof_isr=0x201000");
    }
}
