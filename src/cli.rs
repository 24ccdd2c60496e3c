//! Command-line definitions (clap derive). Doc comments are the help text; no logic here.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Reconcile cloud entitlements with a declared policy: find stale and standing access across
/// AWS, Azure and Google Cloud, and plan its revocation.
///
/// Exit codes: 0 no drift at or above --fail-on; 1 error (bad input, failed call); 2 drift;
/// 3 incomplete snapshot (a scope could not be fully read); 4 refused by a safety guard.
#[derive(Debug, Parser)]
#[command(
    name = "lapse",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Judge snapshots against a policy and print the findings and the actions they lead to.
    /// Never changes anything in a cloud.
    Plan(PlanArgs),
    /// Read clouds live and write a snapshot file (one per account in a CI matrix, merged by
    /// `plan`). Exits 3 when a scope could not be fully read; the file says which and why.
    Snapshot(SnapshotArgs),
    /// Check a policy (and optionally snapshot files) without planning.
    Validate(ValidateArgs),
    /// Write a starter policy that declares today's estate, so adoption starts clean.
    Init(InitArgs),
    /// Print a JSON Schema: of the policy language (for editors), the snapshot or the plan.
    Schema(SchemaArgs),
    /// Render a saved plan (`plan --out FILE`) in any output format, without reading a cloud
    /// or a policy. Exits like `plan`: 2 for drift at or above --fail-on, 3 when the plan came
    /// from an incomplete snapshot.
    Report(ReportArgs),
    /// Print a shell completion script: `lapse completions bash > /etc/bash_completion.d/lapse`.
    Completions(CompletionsArgs),
    /// Print the man page (roff): `lapse man > lapse.1`.
    Man,
    /// Show what earlier runs recorded in the state file, one row per run: standing privileged
    /// grants and their age, findings by kind, open waivers, revocations and time to revoke.
    History(HistoryArgs),
    /// Carry out a saved plan (`plan --out FILE`), or plan afresh from --policy and carry that
    /// out. A dry run unless --execute: it prints every call it would make and changes nothing.
    /// Exits 0 when every action succeeded and the live state shows it (or a dry run passed
    /// the guards), 1 when an action failed, 4 when a guard refused or a target was stale.
    Apply(ApplyArgs),
    /// Restore what an apply changed, from its journal: reactivate keys, re-attach policies,
    /// put inline documents back, re-add members. A dry run unless --execute.
    Undo(UndoArgs),
}

/// Output formats of `plan` and `report`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum FormatArg {
    /// A table for people (the default on a terminal).
    Table,
    /// The plan as versioned JSON (the default when stdout is not a terminal).
    Json,
    /// SARIF 2.1.0, for code-scanning UIs.
    Sarif,
    /// JUnit XML, for CI test tabs.
    Junit,
    /// A Markdown summary for a job summary or pull-request comment.
    Markdown,
    /// CSV, one row per finding.
    Csv,
    /// One self-contained HTML page.
    Html,
}

/// `--format FORMAT[=FILE]`: a format, and the file it goes to (stdout without one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FormatSpec {
    /// The format.
    pub(crate) format: FormatArg,
    /// Where it goes; `None` is stdout.
    pub(crate) file: Option<PathBuf>,
}

impl std::str::FromStr for FormatSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (name, file) = match text.split_once('=') {
            Some((name, "")) => return Err(format!("no file after `{name}=`")),
            Some((name, file)) => (name, Some(PathBuf::from(file))),
            None => (text, None),
        };
        let format = FormatArg::from_str(name, true).map_err(|_| {
            format!("unknown format `{name}`: expected table, json, sarif, junit, markdown, csv or html, optionally with =FILE")
        })?;
        Ok(FormatSpec { format, file })
    }
}

/// Parses `FORMAT[=FILE]`, and names the formats to help and shell completions.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FormatSpecParser;

impl clap::builder::TypedValueParser for FormatSpecParser {
    type Value = FormatSpec;

