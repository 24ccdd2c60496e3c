//! `lapse plan`: read snapshots and policy, judge, render, save.

use anyhow::Result;
use lapse::report::{self, Format, RenderOptions};
use lapse::state::RunCommand;

use super::report::OutputSettings;
use super::{resolve_now, state, write_file};
use crate::cli::PlanArgs;
use crate::exit::Status;

pub(crate) fn run(args: &PlanArgs) -> Result<Status> {
    let policy = lapse::policy::load(&args.policy)?;
    let loaded = if args.snapshot.is_empty() {
        super::snapshot::live(&args.live, &policy.scopes)?
    } else {
        lapse::snapshot::load(&args.snapshot)?
    };
    let now = resolve_now(args.now.as_deref())?;
    // Inputs are checked before the state is touched: bad input never creates or locks it.
    let mut store = if args.no_state {
        None
    } else {
        Some(state::open(&args.state, true)?)
    };
    let memory = state::memory(store.as_ref(), &loaded.snapshot)?;
    let mut plan = lapse::plan::plan(&loaded.snapshot, &loaded.digest, &policy, &memory, now);
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
