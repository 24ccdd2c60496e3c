//! `lapse plan`: read snapshots and policy, judge, render, save.

use std::io::Write as _;

use anyhow::{Result, bail};
use lapse::coverage::{FileCoverage, Narrowing};
use lapse::report::{self, Format, RenderOptions};
use lapse::state::RunCommand;

use super::report::OutputSettings;
use super::{resolve_now, state, write_file};
use crate::cli::PlanArgs;
use crate::exit::Status;

pub(crate) fn run(args: &PlanArgs) -> Result<Status> {
    let policy = lapse::policy::load(&args.policy)?;
    let mut coverage = FileCoverage::default();
    let loaded = if args.snapshot.is_empty() {
        super::snapshot::live(&args.live, &policy.scopes)?
    } else {
        refuse_live_scope_flags(args)?;
        let mut loaded = lapse::snapshot::load(&args.snapshot)?;
        let (snapshot, found) = lapse::coverage::over_files(
            loaded.snapshot,
            &policy.scopes,
            &Narrowing {
                clouds: super::snapshot::clouds(&args.live),
                scopes: args.scopes.clone(),
            },
        );
        loaded.snapshot = snapshot;
        coverage = found;
        loaded
    };
    coverage_notes(&coverage);
    let now = resolve_now(args.now.as_deref())?;
    // Inputs are checked before the state is touched: bad input never creates or locks it.
    let mut store = if args.no_state {
        None
    } else {
        Some(state::open(&args.state, true)?)
    };
    let memory = state::memory(store.as_ref(), &loaded.snapshot)?;
    let mut plan = lapse::plan::plan(&loaded.snapshot, &loaded.digest, &policy, &memory, now);
    plan.narrowed = coverage.narrowed.clone();
    // Recorded before any output, so a state failure (exit 1) leaves no half-reported run.
    state::record(store.as_mut(), RunCommand::Plan, &loaded, now, Some(&plan))?;

    if let Some(out) = &args.out {
        // The saved plan is the reviewed artifact: it says who made it, when and where (and
        // so does every output of this run, which shows that same plan).
        plan.made = Some(super::apply::provenance());
        write_file(
            out,
            &report::render(&plan, Format::Json, &RenderOptions::default())?,
        )?;
    }
    super::report::emit(
        &plan,
        &OutputSettings {
            formats: &args.format,
            output: args.output.as_deref(),
            color: args.color,
            max_rows: args.max_rows,
        },
    )?;
    let status = super::report::status(&plan, args.fail_on);
    // The process ends next: freeing a large estate record by record would take longer than
    // the plan did, and the operating system reclaims it at once.
    drop(store);
    std::mem::forget((loaded, plan, memory));
    Ok(status)
}

/// Over snapshot files, the flags that say what to read live would silently mean nothing: the
/// scopes to judge are named with --scope (or whole clouds with --provider).
fn refuse_live_scope_flags(args: &PlanArgs) -> Result<()> {
    let live = &args.live;
    let given: Vec<&str> = [
        ("--account", !live.accounts.is_empty()),
        ("--tenant", live.tenant.is_some()),
        ("--subscription", !live.subscriptions.is_empty()),
        ("--project", !live.projects.is_empty()),
        ("--folder", !live.folders.is_empty()),
        ("--organization", !live.organizations.is_empty()),
    ]
    .into_iter()
    .filter_map(|(flag, set)| set.then_some(flag))
    .collect();
    if !given.is_empty() {
        bail!(
            "{} say(s) what to read live and mean nothing over --snapshot files: to judge only some scopes of the files, name them with --scope (e.g. --scope aws:111122223333, --scope azure:/subscriptions/<id>, --scope gcp:projects/<id>) or whole clouds with --provider",
            given.join(", ")
        );
    }
    Ok(())
}

/// Says on stderr which scopes no file covers and what a narrowed run left out: the outputs say
/// it too, but a person watching the run should not have to open them to learn it.
fn coverage_notes(coverage: &FileCoverage) {
    let mut stderr = std::io::stderr().lock();
    // A closed stderr is no reason to fail a run.
    if !coverage.unread.is_empty() {
        let ids: Vec<&str> = coverage.unread.iter().map(|id| id.as_str()).collect();
        let _ = writeln!(
            stderr,
            "not read: no snapshot file covers {} scope(s) the policy names ({}): the plan is incomplete (exit 3); give their files, or judge only what the files cover with --provider CLOUD or --scope ID",
            ids.len(),
            ids.join(", ")
        );
    }
    if let Some(narrowed) = &coverage.narrowed {
        let _ = writeln!(stderr, "{}", narrowed.sentence());
    }
}
