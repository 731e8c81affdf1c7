//! Compiles Linux's dql and queue helpers (csrc/upstream) with the
//! single-threaded shims (csrc/shim) into two static libraries: the
//! helpers as in a kernel with CONFIG_BQL (`ref_bql_*`) and without
//! (`ref_nobql_*`).

fn main() {
    println!("cargo:rerun-if-changed=csrc");
    let base = || {
        let mut b = cc::Build::new();
        b.include("csrc/shim")
            .include("csrc/upstream/include")
            .include("csrc/upstream")
            .flag_if_supported("-std=gnu11")
            .flag_if_supported("-fno-strict-aliasing")
            .flag_if_supported("-fno-strict-overflow")
            .warnings(false)
            .flag("-Wall")
            .flag_if_supported("-Wno-unused-function")
            .flag_if_supported("-Wno-unused-variable");
        b
    };
    base()
        .file("csrc/upstream/lib/dynamic_queue_limits.c")
        .file("csrc/shim.c")
        .compile("linuxref_dql");
    base()
        .file("csrc/glue.c")
        .define("CONFIG_BQL", "1")
        .define("REF_PREFIX", "ref_bql_")
        .compile("linuxref_bql");
    // The same glue a second time, as its own object.
    base()
        .file("csrc/glue.c")
        .define("REF_PREFIX", "ref_nobql_")
        .out_dir(out_sub("nobql"))
        .compile("linuxref_nobql");
    println!(
        "cargo:rustc-link-search=native={}",
        out_sub("nobql").display()
    );
}

fn out_sub(name: &str) -> std::path::PathBuf {
    let d = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap()).join(name);
    std::fs::create_dir_all(&d).unwrap();
    d
}
