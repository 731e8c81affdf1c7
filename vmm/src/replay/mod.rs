//! Replay: the same (scenario, seed, mutants, knobs) run again gives the
//! same event log in *replay form*. [`ReplayForm::of`] builds that form,
//! [`ReplayForm::first_difference`] names where two forms part, and
//! [`RunIdentity`] is the run's parameters, written into every event log
//! as one VMM note (so a saved `--events` file is all a replay needs).
//!
//! A run with the virtual clock (the default, `sim`) is compared whole
//! and strictly: every event in order with its sequence number and its
//! virtual time, interrupts in the merged stream, no collapsing and no
//! masking (only the identity note is compared as parsed, and the host's
//! TSC frequency in the `vm ready` note is masked). The rest of this doc
//! is the looser form kept for `--clock wall` runs.
//!
//! What is compared for a wall-clock run, and why (found by diffing
//! repeated runs' logs):
//! - Wall time never ([`nic_model::events::Event::canonical`] leaves `time_ns` out), nor
//!   sequence numbers (they shift when an interrupt lands elsewhere).
//! - `merged`: the whole timeline of every source **without device `irq`
//!   events**. Every other device event (register access, DMA, frame,
//!   violation) is caused synchronously by a guest register access, so
//!   its place among the guest's markers is fixed; an interrupt is raised
//!   by the device clock, which is wall time (vmm/src/nic.rs), so where it
//!   lands between two guest markers depends on host scheduling.
//! - `device`: the device's own stream in order, **with** its interrupts:
//!   how many interrupts, and between which DMAs, must repeat.
//! - Collapsed: consecutive identical MMIO reads (same offset, size and
//!   value) count once. A polling loop (reset wait, ring poll) reads the
//!   same register a number of times that depends on how long a wall-time
//!   device delay took; a read that returns a new value, or any access in
//!   between, is kept.
//! - Masked: numbers before ` us` / ` pps` in guest log and verdict texts
//!   (the guest reports its own wall-time measurements), and before ` kHz`
//!   in VMM notes (the host's TSC frequency).
//! - The identity note is compared as parsed, not as text: an older note
//!   without `backend=` equals one naming the scenario's backend, and a
//!   `pcap:` backend's file name is left out (a replay writes its frames
//!   to a scratch file, never over the saved run's capture; which file the
//!   frames went to changes no event).
//!
//! Not claimed: see [`NOT_CLAIMED`].
//!
//! Two files: `identity.rs` is the run's parameters and their note (what a
//! replay reruns), `form.rs` the log as replay compares it.

mod form;
mod identity;

pub use form::*;
pub use identity::*;

/// What replay does not promise, for users and the CLI.
pub const NOT_CLAIMED: &str = "Runs with the virtual clock (the default) replay whole: every event, \
interrupts and virtual times included. For --clock wall runs, not claimed: smp (two guest CPUs interleave their markers freely) \
and device behaviour driven by device timers alone (the dma-after-disable / irq-after-disable \
mutants' ghost timers, completion coalescing timeouts as in busy-ownership and napi-budget-zero, \
reset delays): those events race the guest \
in wall time, so such runs may differ without a bug.";

#[cfg(test)]
mod tests {
    use super::*;
    use nic_model::abi::{DeviceMutant, DriverMutant, Scenario, NUM_KNOBS};
    use nic_model::config::BackendConfig;
    use nic_model::events::{Event, EventKind, Source};
    use std::path::Path;

    use crate::sim::ClockMode;
    use crate::vm::RunOptions;

    fn ev(seq: u64, source: Source, kind: EventKind) -> Event {
        Event {
            seq,
            time_ns: seq * 7,
            source,
            kind,
        }
    }

    fn rd(v: u64) -> Event {
        ev(
            0,
            Source::Device,
            EventKind::MmioRead {
                offset: 8,
                value: v,
                size: 4,
            },
        )
    }

