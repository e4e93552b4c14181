//! `keyhole-agent`: gathers the **facts** of a fact plan from `/proc/<pid>/root` inside a debug
//! or sidecar container, and writes them framed and checksummed on stdout (= the container's
//! log). It evaluates nothing: facts cross the cluster boundary, verdicts do not — keyhole
//! evaluates them on the user's side with the user's profile. No Kubernetes dependency and no
//! network use at all.
//!
//! ```text
//! keyhole-agent scan    [--pid N | --target auto] [--target-container NAME] [--time-limit 540s]
//! keyhole-agent sidecar --target-container NAME [--interval 3600s] [--time-limit 540s]
//! ```
//!
//! The plan: the JSON in `KEYHOLE_FACT_PLAN` when set (keyhole puts the plan of the user's
//! profile there), else the plan of `--profile builtin:NAME` with its default inputs.
//!
//! Exit codes: 0 facts written, 2 bad arguments, 3 scan error (e.g. the target exited during
//! the gather, or another UID's root: run as the target's UID), 124 time limit reached (no
//! partial frame is ever written).

use std::io::Write as _;
use std::os::fd::OwnedFd;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use keyhole_engine::{FactPlan, FactSource as _, Facts, Inputs, LocalRoot, Profile};

/// The environment variable carrying the fact plan (JSON).
const PLAN_ENV: &str = "KEYHOLE_FACT_PLAN";
/// The environment marker `keyhole sidecar inject` puts on an app container:
/// `KEYHOLE_SCAN_TARGET=<container name>`.
const MARKER_ENV: &str = keyhole_core::SCAN_TARGET_ENV;

#[derive(Debug, Parser)]
#[command(
    name = "keyhole-agent",
    version,
    about = "Gathers the facts of a keyhole fact plan from a target container's root."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Gather once (debug container sharing the target's PID namespace) and exit.
    Scan(ScanArgs),
    /// Gather at start and then every --interval, forever (sidecar with shareProcessNamespace).
    Sidecar(SidecarArgs),
}

#[derive(Debug, Args)]
struct Common {
    /// The target container's name: its process is found by the `KEYHOLE_SCAN_TARGET=NAME`
    /// environment marker when one carries it.
    #[arg(long, value_name = "NAME")]
    target_container: Option<String>,
    /// Upper bound of one gather, e.g. 540s; past it no frame is written and the exit is 124.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "540s")]
    time_limit: Duration,
    /// Profile whose plan is gathered when KEYHOLE_FACT_PLAN is not set.
    #[arg(long, value_name = "PROFILE", default_value = keyhole_engine::DEFAULT_PROFILE)]
    profile: String,
}

#[derive(Debug, Args)]
struct ScanArgs {
    /// The target process (default: the marker's process, else PID 1 of the shared namespace).
    #[arg(long, value_name = "N", conflicts_with = "target")]
    pid: Option<u32>,
    /// `auto`: the target container's entrypoint (PID 1 with targetContainerName).
    #[arg(long, value_name = "auto", value_parser = ["auto"])]
    target: Option<String>,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Args)]
struct SidecarArgs {
    /// Time between gathers, e.g. 3600s.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "3600s")]
    interval: Duration,
    #[command(flatten)]
    common: Common,
}

/// Durations as everywhere in keyhole (`keyhole_core::parse_duration`: `540s`, `10m`, `1h`…).
fn parse_duration(s: &str) -> Result<Duration, String> {
    keyhole_core::parse_duration(s)
        .map_err(|e| e.to_string())
        .and_then(|d| {
            if d.is_zero() {
                Err(format!("{s:?}: the duration must be positive"))
            } else {
                Ok(d)
            }
        })
}

/// A failure with its exit code.
struct Failure(u8, String);

fn the_plan(common: &Common) -> Result<FactPlan, Failure> {
    if let Ok(json) = std::env::var(PLAN_ENV) {
        return serde_json::from_str(&json)
            .map_err(|e| Failure(2, format!("{PLAN_ENV} is not a fact plan: {e}")));
    }
    let profile = Profile::resolve(&common.profile).map_err(|e| Failure(2, e.to_string()))?;
    Ok(keyhole_engine::plan(&profile, &Inputs::defaults(&profile)))
}

/// The processes carrying the marker for `container` (their environ is readable with the
/// target's UID), lowest PID first.
fn marked(container: &str) -> Vec<u32> {
    let want = format!("{MARKER_ENV}={container}");
    let mut found: Vec<u32> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|kv| kv == want.as_bytes()))
        })
        .collect();
    found.sort_unstable();
    found
}

fn target_pid(pid: Option<u32>, container: Option<&str>, sidecar: bool) -> Result<u32, Failure> {
    if let Some(p) = pid {
        return Ok(p);
    }
    match container.map(marked) {
        Some(pids) if !pids.is_empty() => Ok(pids[0]),
        Some(_) if sidecar => only_other_root().map_err(|e| {
            Failure(
                3,
                format!(
                    "no process carries {MARKER_ENV}={} and {e}: add the marker to the app \
                     container, and run the sidecar as the target's UID with \
                     shareProcessNamespace: true",
                    container.unwrap_or_default()
                ),
            )
        }),
        None if sidecar => Err(Failure(2, "sidecar needs --target-container NAME".into())),
        // With targetContainerName the debug container shares the target's PID namespace,
        // where the target's entrypoint is PID 1.
        _ => Ok(1),
    }
}

