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
        "{} is not a lapse plan (format {found:?}, expected \"lapse-plan\"): save one with `lapse plan --out FILE`",
        path.display()
    )]
    PlanFormat {
        /// The file.
        path: PathBuf,
        /// The `format` it has.
        found: String,
    },
    /// A saved plan has a version this build does not read.
    #[error(
        "{} is plan format version {found}; this lapse reads version {supported}: render it with the lapse that wrote it, or plan again",
        path.display()
    )]
    PlanVersion {
        /// The file.
        path: PathBuf,
        /// The version it has.
        found: String,
        /// The version this build reads.
        supported: u32,
    },
    /// A report could not be rendered.
    #[error("cannot render the {format} report: {message}")]
    Render {
        /// The format.
        format: &'static str,
        /// What the writer said.
        message: String,
    },
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
