//! `keyhole`: least-privilege, time-limited compliance scans of Kubernetes containers.
//!
//! This file only parses the command line and maps outcomes to exit codes; each subcommand
//! lives in its own module and returns text for stdout, so a failing command never prints a
//! partial result.

mod args;
mod cinc;
mod cluster;
mod gates;
mod plan;
mod scan;
mod scan_cluster;
mod scan_fleet;
mod sidecar;

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser as _;

use crate::args::{AuditCommand, Cli, Command, SidecarCommand};

/// Exit code for bad input: nothing was done.
const EXIT_BAD_INPUT: i32 = 2;
/// Exit code for a failure while acting (cluster, runtime).
const EXIT_SCAN_ERROR: i32 = 3;

/// A failure to report on one line of stderr.
#[derive(Debug)]
struct Failure {
    exit: i32,
    message: String,
}

impl Failure {
    fn bad_input(message: impl std::fmt::Display) -> Self {
        Self {
            exit: EXIT_BAD_INPUT,
            message: message.to_string(),
        }
    }

    fn scan(message: impl std::fmt::Display) -> Self {
        Self {
            exit: EXIT_SCAN_ERROR,
            message: message.to_string(),
        }
    }
}

fn exit_code(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(1))
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
            exit_code(out.exit)
        }
        Err(f) => {
            eprintln!("keyhole: {}", f.message);
            exit_code(f.exit)
        }
    }
}

/// What a command that ran prints, and its exit code.
struct Output {
    stdout: String,
    warnings: Vec<String>,
    exit: i32,
}

fn run(cli: Cli) -> Result<Output, Failure> {
    match cli.command {
        Command::Scan(a) => scan::scan(&a),
        Command::Plan(a) => plan::run(&a),
        Command::Sidecar {
            command: SidecarCommand::Inject(a),
        } => sidecar::inject(&a),
        Command::Access(a) => cluster::access(&a),
        Command::Reap(a) => cluster::reap_cmd(&a),
        Command::Audit {
            command: AuditCommand::Verify(a),
        } => cluster::audit_verify(&a),
    }
}

/// Help and version go to stdout with exit 0; every other parse error is one line on stderr
/// with exit 2, so scripts can rely on "exit 2 = nothing happened, stdout empty".
fn clap_failure(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        return exit_code(0);
    }
    if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        let _ = e.print();
        return exit_code(EXIT_BAD_INPUT);
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
    exit_code(EXIT_BAD_INPUT)
}