    fn parse_ref(
        &self,
        command: &clap::Command,
        _argument: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<FormatSpec, clap::Error> {
        let invalid = |message: String| {
            clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!("invalid value for --format: {message}\n"),
            )
            .with_cmd(command)
        };
        value
            .to_str()
            .ok_or_else(|| invalid("not UTF-8".to_owned()))?
            .parse()
            .map_err(invalid)
    }

    fn possible_values(
        &self,
    ) -> Option<Box<dyn Iterator<Item = clap::builder::PossibleValue> + '_>> {
        Some(Box::new(
            FormatArg::value_variants()
                .iter()
                .filter_map(ValueEnum::to_possible_value),
        ))
    }
}

/// The lowest severity that makes `plan` exit 2.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum FailOn {
    /// Never exit 2 for drift.
    None,
    /// Any open finding.
    Low,
    /// Medium and above.
    Medium,
    /// High and above.
    High,
    /// Critical only.
    Critical,
}

/// When to colour the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum ColorArg {
    /// On a terminal, unless NO_COLOR is set.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

#[derive(Debug, Args)]
pub(crate) struct PlanArgs {
    /// Policy file, or a folder of policy files that merge.
    #[arg(long, short = 'p', env = "LAPSE_POLICY")]
    pub(crate) policy: PathBuf,
    /// Snapshot file(s) to judge; several (one per account, from a CI matrix) are merged.
    /// Without it, the policy's scopes are read live first. Every scope the policy names must
    /// be covered by a file: one that is not is reported as not read (exit 3), unless the run
    /// is narrowed on purpose with --provider or --scope.
    #[arg(long, short = 's', num_args = 1..)]
    pub(crate) snapshot: Vec<PathBuf>,
    /// With --snapshot: judge only this scope (repeatable), as reports print it
    /// (`aws:111122223333`, `azure:/subscriptions/<id>`, `gcp:projects/<id>`). Scopes the
    /// policy names outside --scope and --provider are left out on purpose, and the plan says
    /// so; a scope given here that no file covers is reported as not read.
    #[arg(long = "scope", value_name = "ID", requires = "snapshot", value_parser = parse_scope)]
    pub(crate) scopes: Vec<lapse_sdk::ScopeId>,
    /// How to read clouds live (when no --snapshot is given).
    #[command(flatten)]
    pub(crate) live: LiveArgs,
    /// Evaluate as of this instant instead of now (RFC 3339, or YYYY-MM-DD for its midnight UTC).
    #[arg(long, value_name = "TIMESTAMP")]
    pub(crate) now: Option<String>,
    /// Output format, to stdout or, with =FILE, to a file (`sarif=drift.sarif`). Repeat for
    /// several outputs in one run (at most one on stdout). Default: table on a terminal, json
    /// otherwise.
    #[arg(long, short = 'f', value_name = "FORMAT[=FILE]", value_parser = FormatSpecParser)]
    pub(crate) format: Vec<FormatSpec>,
    /// Write the one --format to this file instead of stdout (without --format, the format
    /// follows the extension: .sarif, .xml, .md, .csv, .html, .json, .txt).
    #[arg(long, short = 'o', value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,
    /// Also save the plan as JSON to this file (for `lapse report` and `lapse apply`).
    #[arg(long, value_name = "FILE")]
    pub(crate) out: Option<PathBuf>,
    /// Exit 2 when an open finding is at or above this severity.
    #[arg(long, value_enum, default_value = "low")]
    pub(crate) fail_on: FailOn,
    /// Colour the table.
    #[arg(long, value_enum, default_value = "auto")]
    pub(crate) color: ColorArg,
    /// Show at most this many findings in the table (0: all). JSON always has all.
    #[arg(long, default_value_t = 100)]
    pub(crate) max_rows: usize,
    #[command(flatten)]
    pub(crate) state: StateArgs,
    /// Neither read nor record state: a pure run, where ages the cloud does not give are
    /// unknown. Overrides --state.
    #[arg(long)]
    pub(crate) no_state: bool,
}

