//! Opening the state file for a command, and the notes a CI log needs about it (on stderr).

use std::io::Write as _;
use std::path::Path;

use anyhow::{Result, bail};
use lapse::diff::Memory;
use lapse::snapshot::LoadedSnapshot;
use lapse::state::{OpenOptions, RunCommand, RunInput, StateStore};
use lapse_sdk::{Snapshot, Timestamp};

use crate::cli::StateArgs;

/// Opens the state file named by `args`, waiting for another run's lock as allowed. `create`
/// starts a missing file (and its folder); without it a missing file is an error.
pub(crate) fn open(args: &StateArgs, create: bool) -> Result<StateStore> {
    open_path(&args.state, &args.lock_timeout, create)
}

/// [`open`], for commands whose state file is optional.
pub(crate) fn open_path(state: &Path, lock_timeout: &str, create: bool) -> Result<StateStore> {
    let timeout = match lapse::policy::Duration::parse(lock_timeout) {
        Ok(duration) => {
            std::time::Duration::from_secs(u64::try_from(duration.seconds()).unwrap_or(0))
        }
        Err(message) => bail!("--lock-timeout: {message}"),
    };
    let store = StateStore::open(
        state,
        OpenOptions {
            create,
            lock_timeout: timeout,
        },
        &mut |lock: &Path| {
            note(&format!(
                "{} is in use by another lapse run (lock {}); waiting up to {}",
                state.display(),
                lock.display(),
                lock_timeout
            ));
        },
    )?;
    if create && store.is_new() {
        note(&format!(
            "{} is new: grants without a creation time from the cloud have an unknown age (first seen now) until a later run with this file",
            state.display()
        ));
    }
    Ok(store)
}

/// What the store remembers for this snapshot; nothing without a store.
pub(crate) fn memory(store: Option<&StateStore>, snapshot: &Snapshot) -> Result<Memory> {
    Ok(match store {
        Some(store) => store.memory(snapshot)?,
        None => Memory::default(),
    })
}

/// Records the run, when there is a store, and says so.
pub(crate) fn record(
    store: Option<&mut StateStore>,
    command: RunCommand,
    loaded: &LoadedSnapshot,
    now: Timestamp,
    plan: Option<&lapse::plan::Plan>,
) -> Result<()> {
    let Some(store) = store else {
        return Ok(());
    };
    let recorded = store.record_run(&RunInput {
        command,
        now,
        snapshot: &loaded.snapshot,
        snapshot_digest: &loaded.digest,
        plan,
    })?;
    // A key someone switched back on has broken its grace period before deletion.
    store.forget_reactivated(&loaded.snapshot)?;
    let first_seen = recorded.first_seen;
    let removed = recorded.removed;
    note(&format!(
        "run {} recorded in {}: first seen {} principal(s), {} credential(s), {} grant(s); removed {} principal(s), {} credential(s), {} grant(s); {} flagged grant(s) revoked",
        recorded.id,
        store.path().display(),
        first_seen.principals,
        first_seen.credentials,
        first_seen.grants,
        removed.principals,
        removed.credentials,
        removed.grants,
        recorded.revoked
    ));
    Ok(())
}

/// One line on stderr, prefixed `state:`. stdout carries data only.
fn note(text: &str) {
    // A closed stderr is no reason to fail a run.
    let _ = writeln!(std::io::stderr().lock(), "state: {text}");
}
