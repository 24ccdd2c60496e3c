//! `lapse init`: write a starter policy from snapshots.

use anyhow::{Context, Result, bail};
use lapse::init::{InitOptions, starter_policy, to_yaml};
use lapse::policy::Duration;

use super::{resolve_now, write_file, write_stdout};
use crate::cli::InitArgs;
use crate::exit::Status;

pub(crate) fn run(args: &InitArgs) -> Result<Status> {
    let review_period = Duration::parse(&args.review_period)
        .map_err(anyhow::Error::msg)
        .context("--review-period")?;
    let options = InitOptions {
        now: resolve_now(args.now.as_deref())?,
        review_period,
    };
    if let Some(out) = &args.out
        && out.exists()
        && !args.force
    {
        bail!(
            "{} exists: choose another --out, or add --force to overwrite it",
            out.display()
        );
    }
    let loaded = lapse::snapshot::load(&args.snapshot)?;
    let document = starter_policy(&loaded.snapshot, &options);
    let text = to_yaml(&document, &options);
    match &args.out {
        Some(out) => write_file(out, &text)?,
        None => write_stdout(&text)?,
    }
    Ok(Status::Clean)
}