/// Where earlier runs are remembered.
#[derive(Debug, Args)]
pub(crate) struct StateArgs {
    /// State file: first-seen times that give grants an age, removals, and run history. Its
    /// folder is created when missing. Keep it between scheduled CI runs (cache or artifact).
    #[arg(long, value_name = "FILE", env = "LAPSE_STATE", default_value = lapse::state::DEFAULT_STATE_PATH)]
    pub(crate) state: PathBuf,
    /// How long to wait for another lapse run that holds the state file (30s, 5m; 0s: fail at
    /// once).
    #[arg(long, value_name = "DURATION", default_value = "60s")]
    pub(crate) lock_timeout: String,
}

/// Output formats of `history`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum HistoryFormat {
    /// A table for people (the default on a terminal).
    Table,
    /// Versioned JSON (the default when stdout is not a terminal).
    Json,
}

#[derive(Debug, Args)]
pub(crate) struct HistoryArgs {
    #[command(flatten)]
    pub(crate) state: StateArgs,
    /// Only runs at or after this instant (RFC 3339, or YYYY-MM-DD for its midnight UTC).
    #[arg(long, value_name = "TIMESTAMP")]
    pub(crate) since: Option<String>,
    /// Output format on stdout.
    #[arg(long, short = 'f', value_enum)]
    pub(crate) format: Option<HistoryFormat>,
}

#[derive(Debug, Args)]
pub(crate) struct ValidateArgs {
    /// Policy file, or a folder of policy files that merge.
    #[arg(long, short = 'p', env = "LAPSE_POLICY")]
    pub(crate) policy: PathBuf,
    /// Snapshot file(s) to check as well.
    #[arg(long, short = 's', num_args = 1..)]
    pub(crate) snapshot: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    /// Snapshot file(s) of the estate to adopt.
    #[arg(long, short = 's', num_args = 1.., required = true)]
    pub(crate) snapshot: Vec<PathBuf>,
    /// Write the policy here instead of stdout (refuses to overwrite without --force).
    #[arg(long, value_name = "FILE")]
    pub(crate) out: Option<PathBuf>,
    /// Overwrite --out if it exists.
    #[arg(long)]
    pub(crate) force: bool,
    /// The instant of adoption (default: now).
    #[arg(long, value_name = "TIMESTAMP")]
    pub(crate) now: Option<String>,
    /// How long the adoption waivers last.
    #[arg(long, default_value = "30d", value_name = "DURATION")]
    pub(crate) review_period: String,
}

/// Which schema to print.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum SchemaKind {
    /// The policy language.
    Policy,
    /// The snapshot file format.
    Snapshot,
    /// The plan (`plan --format json`, `plan --out`).
    Plan,
}

#[derive(Debug, Args)]
pub(crate) struct SchemaArgs {
    /// Which schema.
    #[arg(value_enum, default_value = "policy")]
    pub(crate) kind: SchemaKind,
}

#[derive(Debug, Args)]
pub(crate) struct ReportArgs {
    /// The saved plan (`lapse plan --out FILE`); `-` reads stdin.
    #[arg(long, value_name = "FILE", required_unless_present = "journal")]
    pub(crate) plan: Option<PathBuf>,
    /// An apply journal instead of a plan: the evidence of each revocation (finding, policy
    /// entry, approver, before-state, time, result, verification), as json or markdown.
    #[arg(long, value_name = "FILE", conflicts_with = "plan")]
    pub(crate) journal: Option<PathBuf>,
    /// Output format, to stdout or, with =FILE, to a file (`html=report.html`). Repeat for
    /// several outputs (at most one on stdout). Default: table on a terminal, json otherwise.
    #[arg(long, short = 'f', value_name = "FORMAT[=FILE]", value_parser = FormatSpecParser)]
    pub(crate) format: Vec<FormatSpec>,
    /// Write the one --format to this file instead of stdout (without --format, the format
    /// follows the extension).
    #[arg(long, short = 'o', value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,
    /// Exit 2 when an open finding of the plan is at or above this severity.
    #[arg(long, value_enum, default_value = "low")]
    pub(crate) fail_on: FailOn,
    /// Colour the table.
    #[arg(long, value_enum, default_value = "auto")]
    pub(crate) color: ColorArg,
    /// Show at most this many findings in the table (0: all). Other formats have all.
    #[arg(long, default_value_t = 100)]
    pub(crate) max_rows: usize,
}

