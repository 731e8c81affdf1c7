//! Helpers for the end-to-end tests: find and run the `nicproof` binary,
//! and build tiny hand-assembled ELF guests that exercise the VMM without
//! the real guest kernel.
//!
//! Environment: `NICPROOF_BIN` (the binary; default: build it with the
//! running cargo into this test's target dir) and `NICPROOF_GUEST` (the
//! guest image; default `images/nicproof-guest` in the workspace). The
//! Makefile sets both. Nothing here skips a test: a missing /dev/kvm or
//! image makes the run report a host error and the test fails with it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use nic_model::abi::{control, Marker, RecordKind};
use serde_json::Value;

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The `nicproof` binary: `$NICPROOF_BIN`, or built now with the cargo
/// that runs the tests (once per test process).
pub fn nicproof_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("NICPROOF_BIN") {
            return PathBuf::from(p);
        }
        // target/<profile>/deps/<test exe> -> target/<profile>/nicproof
        let exe = std::env::current_exe().expect("current_exe");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("test exe lives in target/<profile>/deps");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(workspace())
            .args(["build", "-q", "-p", "vmm", "--bin", "nicproof"]);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        if let Some(target) = profile_dir.parent() {
            cmd.env("CARGO_TARGET_DIR", target);
        }
        let st = cmd.status().expect("running cargo build for nicproof");
        assert!(
            st.success(),
            "building nicproof failed; set NICPROOF_BIN or run `make test`"
        );
        profile_dir.join("nicproof")
    })
    .clone()
}

/// The real guest image: `$NICPROOF_GUEST` or `images/nicproof-guest`.
pub fn guest_image() -> PathBuf {
    let p = std::env::var_os("NICPROOF_GUEST")
        .map_or_else(|| workspace().join("images/nicproof-guest"), PathBuf::from);
    assert!(
        p.exists(),
        "guest image {} missing: run `make guest` (or set NICPROOF_GUEST)",
        p.display()
    );
    p
}

/// What one `nicproof run` produced.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub report: Value,
    pub stdout: String,
    pub stderr: String,
    /// Event log (JSON lines parsed).
    pub events: Vec<Value>,
}

impl Run {
    /// The outcome name ("passed", "timeout", ...).
    pub fn outcome(&self) -> &str {
        self.report["outcome"].as_str().unwrap_or("<no report>")
    }

    /// Guest markers with this name.
    pub fn markers(&self, name: &str) -> Vec<&Value> {
        self.events
            .iter()
            .filter(|e| e["event"] == "marker" && e["marker"] == name)
            .collect()
    }

    /// Notes containing `text`.
    pub fn notes(&self, text: &str) -> usize {
        self.events
            .iter()
            .filter(|e| {
                e["event"] == "note" && e["text"].as_str().is_some_and(|t| t.contains(text))
            })
            .count()
    }
}

/// `nicproof run` arguments for a short `default` run whose frames cannot
/// come back (`backend` is `null` or `pcap:FILE`): 4 frames, and a 1 s wait
/// for them instead of the scenario's 10 s.
pub fn no_rx_args(backend: &str) -> [&str; 8] {
    [
        "--scenario",
        "default",
        "--knob",
        "frames=4",
        "--knob",
        "deadline-ms=1000",
        "--backend",
        backend,
    ]
}

