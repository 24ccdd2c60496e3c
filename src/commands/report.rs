//! `lapse report`: render a saved plan in any format, without a cloud or a policy. Also the
//! output half of `plan`: which formats go where, and the exit status a plan earns.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use lapse::finding::Severity;
use lapse::plan::Plan;
use lapse::report::{self, Format, RenderOptions};

use super::{stdout_is_terminal, write_file, write_stdout};
use crate::cli::{ColorArg, FailOn, FormatArg, FormatSpec, ReportArgs};
use crate::exit::Status;

/// The output flags `plan` and `report` share.
pub(crate) struct OutputSettings<'a> {
    /// `--format`, repeated.
    pub(crate) formats: &'a [FormatSpec],
    /// `-o`.
    pub(crate) output: Option<&'a Path>,
    /// `--color`.
    pub(crate) color: ColorArg,
    /// `--max-rows`.
    pub(crate) max_rows: usize,
}

pub(crate) fn run(args: &ReportArgs) -> Result<Status> {
    if let Some(journal) = &args.journal {
        return super::apply::evidence(journal, &args.format, args.output.as_deref());
    }
    let Some(plan_path) = &args.plan else {
        bail!("give --plan FILE (a saved plan) or --journal FILE (an apply journal)");
    };
    let plan = if plan_path == Path::new("-") {
        // Bounded and checked like a plan file: positions for bytes that are not UTF-8, the
        // same refusal of a forged plan.
        let bytes = lapse::input::read_stdin(lapse::input::InputKind::Plan)?;
        report::parse_plan_bytes(&bytes, Path::new("<stdin>"))?
    } else {
        report::read_plan(plan_path)?
    };
    emit(
        &plan,
        &OutputSettings {
            formats: &args.format,
            output: args.output.as_deref(),
            color: args.color,
            max_rows: args.max_rows,
        },
    )?;
    Ok(status(&plan, args.fail_on))
}

/// Renders every requested output: files first (each written whole), then stdout.
pub(crate) fn emit(plan: &Plan, settings: &OutputSettings<'_>) -> Result<()> {
    let terminal = stdout_is_terminal();
    let outputs = resolve(settings, terminal)?;
    let color = match settings.color {
        ColorArg::Always => true,
        ColorArg::Never => false,
        ColorArg::Auto => {
            terminal && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty())
        }
    };
    let options = RenderOptions {
        color,
        max_rows: settings.max_rows,
        ..RenderOptions::default()
    };
    let mut stdout = None;
    for (format, file) in outputs {
        // Colour is for terminals: a table written to a file never has escape codes.
        let options = RenderOptions {
            color: options.color && file.is_none(),
            ..options.clone()
        };
        let text = report::render(plan, format, &options)?;
        match file {
            Some(path) => write_file(&path, &text)?,
            None => stdout = Some(text),
        }
    }
    if let Some(text) = stdout {
        write_stdout(&text)?;
    }
    Ok(())
}

/// Which format goes where. At most one output may use stdout; `-o` names the file of a
/// single format, or picks the format from its extension when none is given.
fn resolve(
    settings: &OutputSettings<'_>,
    terminal: bool,
) -> Result<Vec<(Format, Option<PathBuf>)>> {
    let mut outputs: Vec<(Format, Option<PathBuf>)> = settings
        .formats
        .iter()
        .map(|spec| (format(spec.format), spec.file.clone()))
        .collect();
    if let Some(path) = settings.output {
        match outputs.as_mut_slice() {
            [] => {
                let Some(format) = Format::from_path(path) else {
                    bail!(
                        "-o {}: cannot tell the format from the file name; add --format",
                        path.display()
                    );
                };
                outputs.push((format, Some(path.to_owned())));
            }
            [(_, file @ None)] => *file = Some(path.to_owned()),
            [(format, Some(file))] => bail!(
                "-o {} and --format {format}={} both name a file; give one",
                path.display(),
                file.display()
            ),
            _ => bail!("-o names the file of a single --format; with several, write FORMAT=FILE"),
        }
    }
    if outputs.is_empty() {
        outputs.push((
            if terminal {
                Format::Table
            } else {
                Format::Json
            },
            None,
        ));
    }
    let on_stdout: Vec<String> = outputs
        .iter()
        .filter(|(_, file)| file.is_none())
        .map(|(format, _)| format.to_string())
        .collect();
    if on_stdout.len() > 1 {
        bail!(
            "{} would all go to stdout; give all but one a file (--format {}=FILE)",
            on_stdout.join(", "),
            on_stdout[1]
        );
    }
    Ok(outputs)
}

fn format(format: FormatArg) -> Format {
    match format {
        FormatArg::Table => Format::Table,
        FormatArg::Json => Format::Json,
        FormatArg::Sarif => Format::Sarif,
        FormatArg::Junit => Format::Junit,
        FormatArg::Markdown => Format::Markdown,
        FormatArg::Csv => Format::Csv,
        FormatArg::Html => Format::Html,
    }
}

/// The exit status a plan earns: incomplete snapshot first (its findings are a lower bound),
/// then drift at or above `fail_on`.
pub(crate) fn status(plan: &Plan, fail_on: FailOn) -> Status {
    let threshold = match fail_on {
        FailOn::None => None,
        FailOn::Low => Some(Severity::Low),
        FailOn::Medium => Some(Severity::Medium),
        FailOn::High => Some(Severity::High),
        FailOn::Critical => Some(Severity::Critical),
    };
    if !plan.snapshot.complete {
        Status::Incomplete
    } else if threshold.is_some_and(|threshold| plan.open_at_or_above(threshold) > 0) {
        Status::Drift
    } else {
        Status::Clean
    }
}
