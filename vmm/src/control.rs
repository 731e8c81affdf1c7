//! The paravirtual control port (`abi::control`): the guest reads its
//! RunConfig and sends typed 64-byte Records. Everything the guest hands
//! us is untrusted: addresses and lengths are bounds-checked against RAM
//! and a bad one becomes a recorded protocol error, never a host panic.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use nic_model::abi::{control, Marker, Record, RecordKind, RunConfig};
use nic_model::events::{EventKind, EventLog, Source};
use vm_device::bus::PioAddress;
use vm_device::MutDevicePio;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

/// Why the run ended, as seen by a vCPU thread or the control port.
#[derive(Clone, Debug, PartialEq)]
pub enum End {
    /// PowerOff record with this exit code.
    PowerOff(u64),
    /// Panic record.
    Panic {
        /// The panic message the guest sent.
        message: String,
        /// The guest source location, `file:line:col`.
        location: String,
    },
    /// Exception record.
    Exception {
        /// Exception vector.
        vector: u64,
        /// The error code the CPU pushed (0 for vectors without one).
        error_code: u64,
        /// Guest rip of the faulting instruction.
        rip: u64,
        /// cr2 at the exception (a page fault's address).
        cr2: u64,
        /// The vCPU that took it.
        cpu: u64,
    },
    /// KVM_EXIT_SHUTDOWN on a vCPU.
    TripleFault {
        /// The vCPU that shut down.
        cpu: u32,
        /// Its registers at the shutdown exit.
        regs: crate::outcome::RegsDump,
    },
    /// Something the host could not handle.
    HostError(String),
    /// The wall-clock limit passed.
    Timeout,
    /// The guest broke a host limit; the run fails with this reason.
    Failed(String),
    /// Deterministic mode: every vCPU idles with no deadline and no device
    /// timer is due: (cpu, rip of its idle request).
    Deadlock {
        /// (vCPU index, rip of its idle request) for every vCPU.
        cpus: Vec<(u32, u64)>,
    },
}

/// Called with every guest marker of a known kind, after it is in the
/// event log (so its sequence number is the log's last). This is how a
/// device's DMA monitor learns of stop-exit, dma-map and the like.
pub type MarkerHook = Box<dyn FnMut(Marker, &[u64]) + Send>;

/// The hooks a VM runs on markers; shared between the VM and its port.
pub type MarkerHooks = Arc<Mutex<Vec<MarkerHook>>>;

/// Most records one run may send. Every record lands in the in-memory
/// event log, so a guest looping on the doorbell must not exhaust host
/// memory before the timeout; real scenarios send far fewer.
pub const MAX_RECORDS: u64 = 1 << 21;

/// Messages from vCPU threads to the run controller.
#[derive(Debug)]
pub enum VmEvent {
    /// The run is over.
    End(End),
    /// The guest asked to start an application processor.
    StartCpu {
        /// Index of the vCPU to start.
        cpu: u64,
        /// Guest address where it begins executing.
        entry: u64,
        /// Its initial stack pointer.
        stack: u64,
    },
    /// An application processor reported in.
    CpuOnline(u64),
    /// The guest finished booting.
    Ready(Instant),
    /// The guest broke the protocol (the run cannot pass).
    ProtocolError(String),
}

/// Little-endian encoding of the shared repr(C) structs. Done field by
/// field so no unsafe byte view of a foreign type is needed; the tests
/// check the sizes against `size_of`.
pub fn encode_run_config(c: &RunConfig) -> Vec<u8> {
    let mut b = Vec::with_capacity(core::mem::size_of::<RunConfig>());
    for v in [c.magic, c.version, c.scenario, c.driver_mutant] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    b.extend_from_slice(&c.seed.to_le_bytes());
    b.extend_from_slice(&c.device_mutant.to_le_bytes());
    b.extend_from_slice(&c.ncpus.to_le_bytes());
    b.extend_from_slice(&c.tsc_khz.to_le_bytes());
    for k in c.knobs {
        b.extend_from_slice(&k.to_le_bytes());
    }
    b.extend_from_slice(&c.clock.to_le_bytes());
    b
}

