//! `lapse apply` and `lapse undo`: settings from flags, the confirmation prompt, and the
//! outcome table. The engine is `lapse::apply`.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use lapse::apply::{
    self, ApplyReport, ApplyRun, ApplySettings, GuardSettings, Journal, Mode, Operator,
    Status as ActionStatus, UndoRun,
};
use lapse::plan::{Plan, Provenance};
use lapse::policy::{Policy, ScopesDocument};
use lapse::providers::Configured;
use lapse::state::RunCommand;
use lapse_sdk::Timestamp;
use sha2::{Digest as _, Sha256};

use super::snapshot::{block_on, credential_notes, options};
use super::{resolve_now, state, stdout_is_terminal, write_stdout};
use crate::cli::{ApplyArgs, ApplyFormat, ExecuteArgs, UndoArgs};
use crate::exit::Status;

/// Where journals go by default, relative to the working directory.
const JOURNAL_FOLDER: &str = ".lapse/journal";

/// The OS user and host, for the plan's provenance and the journal: read here, at the edge.
pub(crate) fn operator() -> Operator {
    let env = |names: &[&str]| {
        names
            .iter()
            .find_map(|name| std::env::var(name).ok().filter(|value| !value.is_empty()))
    };
    let host = env(&["HOSTNAME", "COMPUTERNAME"]).or_else(|| {
        std::fs::read_to_string("/etc/hostname")
            .ok()
            .map(|text| text.trim().to_owned())
            .filter(|text| !text.is_empty())
    });
    Operator {
        user: env(&["USER", "USERNAME", "LOGNAME"]),
        host,
    }
}

/// Who made a saved plan, when and where: the clock (not `--now`), the user and the host.
pub(crate) fn provenance() -> Provenance {
    let operator = operator();
    Provenance {
        at: Timestamp::from_offset(time::OffsetDateTime::now_utc()),
        by: operator.user,
        host: operator.host,
        lapse_version: env!("CARGO_PKG_VERSION").to_owned(),
    }
}

fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// `.lapse/journal/<plan digest>.jsonl`.
fn default_journal(plan_digest: &str) -> PathBuf {
    let name = plan_digest.trim_start_matches("sha256:");
    Path::new(JOURNAL_FOLDER).join(format!("{name}.jsonl"))
}

type Clock = Box<dyn Fn() -> Timestamp + Send + Sync>;

/// A fixed clock with `--now` (replays, tests), else the system's.
fn clock(now: Option<Timestamp>) -> Clock {
    match now {
        Some(now) => Box::new(move || now),
        None => Box::new(|| Timestamp::from_offset(time::OffsetDateTime::now_utc())),
    }
}

