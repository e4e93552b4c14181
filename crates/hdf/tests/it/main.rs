//! Integration tests of keyhole-hdf, in one test binary.
// The InSpec-shaped document in `model.rs` nests deeper than `json!` expands by default.
#![recursion_limit = "256"]

mod corpus;
mod fuzz;
mod model;
mod overlay;
mod saf_diff;
mod schema;
mod status;
mod strategies;
mod support;
mod threshold;
mod verdict;