/// Decode the 64-byte wire form of a [`Record`].
pub fn decode_record(b: &[u8; 64]) -> Record {
    let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap_or_default());
    let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap_or_default());
    let mut args = [0u64; 6];
    for (i, a) in args.iter_mut().enumerate() {
        *a = u64_at(16 + 8 * i);
    }
    Record {
        kind: u32_at(0),
        text_len: u32_at(4),
        text_ptr: u64_at(8),
        args,
    }
}

/// Read `len` bytes (capped at MAX_TEXT) of guest text at `ptr`, or say
/// why not. `ram_size` bounds the access: nothing outside RAM is read.
pub fn read_guest_text(
    mem: &GuestMemoryMmap,
    ram_size: u64,
    ptr: u64,
    len: u64,
) -> Result<String, String> {
    let len = len.min(u64::from(control::MAX_TEXT));
    if len == 0 {
        return Ok(String::new());
    }
    match ptr.checked_add(len) {
        Some(end) if end <= ram_size => {
            let mut buf = vec![0u8; len as usize];
            mem.read_slice(&mut buf, GuestAddress(ptr))
                .map_err(|e| format!("text at {ptr:#x}+{len}: {e}"))?;
            Ok(String::from_utf8_lossy(&buf).into_owned())
        }
        _ => Err(format!(
            "text pointer {ptr:#x}+{len} outside guest RAM ({ram_size:#x} bytes)"
        )),
    }
}

/// The control-port device (ports CONTROL_PORT..CONFIG_PORT+4).
pub struct ControlPort {
    mem: GuestMemoryMmap,
    ram_size: u64,
    config: RunConfig,
    events: EventLog,
    tx: Sender<VmEvent>,
    stop: Arc<AtomicBool>,
    records: u64,
    hooks: MarkerHooks,
    /// Deterministic mode's scheduler (learns of started CPUs).
    sim: Option<Arc<crate::sim::Sim>>,
}

impl ControlPort {
    /// A control port answering with `config`.
    pub fn new(
        mem: GuestMemoryMmap,
        ram_size: u64,
        config: RunConfig,
        events: EventLog,
        tx: Sender<VmEvent>,
        stop: Arc<AtomicBool>,
        hooks: MarkerHooks,
    ) -> Self {
        Self {
            mem,
            ram_size,
            config,
            events,
            tx,
            stop,
            records: 0,
            hooks,
            sim: None,
        }
    }

    /// Tell `sim` when the guest starts a CPU (deterministic mode).
    pub fn with_sim(mut self, sim: Option<Arc<crate::sim::Sim>>) -> Self {
        self.sim = sim;
        self
    }

    fn send(&self, e: VmEvent) {
        // The controller outlives every vCPU thread; a failed send only
        // means it already gave up on the run, so there is nobody to tell.
        let _ = self.tx.send(e);
    }

    fn end(&self, e: End) {
        // Set before the vCPU resumes: no vCPU re-enters the guest after a
        // terminal record.
        self.stop.store(true, Ordering::SeqCst);
        self.send(VmEvent::End(e));
    }

    fn protocol_error(&self, msg: String) {
        tracing::warn!("control port protocol error: {msg}");
        self.events.push(
            Source::Vmm,
            EventKind::Note {
                text: format!("protocol error: {msg}"),
            },
        );
        self.send(VmEvent::ProtocolError(msg));
    }

    fn note(&self, text: String) {
        self.events.push(Source::Guest, EventKind::Note { text });
    }

    fn write_config(&self, gpa: u64) {
        let bytes = encode_run_config(&self.config);
        match gpa.checked_add(bytes.len() as u64) {
            Some(end) if end <= self.ram_size => {
                if let Err(e) = self.mem.write_slice(&bytes, GuestAddress(gpa)) {
                    self.protocol_error(format!("config at {gpa:#x}: {e}"));
                }
            }
            _ => self.protocol_error(format!("config address {gpa:#x} outside guest RAM")),
        }
    }

