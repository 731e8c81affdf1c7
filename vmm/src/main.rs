//! `nicproof`: the binary edge (anyhow errors, exit codes, files).

mod cli;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use cli::{Cli, Command, HostError};
use vmm::outcome::EXIT_USAGE;

/// The exit code of a host error, as a run's `host-error` outcome.
const EXIT_HOST_ERROR: i32 = 6;

/// The JSON report: the report's fields plus the table of checks (an
/// extra key, so readers of `Report` parse it unchanged).
#[derive(serde::Serialize)]
struct JsonReport<'a> {
    #[serde(flatten)]
    report: &'a vmm::outcome::Report,
    checks: &'a [vmm::checks::Check],
    /// The process exit code of the run.
    exit_code: i32,
}

/// Write `path` in full with `fill`, or fail as a host error naming it
/// (a `BufWriter` dropped unflushed would lose its error).
fn write_file(
    path: &Path,
    fill: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> Result<(), HostError> {
    let fail = |source| HostError::Output {
        path: path.to_path_buf(),
        source,
    };
    let mut w = BufWriter::new(File::create(path).map_err(fail)?);
    fill(&mut w).map_err(fail)?;
    w.into_inner()
        .map_err(|e| fail(e.into_error()))?
        .sync_data()
        .or_else(ignore_unsyncable)
        .map_err(fail)
}

/// `sync_data` on a pipe or character device is not an error.
fn ignore_unsyncable(e: std::io::Error) -> std::io::Result<()> {
    if e.raw_os_error() == Some(libc::EINVAL) {
        Ok(())
    } else {
        Err(e)
    }
}

fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<(), HostError> {
    write_file(path, |w| {
        serde_json::to_writer_pretty(&mut *w, value).map_err(std::io::Error::from)
    })
}

/// Large machine-read files (the timeline) are written without indentation.
fn write_compact_json(path: &Path, value: &impl serde::Serialize) -> Result<(), HostError> {
    write_file(path, |w| {
        serde_json::to_writer(&mut *w, value).map_err(std::io::Error::from)
    })
}

fn write_outputs(args: &cli::RunArgs, res: &vmm::RunResult) -> Result<(), HostError> {
    if let Some(path) = &args.json {
        let j = JsonReport {
            report: &res.report,
            checks: &res.checks,
            exit_code: res.report.outcome.exit_code(),
        };
        write_json(path, &j)?;
    }
    if let Some(path) = &args.events {
        // A run that never started has no events: leave no empty file.
        let never_ran = res.events.is_empty()
            && matches!(
                res.report.outcome,
                vmm::outcome::Outcome::HostError { .. }
                    | vmm::outcome::Outcome::GdbCannotListen { .. }
            );
        if !never_ran {
            write_events(path, &res.events)?;
        }
    }
    if let Some(path) = &args.perfetto {
        write_compact_json(path, &vmm::perfetto::trace(&res.events))?;
    }
    Ok(())
}

/// Print to stdout; a closed pipe (e.g. `| head`) must not turn a verdict
/// into a panic, and the exit code still carries the outcome.
fn out(args: std::fmt::Arguments<'_>) {
    let _ = std::io::stdout().write_fmt(args);
}

fn real_main(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::List => {
            out(format_args!("{}", cli::list()));
            Ok(0)
        }
        Command::Run(args) => {
            let opts = args.options()?;
            let res = vmm::run(&opts);
            out(format_args!("{}\n", res.report));
            out(format_args!("{}", vmm::checks::render(&res.checks)));
            write_outputs(&args, &res)?;
            Ok(res.report.outcome.exit_code())
        }
        Command::Matrix(args) => matrix(args),
        Command::Replay(args) => replay(&args),
        Command::Explain(args) => explain(&args),
        Command::Bench(args) if args.net => net_bench(&args),
        Command::Bench(args) => {
            let opts = args.options()?;
            let mut stats = Vec::new();
            for i in 0..args.runs {
                let res = vmm::run(&opts);
                if res.report.outcome.exit_code() != 0 {
                    out(format_args!("run {i} did not pass:\n{}\n", res.report));
                    return Ok(res.report.outcome.exit_code());
                }
                stats.push(res.report.stats);
            }
            out(format_args!(
                "scenario {}, guest {}\n",
                args.scenario,
                opts.guest.display()
            ));
            out(format_args!("{}", vmm::bench::table(&stats)));
            Ok(0)
        }
    }
}

