//! One module per subcommand: each turns arguments into settings and calls the library.

mod apply;
mod completions;
mod history;
mod init;
mod plan;
mod report;
mod schema;
mod snapshot;
mod state;
mod validate;

use std::io::{IsTerminal, Write};
use std::path::Path;

use anyhow::{Context, Result, bail};
use lapse::error::Error;
use lapse_sdk::Timestamp;

use crate::cli::Command;
use crate::exit::Status;

pub(crate) fn run(command: Command) -> Result<Status> {
    match command {
        Command::Plan(args) => plan::run(&args),
        Command::Snapshot(args) => snapshot::run(&args),
        Command::Validate(args) => validate::run(&args),
        Command::Init(args) => init::run(&args),
        Command::Schema(args) => schema::run(&args),
        Command::Report(args) => report::run(&args),
        Command::Completions(args) => completions::completions(&args),
        Command::Man => completions::man(),
        Command::History(args) => history::run(&args),
        Command::Apply(args) => apply::run(&args),
        Command::Undo(args) => apply::undo(&args),
    }
}

/// `--now`, or the clock. A bare date means its midnight UTC (the start of that day).
pub(crate) fn resolve_now(now: Option<&str>) -> Result<Timestamp> {
    let Some(text) = now else {
        return Ok(Timestamp::from_offset(time::OffsetDateTime::now_utc()));
    };
    parse_instant("--now", text)
}

/// An instant given to `flag`: RFC 3339, or a bare date for its midnight UTC.
pub(crate) fn parse_instant(flag: &str, text: &str) -> Result<Timestamp> {
    if let Ok(instant) = Timestamp::parse_rfc3339(text) {
        return Ok(instant);
    }
    match Timestamp::parse_human(text) {
        Ok(end_of_day) => Ok(end_of_day.plus_seconds(-86_400)),
        Err(error) => bail!("{flag}: {error}"),
    }
}

/// Writes data to stdout. A closed pipe (`lapse plan | head`) is not an error.
pub(crate) fn write_stdout(text: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("cannot write to stdout"),
    }
}

/// True when stdout is a terminal.
pub(crate) fn stdout_is_terminal() -> bool {
    std::io::stdout().is_terminal()
}

/// Writes a file whole: to a temporary file beside it, then renamed, so a reader never sees
/// half a plan.
pub(crate) fn write_file(path: &Path, text: &str) -> Result<()> {
    let write = || -> std::io::Result<()> {
        let directory = path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let temporary = directory.join(format!(".{name}.tmp-{}", std::process::id()));
        std::fs::write(&temporary, text)?;
        std::fs::rename(&temporary, path)
    };
    write().map_err(|source| {
        Error::Write {
            path: path.to_owned(),
            source,
        }
        .into()
    })
}