#[derive(Debug, Args)]
pub(crate) struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub(crate) shell: clap_complete::Shell,
}

/// A cloud on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum CloudArg {
    /// Amazon Web Services.
    Aws,
    /// Microsoft Azure and Entra ID.
    Azure,
    /// Google Cloud.
    Gcp,
}

/// Where and how to read clouds live. Credentials come from each cloud's standard chain
/// (AWS: environment, profile, SSO, web identity, container, instance metadata; Azure: workload
/// identity, client secret or certificate from the environment, managed identity, Azure CLI;
/// Google Cloud: application default credentials).
#[derive(Debug, Default, Args)]
pub(crate) struct LiveArgs {
    /// Cloud to read (repeatable). Default: the clouds the policy's scopes name. With `plan
    /// --snapshot`, the clouds to judge: the policy's scopes in other clouds are left out on
    /// purpose, and the plan says so.
    #[arg(long = "provider", value_enum, value_name = "CLOUD")]
    pub(crate) providers: Vec<CloudArg>,
    /// AWS account to read (repeatable). Default: the policy's `scopes.aws`, else the
    /// caller's own account.
    #[arg(long = "account", value_name = "ID")]
    pub(crate) accounts: Vec<String>,
    /// Role to assume in each --account; `{account}` is replaced by the account id, e.g.
    /// `arn:aws:iam::{account}:role/lapse-read`.
    #[arg(long, value_name = "ARN")]
    pub(crate) assume_role: Option<String>,
    /// External id the assumed role requires.
    #[arg(long, value_name = "ID")]
    pub(crate) external_id: Option<String>,
    /// Session name for assumed roles (shows in CloudTrail).
    #[arg(long, value_name = "NAME")]
    pub(crate) session_name: Option<String>,
    /// AWS named profile.
    #[arg(long = "aws-profile", value_name = "PROFILE")]
    pub(crate) aws_profile: Option<String>,
    /// AWS signing region (IAM is global; default us-east-1).
    #[arg(long = "aws-region", value_name = "REGION")]
    pub(crate) aws_region: Option<String>,
    /// IAM and STS endpoint, e.g. a local emulator (AWS_ENDPOINT_URL works too). Plain http
    /// is refused except to a loopback address, as for every endpoint flag.
    #[arg(long = "aws-endpoint-url", value_name = "URL")]
    pub(crate) aws_endpoint_url: Option<String>,
    /// List every IAM user's access keys for exact key ids (one request per user) instead of
    /// reading them from the credential report.
    #[arg(long)]
    pub(crate) exact: bool,
    /// Entra tenant id or primary domain. Default: the policy's `scopes.azure`; with
    /// --subscription and no tenant in the policy, `AZURE_TENANT_ID`.
    #[arg(long, value_name = "ID")]
    pub(crate) tenant: Option<String>,
    /// Azure subscription to read (repeatable); `*` reads every subscription the caller can
    /// see. Default: the policy's `scopes.azure`.
    #[arg(long = "subscription", value_name = "ID")]
    pub(crate) subscriptions: Vec<String>,
    /// Microsoft Graph base URL (sovereign clouds, a local fake).
    #[arg(long, value_name = "URL", env = "LAPSE_AZURE_GRAPH_URL")]
    pub(crate) azure_graph_url: Option<String>,
    /// Azure Resource Manager base URL (sovereign clouds, a local fake).
    #[arg(long, value_name = "URL", env = "LAPSE_AZURE_ARM_URL")]
    pub(crate) azure_arm_url: Option<String>,
    /// Google Cloud project id to read (repeatable; explicit ids only). Default: the policy's
    /// `scopes.gcp`.
    #[arg(long = "project", value_name = "ID")]
    pub(crate) projects: Vec<String>,
    /// Google Cloud folder id whose own IAM policy is read (repeatable).
    #[arg(long = "folder", value_name = "ID")]
    pub(crate) folders: Vec<String>,
    /// Google Cloud organization id whose own IAM policy is read (repeatable).
    #[arg(long = "organization", value_name = "ID")]
    pub(crate) organizations: Vec<String>,
    /// Google IAM API base URL.
    #[arg(long, value_name = "URL", env = "LAPSE_GCP_IAM_URL")]
    pub(crate) gcp_iam_url: Option<String>,
    /// Google Resource Manager API base URL.
    #[arg(long, value_name = "URL", env = "LAPSE_GCP_RESOURCE_MANAGER_URL")]
    pub(crate) gcp_resource_manager_url: Option<String>,
    /// Google Policy Analyzer API base URL (last authentication of keys and service accounts).
    #[arg(long, value_name = "URL", env = "LAPSE_GCP_POLICY_ANALYZER_URL")]
    pub(crate) gcp_policy_analyzer_url: Option<String>,
    /// Google OAuth 2.0 base URL (token info: who the caller is, for user credentials).
    #[arg(long, value_name = "URL", env = "LAPSE_GCP_OAUTH2_URL")]
    pub(crate) gcp_oauth2_url: Option<String>,
    /// Longest one cloud operation may take with all its retries (30s, 2m, 5m). A scope whose
    /// operation runs out of time is reported incomplete (exit 3), so a hung or throttled
    /// endpoint ends the run within about this long.
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = parse_timeout)]
    pub(crate) timeout: std::time::Duration,
}

