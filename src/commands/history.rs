//! `lapse history`: what earlier runs recorded, one row per run.

use anyhow::Result;

use super::{parse_instant, state, stdout_is_terminal, write_stdout};
use crate::cli::{HistoryArgs, HistoryFormat};
use crate::exit::Status;

/// The table's width, as for `plan`.
const TABLE_WIDTH: u16 = 100;

pub(crate) fn run(args: &HistoryArgs) -> Result<Status> {
    let since = args
        .since
        .as_deref()
        .map(|text| parse_instant("--since", text))
        .transpose()?;
    let store = state::open(&args.state, false)?;
    let history = store.history(since)?;
    let table = match args.format {
        Some(HistoryFormat::Table) => true,
        Some(HistoryFormat::Json) => false,
        None => stdout_is_terminal(),
    };
    write_stdout(&if table {
        history.to_table(TABLE_WIDTH)
    } else {
        history.to_json()
    })?;
    Ok(Status::Clean)
}