/// `nicproof bench --net`: every repetition runs the five configurations
/// back to back, once per (clock, privilege level) compared
/// (`--compare-clocks`: wall then virtual; `--compare-cpl`: CPL0 then
/// CPL3), interleaved run by run so that load on the machine hits them
/// alike; a run that does not pass ends the bench with its report.
fn net_bench(args: &cli::BenchArgs) -> Result<i32> {
    use vmm::sim::ClockMode;
    let clocks: Vec<Option<ClockMode>> = if args.compare_clocks {
        vec![Some(ClockMode::Wall), Some(ClockMode::Virtual)]
    } else {
        vec![None]
    };
    let levels: Vec<Option<u64>> = if args.compare_cpl {
        vec![Some(0), Some(3)]
    } else {
        vec![None]
    };
    // (clock, level) configurations, clock-major: index = clock * levels + level.
    let mut configs = Vec::new();
    for clock in &clocks {
        for cpl in &levels {
            let (plan, runs) = args.net_options(*cpl)?;
            configs.push((*clock, *cpl, plan, runs));
        }
    }
    let plan = configs[0].2;
    let mut figs: Vec<Vec<vmm::bench::NetFigures>> = vec![Vec::new(); configs.len()];
    for rep in 0..args.runs {
        let mut samples: Vec<Vec<vmm::bench::NetSample>> = vec![Vec::new(); configs.len()];
        for run in 0..configs[0].3.len() {
            for (c, (clock, _, _, runs)) in configs.iter().enumerate() {
                let (name, opts) = &runs[run];
                let mut opts = opts.clone();
                if let Some(clock) = clock {
                    opts.clock = *clock;
                }
                let res = vmm::run(&opts);
                if res.report.outcome.exit_code() != 0 {
                    out(format_args!(
                        "repetition {rep}, run {name} did not pass:\n{}\n",
                        res.report
                    ));
                    return Ok(res.report.outcome.exit_code());
                }
                let verdict = res
                    .events
                    .iter()
                    .rev()
                    .find_map(|e| match &e.kind {
                        nic_model::events::EventKind::Verdict { text, .. } => Some(text.clone()),
                        _ => None,
                    })
                    .unwrap_or_default();
                let cpl = opts.knobs[nic_model::abi::knob::CPL];
                eprintln!(
                    "[{}/{}] {name} --clock {} --cpl {cpl}: {:.0} ms, {} exits",
                    rep + 1,
                    args.runs,
                    opts.clock.name(),
                    res.report.stats.run_ms,
                    res.report.stats.total_exits()
                );
                samples[c].push(vmm::bench::NetSample {
                    stats: res.report.stats,
                    verdict,
                });
            }
        }
        for (c, s) in samples.into_iter().enumerate() {
            let s: [vmm::bench::NetSample; 5] = s
                .try_into()
                .map_err(|_| anyhow::anyhow!("net_runs must give five runs"))?;
            figs[c].push(vmm::bench::net_figures(&plan, &s));
        }
    }
    if let Some(path) = &args.json {
        let configs_json: Vec<_> = configs
            .iter()
            .zip(&figs)
            .map(|((clock, cpl, _, _), f)| {
                serde_json::json!({
                    "clock": clock.map(|c| c.name()),
                    "cpl": cpl,
                    "repetitions": f,
                })
            })
            .collect();
        write_json(
            path,
            &serde_json::json!({ "plan": plan, "configs": configs_json }),
        )?;
    }
    out(format_args!("guest {}\n", args.vm.guest()?.display()));
    let nl = levels.len();
    for (ci, clock) in clocks.iter().enumerate() {
        let which = clock.map_or(String::new(), |c| format!(", --clock {}", c.name()));
        if args.compare_cpl {
            let (f0, f3) = (&figs[ci * nl], &figs[ci * nl + 1]);
            out(format_args!(
                "driver task at CPL0{which}:\n{}",
                vmm::bench::net_table(&plan, f0)
            ));
            out(format_args!(
                "driver task at CPL3{which}:\n{}",
                vmm::bench::net_table(&plan, f3)
            ));
            out(format_args!("{}", vmm::bench::cpl_table(&plan, f0, f3)));
        } else if !args.compare_clocks {
            out(format_args!("{}", vmm::bench::net_table(&plan, &figs[0])));
        }
    }
    if args.compare_clocks {
        // Wall against virtual at each level compared.
        for l in 0..nl {
            if let Some(cpl) = levels[l] {
                out(format_args!("driver task at CPL{cpl}:\n"));
            }
            out(format_args!(
                "{}",
                vmm::bench::net_clock_table(&plan, &figs[l], &figs[nl + l])
            ));
        }
    }
    Ok(0)
}