/// A `--scope` value: a scope id of a known form.
fn parse_scope(text: &str) -> Result<lapse_sdk::ScopeId, String> {
    lapse::coverage::parse_scope(text)
}

/// A `--timeout` value: a lapse duration of at least one second.
fn parse_timeout(text: &str) -> Result<std::time::Duration, String> {
    let duration = lapse::policy::Duration::parse(text)?;
    match u64::try_from(duration.seconds()) {
        Ok(seconds) if seconds > 0 => Ok(std::time::Duration::from_secs(seconds)),
        _ => Err(format!(
            "`{text}` is not a usable timeout: give at least 1s"
        )),
    }
}

#[derive(Debug, Args)]
pub(crate) struct SnapshotArgs {
    /// How to read clouds.
    #[command(flatten)]
    pub(crate) live: LiveArgs,
    /// Policy whose `scopes` say what to read (optional with --provider and --account).
    #[arg(long, short = 'p', env = "LAPSE_POLICY")]
    pub(crate) policy: Option<PathBuf>,
    /// Write the snapshot here instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub(crate) out: Option<PathBuf>,
    /// Also record what was seen in this state file (first-seen times, removals), as `plan`
    /// does. No default: matrix jobs that each read one scope usually leave the state to `plan`.
    #[arg(long, value_name = "FILE")]
    pub(crate) state: Option<PathBuf>,
    /// How long to wait for another lapse run that holds --state (30s, 5m; 0s: fail at once).
    #[arg(long, value_name = "DURATION", default_value = "60s")]
    pub(crate) lock_timeout: String,
}

/// Output formats of `apply` and `undo`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum ApplyFormat {
    /// The calls and the per-action outcome table, for people (the default on a terminal).
    Table,
    /// Versioned JSON (`lapse-apply`, the default when stdout is not a terminal).
    Json,
}

