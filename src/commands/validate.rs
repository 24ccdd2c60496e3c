//! `lapse validate`: check a policy (and snapshots) and say what it holds.

use std::fmt::Write as _;

use anyhow::Result;

use super::{resolve_now, write_stdout};
use crate::cli::ValidateArgs;
use crate::exit::Status;

pub(crate) fn run(args: &ValidateArgs) -> Result<Status> {
    let policy = lapse::policy::load(&args.policy)?;
    let now = resolve_now(None)?;
    let expired = policy
        .exceptions
        .iter()
        .filter(|exception| exception.until <= now)
        .count();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "policy ok: {} file(s), {} declared grant(s), {} rule(s), {} exception(s) ({expired} expired), {} protect entr{}",
        policy.files.len(),
        policy.grants.len(),
        policy.rules.len(),
        policy.exceptions.len(),
        policy.protect.len(),
        if policy.protect.len() == 1 {
            "y"
        } else {
            "ies"
        }
    );
    if !args.snapshot.is_empty() {
        let loaded = lapse::snapshot::load(&args.snapshot)?;
        let snapshot = &loaded.snapshot;
        let incomplete = snapshot
            .scopes
            .iter()
            .filter(|scope| !scope.complete)
            .count();
        let _ = writeln!(
            out,
            "snapshot ok: {} file(s), {} scope(s) ({incomplete} incomplete), {} principals, {} credentials, {} grants",
            loaded.files.len(),
            snapshot.scopes.len(),
            snapshot.principals.len(),
            snapshot.credentials.len(),
            snapshot.grants.len()
        );
    }
    write_stdout(&out)?;
    Ok(Status::Clean)
}