fn write_events(path: &Path, events: &[nic_model::events::Event]) -> Result<(), HostError> {
    write_file(path, |w| {
        for e in events {
            serde_json::to_writer(&mut *w, e)?;
            w.write_all(b"\n")?;
        }
        Ok(())
    })
}

/// `nicproof replay`: bad input is an error (exit 7); a replay run that
/// could not start is a host error (6); otherwise 0 identical, 1 diverged.
fn replay(args: &cli::ReplayArgs) -> Result<i32> {
    use vmm::replay::{read_events, ReplayForm, RunIdentity, NOT_CLAIMED};
    let saved = read_events(&args.file)?;
    let note =
        RunIdentity::find_note(&saved).with_context(|| format!("{}", args.file.display()))?;
    let id = RunIdentity::parse(note).with_context(|| format!("{}", args.file.display()))?;
    let opts = args.options(&id)?;
    out(format_args!(
        "replaying {} with guest {}\n",
        id.note(),
        opts.guest.display()
    ));
    if RunIdentity::note_lacks_backend(note) {
        out(format_args!(
            "note: the saved identity names no backend (an older nicproof's); replaying with the scenario's, {}\n",
            vmm::replay::backend_text(&id.backend)
        ));
    }
    let scratch = args.pcap_scratch();
    let pcap = matches!(id.backend, nic_model::config::BackendConfig::Pcap(_));
    if let nic_model::config::BackendConfig::Pcap(saved_to) = &id.backend {
        out(format_args!(
            "backend pcap: the saved run wrote its frames to {saved_to}; this replay writes them to {} \
             (removed after the run) and leaves {saved_to} as it is\n",
            scratch.display()
        ));
    }
    let res = vmm::run(&opts);
    if pcap {
        // The replay's frames are in its event log; the scratch capture
        // only kept the backend the same.
        let _ = std::fs::remove_file(&scratch);
    }
    if let Some(path) = &args.events {
        write_events(path, &res.events)?;
    }
    if let vmm::outcome::Outcome::HostError { message } = &res.report.outcome {
        out(format_args!("replay run could not start: {message}\n"));
        return Ok(6);
    }
    let (expected, got) = (ReplayForm::of(&saved), ReplayForm::of(&res.events));
    out(format_args!("replay run: {}\n", res.report.outcome.name()));
    let code = match expected.first_difference(&got) {
        None => {
            out(format_args!(
                "replays: identical replay form ({} events, {} device events{})\n",
                got.merged.len(),
                got.device.len(),
                if id.clock == vmm::sim::ClockMode::Virtual {
                    "; virtual clock: every event compared, interrupts and virtual times included"
                } else {
                    "; wall clock: interrupts compared in the device stream only"
                }
            ));
            0
        }
        Some(d) => {
            out(format_args!(
                "does not replay: {d}(expected = {}, got = the replay run{}; seqs are each log's own)\n",
                args.file.display(),
                args.events.as_ref().map_or(", --events OUT keeps its log".into(), |p| format!(", saved in {}", p.display()))
            ));
            if let Some(why) = id.outside_claim() {
                out(format_args!(
                    "note: this run is outside what replay claims: {why}\n"
                ));
            }
            1
        }
    };
    out(format_args!("{NOT_CLAIMED}\n"));
    Ok(code)
}

/// `nicproof explain`: bad input is a one-line error and an exit code per
/// kind (`ExplainError::exit_code`).
fn explain(args: &cli::ExplainArgs) -> Result<i32> {
    use vmm::explain::{check_seq, explain_at, findings_of, first_cause, read_log};
    let log = read_log(&args.file)?;
    if let Some(path) = &args.perfetto {
        write_compact_json(path, &vmm::perfetto::trace(&log))?;
        out(format_args!(
            "timeline: {} (open it in ui.perfetto.dev)\n",
            path.display()
        ));
    }
    if args.log {
        for e in &log {
            if args.json {
                out(format_args!("{}\n", vmm::decode::json(e)));
            } else {
                out(format_args!("{}\n", vmm::decode::line(e)));
            }
        }
        return Ok(0);
    }
    let findings = findings_of(&log);
    let text = match args.at {
        Some(seq) => {
            check_seq(&log, seq, &args.file)?;
            explain_at(&log, seq, findings.iter().find(|f| f.seq == seq))
        }
        None => match first_cause(&findings) {
            Some(f) => explain_at(&log, f.seq, Some(f)),
            None if args.perfetto.is_some() => String::new(),
            None => "no finding in this log: the run broke no rule the host checks (explain one event with --at SEQ)\n".into(),
        },
    };
    out(format_args!("{text}"));
    Ok(0)
}