/// The confirmation and journal flags `apply` and `undo` share.
#[derive(Debug, Args)]
pub(crate) struct ExecuteArgs {
    /// Make the changes. Without it, nothing is changed: every call that would be made is
    /// printed.
    #[arg(long)]
    pub(crate) execute: bool,
    /// Do not ask for confirmation (CI). On a terminal, --execute otherwise asks to type the
    /// account, subscription or project being changed; elsewhere it refuses without --yes.
    #[arg(long)]
    pub(crate) yes: bool,
    /// Evaluate and stamp as of this instant instead of the clock (RFC 3339, or YYYY-MM-DD for
    /// its midnight UTC): for replays and tests; give apply the --now its plan was made with.
    /// A plan's age is still measured by the clock, from when it was made.
    #[arg(long, value_name = "TIMESTAMP")]
    pub(crate) now: Option<String>,
    /// Actions in flight at once per provider (reads and calls); throttling is retried with
    /// backoff, honouring Retry-After.
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub(crate) concurrency: usize,
    /// Output format on stdout.
    #[arg(long, short = 'f', value_enum)]
    pub(crate) format: Option<ApplyFormat>,
}

#[derive(Debug, Args)]
pub(crate) struct ApplyArgs {
    /// The saved plan to carry out (`lapse plan --out FILE`). Without it, --policy is planned
    /// afresh from a live reading and that plan is carried out.
    #[arg(value_name = "PLAN")]
    pub(crate) plan: Option<PathBuf>,
    /// Policy: protection and the scopes lapse may act in are re-checked against it at apply
    /// time. Default with a plan: the files the plan was made with, as they are now.
    #[arg(
        long,
        short = 'p',
        env = "LAPSE_POLICY",
        required_unless_present = "plan"
    )]
    pub(crate) policy: Option<PathBuf>,
    /// How to reach the clouds.
    #[command(flatten)]
    pub(crate) live: LiveArgs,
    #[command(flatten)]
    pub(crate) execute: ExecuteArgs,
    /// The journal (JSON Lines): every intent with its before-state, every outcome and
    /// verification. Default: .lapse/journal/<plan digest>.jsonl. Run again with the same plan
    /// and journal to finish after a crash.
    #[arg(long, value_name = "FILE")]
    pub(crate) journal: Option<PathBuf>,
    /// Refuse a plan with more actions than this (it is never truncated); 0 refuses any.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub(crate) max_revocations: usize,
    /// Refuse a saved plan older than this: measured from the instant it judged, and by the
    /// clock from when it was made (`plan --out` records it), so --now cannot make an old plan
    /// young.
    #[arg(long, default_value = "24h", value_name = "DURATION")]
    pub(crate) max_plan_age: String,
    /// Allow a plan that leaves a principal or a scope with no access at all.
    #[arg(long)]
    pub(crate) allow_strip_all: bool,
    /// Allow a plan from a policy that declares nothing and has no rules.
    #[arg(long)]
    pub(crate) allow_empty_policy: bool,
    /// Stop cleanly after this many changes, each journaled and verified: a canary run. Run
    /// again with the same plan and journal to do the rest.
    #[arg(long, value_name = "N")]
    pub(crate) stop_after: Option<usize>,
    #[command(flatten)]
    pub(crate) state: StateArgs,
    /// Neither read nor record state (deactivations start a grace period in the state file).
    #[arg(long)]
    pub(crate) no_state: bool,
}

#[derive(Debug, Args)]
pub(crate) struct UndoArgs {
    /// The journal of the apply to undo.
    #[arg(long, value_name = "FILE")]
    pub(crate) journal: PathBuf,
    /// Only this action (its sequence number in the plan).
    #[arg(long, value_name = "N")]
    pub(crate) action: Option<usize>,
    /// How to reach the clouds.
    #[command(flatten)]
    pub(crate) live: LiveArgs,
    #[command(flatten)]
    pub(crate) execute: ExecuteArgs,
    #[command(flatten)]
    pub(crate) state: StateArgs,
    /// Neither read nor record state.
    #[arg(long)]
    pub(crate) no_state: bool,
}
