//! The flows behind the `keyhole` binary that talk to a cluster, as a library so tests can drive
//! them against the fake API server of `keyhole-testkit` with any client.

pub mod session;