    /// Only repeated identical reads collapse; a changed value, a write or
    /// a guest marker in between keeps both; interrupts leave `merged`.
    #[test]
    fn replay_form_collapses_polls_only() {
        let wr = ev(
            0,
            Source::Device,
            EventKind::MmioWrite {
                offset: 0,
                value: 1,
                size: 4,
            },
        );
        let irq = ev(
            0,
            Source::Device,
            EventKind::Irq {
                vector: 0,
                masked: false,
            },
        );
        let f = ReplayForm::of(&[rd(1), rd(1), irq, rd(1), rd(2), rd(2), wr, rd(2)]);
        assert_eq!(f.device.len(), 5, "{:#?}", f.device); // rd1 irq rd2 wr rd2
        assert_eq!(f.merged.len(), 4, "{:#?}", f.merged);
        assert!(f.device.lines.iter().any(|l| l.contains("Irq")));
        assert!(!f.merged.lines.iter().any(|l| l.contains("Irq")));
        assert_eq!(
            mask_timings("64 received in 455032 us (140 pps), 0 open/stop cycles (0 us each)"),
            "64 received in N us (N pps), 0 open/stop cycles (N us each)"
        );
        assert_eq!(mask_timings("seed 7 frames 64"), "seed 7 frames 64");
    }

    #[test]
    fn first_difference_names_stream_index_and_seqs() {
        let dma = |addr| {
            ev(
                9,
                Source::Device,
                EventKind::Dma {
                    dir: nic_model::events::DmaDir::Read,
                    addr,
                    len: 16,
                    cause: "tx-desc".into(),
                },
            )
        };
        let a = ReplayForm::of(&[rd(1), rd(2), dma(0x1000), rd(3)]);
        let b = ReplayForm::of(&[rd(1), rd(2), dma(0x2000), rd(3)]);
        assert_eq!(a.first_difference(&a.clone()), None);
        let d = a.first_difference(&b).expect("differs");
        assert_eq!(
            (d.stream, d.index, d.context.len()),
            (StreamName::Merged, 2, 2)
        );
        assert_eq!(d.expected.seq, Some(9));
        assert!(
            d.expected
                .line
                .as_deref()
                .is_some_and(|l| l.contains("4096")),
            "{d}"
        );
        assert!(
            d.got.line.as_deref().is_some_and(|l| l.contains("8192")),
            "{d}"
        );
        // A shorter log ends early: the missing side says so.
        let c = ReplayForm::of(&[rd(1), rd(2)]);
        let d = a.first_difference(&c).expect("shorter");
        assert_eq!((d.index, d.got.line.clone()), (2, None));
        assert!(d.to_string().contains("<end of stream>"), "{d}");
        // Only the seq changed: still equal.
        let mut shifted = a.clone();
        shifted.merged.seqs.iter_mut().for_each(|s| *s += 5);
        assert_eq!(a, shifted);
    }

    #[test]
    fn identity_round_trips_and_rejects_garbage() {
        let mut knobs = [0; NUM_KNOBS];
        knobs[3] = 16;
        // The identity of real options: the scenario's set-up knobs merged in.
        let mut opts = RunOptions::for_scenario("g".into(), Scenario::Default, 42, &knobs);
        opts.driver_mutant = DriverMutant::NoUnmapAtStop;
        opts.device_mutant = DeviceMutant::ResetIgnored;
        let id = RunIdentity::of(&opts);
        assert_eq!(RunIdentity::parse(&id.note()).unwrap(), id);
        // The clock is in the note; a note without it is a wall-clock run.
        assert!(id.note().contains(" clock=virtual "), "{}", id.note());
        let old = RunIdentity::parse(&id.note().replace(" clock=virtual", "")).unwrap();
        assert_eq!(
            old,
            RunIdentity {
                clock: ClockMode::Wall,
                ..id.clone()
            }
        );
        assert!(RunIdentity::parse(&id.note().replace("clock=virtual", "clock=tsc")).is_err());
        let log = [
            ev(
                0,
                Source::Guest,
                EventKind::Note {
                    text: "run: scenario=nope".into(),
                },
            ),
            ev(1, Source::Vmm, EventKind::Note { text: id.note() }),
        ];
        assert_eq!(RunIdentity::find(&log).unwrap(), id);
        assert!(matches!(
            RunIdentity::find(&log[..1]),
            Err(ReplayError::NoIdentity)
        ));
        for bad in [
            id.note().replace("seed=42", "seed=x"),
            id.note().replace("scenario=default", "scenario=nope"),
            id.note().replace(",16,", ",16,,"),
            id.note().replace(" mutant=", " mutnat="),
        ] {
            let e = RunIdentity::parse(&bad).unwrap_err();
            assert!(matches!(e, ReplayError::BadIdentity { .. }), "{bad}: {e}");
        }
        let other = RunIdentity {
            ncpus: 9,
            ..id.clone()
        };
        assert!(matches!(
            other.options("g".into(), Path::new("s.pcap")),
            Err(ReplayError::Ncpus { file: 9, .. })
        ));
        let o = id.options("g".into(), Path::new("s.pcap")).unwrap();
        assert_eq!(
            (o.seed, o.device_mutant, o.knobs[3]),
            (42, DeviceMutant::ResetIgnored, 16)
        );
        assert_eq!(RunIdentity::of(&o), id);
    }

