//! lapse: reconcile cloud entitlements with a declared policy.
//!
//! Data flows one way: providers -> [`lapse_sdk::Snapshot`] -> [`diff`] against a
//! [`policy::Policy`] -> [`finding::Finding`]s -> [`plan::Plan`]. Nothing in this library reads
//! a clock, the environment or the network: `now` and every input are arguments.

pub mod apply;
pub mod catalog;
pub mod coverage;
pub mod diff;
pub mod error;
pub mod finding;
pub mod init;
pub mod input;
pub mod plan;
pub mod plan_check;
pub mod policy;
pub mod providers;
pub mod report;
pub mod snapshot;
pub mod state;

pub use error::{Error, Result};

#[cfg(test)]
mod properties;

#[cfg(test)]
mod fuzz;