    /// Read and act on the record at `gpa`.
    pub fn handle_record(&mut self, gpa: u64) {
        self.records += 1;
        if self.records > MAX_RECORDS {
            return self.end(End::Failed(format!(
                "the guest sent more than {MAX_RECORDS} records"
            )));
        }
        let mut raw = [0u8; 64];
        let in_ram = gpa.checked_add(64).is_some_and(|end| end <= self.ram_size);
        if !in_ram || self.mem.read_slice(&mut raw, GuestAddress(gpa)).is_err() {
            return self.protocol_error(format!("record address {gpa:#x} outside guest RAM"));
        }
        let r = decode_record(&raw);
        let text =
            match read_guest_text(&self.mem, self.ram_size, r.text_ptr, u64::from(r.text_len)) {
                Ok(t) => t,
                Err(e) => {
                    self.protocol_error(e);
                    String::from("<bad text pointer>")
                }
            };
        let a = r.args;
        let Some(kind) = RecordKind::from_u32(r.kind) else {
            return self.protocol_error(format!("unknown record kind {}", r.kind));
        };
        match kind {
            RecordKind::Log => {
                self.events.push(
                    Source::Guest,
                    EventKind::Log {
                        level: a[0].min(255) as u8,
                        text,
                    },
                );
            }
            RecordKind::Marker => {
                let known = u32::try_from(a[0]).ok().and_then(Marker::from_u32);
                let name = match known {
                    Some(m) => m.name().to_string(),
                    None => {
                        self.protocol_error(format!("unknown marker {}", a[0]));
                        format!("unknown-{}", a[0])
                    }
                };
                self.events.push(
                    Source::Guest,
                    EventKind::Marker {
                        marker: name,
                        args: a[1..].to_vec(),
                        text,
                        cpu: crate::vcpu::current_cpu(),
                    },
                );
                if let Some(m) = known {
                    for hook in self
                        .hooks
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .iter_mut()
                    {
                        hook(m, &a[1..]);
                    }
                }
            }
            RecordKind::Verdict => {
                self.events.push(
                    Source::Guest,
                    EventKind::Verdict {
                        pass: a[0] == 1,
                        text,
                    },
                );
            }
            RecordKind::Panic => {
                let file = read_guest_text(&self.mem, self.ram_size, a[2], a[3])
                    .unwrap_or_else(|_| "<bad file pointer>".into());
                let location = format!("{file}:{}:{}", a[0], a[1]);
                self.note(format!("panic at {location}: {text}"));
                self.end(End::Panic {
                    message: text,
                    location,
                });
            }
            RecordKind::Exception => {
                self.note(format!(
                    "exception vector {} error {:#x} rip {:#x} cr2 {:#x} cpu {}",
                    a[0], a[1], a[2], a[3], a[4]
                ));
                self.end(End::Exception {
                    vector: a[0],
                    error_code: a[1],
                    rip: a[2],
                    cr2: a[3],
                    cpu: a[4],
                });
            }
            RecordKind::PowerOff => {
                self.note(format!("power-off {}", a[0]));
                self.end(End::PowerOff(a[0]));
            }
            RecordKind::StartCpu => {
                self.note(format!(
                    "start-cpu {} entry {:#x} stack {:#x}",
                    a[0], a[1], a[2]
                ));
                if let Some(sim) = &self.sim {
                    sim.start_cpu(a[0]);
                }
                self.send(VmEvent::StartCpu {
                    cpu: a[0],
                    entry: a[1],
                    stack: a[2],
                });
            }
            RecordKind::CpuOnline => {
                self.note(format!("cpu-online {}", a[0]));
                self.send(VmEvent::CpuOnline(a[0]));
            }
            RecordKind::Ready => {
                self.note("ready".into());
                self.send(VmEvent::Ready(Instant::now()));
            }
        }
    }
}