fn note(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

/// The clouds a plan changes.
fn plan_clouds(plan: &Plan) -> Vec<lapse_sdk::Cloud> {
    let mut clouds: Vec<lapse_sdk::Cloud> = plan
        .actions
        .iter()
        .map(|change| change.action.cloud())
        .collect();
    clouds.sort();
    clouds.dedup();
    clouds
}

/// The policy to re-check against: `--policy`, else the one file the plan was made from.
fn policy_for(plan: &Plan, given: Option<&Path>) -> Result<Policy> {
    if let Some(path) = given {
        return Ok(lapse::policy::load(path)?);
    }
    match plan.policy.files.as_slice() {
        [file] => lapse::policy::load(Path::new(file)).with_context(|| {
            format!("the plan's policy {file} (give --policy to use another path)")
        }),
        _ => bail!(
            "the plan was made from several policy files; give --policy with the file or folder to check it against"
        ),
    }
}

pub(crate) fn run(args: &ApplyArgs) -> Result<Status> {
    let settings = &args.execute;
    let fixed_now = settings
        .now
        .as_deref()
        .map(|text| resolve_now(Some(text)))
        .transpose()?;
    let now = resolve_now(settings.now.as_deref())?;
    // Read once, whatever --now says: the plan-age guard measures a plan's real age by it.
    let wall_clock = Timestamp::from_offset(time::OffsetDateTime::now_utc());
    let max_plan_age = match lapse::policy::Duration::parse(&args.max_plan_age) {
        Ok(duration) => duration.seconds(),
        Err(message) => bail!("--max-plan-age: {message}"),
    };
    let apply_settings = ApplySettings {
        guards: GuardSettings {
            max_revocations: args.max_revocations,
            max_plan_age_seconds: max_plan_age,
            allow_strip_all: args.allow_strip_all,
            allow_empty_policy: args.allow_empty_policy,
        },
        concurrency: settings.concurrency.max(1),
        stop_after: args.stop_after,
    };

    let mut store = None;
    let (plan, plan_digest, plan_file, policy, fresh_live) = match &args.plan {
        Some(path) => {
            let (plan, text) = lapse::report::read_plan_file(path)?;
            let policy = policy_for(&plan, args.policy.as_deref())?;
            (
                plan,
                digest(&text),
                Some(path.display().to_string()),
                policy,
                None,
            )
        }
        None => {
            let Some(policy_path) = &args.policy else {
                bail!("give a saved plan, or --policy to plan afresh");
            };
            let policy = lapse::policy::load(policy_path)?;
            let loaded = super::snapshot::live(&args.live, &policy.scopes)?;
            if !args.no_state {
                store = Some(state::open(&args.state, true)?);
            }
            let memory = state::memory(store.as_ref(), &loaded.snapshot)?;
            let plan = lapse::plan::plan(&loaded.snapshot, &loaded.digest, &policy, &memory, now);
            state::record(store.as_mut(), RunCommand::Plan, &loaded, now, Some(&plan))?;
            let json = serde_json::to_vec(&plan)?;
            let digest = digest(&json);
            // Made by this very run: its provenance (set after the digest, so a re-run with the
            // same --now finds the same journal) tells the plan-age guard it is new.
            let mut plan = plan;
            plan.made = Some(provenance());
            note(&format!(
                "planned afresh: {} action(s), plan {digest}",
                plan.actions.len()
            ));
            (plan, digest, None, policy, Some(loaded.snapshot))
        }
    };

    coverage_note(&plan);
    let scopes = policy.scopes.clone();
    let live_options = options(&args.live)?;
    let configured = Configured::new(&live_options, &scopes);
    credential_notes(&configured, &plan_clouds(&plan));
    let providers = configured.providers();

    let clock = clock(fixed_now);
    let operator = operator();
    let run = ApplyRun {
        plan: &plan,
        plan_digest: &plan_digest,
        plan_file: plan_file.as_deref(),
        policy: &policy,
        providers: &providers,
        settings: &apply_settings,
        now,
        wall_clock,
        clock: &*clock,
        operator: &operator,
    };
    let journal_path = args
        .journal
        .clone()
        .unwrap_or_else(|| default_journal(&plan_digest));

    if !settings.execute {
        let existing = if journal_path.exists() {
            let contents = apply::journal::read(&journal_path)?;
            if let Some(found) = contents.plan_digest()
                && found != plan_digest
            {
                return Err(lapse::Error::JournalPlanMismatch {
                    path: journal_path,
                    found: found.to_owned(),
                    expected: plan_digest,
                }
                .into());
            }
            Some(contents)
        } else {
            None
        };
        let report = block_on(async {
            let live = match fresh_live {
                Some(live) => live,
                None => apply::read_live(&plan, &providers).await?,
            };
            apply::check(&run, &live)?;
            Ok::<_, lapse::Error>(apply::dry_run(&run, existing.as_ref()).await)
        })??;
        print(&report, settings)?;
        return Ok(if report.any_failed() {
            Status::Error
        } else {
            Status::Clean
        });
    }

    // One apply at a time per journal: the lock is taken before the guards read anything.
    let mut journal = Journal::open(&journal_path)?;
    if let Some(found) = journal.contents().plan_digest()
        && found != plan_digest
    {
        return Err(lapse::Error::JournalPlanMismatch {
            path: journal_path,
            found: found.to_owned(),
            expected: plan_digest,
        }
        .into());
    }
    block_on(async {
        let live = match &fresh_live {
            Some(live) => live.clone(),
            None => apply::read_live(&plan, &providers).await?,
        };
        apply::check(&run, &live)
    })??;
    let summary: Vec<String> = plan
        .actions
        .iter()
        .map(|change| {
            format!(
                "#{} {} {}",
                change.sequence,
                change.action.kind().as_str(),
                change.action.target_id()
            )
        })
        .collect();
    if !plan.actions.is_empty() && !confirmed(settings, &summary, &plan_scopes(&plan))? {
        return Ok(Status::Refused);
    }
    if store.is_none() && !args.no_state {
        store = Some(state::open(&args.state, true)?);
    }
    note(&format!("journal: {}", journal_path.display()));
    let report = block_on(apply::execute(&run, &mut journal))??;
    if let Some(store) = store.as_mut() {
        for (credential, at) in apply::deactivations(journal.contents()) {
            store.record_deactivation(&credential.id, &credential.principal, at)?;
        }
    }
    print(&report, settings)?;
    Ok(status(&report))
}

/// Says what the plan did not read or judge: its actions are all lapse acts on, and a scope
/// the plan never read has none, which is not the same as needing none.
fn coverage_note(plan: &Plan) {
    let unread: Vec<&str> = plan
        .scopes
        .iter()
        .filter(|scope| !scope.complete)
        .map(|scope| scope.id.as_str())
        .collect();
    if !unread.is_empty() {
        note(&format!(
            "note: the plan's snapshot did not read {} scope(s) whole ({}): nothing there is planned, which does not mean nothing there is due",
            unread.len(),
            unread.join(", ")
        ));
    }
    if let Some(narrowed) = &plan.narrowed {
        note(&format!("note: the plan was {}", narrowed.sentence()));
    }
}

/// 0 only when every action succeeded and the live state shows it; 1 when one failed (or
/// the run stopped early, leaving work undone); 4 when a target was skipped as stale.
fn status(report: &ApplyReport) -> Status {
    let counts = report.counts();
    if report.any_failed() || counts.contains_key(&ActionStatus::NotStarted) {
        Status::Error
    } else if counts.contains_key(&ActionStatus::Stale) {
        Status::Refused
    } else if report.all_verified() {
        Status::Clean
    } else {
        Status::Error
    }
}

fn plan_scopes(plan: &Plan) -> Vec<String> {
    apply::scopes_changed(plan)
        .into_iter()
        .map(|(scope, _)| scope.as_str().to_owned())
        .collect()
}

/// `--yes`, or the operator reads what will change and types each scope's own id on a
/// terminal. Elsewhere, without `--yes`, the run is refused: nobody is there to confirm.
fn confirmed(settings: &ExecuteArgs, summary: &[String], scopes: &[String]) -> Result<bool> {
    if settings.yes {
        return Ok(true);
    }
    let stdin = std::io::stdin();
    if !stdin.is_terminal() || !std::io::stderr().is_terminal() {
        note(
            "refused, nothing was changed: --execute asks for confirmation on a terminal; in CI, after review, pass --yes",
        );
        return Ok(false);
    }
    note(&format!("lapse will change {} target(s):", summary.len()));
    for line in summary {
        note(&format!("  {line}"));
    }
    for scope in scopes {
        // The id a person knows: the account number, the subscription id, the project id.
        let id = scope.rsplit(['/', ':']).next().unwrap_or(scope);
        let mut stderr = std::io::stderr().lock();
        let _ = write!(stderr, "Type {id} to confirm changes in {scope}: ");
        let _ = stderr.flush();
        drop(stderr);
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .context("cannot read the confirmation")?;
        if line.trim() != id {
            note("refused, nothing was changed: the confirmation did not match");
            return Ok(false);
        }
    }
    Ok(true)
}

fn print(report: &ApplyReport, settings: &ExecuteArgs) -> Result<()> {
    let format = settings.format.unwrap_or(if stdout_is_terminal() {
        ApplyFormat::Table
    } else {
        ApplyFormat::Json
    });
    let text = match format {
        ApplyFormat::Json => {
            let mut text = serde_json::to_string_pretty(report)?;
            text.push('\n');
            text
        }
        ApplyFormat::Table => table(report),
    };
    write_stdout(&text)
}

/// The dry run's calls per scope, or the outcome table.
fn table(report: &ApplyReport) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let verb = match report.command {
        apply::JournalCommand::Apply => "apply",
        apply::JournalCommand::Undo => "undo",
    };
    match report.mode {
        Mode::DryRun => {
            let _ = writeln!(
                out,
                "lapse {verb}: dry run, nothing was changed (plan {})",
                report.plan_digest
            );
            let mut scopes: Vec<(&str, &str)> = report
                .actions
                .iter()
                .map(|action| (action.cloud.as_str(), action.scope.as_str()))
                .collect();
            scopes.dedup();
            scopes.sort_unstable();
            scopes.dedup();
            let mut calls = 0;
            for (cloud, scope) in scopes {
                let _ = writeln!(out, "\n{cloud} {scope}");
                for action in report
                    .actions
                    .iter()
                    .filter(|action| action.scope.as_str() == scope)
                {
                    let _ = writeln!(
                        out,
                        "  #{} {} {} ({})",
                        action.sequence,
                        action.action.as_str(),
                        action.target,
                        action.principal
                    );
                    match action.status {
                        ActionStatus::WouldChange => {
                            for call in &action.calls {
                                calls += 1;
                                let _ = writeln!(out, "      would call {call}");
                            }
                        }
                        status => {
                            let _ = writeln!(
                                out,
                                "      {}{}{}",
                                if action.earlier { "earlier run: " } else { "" },
                                status.as_str(),
                                action
                                    .message
                                    .as_ref()
                                    .map(|message| format!(": {message}"))
                                    .unwrap_or_default()
                            );
                        }
                    }
                }
            }
            let _ = writeln!(
                out,
                "\n{calls} call(s) would be made. Run again with --execute to make them."
            );
        }
        Mode::Execute => {
            let _ = writeln!(
                out,
                "{:>4}  {:<22} {:<48} {:<13} verified",
                "#", "action", "target", "result"
            );
            for action in &report.actions {
                let _ = writeln!(
                    out,
                    "{:>4}  {:<22} {:<48} {:<13} {}{}",
                    action.sequence,
                    action.action.as_str(),
                    action.target,
                    action.status.as_str(),
                    match action.verified {
                        Some(true) => "verified",
                        Some(false) => "NOT VERIFIED",
                        None => "-",
                    },
                    action
                        .message
                        .as_ref()
                        .map(|message| format!("  {message}"))
                        .or_else(|| action.earlier.then(|| "  (an earlier run)".to_owned()))
                        .unwrap_or_default()
                );
            }
            let counts: Vec<String> = report
                .counts()
                .into_iter()
                .map(|(status, count)| format!("{count} {}", status.as_str()))
                .collect();
            let _ = writeln!(out, "\n{}", counts.join(", "));
            if let Some(limit) = report.stopped_after {
                let _ = writeln!(
                    out,
                    "stopped after {limit} change(s) as asked (--stop-after): run again with the same plan and journal to do the rest"
                );
            }
        }
    }
    out
}

