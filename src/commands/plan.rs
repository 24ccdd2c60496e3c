//! `lapse plan`: read snapshots and policy, judge, render, save.

use anyhow::Result;
use lapse::diff::Memory;
use lapse::report::{self, Format, RenderOptions};

use super::report::OutputSettings;
use super::{resolve_now, write_file};
use crate::cli::PlanArgs;
use crate::exit::Status;

pub(crate) fn run(args: &PlanArgs) -> Result<Status> {
    let policy = lapse::policy::load(&args.policy)?;
    let loaded = lapse::snapshot::load(&args.snapshot)?;
    let now = resolve_now(args.now.as_deref())?;
    let plan = lapse::plan::plan(
        &loaded.snapshot,
        &loaded.digest,
        &policy,
        &Memory::default(),
        now,
    );

    if let Some(out) = &args.out {
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
    Ok(super::report::status(&plan, args.fail_on))
}
