//! The normalized entitlement model shared by the lapse engine and its providers.
//!
//! One vocabulary for three clouds: a [`Principal`] holds [`Credential`]s and [`Grant`]s, and a
//! [`Snapshot`] is what a provider saw in a set of scopes, each marked complete or not. The
//! [`Provider`] trait is the contract a cloud plugin fulfils. This crate does no I/O and links no
//! cloud SDK, so the engine and its tests build without any of them.

mod action;
mod bounds;
pub mod check;
mod ids;
pub mod json_position;
mod model;
mod provider;
mod snapshot;
mod timestamp;

pub use action::{Action, ActionKind, ActionOutcome, TargetState};
pub use bounds::{
    CallBounds, DEFAULT_ATTEMPTS, DEFAULT_OPERATION, parse_retry_after, timed_out_message,
};
pub use ids::{CredentialId, GrantId, PrincipalId, ScopeId};
pub use model::{
    Cloud, Condition, Credential, CredentialKind, CredentialStatus, ExpirySource, Grant, GrantKind,
    Principal, PrincipalKind, Usage, Via,
};
pub use provider::{
    BoxFuture, Provider, ProviderError, ProviderErrorKind, SnapshotRequest, SnapshotResponse,
};
pub use snapshot::{
    PlacedProblem, PlacedProblems, SNAPSHOT_FORMAT, SNAPSHOT_VERSION, ScopeError, ScopeKind,
    ScopeStatus, Snapshot, SnapshotError, byte_order_mark, place_problems,
};
pub use timestamp::{Timestamp, TimestampError};
