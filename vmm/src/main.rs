//! `nicproof`: the binary edge (anyhow errors, exit codes, files).

mod cli;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use cli::{Cli, Command};
use vmm::outcome::EXIT_USAGE;

/// The JSON report: the report's fields plus the table of checks (an
/// extra key, so readers of `Report` parse it unchanged).
#[derive(serde::Serialize)]
struct JsonReport<'a> {
    #[serde(flatten)]
    report: &'a vmm::outcome::Report,
    checks: &'a [vmm::checks::Check],
}

fn write_outputs(args: &cli::RunArgs, res: &vmm::RunResult) -> Result<()> {
    if let Some(path) = &args.json {
        let f = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let j = JsonReport { report: &res.report, checks: &res.checks };
        serde_json::to_writer_pretty(BufWriter::new(f), &j)?;
    }
    if let Some(path) = &args.events {
        let mut w = BufWriter::new(
            File::create(path).with_context(|| format!("creating {}", path.display()))?,
        );
        for e in &res.events {
            serde_json::to_writer(&mut w, e)?;
            w.write_all(b"\n")?;
        }
        w.flush()?;
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
            write_outputs(&args, &res)?;
            out(format_args!("{}\n", res.report));
            out(format_args!("{}", vmm::checks::render(&res.checks)));
            Ok(res.report.outcome.exit_code())
        }
        Command::Matrix(args) => matrix(args),
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
                args.vm.guest.display()
            ));
            out(format_args!("{}", vmm::bench::table(&stats)));
            Ok(0)
        }
    }
}

fn matrix(args: cli::MatrixArgs) -> Result<i32> {
    use vmm::matrix;
    let mut jobs = matrix::jobs(&vmm::scenarios::cases());
    if let Some(f) = &args.filter {
        jobs.retain(|j| j.name().contains(f.as_str()));
    }
    if let Some(p) = &args.partition {
        let (k, n) = matrix::parse_partition(p).map_err(anyhow::Error::msg)?;
        jobs = matrix::partition(jobs, k, n);
    }
    if args.list {
        for j in &jobs {
            out(format_args!("{}\n", j.name()));
        }
        return Ok(0);
    }
    let opts = matrix::Options {
        bin: std::env::current_exe().context("finding the nicproof binary")?,
        guest: args.guest.clone(),
        jobs: args
            .jobs
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        skip_unimplemented: args.skip_unimplemented,
    };
    if opts.jobs == 0 {
        anyhow::bail!("--jobs must be at least 1");
    }
    if !opts.guest.is_file() {
        anyhow::bail!("guest image {} not found (build it with `make guest`)", opts.guest.display());
    }
    let total = jobs.len();
    let done = std::sync::atomic::AtomicUsize::new(0);
    let summary = matrix::run(&opts, &jobs, &|r| {
        let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        eprintln!("[{n}/{total}] {} {} ({:.2} s)", r.status.name(), r.name, r.secs);
    })
    .context("running the matrix")?;
    if let Some(path) = &args.json {
        let f = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        serde_json::to_writer_pretty(BufWriter::new(f), &summary)?;
    }
    if let Some(path) = &args.junit {
        std::fs::write(path, summary.junit()).with_context(|| format!("writing {}", path.display()))?;
    }
    out(format_args!("{}", summary.human()));
    Ok(if summary.ok() { 0 } else { 1 })
}

fn main() -> ExitCode {
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
        EXIT_USAGE
    });
    ExitCode::from(code as u8)
}
