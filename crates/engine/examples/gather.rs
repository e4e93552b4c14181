//! Gathers the facts of a plan with a fact source and prints them as JSON; or prints the shell
//! script for a plan. Used by the runc integration tests as the reader process that runs with a
//! chosen UID and no capabilities, and handy for looking at what a plan gathers.
//!
//! ```text
//! gather --plan PLAN.json --dir ROOT              LocalRoot::directory (facts: [[request, answer], …])
//! gather --plan PLAN.json --pid PID               LocalRoot::process (refuses the own root)
//! gather --plan PLAN.json --render [--prefix P] [--pid PID]   the ShellScript, on stdout
//! ```

use std::process::ExitCode;

use keyhole_engine::{FactPlan, FactSource, LocalRoot, ShellScript};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gather: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let (mut plan, mut dir, mut pid, mut prefix, mut render) = (None, None, None, None, false);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--plan" => plan = Some(value()?),
            "--dir" => dir = Some(value()?),
            "--pid" => pid = Some(value()?.parse::<u32>().map_err(|e| e.to_string())?),
            "--prefix" => prefix = Some(value()?),
            "--render" => render = true,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let plan = plan.ok_or("--plan is required")?;
    let text = std::fs::read_to_string(&plan).map_err(|e| format!("{plan}: {e}"))?;
    let plan: FactPlan = serde_json::from_str(&text).map_err(|e| format!("{plan}: {e}"))?;
    if render {
        let mut script = ShellScript::in_container().with_pid(pid);
        if let Some(prefix) = prefix {
            script = script
                .with_root_prefix(&prefix)
                .ok_or("--prefix must be absolute")?;
        }
        print!("{}", script.render(&plan));
        return Ok(());
    }
    let source = match (dir, pid) {
        (Some(dir), None) => LocalRoot::directory(dir),
        (None, Some(pid)) => LocalRoot::process(pid),
        _ => return Err("give exactly one of --dir and --pid".into()),
    }
    .map_err(|e| e.to_string())?;
    let facts = source.gather(&plan);
    // As a list of [request, answer] pairs: JSON object keys must be strings.
    let pairs: Vec<_> = facts.iter().collect();
    println!(
        "{}",
        serde_json::to_string(&pairs).map_err(|e| e.to_string())?
    );
    Ok(())
}
