//! `nicproof`: the binary edge (anyhow errors, exit codes, files).

mod cli;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use cli::{Cli, Command};
use vmm::outcome::EXIT_USAGE;

fn write_outputs(args: &cli::RunArgs, res: &vmm::RunResult) -> Result<()> {
    if let Some(path) = &args.json {
        let f = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        serde_json::to_writer_pretty(BufWriter::new(f), &res.report)?;
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
            Ok(res.report.outcome.exit_code())
        }
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
