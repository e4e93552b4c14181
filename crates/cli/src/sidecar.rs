//! `keyhole sidecar inject`: a workload manifest in, the same manifest with a hardened scanner
//! sidecar out.

use std::io::Read as _;

use keyhole_scanners::{InjectOptions, inject_sidecar};

use crate::args::InjectArgs;
use crate::{Failure, Output};

pub(crate) fn inject(a: &InjectArgs) -> Result<Output, Failure> {
    let input = match a.file.as_deref() {
        None => read_stdin()?,
        Some(p) if p.as_os_str() == "-" => read_stdin()?,
        Some(p) => std::fs::read_to_string(p)
            .map_err(|e| Failure::bad_input(format!("cannot read {}: {e}", p.display())))?,
    };
    let opts = InjectOptions {
        container: a.container.clone(),
        target_uid: a.target_uid,
        target_gid: a.target_gid,
        image: a.image.clone(),
        time_limit_secs: a.time_limit.duration().as_secs(),
    };
    let injected = inject_sidecar(&input, &opts).map_err(Failure::bad_input)?;
    Ok(Output {
        stdout: injected.yaml,
        warnings: injected.warnings,
        exit: 0,
    })
}

fn read_stdin() -> Result<String, Failure> {
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .map_err(|e| Failure::bad_input(format!("cannot read standard input: {e}")))?;
    Ok(s)
}
