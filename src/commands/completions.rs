//! `lapse completions` and `lapse man`: generated from the clap definitions, so they never
//! drift from the help.

use anyhow::Result;
use clap::CommandFactory as _;

use super::write_stdout;
use crate::cli::{Cli, CompletionsArgs};
use crate::exit::Status;

pub(crate) fn completions(args: &CompletionsArgs) -> Result<Status> {
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "lapse", &mut script);
    write_stdout(&String::from_utf8_lossy(&script))?;
    Ok(Status::Clean)
}

pub(crate) fn man() -> Result<Status> {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut page)?;
    write_stdout(&String::from_utf8_lossy(&page))?;
    Ok(Status::Clean)
}
