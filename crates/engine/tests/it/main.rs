//! Integration tests of keyhole-engine, in one binary (one link, shared helpers).

mod eval_baseline;
mod eval_checks;
mod eval_fixture;
mod eval_profile;
mod eval_waivers;
mod integrity_apk;
mod integrity_rpm;
mod integrity_script;
mod integrity_walk_nofind;
mod read_dir;
mod source_debian;
mod source_fixtures;
mod source_local;
mod source_props;
mod source_rpm;
mod source_runc;
mod source_script;
mod walk_parallel;
