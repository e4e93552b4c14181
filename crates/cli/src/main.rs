//! `keyhole`: least-privilege, time-limited compliance scans of Kubernetes containers.
//!
//! This file only parses the command line and maps outcomes to exit codes; each subcommand
//! lives in its own module and returns text for stdout, so a failing command never prints a
//! partial result.

mod args;
mod plan;
mod sidecar;

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser as _;

use crate::args::{Cli, Command, SidecarCommand};

/// Exit codes, documented in `keyhole --help`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exit {
    /// Success.
    Ok = 0,
    /// Bad input: nothing was done.
    BadInput = 2,
}

/// A failure to report on one line of stderr.
#[derive(Debug)]
struct Failure {
    exit: Exit,
    message: String,
}

impl Failure {
    fn bad_input(message: impl std::fmt::Display) -> Self {
        Self {
            exit: Exit::BadInput,
            message: message.to_string(),
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return clap_failure(e),
    };
    match run(cli) {
        Ok(out) => {
            let mut stdout = std::io::stdout().lock();
            for w in &out.warnings {
                eprintln!("keyhole: warning: {w}");
            }
            if stdout
                .write_all(out.stdout.as_bytes())
                .and_then(|()| stdout.flush())
                .is_err()
            {
                // A closed pipe (e.g. `| head`) is not worth a panic message.
                return ExitCode::from(1);
            }
            ExitCode::from(Exit::Ok as u8)
        }
        Err(f) => {
            eprintln!("keyhole: {}", f.message);
            ExitCode::from(f.exit as u8)
        }
    }
}

/// What a successful command prints.
struct Output {
    stdout: String,
    warnings: Vec<String>,
}

fn run(cli: Cli) -> Result<Output, Failure> {
    match cli.command {
        Command::Plan(a) => plan::run(&a),
        Command::Sidecar {
            command: SidecarCommand::Inject(a),
        } => sidecar::inject(&a),
    }
}

/// Help and version go to stdout with exit 0; every other parse error is one line on stderr
/// with exit 2, so scripts can rely on "exit 2 = nothing happened, stdout empty".
fn clap_failure(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        return ExitCode::from(Exit::Ok as u8);
    }
    if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        let _ = e.print();
        return ExitCode::from(Exit::BadInput as u8);
    }
    // clap's message may continue on indented lines (e.g. the missing arguments); keep them,
    // on one line, and drop the usage block after the first blank line.
    let rendered = e.render().to_string();
    let message: Vec<&str> = rendered
        .lines()
        .take_while(|l| !l.trim().is_empty() && !l.starts_with("Usage:"))
        .map(str::trim)
        .collect();
    let message = message.join(" ");
    let message = message.strip_prefix("error: ").unwrap_or(&message);
    eprintln!("keyhole: {message} (see keyhole --help)");
    ExitCode::from(Exit::BadInput as u8)
}