fn port_u32(data: &[u8]) -> Option<u32> {
    Some(u32::from_le_bytes(data.try_into().ok()?))
}

impl MutDevicePio for ControlPort {
    fn pio_read(&mut self, _base: PioAddress, offset: u16, data: &mut [u8]) {
        if offset == 0 && data.len() == 4 {
            data.copy_from_slice(&control::CONTROL_MAGIC.to_le_bytes());
        } else {
            data.fill(0xff);
        }
    }

    fn pio_write(&mut self, _base: PioAddress, offset: u16, data: &[u8]) {
        let Some(gpa) = port_u32(data).map(u64::from) else {
            return self.protocol_error(format!(
                "{}-byte write to control port +{offset}; use 32-bit out",
                data.len()
            ));
        };
        match offset {
            0 => self.handle_record(gpa),
            4 => self.write_config(gpa),
            _ => self.protocol_error(format!("write to control port +{offset}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nic_model::events::Event;
    use std::sync::mpsc;

    const RAM: u64 = 0x10_0000;

    fn port() -> (ControlPort, mpsc::Receiver<VmEvent>, EventLog) {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), RAM as usize)]).unwrap();
        let (tx, rx) = mpsc::channel();
        let log = EventLog::new();
        let cfg = RunConfig {
            magic: control::CONTROL_MAGIC,
            seed: 42,
            ..Default::default()
        };
        (
            ControlPort::new(
                mem,
                RAM,
                cfg,
                log.clone(),
                tx,
                Arc::new(AtomicBool::new(false)),
                MarkerHooks::default(),
            ),
            rx,
            log,
        )
    }

    fn put_record(p: &ControlPort, gpa: u64, kind: u32, text: Option<(u64, &str)>, args: [u64; 6]) {
        let mut b = Vec::new();
        b.extend_from_slice(&kind.to_le_bytes());
        let (ptr, len) = match text {
            Some((ptr, s)) => {
                p.mem.write_slice(s.as_bytes(), GuestAddress(ptr)).unwrap();
                (ptr, s.len() as u32)
            }
            None => (0, 0),
        };
        b.extend_from_slice(&len.to_le_bytes());
        b.extend_from_slice(&ptr.to_le_bytes());
        for a in args {
            b.extend_from_slice(&a.to_le_bytes());
        }
        p.mem.write_slice(&b, GuestAddress(gpa)).unwrap();
    }

    fn write(p: &mut ControlPort, off: u16, v: u32) {
        p.pio_write(PioAddress(control::CONTROL_PORT), off, &v.to_le_bytes());
    }

    #[test]
    fn wire_sizes_match_the_repr_c_structs() {
        assert_eq!(
            encode_run_config(&RunConfig::default()).len(),
            core::mem::size_of::<RunConfig>()
        );
        assert_eq!(core::mem::size_of::<Record>(), 64);
    }

    #[test]
    fn magic_config_and_log_record_round_trip() {
        let (mut p, _rx, log) = port();
        let mut m = [0u8; 4];
        p.pio_read(PioAddress(control::CONTROL_PORT), 0, &mut m);
        assert_eq!(u32::from_le_bytes(m), control::CONTROL_MAGIC);
        write(&mut p, 4, 0x1000);
        let seed: u64 = p.mem.read_obj(GuestAddress(0x1000 + 16)).unwrap();
        assert_eq!(seed, 42);
        put_record(
            &p,
            0x2000,
            RecordKind::Log as u32,
            Some((0x3000, "hello")),
            [3, 0, 0, 0, 0, 0],
        );
        write(&mut p, 0, 0x2000);
        let ev: Vec<Event> = log.snapshot();
        assert_eq!(
            ev[0].kind,
            EventKind::Log {
                level: 3,
                text: "hello".into()
            }
        );
    }

