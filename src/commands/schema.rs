//! `lapse schema`: JSON Schemas generated from the Rust types.

use anyhow::Result;

use super::write_stdout;
use crate::cli::{SchemaArgs, SchemaKind};
use crate::exit::Status;

pub(crate) fn run(args: &SchemaArgs) -> Result<Status> {
    let schema = match args.kind {
        SchemaKind::Policy => lapse::policy::json_schema(),
        SchemaKind::Snapshot => schemars::schema_for!(lapse_sdk::Snapshot),
        SchemaKind::Plan => schemars::schema_for!(lapse::plan::Plan),
    };
    let mut text = serde_json::to_string_pretty(&schema)?;
    text.push('\n');
    write_stdout(&text)?;
    Ok(Status::Clean)
}
