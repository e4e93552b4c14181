//! The user's side of every workflow: facts in, HDF out, with the user's profile, inputs and
//! waivers — the same evaluator as the local scan.

use jiff::Timestamp;
use keyhole_engine::{Facts, Inputs, Profile, Waivers};
use keyhole_hdf::Execution;

/// One container's evaluated results.
#[derive(Debug)]
pub struct Evaluated {
    /// The HDF execution.
    pub execution: Execution,
    /// Requests of the plan the facts do not answer (a workflow that gathered an older or
    /// different plan); their controls report an error, never a pass.
    pub unanswered: usize,
}

/// Evaluates `facts` with the user's `profile`, `inputs` and `waivers` at `now`.
pub fn evaluate(
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
    Evaluated {
        execution: keyhole_engine::evaluate(profile, inputs, facts, waivers, now),
        unanswered,
    }
}
