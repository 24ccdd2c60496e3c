//! The state file's schema: what a file holds before lapse writes to it, and the migrations that
//! bring an older file up to date.
//!
//! A file is inspected through a read-only connection first, so a damaged file, another
//! program's database or a file from a newer lapse is refused without a byte of it changing.
//! Migrations run only on files this build understands, all in one transaction.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use crate::error::{Error, Result};

/// `PRAGMA application_id` of a lapse state file ("LAPS"): tells it apart from other SQLite
/// files a `--state` path might point at by mistake.
pub(crate) const APPLICATION_ID: i64 = 0x4C41_5053;

/// Migration `n` (0-based) takes a file from schema version `n` to `n + 1`. Append only: a
/// released migration is never edited, since files in the wild already ran it.
const MIGRATIONS: &[&str] = &[
    // 1: runs, per-run scopes and finding counts, first/last seen and removal per record,
    // first detection per flagged grant, revocations, credential deactivations.
    r"
CREATE TABLE runs (
    id                  INTEGER PRIMARY KEY,
    command             TEXT    NOT NULL,
    at                  INTEGER NOT NULL,
    snapshot_taken_at   INTEGER NOT NULL,
    snapshot_digest     TEXT    NOT NULL,
    policy_digest       TEXT,
    complete            INTEGER NOT NULL,
    scopes              INTEGER NOT NULL,
    incomplete_scopes   INTEGER NOT NULL,
    principals          INTEGER NOT NULL,
    credentials         INTEGER NOT NULL,
    grants              INTEGER NOT NULL,
    new_principals      INTEGER NOT NULL DEFAULT 0,
    new_credentials     INTEGER NOT NULL DEFAULT 0,
    new_grants          INTEGER NOT NULL DEFAULT 0,
    removed_principals  INTEGER NOT NULL DEFAULT 0,
    removed_credentials INTEGER NOT NULL DEFAULT 0,
    removed_grants      INTEGER NOT NULL DEFAULT 0,
    findings_open       INTEGER,
    findings_waived     INTEGER,
    actions             INTEGER,
    held                INTEGER,
    standing_grants     INTEGER,
    standing_ages_known INTEGER,
    standing_age_mean   INTEGER,
    standing_age_max    INTEGER
) STRICT;
CREATE INDEX runs_at ON runs (at);

CREATE TABLE run_scopes (
    run_id   INTEGER NOT NULL REFERENCES runs (id),
    scope    TEXT    NOT NULL,
    cloud    TEXT    NOT NULL,
    complete INTEGER NOT NULL,
    PRIMARY KEY (run_id, scope)
) STRICT, WITHOUT ROWID;

CREATE TABLE run_findings (
    run_id INTEGER NOT NULL REFERENCES runs (id),
    kind   TEXT    NOT NULL,
    open   INTEGER NOT NULL,
    waived INTEGER NOT NULL,
    PRIMARY KEY (run_id, kind)
) STRICT, WITHOUT ROWID;

CREATE TABLE records (
    kind       TEXT    NOT NULL CHECK (kind IN ('principal', 'credential', 'grant')),
    id         TEXT    NOT NULL,
    scope      TEXT    NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL,
    removed_at INTEGER,
    first_run  INTEGER NOT NULL,
    last_run   INTEGER NOT NULL,
    PRIMARY KEY (kind, id)
) STRICT, WITHOUT ROWID;
CREATE INDEX records_present_by_scope ON records (scope) WHERE removed_at IS NULL;

CREATE TABLE detections (
    grant_id       TEXT    PRIMARY KEY,
    first_detected INTEGER NOT NULL,
    first_run      INTEGER NOT NULL,
    kind           TEXT    NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE revocations (
    run_id         INTEGER NOT NULL REFERENCES runs (id),
    grant_id       TEXT    NOT NULL,
    first_detected INTEGER NOT NULL,
    removed_at     INTEGER NOT NULL,
    kind           TEXT    NOT NULL,
    PRIMARY KEY (run_id, grant_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE deactivations (
    credential_id  TEXT    PRIMARY KEY,
    principal      TEXT    NOT NULL,
    deactivated_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
",
    // 2: the immutable id of each principal (AWS UserId/RoleId/GroupId, Google uniqueId), so
    // a principal deleted and re-created under the same name is told apart from the one lapse
    // saw before: its grants start afresh instead of inheriting the old first sightings.
    // Records written before hold none, and are compared by creation time alone.
    r"
ALTER TABLE records ADD COLUMN unique_id TEXT;
",
];

/// The schema version this build writes, and the newest it reads.
#[allow(clippy::cast_possible_wrap)] // a handful of migrations, never 2^63
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// What an existing path holds, as far as lapse is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Found {
    /// Nothing at the path.
    Nothing,
    /// An empty file or an SQLite file with no tables: safe to initialize.
    Blank,
    /// A lapse state file of this schema version or an older one.
    State {
        /// Its schema version.
        version: i64,
    },
}

/// Looks at `path` through a read-only connection and refuses what lapse must not write to.
///
/// # Errors
/// [`Error::StateCorrupt`] for a file SQLite cannot read or whose pages fail `quick_check`,
/// [`Error::StateForeign`] for another program's database, [`Error::StateTooNew`] for a file
/// from a newer lapse.
pub(crate) fn inspect(path: &Path) -> Result<Found> {
    match std::fs::metadata(path) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Found::Nothing),
        Err(source) => {
            return Err(Error::StateIo {
                path: path.to_owned(),
                source,
            });
        }
        Ok(metadata) if metadata.is_dir() => {
            return Err(Error::StateCorrupt {
                path: path.to_owned(),
                detail: "it is a folder".to_owned(),
            });
        }
        Ok(_) => {}
    }
    let corrupt = |error: rusqlite::Error| Error::StateCorrupt {
        path: path.to_owned(),
        detail: error.to_string(),
    };
    let connection = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(corrupt)?;
    let application_id: i64 = connection
        .pragma_query_value(None, "application_id", |row| row.get(0))
        .map_err(corrupt)?;
    let version: i64 = connection
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(corrupt)?;
    let tables: i64 = connection
        .query_row("SELECT count(*) FROM sqlite_schema", [], |row| row.get(0))
        .map_err(corrupt)?;
    if application_id == 0 && version == 0 && tables == 0 {
        return Ok(Found::Blank);
    }
    if application_id != APPLICATION_ID {
        return Err(Error::StateForeign {
            path: path.to_owned(),
        });
    }
    if version > SCHEMA_VERSION {
        return Err(Error::StateTooNew {
            path: path.to_owned(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    // Damage past the header only shows when pages are read: check them all before writing.
    let check: String = connection
        .query_row("PRAGMA quick_check(1)", [], |row| row.get(0))
        .map_err(corrupt)?;
    if check != "ok" {
        return Err(Error::StateCorrupt {
            path: path.to_owned(),
            detail: check,
        });
    }
    Ok(Found::State { version })
}

/// Brings a connection from `from` to [`SCHEMA_VERSION`] in one transaction: a failure leaves
/// the file at its old version, whole.
pub(crate) fn migrate(
    connection: &mut Connection,
    from: i64,
) -> std::result::Result<(), rusqlite::Error> {
    if from >= SCHEMA_VERSION {
        return Ok(());
    }
    let transaction =
        connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    for migration in MIGRATIONS.iter().skip(usize::try_from(from).unwrap_or(0)) {
        transaction.execute_batch(migration)?;
    }
    transaction.pragma_update(None, "application_id", APPLICATION_ID)?;
    transaction.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    transaction.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_path_is_nothing_and_an_empty_file_is_blank() {
        let folder = tempfile::tempdir().expect("tempdir");
        let path = folder.path().join("state.db");
        assert_eq!(inspect(&path).expect("inspect"), Found::Nothing);
        std::fs::write(&path, b"").expect("write");
        assert_eq!(inspect(&path).expect("inspect"), Found::Blank);
        assert_eq!(
            std::fs::read(&path).expect("read"),
            b"",
            "inspecting writes nothing"
        );
    }

    #[test]
    fn a_migrated_file_is_a_state_of_the_current_version() {
        let folder = tempfile::tempdir().expect("tempdir");
        let path = folder.path().join("state.db");
        let mut connection = Connection::open(&path).expect("open");
        migrate(&mut connection, 0).expect("migrate");
        drop(connection);
        assert_eq!(
            inspect(&path).expect("inspect"),
            Found::State {
                version: SCHEMA_VERSION
            }
        );
    }

    #[test]
    fn text_is_corrupt_and_is_not_changed() {
        let folder = tempfile::tempdir().expect("tempdir");
        let path = folder.path().join("state.db");
        let bytes = b"this is not a database, it is a note about one".repeat(100);
        std::fs::write(&path, &bytes).expect("write");
        let error = inspect(&path).expect_err("corrupt");
        assert!(matches!(error, Error::StateCorrupt { .. }), "{error}");
        assert_eq!(std::fs::read(&path).expect("read"), bytes);
    }

    #[test]
    fn another_programs_database_is_foreign() {
        let folder = tempfile::tempdir().expect("tempdir");
        let path = folder.path().join("other.db");
        let connection = Connection::open(&path).expect("open");
        connection
            .execute_batch("CREATE TABLE notes (text TEXT)")
            .expect("create");
        drop(connection);
        let error = inspect(&path).expect_err("foreign");
        assert!(matches!(error, Error::StateForeign { .. }), "{error}");
    }

    #[test]
    fn a_newer_schema_is_refused_with_both_versions() {
        let folder = tempfile::tempdir().expect("tempdir");
        let path = folder.path().join("state.db");
        let mut connection = Connection::open(&path).expect("open");
        migrate(&mut connection, 0).expect("migrate");
        connection
            .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .expect("bump");
        drop(connection);
        let error = inspect(&path).expect_err("too new");
        assert!(
            matches!(error, Error::StateTooNew { found, supported, .. } if found == SCHEMA_VERSION + 1 && supported == SCHEMA_VERSION),
            "{error}"
        );
        assert!(error.to_string().contains("upgrade lapse"));
    }

    /// A state file as lapse wrote it with schema 1, after one plan run (a fixture kept in the
    /// repository, written by that version of lapse).
    fn schema_one_file(folder: &Path) -> std::path::PathBuf {
        let path = folder.join("state.db");
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/recreated/state-v1.db"),
            &path,
        )
        .expect("copy the schema 1 fixture");
        path
    }

    #[test]
    fn a_file_written_with_schema_one_migrates_and_keeps_its_records() {
        let folder = tempfile::tempdir().expect("tempdir");
        let path = schema_one_file(folder.path());
        assert_eq!(
            inspect(&path).expect("inspect"),
            Found::State { version: 1 }
        );
        let mut connection = Connection::open(&path).expect("open");
        let before: Vec<(String, String, i64)> = connection
            .prepare("SELECT kind, id, first_seen FROM records ORDER BY kind, id")
            .expect("prepare")
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
            .expect("query")
            .collect::<rusqlite::Result<_>>()
            .expect("rows");
        assert_eq!(before.len(), 4);
        migrate(&mut connection, 1).expect("migrate");
        let after: Vec<(String, String, i64, Option<String>)> = connection
            .prepare("SELECT kind, id, first_seen, unique_id FROM records ORDER BY kind, id")
            .expect("prepare")
            .query_map([], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
            })
            .expect("query")
            .collect::<rusqlite::Result<_>>()
            .expect("rows");
        assert_eq!(
            after,
            before
                .into_iter()
                .map(|(kind, id, first_seen)| (kind, id, first_seen, None))
                .collect::<Vec<_>>()
        );
        drop(connection);
        assert_eq!(
            inspect(&path).expect("inspect"),
            Found::State {
                version: SCHEMA_VERSION
            }
        );
    }

    #[test]
    fn migrating_twice_changes_nothing() {
        let mut connection = Connection::open_in_memory().expect("open");
        migrate(&mut connection, 0).expect("migrate");
        migrate(&mut connection, SCHEMA_VERSION).expect("again");
        let version: i64 = connection
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .expect("version");
        assert_eq!(version, SCHEMA_VERSION);
    }
}