pub(crate) fn undo(args: &UndoArgs) -> Result<Status> {
    let settings = &args.execute;
    let fixed_now = settings
        .now
        .as_deref()
        .map(|text| resolve_now(Some(text)))
        .transpose()?;
    let live_options = options(&args.live)?;
    let configured = Configured::new(&live_options, &ScopesDocument::default());
    let providers = configured.providers();
    let clock = clock(fixed_now);
    let operator = operator();
    let run = UndoRun {
        providers: &providers,
        clock: &*clock,
        operator: &operator,
        only: args.action,
        concurrency: settings.concurrency.max(1),
    };
    if !settings.execute {
        let contents = apply::journal::read(&args.journal)?;
        let report = block_on(apply::undo_dry_run(&contents, &args.journal, &run))??;
        print(&report, settings)?;
        return Ok(if report.any_failed() {
            Status::Error
        } else {
            Status::Clean
        });
    }
    let mut journal = Journal::open(&args.journal)?;
    let scopes: Vec<String> = {
        let mut scopes: Vec<String> = journal
            .contents()
            .actions
            .values()
            .filter_map(|history| history.planned())
            .map(|planned| planned.action.scope().as_str().to_owned())
            .collect();
        scopes.sort();
        scopes.dedup();
        scopes
    };
    let summary: Vec<String> = journal
        .contents()
        .actions
        .iter()
        .filter(|(sequence, _)| args.action.is_none_or(|only| only == **sequence))
        .filter(|(_, history)| {
            history.outcome.as_ref().is_some_and(|outcome| {
                matches!(
                    outcome.result,
                    apply::ResultKind::Done | apply::ResultKind::Reconciled
                )
            })
        })
        .filter_map(|(sequence, history)| {
            let planned = history.planned()?;
            Some(format!(
                "#{sequence} undo {} {}",
                planned.action.kind().as_str(),
                planned.action.target_id()
            ))
        })
        .collect();
    if !confirmed(settings, &summary, &scopes)? {
        return Ok(Status::Refused);
    }
    let report = block_on(apply::undo_execute(&mut journal, &run))??;
    if !args.no_state {
        let reactivated = apply::reactivations(journal.contents());
        if !reactivated.is_empty() {
            let mut store = state::open(&args.state, true)?;
            for credential in reactivated {
                store.clear_deactivation(&credential)?;
            }
        }
    }
    print(&report, settings)?;
    Ok(if report.any_failed() || !report.all_verified() {
        Status::Error
    } else {
        Status::Clean
    })
}

