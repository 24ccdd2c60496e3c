//! Memory between runs: an embedded SQLite file (`.lapse/state.db` by default).
//!
//! It keeps, per principal, credential and grant id, when lapse first and last saw it and when a
//! complete scan no longer found it; a summary of every run; when each flagged grant was first
//! detected and when it went; and when lapse deactivated a credential (the grace period before
//! deletion). The diff engine never sees this store: the command reads a [`Memory`] from it
//! before planning and records the run after, so the engine stays pure.
//!
//! Nothing here reads a clock: every instant recorded is the run's own `now`, given by the
//! caller. Files lapse cannot vouch for (damaged, another program's, a newer schema) are refused
//! before anything is written to them, and are never reset. One run at a time holds a state file
//! ([`lock`]).

mod grace;
mod history;
mod lock;
mod record;
mod schema;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lapse_sdk::{Snapshot, Timestamp};
use rusqlite::{Connection, OpenFlags};

use crate::diff::Memory;
use crate::error::{Error, Result};

pub use grace::Deactivation;
pub use history::{
    HISTORY_FORMAT, HISTORY_VERSION, History, Inventory, RevocationSummary, RunFindings,
    RunSummary, StandingSummary,
};
pub use record::{RecordedRun, RunCommand, RunInput};
pub use schema::SCHEMA_VERSION;

/// The state file used when none is given, relative to the working directory.
pub const DEFAULT_STATE_PATH: &str = ".lapse/state.db";

/// How to open a state file.
#[derive(Clone, Copy, Debug)]
pub struct OpenOptions {
    /// Create the file (and its folder) when it does not exist. `history` does not: there is
    /// nothing to show from a file that was never written.
    pub create: bool,
    /// How long to wait for another run to release the lock before giving up.
    pub lock_timeout: Duration,
}

/// An open state file, locked for this process until dropped.
#[derive(Debug)]
pub struct StateStore {
    connection: Connection,
    path: PathBuf,
    created: bool,
    // Declared last so the connection closes before the lock is released.
    _lock: lock::StateLock,
}