/// Run `nicproof run <args> --quiet --json .. --events ..` with `guest`.
pub fn run(guest: &Path, args: &[&str]) -> Run {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("nicproof-test-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (json, events) = (dir.join("report.json"), dir.join("events.jsonl"));
    let out = Command::new(nicproof_bin())
        .arg("run")
        .arg("--guest")
        .arg(guest)
        .args(["--quiet", "--json"])
        .arg(&json)
        .arg("--events")
        .arg(&events)
        .args(args)
        .output()
        .expect("spawning nicproof");
    let report = std::fs::read_to_string(&json)
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or(Value::Null);
    let events = std::fs::read_to_string(&events)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    let r = Run {
        code: out.status.code().unwrap_or(-1),
        report,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        events,
    };
    if r.report["outcome"] == "host-error" {
        // Surface the reason (e.g. no /dev/kvm) in every failing assertion.
        eprintln!("host error: {}", r.report["message"]);
    }
    r
}

/// `nicproof ARGS --guest IMAGE` with the real guest, run to its end.
pub fn nicproof_with_guest(args: &[&str]) -> std::process::Output {
    Command::new(nicproof_bin())
        .args(args)
        .arg("--guest")
        .arg(guest_image())
        .output()
        .expect("spawning nicproof")
}

/// The real guest's `boot` scenario with bad-guest switch `kind`
/// (`nicproof list` names them) and `extra` arguments (a `--timeout`
/// among them).
pub fn bad_guest(kind: &str, extra: &[&str]) -> Run {
    run(
        &guest_image(),
        &[&["--scenario", "boot", "--bad-guest", kind], extra].concat(),
    )
}

// ---------------------------------------------------------------------------
// Tiny guests.
// ---------------------------------------------------------------------------

/// Load address and entry of tiny guests (above 1 MiB, as linux-loader wants).
pub const TINY_BASE: u64 = 0x20_0000;
/// Where tiny guests keep their records (64 bytes each).
pub const TINY_RECORDS: u64 = TINY_BASE + 0x1000;
/// Where tiny guests ask for the RunConfig.
pub const TINY_CONFIG: u64 = TINY_BASE + 0x2000;
/// A flag byte the AP sets.
pub const TINY_FLAG: u64 = TINY_BASE + 0x2800;

/// A minimal x86-64 ELF64 EXEC with one RWX PT_LOAD at [`TINY_BASE`]:
/// `code` at the start, `records` at [`TINY_RECORDS`].
pub fn tiny_elf(code: &[u8], records: &[[u8; 64]]) -> Vec<u8> {
    let mut seg = code.to_vec();
    assert!(seg.len() <= 0x1000);
    seg.resize(0x1000, 0xcc);
    for r in records {
        seg.extend_from_slice(r);
    }
    let mut e = Vec::new();
    e.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    e.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    e.extend_from_slice(&0x3eu16.to_le_bytes()); // x86-64
    e.extend_from_slice(&1u32.to_le_bytes());
    e.extend_from_slice(&TINY_BASE.to_le_bytes()); // entry
    e.extend_from_slice(&64u64.to_le_bytes()); // phoff
    e.extend_from_slice(&0u64.to_le_bytes()); // shoff
    e.extend_from_slice(&0u32.to_le_bytes()); // flags
    for v in [64u16, 56, 1, 64, 0, 0] {
        e.extend_from_slice(&v.to_le_bytes()); // ehsize phentsize phnum shentsize shnum shstrndx
    }
    e.extend_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    e.extend_from_slice(&7u32.to_le_bytes()); // RWX
    for v in [
        0x1000u64,
        TINY_BASE,
        TINY_BASE,
        seg.len() as u64,
        0x3000,
        0x1000,
    ] {
        e.extend_from_slice(&v.to_le_bytes()); // offset vaddr paddr filesz memsz align
    }
    e.resize(0x1000, 0);
    e.extend_from_slice(&seg);
    e
}

/// A record's wire form.
pub fn record(kind: RecordKind, text: Option<(u64, u32)>, args: [u64; 6]) -> [u8; 64] {
    let mut r = [0u8; 64];
    r[0..4].copy_from_slice(&(kind as u32).to_le_bytes());
    let (ptr, len) = text.unwrap_or((0, 0));
    r[4..8].copy_from_slice(&len.to_le_bytes());
    r[8..16].copy_from_slice(&ptr.to_le_bytes());
    for (i, a) in args.iter().enumerate() {
        r[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_le_bytes());
    }
    r
}

/// The records of a tiny guest that reports `marker` (record 0, its
/// arguments stored by the guest's code), passes (1) and powers off (2):
/// see [`Asm::send_records`].
pub fn marker_then_pass(marker: Marker) -> [[u8; 64]; 3] {
    [
        record(RecordKind::Marker, None, [marker as u64, 0, 0, 0, 0, 0]),
        record(RecordKind::Verdict, None, [1, 0, 0, 0, 0, 0]),
        record(RecordKind::PowerOff, None, [0; 6]),
    ]
}

/// A tiny x86-64 assembler: only the instructions the tiny guests need.
#[derive(Default)]
pub struct Asm(pub Vec<u8>);

impl Asm {
    fn d32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// `mov dx, port; mov eax, value; out dx, eax`
    pub fn out32(&mut self, port: u16, value: u32) -> &mut Self {
        self.0.extend_from_slice(&[0x66, 0xba]);
        self.0.extend_from_slice(&port.to_le_bytes());
        self.0.push(0xb8);
        self.d32(value);
        self.0.push(0xef);
        self
    }
    /// Send the record at index `i` of the records area.
    pub fn send(&mut self, i: u32) -> &mut Self {
        self.out32(
            control::CONTROL_PORT,
            (TINY_RECORDS + 64 * u64::from(i)) as u32,
        )
    }
    /// Send records 0..n in order.
    pub fn send_records(&mut self, n: u32) -> &mut Self {
        for i in 0..n {
            self.send(i);
        }
        self
    }
    /// `mov dx, port; in eax, dx`
    pub fn in32(&mut self, port: u16) -> &mut Self {
        self.0.extend_from_slice(&[0x66, 0xba]);
        self.0.extend_from_slice(&port.to_le_bytes());
        self.0.push(0xed);
        self
    }
    /// `mov rax, [addr]; mov [dst], rax`
    pub fn copy64(&mut self, src: u32, dst: u32) -> &mut Self {
        self.0.extend_from_slice(&[0x48, 0x8b, 0x04, 0x25]);
        self.d32(src);
        self.0.extend_from_slice(&[0x48, 0x89, 0x04, 0x25]);
        self.d32(dst)
    }
    /// `mov [addr], eax`
    pub fn store_eax(&mut self, addr: u32) -> &mut Self {
        self.0.extend_from_slice(&[0x89, 0x04, 0x25]);
        self.d32(addr)
    }
    /// `mov rbx, addr; mov eax, [rbx]` (any 64-bit address, e.g. MMIO).
    pub fn load32(&mut self, addr: u64) -> &mut Self {
        self.0.extend_from_slice(&[0x48, 0xbb]);
        self.0.extend_from_slice(&addr.to_le_bytes());
        self.0.extend_from_slice(&[0x8b, 0x03]);
        self
    }
    /// `mov byte [addr], v`
    pub fn store8(&mut self, addr: u32, v: u8) -> &mut Self {
        self.0.extend_from_slice(&[0xc6, 0x04, 0x25]);
        self.d32(addr);
        self.0.push(v);
        self
    }
    /// Spin until the byte at `addr` is non-zero: `cmp byte [addr], 0; je back`.
    pub fn wait8(&mut self, addr: u32) -> &mut Self {
        self.0.extend_from_slice(&[0x80, 0x3c, 0x25]);
        self.d32(addr);
        self.0.extend_from_slice(&[0x00, 0x74, 0xf6]); // je -10 (back to the cmp)
        self
    }
    /// `test rsi, rsi; jnz +rel32` (rsi = cpu index at entry).
    pub fn jump_if_ap(&mut self, rel: i32) -> &mut Self {
        self.0.extend_from_slice(&[0x48, 0x85, 0xf6, 0x0f, 0x85]);
        self.0.extend_from_slice(&rel.to_le_bytes());
        self
    }
    /// `ud2`
    pub fn ud2(&mut self) -> &mut Self {
        self.0.extend_from_slice(&[0x0f, 0x0b]);
        self
    }
    /// `cli; hlt; jmp back`
    pub fn halt(&mut self) -> &mut Self {
        self.0.extend_from_slice(&[0xfa, 0xf4, 0xeb, 0xfc]);
        self
    }
    /// `jmp $`
    pub fn spin(&mut self) -> &mut Self {
        self.0.extend_from_slice(&[0xeb, 0xfe]);
        self
    }
}

/// Write a tiny guest to a temp file and return its path.
pub fn write_guest(name: &str, elf: &[u8]) -> PathBuf {
    let p = std::env::temp_dir().join(format!("nicproof-tiny-{}-{name}.elf", std::process::id()));
    std::fs::write(&p, elf).expect("writing tiny guest");
    p
}

/// A marker's numeric arguments in a `--json` report's marker list.
pub fn args_of(m: &Value) -> Vec<u64> {
    m["args"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default()
}

/// `nicproof run --scenario SCENARIO --seed 3 EXTRA...` with the real
/// guest, asserted to pass (the scenario tests then check the pass was
/// not vacuous).
pub fn passed(scenario: &str, extra: &[&str]) -> Run {
    let r = run(
        &guest_image(),
        &[&["--scenario", scenario, "--seed", "3"], extra].concat(),
    );
    assert_eq!(
        r.outcome(),
        "passed",
        "{scenario} {extra:?}: {}\n{}",
        r.stdout,
        r.stderr
    );
    r
}
