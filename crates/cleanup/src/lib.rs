//! The cleanup registry: every object a run creates is registered in order and torn down by one
//! path whatever ends the run (normal end, error, panic, signal, expiry timer), with deletion
//! verified; plus the reaper of expired objects.
//!
//! Not implemented yet (issue "secure scan session"): this crate exports nothing so far.