impl StateStore {
    /// Opens (or, with `create`, starts) the state file at `path`: takes its lock, inspects the
    /// file read-only, then migrates it to this build's schema.
    ///
    /// `on_wait` is called once if another run holds the lock, before waiting for it.
    ///
    /// # Errors
    /// [`Error::StateLocked`] when the lock stays held past the timeout;
    /// [`Error::StateMissing`] without `create` when there is no file; [`Error::StateCorrupt`],
    /// [`Error::StateForeign`] and [`Error::StateTooNew`] for files lapse will not write to
    /// (left byte for byte as they were); [`Error::StateIo`] and [`Error::State`] for
    /// failures of the file system or SQLite.
    pub fn open(
        path: &Path,
        options: OpenOptions,
        on_wait: &mut dyn FnMut(&Path),
    ) -> Result<StateStore> {
        if !options.create && !path.exists() {
            return Err(Error::StateMissing {
                path: path.to_owned(),
            });
        }
        if options.create
            && let Some(folder) = path
                .parent()
                .filter(|folder| !folder.as_os_str().is_empty())
        {
            std::fs::create_dir_all(folder).map_err(|source| Error::StateIo {
                path: folder.to_owned(),
                source,
            })?;
        }
        let lock = lock::StateLock::acquire(path, options.lock_timeout, on_wait)?;
        let found = schema::inspect(path)?;
        let from = match found {
            schema::Found::Nothing if !options.create => {
                return Err(Error::StateMissing {
                    path: path.to_owned(),
                });
            }
            schema::Found::Nothing | schema::Found::Blank => 0,
            schema::Found::State { version } => version,
        };
        let failed = |action: &'static str| {
            move |source| Error::State {
                path: path.to_owned(),
                action,
                source,
            }
        };
        let mut connection = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(failed("open the file"))?;
        // Our own lock already serializes lapse runs; this covers other readers of the file.
        connection
            .busy_timeout(Duration::from_secs(10))
            .map_err(failed("set up the connection"))?;
        connection
            .pragma_update(None, "foreign_keys", true)
            .map_err(failed("set up the connection"))?;
        // A run writes a row per record in one transaction: a larger page cache keeps the
        // index of a big estate in memory while it does (negative = KiB).
        connection
            .pragma_update(None, "cache_size", -262_144)
            .map_err(failed("set up the connection"))?;
        schema::migrate(&mut connection, from).map_err(failed("upgrade the schema"))?;
        Ok(StateStore {
            connection,
            path: path.to_owned(),
            created: from == 0,
            _lock: lock,
        })
    }

    /// The file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// True when this open started the file: no earlier run is remembered, so every grant
    /// without a cloud creation time has an unknown age (first seen now).
    #[must_use]
    pub fn is_new(&self) -> bool {
        self.created
    }

    /// The number of runs recorded.
    ///
    /// # Errors
    /// [`Error::State`] when the file cannot be read.
    pub fn runs(&self) -> Result<i64> {
        self.connection
            .query_row("SELECT count(*) FROM runs", [], |row| row.get(0))
            .map_err(|source| self.error("read the runs", source))
    }

    /// The time of the last recorded run.
    ///
    /// # Errors
    /// [`Error::State`] when the file cannot be read.
    pub fn last_run_at(&self) -> Result<Option<Timestamp>> {
        let at: Option<i64> = self
            .connection
            .query_row("SELECT max(at) FROM runs", [], |row| row.get(0))
            .map_err(|source| self.error("read the runs", source))?;
        Ok(at.and_then(Timestamp::from_unix_seconds))
    }

    /// What the engine needs from earlier runs for this snapshot: when each of its grants that
    /// is still present was first seen, never before its principal's own creation. Grants never
    /// seen before (or seen again after a removal), and grants of a principal re-created under
    /// the same name since (another immutable id), are absent: their age is unknown until a
    /// later run.
    ///
    /// # Errors
    /// [`Error::State`] when the file cannot be read.
    pub fn memory(&self, snapshot: &Snapshot) -> Result<Memory> {
        let read = |source| self.error("read first-seen times", source);
        // One scan of the table, not one query per grant: a million point queries cost more
        // than the whole plan.
        let mut statement = self
            .connection
            .prepare_cached(
                "SELECT id, first_seen FROM records
                 WHERE kind = 'grant' AND removed_at IS NULL",
            )
            .map_err(read)?;
        let mut recorded: HashMap<String, i64> = HashMap::new();
        let rows = statement
            .query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
            })
            .map_err(read)?;
        for row in rows {
            let (id, at) = row.map_err(read)?;
            recorded.insert(id, at);
        }
        // A principal re-created under its old name holds nothing lapse saw before; and no
        // grant can be older than the principal holding it, whatever was recorded under its id.
        let replaced = record::replaced_principals(&self.connection, snapshot).map_err(read)?;
        let created: HashMap<&str, Timestamp> = snapshot
            .principals
            .iter()
            .filter_map(|principal| Some((principal.id.as_str(), principal.created_at?)))
            .collect();
        let mut first_seen = HashMap::new();
        for grant in &snapshot.grants {
            let principal = grant.principal.as_str();
            if replaced.contains(principal) {
                continue;
            }
            if let Some(at) = recorded
                .get(grant.id.as_str())
                .copied()
                .and_then(Timestamp::from_unix_seconds)
            {
                let at = created
                    .get(principal)
                    .map_or(at, |created| at.max(*created));
                first_seen.insert(grant.id.clone(), at);
            }
        }
        // Grace periods run only for credentials still inactive: one someone switched back on
        // is not deleted on lapse's clock. The table holds only lapse's own deactivations, so
        // one scan of it is cheaper than a lookup per credential.
        let read = |source| self.error("read deactivations", source);
        let mut statement = self
            .connection
            .prepare_cached("SELECT credential_id, deactivated_at FROM deactivations")
            .map_err(read)?;
        let lapse_deactivated: HashMap<String, i64> = statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .map_err(read)?
            .collect::<rusqlite::Result<_>>()
            .map_err(read)?;
        let deactivated = snapshot
            .credentials
            .iter()
            .filter(|credential| credential.status == lapse_sdk::CredentialStatus::Inactive)
            .filter_map(|credential| {
                let at = lapse_deactivated.get(credential.id.as_str()).copied()?;
                Some((credential.id.clone(), Timestamp::from_unix_seconds(at)?))
            })
            .collect();
        Ok(Memory {
            first_seen,
            deactivated,
        })
    }

    fn error(&self, action: &'static str, source: rusqlite::Error) -> Error {
        Error::State {
            path: self.path.clone(),
            action,
            source,
        }
    }
}

/// A count as SQLite stores integers.
fn count(value: impl TryInto<i64>) -> i64 {
    value.try_into().unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests;
