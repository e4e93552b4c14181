//! The user's side of every workflow: facts in, HDF out, with the user's profile, inputs and
//! waivers — the same evaluator as the local scan.

use jiff::Timestamp;
use keyhole_engine::{Facts, Inputs, Profile, Waivers};
use keyhole_hdf::Execution;

use crate::ContainerTarget;

/// One container's evaluated results.
#[derive(Debug)]
pub struct Evaluated {
    /// The HDF execution.
    pub execution: Execution,
    /// Requests of the plan the facts do not answer (a workflow that gathered an older or
    /// different plan); their controls report an error, never a pass.
    pub unanswered: usize,
}

/// Evaluates `facts` of `target` with the user's `profile`, `inputs` and `waivers` at `now`.
/// The HDF's platform names the target (`target_id`, [`ContainerTarget::hdf_id`]), so a
/// result read on its own (Heimdall, a file of a fleet) still says what was scanned.
pub fn evaluate(
    target: &ContainerTarget,
    profile: &Profile,
    inputs: &Inputs,
    waivers: &Waivers,
    facts: &Facts,
    now: Timestamp,
) -> Evaluated {
    let plan = keyhole_engine::plan(profile, inputs);
    let unanswered = plan.requests().filter(|r| facts.get(r).is_none()).count();
    if unanswered > 0 {
        tracing::warn!(
            unanswered,
            "the gathered facts do not answer every request of the plan"
        );
    }
    let mut execution = keyhole_engine::evaluate(profile, inputs, facts, waivers, now);
    execution.platform.target_id = Some(target.hdf_id());
    Evaluated {
        execution,
        unanswered,
    }
}
