//! The library's error type. The binary maps each variant to an exit code in `exit.rs`.
//!
//! Messages leave out their source: the binary prints the whole chain (`{:#}`), one level each.

use std::fmt;
use std::path::PathBuf;

/// A problem in a policy file, at a place a person can go to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file, as given on the command line or found in the folder.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong and what was expected.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.message
        )
    }
}

/// Diagnostics, one per line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, diagnostic) in self.0.iter().enumerate() {
            if index > 0 {
                formatter.write_str("\n")?;
            }
            write!(formatter, "{diagnostic}")?;
        }
        Ok(())
    }
}

/// Everything that can go wrong in the lapse library.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file or folder could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// An input file is larger than lapse reads for its kind.
    #[error(
        "{} is {} MiB, more than the {} MiB a {kind} may be (the whole file was refused, nothing of it read): {advice}",
        path.display(),
        size.div_ceil(1 << 20),
        limit >> 20
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size in bytes, or the bytes read before the limit was passed.
        size: u64,
        /// The limit in bytes.
        limit: u64,
        /// What kind of file it is.
        kind: &'static str,
        /// What to do instead.
        advice: &'static str,
    },
    /// A text file that is not UTF-8.
    #[error("{}:{line}:{column}: not UTF-8 (byte {byte:#04x}): save the file as UTF-8", path.display())]
    NotUtf8 {
        /// The file.
        path: PathBuf,
        /// 1-based line of the first bad byte.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The byte.
        byte: u8,
    },
    /// A policy folder holds no policy file.
    #[error("{} holds no policy file (*.yaml or *.yml): give a policy file or a folder of them", path.display())]
    EmptyPolicyFolder {
        /// The folder.
        path: PathBuf,
    },
    /// The policy is invalid.
    #[error(
        "invalid policy:\n{diagnostics}\nhint: `lapse schema` prints the JSON Schema of the policy language"
    )]
    Policy {
        /// What is wrong, where.
        diagnostics: Diagnostics,
    },
    /// A snapshot file is not usable.
    #[error("{}", path.display())]
    Snapshot {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: lapse_sdk::SnapshotError,
    },
    /// An output could not be written.
    #[error("cannot write {}", path.display())]
    Write {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A saved plan is not valid JSON of the plan format.
    #[error("{} is not a readable lapse plan", path.display())]
    PlanFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// A file given as a saved plan is something else.
    #[error(
        "{} is not a lapse plan (format {found:?}, expected \"lapse-plan\", at line {line}, column {column}): save one with `lapse plan --out FILE`",
        path.display()
    )]
    PlanFormat {
        /// The file.
        path: PathBuf,
        /// The `format` it has.
        found: String,
        /// 1-based line of the value (of the document when it is missing).
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// A saved plan has a version this build does not read.
    #[error(
        "{} is plan format version {found}; this lapse reads version {supported} (`version` at line {line}, column {column}): render it with the lapse that wrote it, or plan again",
        path.display()
    )]
    PlanVersion {
        /// The file.
        path: PathBuf,
        /// The version it has.
        found: String,
        /// The version this build reads.
        supported: u32,
        /// 1-based line of the value (of the document when it is missing).
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// A saved plan starts with a byte-order mark.
    #[error(
        "{}:1:1: the file starts with a {encoding} byte-order mark: lapse writes plans as UTF-8 JSON without one; save it without the BOM, or make the plan again",
        path.display()
    )]
    PlanEncoding {
        /// The file.
        path: PathBuf,
        /// What the mark says the text is.
        encoding: &'static str,
    },
    /// A saved plan that does not hold together: a record edited without its digest, an
    /// action outside the plan's scopes, counts that disagree with the contents.
    #[error(
        "{} cannot be a plan as lapse wrote it, so it was edited or forged; nothing was read or changed: make the plan again with `lapse plan --out FILE`:{problems}",
        path.display()
    )]
    PlanForged {
        /// The file.
        path: PathBuf,
        /// The problems, the first of them with their place in the file.
        problems: lapse_sdk::PlacedProblems,
    },
    /// A report could not be rendered.
    #[error("cannot render the {format} report: {message}")]
    Render {
        /// The format.
        format: &'static str,
        /// What the writer said.
        message: String,
    },
    /// The state file is damaged, or not an SQLite file at all. It is never reset.
    #[error(
        "{} is not a usable lapse state file ({detail}); it was left untouched: restore it from a backup or CI cache, move it aside to start afresh, or run with --no-state",
        path.display()
    )]
    StateCorrupt {
        /// The state file.
        path: PathBuf,
        /// What SQLite reported.
        detail: String,
    },
    /// The state file is an SQLite database of some other program.
    #[error(
        "{} is an SQLite database but not a lapse state file; it was left untouched: give --state a path of its own",
        path.display()
    )]
    StateForeign {
        /// The file.
        path: PathBuf,
    },
    /// The state file was written by a newer lapse.
    #[error(
        "{} has state schema version {found}, newer than this lapse reads (up to {supported}); it was left untouched: upgrade lapse, or run with another --state file or --no-state",
        path.display()
    )]
    StateTooNew {
        /// The state file.
        path: PathBuf,
        /// The version it holds.
        found: i64,
        /// The newest version this build reads.
        supported: i64,
    },
    /// `history` was asked for a state file that does not exist.
    #[error(
        "no state file at {}: `lapse plan` records its runs there (see --state); run it first, or point --state at the file your CI keeps",
        path.display()
    )]
    StateMissing {
        /// The path looked at.
        path: PathBuf,
    },
    /// Another run holds the state file's lock.
    #[error(
        "{} is in use by another lapse run (lock file {} still held after {waited_seconds}s): let that run finish, raise --lock-timeout, or run with --no-state",
        path.display(),
        lock.display()
    )]
    StateLocked {
        /// The state file.
        path: PathBuf,
        /// Its lock file.
        lock: PathBuf,
        /// How long this run waited.
        waited_seconds: u64,
    },
    /// A run is older than the last one the state recorded.
    #[error(
        "this run's time {now} is before the last run recorded in {} ({last}): the state keeps runs in time order; use --no-state to replay an older snapshot",
        path.display()
    )]
    StateOutOfOrder {
        /// The state file.
        path: PathBuf,
        /// This run's time.
        now: lapse_sdk::Timestamp,
        /// The last recorded run's time.
        last: lapse_sdk::Timestamp,
    },
    /// The state folder, file or lock file could not be created or opened.
    #[error("cannot open state {}: check the folder exists and is writable, or run with --no-state", path.display())]
    StateIo {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A query or write on the state file failed.
    #[error(
        "cannot {action} in state {} (a failed write leaves the file as it was): check free disk space and permissions, or move a damaged file aside",
        path.display()
    )]
    State {
        /// The state file.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// What SQLite reported.
        #[source]
        source: rusqlite::Error,
    },
    /// A live snapshot needs a provider this build does not have.
    #[error(
        "this lapse was built without the {cloud} provider: take the snapshot with a build that has it (cargo feature `{cloud}`), or pass --snapshot FILE"
    )]
    ProviderUnavailable {
        /// The cloud.
        cloud: lapse_sdk::Cloud,
    },
    /// Nothing says what to scan.
    #[error(
        "nothing to scan: name scopes in the policy (`scopes:`), pass --account, --subscription or --project, or give --snapshot FILE"
    )]
    NoScopes,
    /// An endpoint override sends lapse's cloud tokens over plain http to another machine.
    #[error(
        "{setting} is {url}: plain http would carry lapse's cloud tokens unencrypted to another machine; use https, or plain http only to a loopback address (127.0.0.1, ::1, localhost) for a local emulator"
    )]
    InsecureEndpoint {
        /// The flag or environment variable that set it.
        setting: String,
        /// The endpoint as given.
        url: String,
    },
    /// A safety guard refused an apply; nothing was changed.
    #[error("refused, nothing was changed:\n{refusals}")]
    Refused {
        /// Every guard that refused, with what to do about it.
        refusals: crate::apply::Refusals,
    },
    /// Another apply or undo holds the journal's lock.
    #[error(
        "{} is in use by another lapse apply or undo (lock file {} is held): a journal takes one run at a time; let that run finish",
        path.display(),
        lock.display()
    )]
    JournalLocked {
        /// The journal.
        path: PathBuf,
        /// Its lock file.
        lock: PathBuf,
    },
    /// The journal could not be read or written.
    #[error("cannot read or write the journal {}", path.display())]
    JournalIo {
        /// The journal (or its lock file).
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A journal line this build cannot read.
    #[error("{}:{line}: {message}", path.display())]
    Journal {
        /// The journal.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// `undo` found nothing it can restore.
    #[error("nothing to undo in {}: {message}", path.display())]
    NothingToUndo {
        /// The journal.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// A journal belongs to another plan.
    #[error(
        "{} records plan {found}, not this plan ({expected}): give each plan its own journal (the default names it after the plan digest)",
        path.display()
    )]
    JournalPlanMismatch {
        /// The journal.
        path: PathBuf,
        /// The plan digest the journal records.
        found: String,
        /// This plan's digest.
        expected: String,
    },
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