/// `lapse report --journal FILE`: the evidence, as json or markdown.
pub(crate) fn evidence(
    journal: &Path,
    formats: &[crate::cli::FormatSpec],
    output: Option<&Path>,
) -> Result<Status> {
    use crate::cli::FormatArg;
    let contents = apply::journal::read(journal)?;
    let evidence = apply::evidence::build(&contents, journal)?;
    let mut outputs: Vec<(FormatArg, Option<PathBuf>)> = formats
        .iter()
        .map(|spec| (spec.format, spec.file.clone()))
        .collect();
    if let Some(path) = output {
        match outputs.as_mut_slice() {
            [] => {
                let format = match path.extension().and_then(|extension| extension.to_str()) {
                    Some("md" | "markdown") => FormatArg::Markdown,
                    Some("json") => FormatArg::Json,
                    _ => bail!(
                        "-o {}: cannot tell the format from the file name; add --format json or markdown",
                        path.display()
                    ),
                };
                outputs.push((format, Some(path.to_owned())));
            }
            [(_, file @ None)] => *file = Some(path.to_owned()),
            _ => bail!("-o names the file of a single --format"),
        }
    }
    if outputs.is_empty() {
        outputs.push((
            if stdout_is_terminal() {
                FormatArg::Markdown
            } else {
                FormatArg::Json
            },
            None,
        ));
    }
    if outputs.iter().filter(|(_, file)| file.is_none()).count() > 1 {
        bail!("several formats would go to stdout; give all but one a file (--format FORMAT=FILE)");
    }
    for (format, file) in outputs {
        let text = match format {
            FormatArg::Json => apply::evidence::render_json(&evidence)?,
            FormatArg::Markdown | FormatArg::Table => apply::evidence::render_markdown(&evidence),
            other => bail!(
                "a journal's evidence renders as json or markdown, not {other:?}; `lapse report --plan FILE` renders plans in every format"
            ),
        };
        match file {
            Some(path) => super::write_file(&path, &text)?,
            None => write_stdout(&text)?,
        }
    }
    Ok(Status::Clean)
}