    #[test]
    fn bad_pointers_are_protocol_errors_not_panics() {
        let (mut p, rx, log) = port();
        // Record beyond RAM, record straddling the end, config beyond RAM.
        write(&mut p, 0, u32::MAX);
        write(&mut p, 0, (RAM - 32) as u32);
        write(&mut p, 4, (RAM - 8) as u32);
        // Text pointer wrapping around and beyond RAM, with a huge length.
        put_record(&p, 0x2000, RecordKind::Log as u32, None, [1, 0, 0, 0, 0, 0]);
        p.mem.write_obj(u32::MAX, GuestAddress(0x2004)).unwrap();
        p.mem.write_obj(u64::MAX - 4, GuestAddress(0x2008)).unwrap();
        write(&mut p, 0, 0x2000);
        // Unknown kind, narrow write.
        put_record(&p, 0x2100, 999, None, [0; 6]);
        write(&mut p, 0, 0x2100);
        p.pio_write(PioAddress(control::CONTROL_PORT), 0, &[1]);
        let errors = rx
            .try_iter()
            .filter(|e| matches!(e, VmEvent::ProtocolError(_)))
            .count();
        assert_eq!(errors, 6);
        // The bad-text log record is still logged, with a placeholder.
        assert!(log.snapshot().iter().any(|e| e.kind
            == EventKind::Log {
                level: 1,
                text: "<bad text pointer>".into()
            }));
    }

    #[test]
    fn text_is_capped_at_max_text() {
        let (p, _rx, _log) = port();
        let t = read_guest_text(&p.mem, RAM, 0, 1 << 20).unwrap();
        assert_eq!(t.len(), control::MAX_TEXT as usize);
    }

    #[test]
    fn terminal_records_stop_the_vm() {
        let (mut p, rx, _log) = port();
        put_record(
            &p,
            0x2000,
            RecordKind::Panic as u32,
            Some((0x3000, "boom")),
            [12, 5, 0x3100, 7, 0, 0],
        );
        p.mem.write_slice(b"main.rs", GuestAddress(0x3100)).unwrap();
        write(&mut p, 0, 0x2000);
        assert!(p.stop.load(Ordering::SeqCst));
        match rx.try_recv().unwrap() {
            VmEvent::End(End::Panic { message, location }) => {
                assert_eq!(message, "boom");
                assert_eq!(location, "main.rs:12:5");
            }
            e => panic!("unexpected {e:?}"),
        }
    }

    #[test]
    fn a_record_flood_ends_the_run_as_failed() {
        let (mut p, rx, log) = port();
        put_record(&p, 0x2000, RecordKind::Log as u32, None, [1, 0, 0, 0, 0, 0]);
        p.records = MAX_RECORDS - 1;
        write(&mut p, 0, 0x2000);
        assert!(!p.stop.load(Ordering::SeqCst));
        write(&mut p, 0, 0x2000);
        assert!(p.stop.load(Ordering::SeqCst));
        assert_eq!(log.len(), 1, "the record over the limit is not logged");
        assert!(rx
            .try_iter()
            .any(|e| matches!(e, VmEvent::End(End::Failed(_)))));
    }

    #[test]
    fn marker_hooks_see_known_markers_after_they_are_logged() {
        let (mut p, _rx, log) = port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (s2, l2) = (seen.clone(), log.clone());
        p.hooks.lock().unwrap().push(Box::new(move |m, args| {
            s2.lock().unwrap().push((m, args.to_vec(), l2.len()));
        }));
        put_record(
            &p,
            0x2000,
            RecordKind::Marker as u32,
            None,
            [Marker::StopExit as u64, 9, 0, 0, 0, 0],
        );
        write(&mut p, 0, 0x2000);
        put_record(
            &p,
            0x2000,
            RecordKind::Marker as u32,
            None,
            [999, 0, 0, 0, 0, 0],
        );
        write(&mut p, 0, 0x2000);
        let seen = seen.lock().unwrap();
        assert_eq!(*seen, vec![(Marker::StopExit, vec![9, 0, 0, 0, 0], 1)]);
    }
}