/// Without a marker (pods injected before markers existed): the lowest PID whose root is
/// neither ours nor PID 1's (the pause container), when exactly one such root exists. Several
/// roots mean several app containers, which `/proc` cannot tell apart: refuse, never guess.
fn only_other_root() -> Result<u32, String> {
    use std::os::unix::fs::MetadataExt as _;
    let root_id = |pid: &str| {
        std::fs::metadata(format!("/proc/{pid}/root"))
            .map(|m| (m.dev(), m.ino()))
            .ok()
    };
    let (own, pause) = (root_id("self"), root_id("1"));
    let mut found: Vec<(u32, (u64, u64))> = std::fs::read_dir("/proc")
        .map_err(|e| format!("/proc cannot be listed ({e})"))?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| Some((pid, root_id(&pid.to_string())?)))
        .filter(|(_, id)| Some(*id) != own && Some(*id) != pause)
        .collect();
    found.sort_unstable();
    let mut roots: Vec<_> = found.iter().map(|(_, id)| *id).collect();
    roots.sort_unstable();
    roots.dedup();
    match (found.first(), roots.len()) {
        (Some((pid, _)), 1) => Ok(*pid),
        (None, _) => Err("no other container's process is visible".to_string()),
        (_, n) => Err(format!("{n} containers share this process namespace")),
    }
}

/// True when the process behind `pidfd` has exited (the pidfd polls readable).
fn exited(pidfd: &OwnedFd) -> bool {
    use rustix::event::{PollFd, PollFlags, poll};
    let mut fds = [PollFd::new(pidfd, PollFlags::IN)];
    let zero = rustix::event::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    matches!(poll(&mut fds, Some(&zero)), Ok(n) if n > 0)
}

/// One gather of `plan` from `pid`, bounded by `limit`: the facts, or why there are none.
fn gather_once(plan: &FactPlan, pid: u32, limit: Duration) -> Result<Facts, Failure> {
    let raw = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .ok_or_else(|| Failure(2, format!("{pid} is not a process id")))?;
    let pidfd = rustix::process::pidfd_open(raw, rustix::process::PidfdFlags::empty())
        .map_err(|e| Failure(3, format!("cannot hold process {pid} (pidfd_open): {e}")))?;
    let source = LocalRoot::process(pid).map_err(|e| Failure(3, format!("process {pid}: {e}")))?;
    // Without ptrace-read rights on the target the source still builds and answers every
    // request "permission denied": a frame of those would evaluate as a scan. Refuse instead.
    // A plan of process files only (keyhole's UID probe reads `/proc/1/status`, which any UID
    // may read) needs no root: it runs as an unprivileged UID that cannot open it.
    let needs_root = plan
        .requests()
        .any(|r| !matches!(r, keyhole_engine::FactRequest::Proc { .. }));
    if let Some(e) = source.root_error().filter(|_| needs_root) {
        return Err(Failure(
            3,
            format!(
                "cannot open the root of process {pid} ({e}): the scanner must run as the \
                 target's UID (its runAsUser, or keyhole's --target-uid)"
            ),
        ));
    }
    let (tx, rx) = mpsc::channel();
    let plan = plan.clone();
    std::thread::spawn(move || {
        let started = std::time::Instant::now();
        let mut facts = source.gather(&plan);
        facts.elapsed = started.elapsed();
        let _ = tx.send(facts);
    });
    let facts = rx.recv_timeout(limit).map_err(|_| {
        Failure(
            124,
            format!(
                "time limit of {}s reached; no facts written",
                limit.as_secs()
            ),
        )
    })?;
    // The pidfd was opened before the root: if the target ended meanwhile, what was read may
    // belong to a dying or replaced process; report nothing rather than a mix.
    if exited(&pidfd) {
        return Err(Failure(
            3,
            format!("the target process {pid} exited during the gather; no facts written"),
        ));
    }
    Ok(facts)
}

fn emit(facts: &Facts) -> Result<(), Failure> {
    let frame = keyhole_engine::encode_facts_frame(facts, jiff::Timestamp::now());
    let mut out = std::io::stdout().lock();
    out.write_all(frame.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| Failure(3, format!("cannot write the facts: {e}")))
}

fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Scan(a) => {
            let plan = the_plan(&a.common)?;
            let pid = target_pid(a.pid, a.common.target_container.as_deref(), false)?;
            let facts = gather_once(&plan, pid, a.common.time_limit)?;
            emit(&facts)
        }
        Command::Sidecar(a) => {
            if a.common.target_container.is_none() {
                return Err(Failure(2, "sidecar needs --target-container NAME".into()));
            }
            let plan = the_plan(&a.common)?;
            // A Deployment must not restart-loop the sidecar: failures are reported on stderr
            // and the next interval tries again.
            loop {
                let gathered = target_pid(None, a.common.target_container.as_deref(), true)
                    .and_then(|pid| gather_once(&plan, pid, a.common.time_limit))
                    .and_then(|facts| emit(&facts));
                if let Err(Failure(_, e)) = gathered {
                    eprintln!("keyhole-agent: {e}");
                }
                std::thread::sleep(a.interval);
            }
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) if !e.use_stderr() => {
            // --help and --version.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // One line, like every other failure, so a log reader sees one reason.
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or_default();
            eprintln!(
                "keyhole-agent: {}",
                first.strip_prefix("error: ").unwrap_or(first)
            );
            return ExitCode::from(2);
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(code, e)) => {
            eprintln!("keyhole-agent: {e}");
            ExitCode::from(code)
        }
    }
}
