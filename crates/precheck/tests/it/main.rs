//! Integration tests of keyhole-precheck: every rule positive and negative on fixture pods,
//! the policy's actions and format, the network checks, the HDF profile against the schema,
//! properties and a verdict snapshot.

mod fetch;
mod hdf;
mod network;
mod policy;
mod props;
mod rules;
mod support;
