//! `keyhole-agent`: the engine run against `/proc/<pid>/root` inside a debug or sidecar
//! container. No Kubernetes dependency and no network use at all: results leave on stdout (the
//! container log), framed so the collector can find them among other log lines and check them.
//!
//! ```text
//! keyhole-agent scan [--pid N | --target auto] [--time-limit 540s] [--profile builtin:NAME]
//! keyhole-agent sidecar --target-container NAME [--time-limit 540s] [--profile builtin:NAME]
//! ```
//!
//! Exit codes: 0 results written, 2 bad arguments, 3 scan error (e.g. no permission to read
//! the target: run as the target's UID), 124 time limit reached.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use keyhole_engine::{FactSource, Inputs, LocalRoot, Profile, Waivers};
use sha2::{Digest as _, Sha256};

/// First line of the framed result: `KEYHOLE-HDF-BEGIN <sha256 of the JSON line>`.
const BEGIN: &str = "KEYHOLE-HDF-BEGIN";
/// Last line of the framed result.
const END: &str = "KEYHOLE-HDF-END";

#[derive(Debug, Default)]
struct Args {
    sidecar: bool,
    pid: Option<u32>,
    target_container: Option<String>,
    time_limit: Option<Duration>,
    profile: Option<String>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let secs = s.strip_suffix('s').unwrap_or(s);
    secs.parse::<u64>()
        .map(Duration::from_secs)
        .map_err(|_| format!("--time-limit {s:?}: expected seconds like 540s"))
}

fn parse(argv: &[String]) -> Result<Args, String> {
    let mut a = Args::default();
    let mut it = argv.iter();
    match it.next().map(String::as_str) {
        Some("scan") => {}
        Some("sidecar") => a.sidecar = true,
        other => return Err(format!("expected `scan` or `sidecar`, got {other:?}")),
    }
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--pid" => {
                a.pid = Some(
                    value()?
                        .parse()
                        .map_err(|_| "--pid needs a number".to_string())?,
                )
            }
            "--target" => {
                let v = value()?;
                if v != "auto" {
                    return Err(format!(
                        "--target {v:?}: only `auto` (PID 1 of the shared namespace) is known"
                    ));
                }
            }
            "--target-container" => a.target_container = Some(value()?),
            "--time-limit" => a.time_limit = Some(parse_duration(&value()?)?),
            "--profile" => a.profile = Some(value()?),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(a)
}

/// The target process in a pod with a shared process namespace: the lowest PID whose root is
/// neither ours nor PID 1's (the pause container). Several distinct roots mean several
/// application containers, which `/proc` cannot tell apart by name: refuse rather than guess.
fn sidecar_target(container: &str) -> Result<u32, String> {
    use std::os::unix::fs::MetadataExt as _;
    let root_id = |pid: &str| {
        std::fs::metadata(format!("/proc/{pid}/root"))
            .map(|m| (m.dev(), m.ino()))
            .ok()
    };
    let own = root_id("self");
    let pause = root_id("1");
    let mut found: Vec<(u32, (u64, u64))> = Vec::new();
    for entry in std::fs::read_dir("/proc")
        .map_err(|e| format!("cannot list /proc: {e}"))?
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(pid) = name.parse::<u32>() else {
            continue;
        };
        if let Some(id) = root_id(&name).filter(|id| Some(*id) != own && Some(*id) != pause) {
            found.push((pid, id));
        }
    }
    found.sort();
    let mut roots: Vec<_> = found.iter().map(|(_, id)| *id).collect();
    roots.sort();
    roots.dedup();
    match (found.first(), roots.len()) {
        (Some((pid, _)), 1) => Ok(*pid),
        (None, _) => Err(format!(
            "no process of container {container} is visible: is shareProcessNamespace true and does the scanner run as the target's UID?"
        )),
        _ => Err(format!(
            "{} containers share this process namespace; /proc cannot tell which is {container}",
            roots.len()
        )),
    }
}

fn run(a: &Args) -> Result<String, (u8, String)> {
    let scan_err = |e: String| (3, e);
    let spec = a
        .profile
        .clone()
        .unwrap_or_else(|| "builtin:container-baseline".into());
    let profile = Profile::resolve(&spec).map_err(|e| (2, e.to_string()))?;
    let pid = match (a.sidecar, a.pid, &a.target_container) {
        (true, _, Some(c)) => sidecar_target(c).map_err(scan_err)?,
        (true, _, None) => return Err((2, "sidecar needs --target-container NAME".into())),
        (false, Some(p), _) => p,
        // With targetContainerName the debug container shares the target's PID namespace, where
        // the target's entrypoint is PID 1.
        (false, None, _) => 1,
    };
    let source = LocalRoot::process(pid).map_err(|e| scan_err(e.to_string()))?;
    let inputs = Inputs::defaults(&profile);
    let facts = keyhole_engine::gather(&profile, &inputs, &source as &dyn FactSource);
    let exec = keyhole_engine::evaluate(
        &profile,
        &inputs,
        &facts,
        &Waivers::none(),
        jiff::Timestamp::now(),
    );
    exec.to_json().map_err(|e| scan_err(e.to_string()))
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let args = match parse(&argv) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("keyhole-agent: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(limit) = args.time_limit {
        // The work is bounded inside the container, since ephemeral containers cannot have
        // resource limits: past the limit the process ends, whatever it was doing.
        std::thread::spawn(move || {
            std::thread::sleep(limit);
            eprintln!("keyhole-agent: time limit of {}s reached", limit.as_secs());
            std::process::exit(124);
        });
    }
    match run(&args) {
        Ok(json) => {
            let digest: String = Sha256::digest(json.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            let mut out = std::io::stdout().lock();
            let written =
                writeln!(out, "{BEGIN} {digest}\n{json}\n{END}").and_then(|()| out.flush());
            if written.is_err() {
                return ExitCode::from(3);
            }
            ExitCode::SUCCESS
        }
        Err((code, e)) => {
            eprintln!("keyhole-agent: {e}");
            ExitCode::from(code)
        }
    }
}
