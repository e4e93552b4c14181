//! Overlay resolution as Heimdall's `inspecjs` `contextualizeEvaluation` does it, which decides
//! which controls of the first profile the SAF CLI counts and whose status and severity it uses.
//!
//! A profile whose `parent_profile` names another profile is overlaid by it; each control of the
//! overlaying profile then "extends" the control with the same id in the overlaid profile. In an
//! execution without such links, a control extends the first control anywhere with the same id
//! that has results (or the first with that id at all). SAF counts only controls that nothing
//! extends, each with the status and severity of the control at the bottom of its chain.

use std::collections::HashMap;

use crate::HdfError;
use crate::model::{Control, Execution};
use crate::status::{ControlStatus, Severity};

/// A control of the first profile as the SAF CLI counts it.
pub(crate) struct Counted<'a> {
    pub(crate) id: &'a str,
    pub(crate) status: ControlStatus,
    /// `None` when a severity tag is not spelled in lower case (SAF then files it nowhere).
    pub(crate) severity: Option<Severity>,
}

/// The controls of `exec.profiles[0]` that SAF counts, in file order.
pub(crate) fn counted_controls(exec: &Execution) -> Result<Vec<Counted<'_>>, HdfError> {
    if exec.profiles.is_empty() {
        return Err(HdfError::NoProfiles);
    }
    // inspecjs builds every control of every profile before counting, and throws on bad tags
    // anywhere, so check them all first.
    for control in exec.profiles.iter().flat_map(|p| &p.controls) {
        control.check_nist_tag()?;
        control.saf_severity()?;
    }

    let profiles = &exec.profiles;
    // Profile links: `extends_from[p]` are the profiles p overlays (whose parent is p).
    let mut profile_extends_from: Vec<Vec<usize>> = vec![Vec::new(); profiles.len()];
    let mut profile_extended_by: Vec<usize> = vec![0; profiles.len()];
    for (i, profile) in profiles.iter().enumerate() {
        if let Some(parent_name) = &profile.parent_profile {
            // The first profile with that name, possibly the profile itself.
            if let Some(parent) = profiles.iter().position(|p| &p.name == parent_name) {
                profile_extends_from[parent].push(i);
                profile_extended_by[i] += 1;
            }
        }
    }

    // Every control gets a global index in file order.
    let mut all: Vec<(usize, &Control)> = Vec::new();
    let mut start_of: Vec<usize> = Vec::with_capacity(profiles.len());
    for (p, profile) in profiles.iter().enumerate() {
        start_of.push(all.len());
        all.extend(profile.controls.iter().map(|c| (p, c)));
    }
    let mut by_id: HashMap<&str, Vec<usize>> = HashMap::new();
    for (g, (_, c)) in all.iter().enumerate() {
        by_id.entry(c.id.as_str()).or_default().push(g);
    }

    let mut extends_from: Vec<Option<usize>> = vec![None; all.len()];
    let mut extended: Vec<bool> = vec![false; all.len()];
    for (g, &(p, control)) in all.iter().enumerate() {
        let linked = !profile_extends_from[p].is_empty() || profile_extended_by[p] > 0;
        if linked {
            // Overlay: the first overlaid profile that has a control with this id.
            for &child in &profile_extends_from[p] {
                let found = profiles[child]
                    .controls
                    .iter()
                    .position(|c| c.id == control.id);
                if let Some(k) = found {
                    let ancestor = start_of[child] + k;
                    extended[ancestor] = true;
                    // Only the first link is followed to the root.
                    extends_from[g].get_or_insert(ancestor);
                    break;
                }
            }
        } else {
            let same_id = &by_id[control.id.as_str()];
            let populated = same_id
                .iter()
                .copied()
                .find(|&s| !all[s].1.results.is_empty())
                .unwrap_or(same_id[0]);
            if populated != g {
                extended[populated] = true;
                extends_from[g].get_or_insert(populated);
            }
        }
    }

    let mut counted = Vec::new();
    for g in start_of[0]..start_of[0] + profiles[0].controls.len() {
        if extended[g] {
            continue;
        }
        let mut root = g;
        let mut steps = 0;
        while let Some(next) = extends_from[root] {
            root = next;
            steps += 1;
            if steps > all.len() {
                return Err(HdfError::OverlayCycle {
                    control_id: all[g].1.id.clone(),
                });
            }
        }
        let control = all[root].1;
        counted.push(Counted {
            id: &control.id,
            status: control.status(),
            severity: control.saf_severity()?,
        });
    }
    Ok(counted)
}