    /// The backend is in the note and comes back from it; a note without
    /// one (an older nicproof's) means the scenario's; a pcap run replays
    /// into the scratch file, and its file name is not compared.
    #[test]
    fn identity_carries_the_backend() {
        let mut opts = RunOptions::for_scenario("g".into(), Scenario::Default, 7, &[0; NUM_KNOBS]);
        let id = |o: &RunOptions| RunIdentity::of(o);
        assert_eq!(id(&opts).backend, BackendConfig::Loopback);
        assert!(
            id(&opts).note().ends_with(" backend=loopback"),
            "{}",
            id(&opts).note()
        );
        for b in [
            BackendConfig::Null,
            BackendConfig::Pcap("/tmp/my run backend=x.pcap".into()),
        ] {
            opts.nic.as_mut().unwrap().backend = b.clone();
            let i = id(&opts);
            assert_eq!(RunIdentity::parse(&i.note()).unwrap(), i, "{}", i.note());
            assert_eq!(parse_backend(&backend_text(&b)), Ok(b));
        }
        // The pcap run: the replay writes to the scratch file only.
        let pcap = id(&opts);
        let o = pcap
            .options("g".into(), Path::new("/scratch.pcap"))
            .unwrap();
        assert_eq!(
            o.nic.unwrap().backend,
            BackendConfig::Pcap("/scratch.pcap".into())
        );
        let note = |text: String| ev(0, Source::Vmm, EventKind::Note { text });
        let other_file = RunIdentity {
            backend: BackendConfig::Pcap("elsewhere.pcap".into()),
            ..pcap.clone()
        };
        assert_eq!(
            replay_line(&note(pcap.note())),
            replay_line(&note(other_file.note()))
        );
        let null = RunIdentity {
            backend: BackendConfig::Null,
            ..pcap.clone()
        };
        assert_ne!(
            replay_line(&note(pcap.note())),
            replay_line(&note(null.note()))
        );
        // An older note: the scenario's backend, and it compares equal to
        // the note naming it.
        let loopback = id(&RunOptions::for_scenario(
            "g".into(),
            Scenario::Default,
            7,
            &[0; NUM_KNOBS],
        ));
        let old = loopback.note().replace(" backend=loopback", "");
        assert!(
            RunIdentity::note_lacks_backend(&old)
                && !RunIdentity::note_lacks_backend(&loopback.note())
        );
        assert_eq!(RunIdentity::parse(&old).unwrap(), loopback);
        assert_eq!(replay_line(&note(old)), replay_line(&note(loopback.note())));
        for bad in ["tap", "pcap:", ""] {
            let e = RunIdentity::parse(&format!(
                "{} backend={bad}",
                loopback.note().replace(" backend=loopback", "")
            ))
            .unwrap_err();
            assert!(e.to_string().contains("backend:"), "{bad}: {e}");
        }
    }

    #[test]
    fn read_events_names_what_is_wrong() {
        let dir = std::env::temp_dir().join(format!("nicproof-replay-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("a.jsonl");
        let good = serde_json::to_string(&rd(5)).unwrap();
        std::fs::write(&p, format!("{good}\n\n{good}\n")).unwrap();
        assert_eq!(read_events(&p).unwrap(), vec![rd(5), rd(5)]);
        std::fs::write(&p, format!("{good}\n{{\"outcome\": \"passed\"}}\n")).unwrap();
        assert!(matches!(
            read_events(&p),
            Err(ReplayError::NotEvents { line: 2, .. })
        ));
        std::fs::write(&p, "\n").unwrap();
        assert!(matches!(read_events(&p), Err(ReplayError::Empty { .. })));
        assert!(matches!(
            read_events(&dir.join("missing")),
            Err(ReplayError::Read { .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn host_tsc_is_masked_in_notes() {
        let n = |t: &str| replay_line(&ev(0, Source::Vmm, EventKind::Note { text: t.into() }));
        assert_eq!(
            n("2 cpus, tsc 2400000 kHz, seed 3"),
            n("2 cpus, tsc 3100000 kHz, seed 3")
        );
        assert_ne!(n("seed 3"), n("seed 4"));
    }
}
