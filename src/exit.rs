//! Exit codes, decided here and nowhere else.

use std::process::ExitCode;

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    /// 0: no actionable drift.
    Clean,
    /// 1: error (bad input, failed call).
    Error,
    /// 2: drift at or above `--fail-on`.
    Drift,
    /// 3: a scope could not be fully read; "nothing found" cannot be trusted.
    Incomplete,
    /// 4: refused by a safety guard.
    Refused,
}

impl Status {
    /// The status of a run that ended in an error: 4 when a safety guard refused (a guard,
    /// or another run holding the journal), else 1.
    pub(crate) fn of_error(error: &anyhow::Error) -> Status {
        match error.downcast_ref::<lapse::Error>() {
            Some(lapse::Error::Refused { .. } | lapse::Error::JournalLocked { .. }) => {
                Status::Refused
            }
            _ => Status::Error,
        }
    }
}

impl From<Status> for ExitCode {
    fn from(status: Status) -> Self {
        ExitCode::from(match status {
            Status::Clean => 0,
            Status::Error => 1,
            Status::Drift => 2,
            Status::Incomplete => 3,
            Status::Refused => 4,
        })
    }
}
