//! The `lapse` binary: parses arguments, runs a command, maps the outcome to an exit code.
//! `anyhow` lives here only; the library keeps typed errors.

mod cli;
mod commands;
mod exit;

use std::process::ExitCode;

use clap::Parser;

use crate::exit::Status;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            // clap exits 2 on usage errors, which here means drift: usage errors are errors.
            let _ = error.print();
            return match error.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    Status::Clean.into()
                }
                _ => Status::Error.into(),
            };
        }
    };
    match commands::run(cli.command) {
        Ok(status) => status.into(),
        Err(error) => {
            #[allow(clippy::print_stderr)] // the one place errors reach the user
            {
                eprintln!("error: {error:#}");
            }
            Status::of_error(&error).into()
        }
    }
}