fn matrix(args: cli::MatrixArgs) -> Result<i32> {
    use vmm::matrix;
    let cases = vmm::scenarios::cases();
    let mut jobs = matrix::jobs(&cases);
    if let Some(f) = &args.filter {
        jobs.retain(|j| j.name().contains(f.as_str()));
    }
    if let Some(p) = &args.partition {
        let (k, n) = matrix::parse_partition(p).map_err(anyhow::Error::msg)?;
        jobs = matrix::partition(jobs, k, n);
    }
    if args.repeat == 0 {
        anyhow::bail!("--repeat must be at least 1");
    }
    if jobs.is_empty() && !args.allow_empty {
        anyhow::bail!(
            "no job selected (--filter {:?}, --partition {:?}): nothing would run; \
             `nicproof matrix --list` shows the job names, --allow-empty accepts an empty selection",
            args.filter.as_deref().unwrap_or(""),
            args.partition.as_deref().unwrap_or("")
        );
    }
    jobs = matrix::repeated(jobs, args.repeat);
    if args.list {
        for j in &jobs {
            out(format_args!("{}\n", j.name()));
        }
        return Ok(0);
    }
    let opts = matrix::Options {
        bin: std::env::current_exe().context("finding the nicproof binary")?,
        guest: args.guest()?,
        jobs: args
            .jobs
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        skip_unimplemented: args.skip_unimplemented,
        clock: args.clock,
        cpl: args.cpl,
    };
    if opts.jobs == 0 {
        anyhow::bail!("--jobs must be at least 1");
    }
    if !opts.guest.is_file() {
        // Every job would fail the same way: say it once.
        return Err(HostError::GuestNotFound {
            looked: format!("{} (--guest)", opts.guest.display()),
        }
        .into());
    }
    if args.compare_clocks > 0 {
        use vmm::sim::ClockMode;
        let mut runs = Vec::new();
        for round in 0..args.compare_clocks {
            for clock in [ClockMode::Wall, ClockMode::Virtual] {
                eprintln!(
                    "round {}, --clock {}: {} jobs",
                    round + 1,
                    clock.name(),
                    jobs.len()
                );
                let o = matrix::Options {
                    clock,
                    ..opts.clone()
                };
                let s = matrix::run(&o, &jobs, &|_| {}).context("running the matrix")?;
                eprintln!("  {:.1} s", s.wall_secs);
                runs.push((clock, s));
            }
        }
        if let Some(path) = &args.json {
            let named: Vec<_> = runs
                .iter()
                .map(|(c, s)| serde_json::json!({ "clock": c.name(), "summary": s }))
                .collect();
            write_json(path, &named)?;
        }
        out(format_args!("{}", matrix::clock_comparison(&runs)));
        let ok = runs
            .iter()
            .filter(|(c, _)| *c == ClockMode::Virtual)
            .all(|(_, s)| s.ok());
        return Ok(if ok { 0 } else { 1 });
    }
    let total = jobs.len();
    let done = std::sync::atomic::AtomicUsize::new(0);
    let summary = matrix::run(&opts, &jobs, &|r| {
        let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        eprintln!(
            "[{n}/{total}] {} {} ({:.2} s)",
            r.status.name(),
            r.name,
            r.secs
        );
    })
    .context("running the matrix")?;
    let mut summary = summary;
    summary.uncovered = matrix::uncovered(&cases);
    if let Some(path) = &args.json {
        write_json(path, &summary)?;
    }
    if let Some(path) = &args.junit {
        write_file(path, |w| w.write_all(summary.junit().as_bytes()))?;
    }
    out(format_args!("{}", summary.human()));
    Ok(if summary.ok() { 0 } else { 1 })
}

fn main() -> ExitCode {
    // A file-size limit must fail the write (EFBIG, reported naming the
    // file), not kill the process with no report.
    // SAFETY: setting a signal's disposition to SIG_IGN has no handler to
    // race with; it happens before any thread is started.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_USAGE as u8 } else { 0 });
        }
    };
    let code = real_main(cli).unwrap_or_else(|e| {
        eprintln!("nicproof: error: {e:#}");
        // Host failures (an output file, the guest image) share the
        // host-error code of a run; a log `explain` cannot use has a code
        // per kind; anything else is the command line.
        if e.downcast_ref::<HostError>().is_some() {
            EXIT_HOST_ERROR
        } else if let Some(x) = e.downcast_ref::<vmm::explain::ExplainError>() {
            x.exit_code()
        } else {
            EXIT_USAGE
        }
    });
    ExitCode::from(code as u8)
}
