//! `lapse plan`: read snapshots and policy, judge, render, save.

use anyhow::Result;
use lapse::diff::Memory;
use lapse::finding::Severity;
use lapse::report::{self, Format, TableOptions};

use super::{resolve_now, stdout_is_terminal, write_file, write_stdout};
use crate::cli::{ColorArg, FailOn, FormatArg, PlanArgs};
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

    let terminal = stdout_is_terminal();
    let format = match args.format {
        Some(FormatArg::Table) => Format::Table,
        Some(FormatArg::Json) => Format::Json,
        None if terminal => Format::Table,
        None => Format::Json,
    };
    let color = match args.color {
        ColorArg::Always => true,
        ColorArg::Never => false,
        ColorArg::Auto => {
            terminal && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty())
        }
    };
    let options = TableOptions {
        color,
        max_rows: args.max_rows,
        ..TableOptions::default()
    };
    if let Some(out) = &args.out {
        write_file(out, &report::render(&plan, Format::Json, &options))?;
    }
    write_stdout(&report::render(&plan, format, &options))?;

    let threshold = match args.fail_on {
        FailOn::None => None,
        FailOn::Low => Some(Severity::Low),
        FailOn::Medium => Some(Severity::Medium),
        FailOn::High => Some(Severity::High),
        FailOn::Critical => Some(Severity::Critical),
    };
    Ok(if !plan.snapshot.complete {
        Status::Incomplete
    } else if threshold.is_some_and(|threshold| plan.open_at_or_above(threshold) > 0) {
        Status::Drift
    } else {
        Status::Clean
    })
}
