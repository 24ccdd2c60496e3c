//! A snapshot: what providers saw, scope by scope, with each scope's completeness.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::check::{Problem, check_snapshot};
use crate::json_position::{JsonPath, Segment, position_of};
use crate::{Cloud, Credential, Grant, Principal, ScopeId, Timestamp};

/// The value of the `format` field that marks a lapse snapshot file.
pub const SNAPSHOT_FORMAT: &str = "lapse-snapshot";
/// The snapshot format version this build reads and writes.
pub const SNAPSHOT_VERSION: u32 = 1;

/// What kind of container a scope is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum ScopeKind {
    /// An AWS account.
    Account,
    /// An Entra tenant (directory objects, directory roles).
    Tenant,
    /// An Azure subscription.
    Subscription,
    /// A Google Cloud project.
    Project,
    /// A Google Cloud folder.
    Folder,
    /// A Google Cloud organization.
    Organization,
}

/// One failed read while scanning a scope.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ScopeError {
    /// The API operation that failed (`iam:GetAccountAuthorizationDetails`).
    pub operation: String,
    /// What went wrong, with the cloud's error code.
    pub message: String,
    /// The permission that would have allowed it, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing_permission: Option<String>,
}

/// One scanned scope and whether everything in it could be read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ScopeStatus {
    /// The scope's id.
    pub id: ScopeId,
    /// Its cloud.
    pub cloud: Cloud,
    /// What kind of container it is.
    pub kind: ScopeKind,
    /// When it was read.
    pub taken_at: Timestamp,
    /// False when any read failed: its inventory may be missing items and nothing absent from it
    /// may be taken as gone.
    pub complete: bool,
    /// The identity the provider read it as (caller ARN, client id, service account).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller: Option<String>,
    /// Every other principal through which lapse's own identity holds access here, each
    /// protected like the caller: the application owning an Entra service principal's secrets,
    /// the groups the caller belongs to, the service accounts a Google caller impersonated
    /// through. Losing any of them would lock lapse out of its next run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub caller_identities: Vec<String>,
    /// What failed, when incomplete.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<ScopeError>,
}

/// The normalized inventory of one or more scopes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    /// Always [`SNAPSHOT_FORMAT`].
    pub format: String,
    /// The format version, [`SNAPSHOT_VERSION`] for files this build writes.
    pub version: u32,
    /// When the snapshot was taken (the earliest scope's time after a merge).
    pub taken_at: Timestamp,
    /// The scopes read.
    pub scopes: Vec<ScopeStatus>,
    /// Identities.
    #[serde(default)]
    pub principals: Vec<Principal>,
    /// Keys and secrets.
    #[serde(default)]
    pub credentials: Vec<Credential>,
    /// Entitlements held.
    #[serde(default)]
    pub grants: Vec<Grant>,
}

/// A snapshot file that cannot be used. Every variant says where in the file (line and
/// column, and the record's path for records) and what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// Not JSON, or not the snapshot shape.
    #[error("not a lapse snapshot")]
    Malformed {
        /// The JSON error, with line and column.
        #[source]
        source: serde_json::Error,
    },
    /// Nothing but white space.
    #[error(
        "the file is empty (line 1, column 1): an interrupted write or copy? take the snapshot again with `lapse snapshot`"
    )]
    Empty,
    /// A byte-order mark, or UTF-16 text.
    #[error(
        "the file starts with a {encoding} byte-order mark (line 1, column 1): lapse writes UTF-8 JSON without one; save it as UTF-8 without a BOM, or take the snapshot again"
    )]
    ByteOrderMark {
        /// What the mark says the text is.
        encoding: &'static str,
    },
    /// The `format` marker is missing or different.
    #[error(
        "not a lapse snapshot: `format` is {found:?}, expected {SNAPSHOT_FORMAT:?} (line {line}, column {column})"
    )]
    WrongFormat {
        /// What the file says.
        found: String,
        /// 1-based line of the value (or of the document, when the key is missing).
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// Written by a different version of the format.
    #[error(
        "snapshot format version {found} is not supported (line {line}, column {column}; this lapse reads version {SNAPSHOT_VERSION}); take the snapshot again with this lapse, or upgrade lapse"
    )]
    UnsupportedVersion {
        /// What the file says.
        found: u32,
        /// 1-based line of the value.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// Records that cannot be what the file says they are: outside their scopes, of another
    /// cloud, duplicated, or dated after their scope was read.
    #[error(
        "{} cannot be as written, so the file was edited or forged; take the snapshot again with `lapse snapshot`:{problems}",
        count(problems.len(), "record")
    )]
    Inconsistent {
        /// The problems, the first of them with their place in the file.
        problems: PlacedProblems,
    },
}

impl SnapshotError {
    /// The 1-based line and column the error is about: serde_json's for a malformed file (its
    /// column is 0 at the very start of an empty line), the value's for a wrong format or
    /// version, the first listed record's for inconsistent records, the file's start otherwise.
    #[must_use]
    pub fn position(&self) -> (usize, usize) {
        match self {
            SnapshotError::Malformed { source } => (source.line(), source.column()),
            SnapshotError::Empty | SnapshotError::ByteOrderMark { .. } => (1, 1),
            SnapshotError::WrongFormat { line, column, .. }
            | SnapshotError::UnsupportedVersion { line, column, .. } => (*line, *column),
            SnapshotError::Inconsistent { problems } => problems
                .listed
                .first()
                .map_or((1, 1), |problem| (problem.line, problem.column)),
        }
    }
}

/// A [`Problem`] with the line and column where its record starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlacedProblem {
    /// The record's path (`grants[3]`).
    pub path: JsonPath,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for PlacedProblem {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "{} (line {}, column {}): {}",
            self.path, self.line, self.column, self.message
        )
    }
}

/// At most this many problems are placed and listed; the rest are counted. Placing one walks
/// the file from its start, so a file with a million bad records costs twenty walks, not a
/// million.
const LISTED_PROBLEMS: usize = 20;

/// Problems of one file: the first [`LISTED_PROBLEMS`] placed, the rest counted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlacedProblems {
    /// The problems listed, each with its line and column.
    pub listed: Vec<PlacedProblem>,
    /// How many more there are.
    pub unlisted: usize,
}

impl PlacedProblems {
    /// How many problems there are in all.
    #[must_use]
    pub fn len(&self) -> usize {
        self.listed.len() + self.unlisted
    }

    /// True when there are none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One problem per indented line, then how many more.
impl fmt::Display for PlacedProblems {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        for problem in &self.listed {
            write!(formatter, "\n  {problem}")?;
        }
        if self.unlisted > 0 {
            write!(formatter, "\n  and {} more", self.unlisted)?;
        }
        Ok(())
    }
}

fn count(number: usize, noun: &str) -> String {
    if number == 1 {
        format!("1 {noun}")
    } else {
        format!("{number} {noun}s")
    }
}

/// Places the first [`LISTED_PROBLEMS`] problems in `bytes` (the line and column where each
/// record starts, under `prefix`) and counts the rest.
#[must_use]
pub fn place_problems(
    bytes: &[u8],
    problems: Vec<Problem>,
    prefix: &[Segment<'_>],
) -> PlacedProblems {
    let unlisted = problems.len().saturating_sub(LISTED_PROBLEMS);
    let listed = problems
        .into_iter()
        .take(LISTED_PROBLEMS)
        .map(|problem| {
            let mut path: Vec<Segment<'_>> = prefix.to_vec();
            path.extend(problem.path.0.iter().copied());
            let (line, column) = position_of(bytes, &path).unwrap_or((1, 1));
            PlacedProblem {
                path: problem.path,
                line,
                column,
                message: problem.message,
            }
        })
        .collect();
    PlacedProblems { listed, unlisted }
}

/// What the first bytes of a file say about its encoding, when they say it is not plain
/// UTF-8 JSON: a byte-order mark.
#[must_use]
pub fn byte_order_mark(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(&[0xEF, 0xBB, 0xBF]) {
        Some("UTF-8")
    } else if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
        Some("UTF-16")
    } else {
        None
    }
}

/// Only the header, read first so a file from a newer lapse gets a version error rather than an
/// unknown-field error.
#[derive(Deserialize)]
struct Header {
    #[serde(default)]
    format: String,
    #[serde(default)]
    version: Option<u32>,
}

impl Snapshot {
    /// An empty snapshot taken at `taken_at`.
    #[must_use]
    pub fn empty(taken_at: Timestamp) -> Self {
        Snapshot {
            format: SNAPSHOT_FORMAT.to_owned(),
            version: SNAPSHOT_VERSION,
            taken_at,
            scopes: Vec::new(),
            principals: Vec::new(),
            credentials: Vec::new(),
            grants: Vec::new(),
        }
    }

    /// Parses a snapshot file's bytes, checking format and version before anything else, then
    /// that every record can belong to the scope it names (see [`crate::check`]).
    ///
    /// serde_json's recursion limit (128 levels) bounds the stack on deeply nested input; the
    /// caller bounds the size.
    ///
    /// # Errors
    /// When the bytes are not JSON, not a snapshot, of another format version, or hold records
    /// that contradict their scopes; each error says where.
    pub fn from_json_slice(bytes: &[u8]) -> Result<Self, SnapshotError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(SnapshotError::Empty);
        }
        if let Some(encoding) = byte_order_mark(bytes) {
            return Err(SnapshotError::ByteOrderMark { encoding });
        }
        let at = |key: &str| position_of(bytes, &[Segment::Key(key)]).unwrap_or((1, 1));
        // One full parse in the common case; the header alone is read only to explain a
        // failure (a newer version is reported as such, not as an unknown field).
        let check = |format: &str, version: u32| {
            if format != SNAPSHOT_FORMAT {
                let (line, column) = at("format");
                Err(SnapshotError::WrongFormat {
                    found: format.to_owned(),
                    line,
                    column,
                })
            } else if version != SNAPSHOT_VERSION {
                let (line, column) = at("version");
                Err(SnapshotError::UnsupportedVersion {
                    found: version,
                    line,
                    column,
                })
            } else {
                Ok(())
            }
        };
        match serde_json::from_slice::<Snapshot>(bytes) {
            Ok(snapshot) => {
                check(&snapshot.format, snapshot.version)?;
                let problems = check_snapshot(&snapshot);
                if problems.is_empty() {
                    Ok(snapshot)
                } else {
                    Err(SnapshotError::Inconsistent {
                        problems: place_problems(bytes, problems, &[]),
                    })
                }
            }
            Err(source) => {
                if let Ok(header) = serde_json::from_slice::<Header>(bytes) {
                    // A missing version is not version 0: the format check says more.
                    if let Some(version) = header.version {
                        check(&header.format, version)?;
                    } else if header.format != SNAPSHOT_FORMAT {
                        check(&header.format, SNAPSHOT_VERSION)?;
                    }
                }
                Err(SnapshotError::Malformed { source })
            }
        }
    }

    /// True when every scope was read completely.
    #[must_use]
    pub fn is_complete(&self) -> bool {
        self.scopes.iter().all(|scope| scope.complete)
    }

    /// Merges several snapshots (one per account, as a CI matrix produces) into one.
    ///
    /// Records are keyed by id; when two snapshots hold the same id, the one taken later wins,
    /// so re-scanning an account replaces its older view. A scope read by both keeps the later
    /// reading. The result is sorted by id, so merging is order-independent and merging a
    /// snapshot with itself changes nothing.
    #[must_use]
    pub fn merge(snapshots: Vec<Snapshot>) -> Snapshot {
        let taken_at = snapshots
            .iter()
            .map(|snapshot| snapshot.taken_at)
            .min()
            .unwrap_or(Timestamp::UNIX_EPOCH);
        // Oldest first, so later readings come later and win the de-duplication below.
        let mut ordered = snapshots;
        ordered.sort_by_key(|snapshot| snapshot.taken_at);
        // Each scope's records come only from its latest reading: an object deleted between two
        // readings must not survive the merge through the older file.
        let mut latest_reading: BTreeMap<ScopeId, (Timestamp, usize)> = BTreeMap::new();
        for (index, snapshot) in ordered.iter().enumerate() {
            for scope in &snapshot.scopes {
                let entry = latest_reading
                    .entry(scope.id.clone())
                    .or_insert((scope.taken_at, index));
                if scope.taken_at >= entry.0 {
                    *entry = (scope.taken_at, index);
                }
            }
        }
        let from_latest = |scope: &ScopeId, index: usize| {
            latest_reading
                .get(scope)
                .is_none_or(|(_, latest)| *latest == index)
        };
        let mut scopes = Vec::new();
        let mut principals = Vec::new();
        let mut credentials = Vec::new();
        let mut grants = Vec::new();
        for (index, snapshot) in ordered.into_iter().enumerate() {
            scopes.extend(
                snapshot
                    .scopes
                    .into_iter()
                    .filter(|scope| from_latest(&scope.id, index)),
            );
            principals.extend(
                snapshot
                    .principals
                    .into_iter()
                    .filter(|principal| from_latest(&principal.scope, index)),
            );
            credentials.extend(
                snapshot
                    .credentials
                    .into_iter()
                    .filter(|credential| from_latest(&credential.scope, index)),
            );
            grants.extend(
                snapshot
                    .grants
                    .into_iter()
                    .filter(|grant| from_latest(&grant.scope, index)),
            );
        }
        keep_last_by_id(&mut scopes, |scope| &scope.id.0);
        keep_last_by_id(&mut principals, |principal| &principal.id.0);
        keep_last_by_id(&mut credentials, |credential| &credential.id.0);
        keep_last_by_id(&mut grants, |grant| &grant.id.0);
        Snapshot {
            format: SNAPSHOT_FORMAT.to_owned(),
            version: SNAPSHOT_VERSION,
            taken_at,
            scopes,
            principals,
            credentials,
            grants,
        }
    }
}

/// Sorts by id and keeps the last of each run of equal ids (input is oldest first, so the last
/// is the latest reading). Files lapse writes are already sorted and unique: that case costs one
/// pass. Otherwise indices are sorted, not the records, which are large.
fn keep_last_by_id<T>(items: &mut Vec<T>, id: impl Fn(&T) -> &str) {
    if items.windows(2).all(|pair| id(&pair[0]) < id(&pair[1])) {
        return;
    }
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_unstable_by(|left, right| {
        id(&items[*left])
            .cmp(id(&items[*right]))
            .then(left.cmp(right))
    });
    let mut keep = Vec::with_capacity(order.len());
    for (position, index) in order.iter().enumerate() {
        let is_last_of_run = order
            .get(position + 1)
            .is_none_or(|next| id(&items[*next]) != id(&items[*index]));
        if is_last_of_run {
            keep.push(*index);
        }
    }
    let mut slots: Vec<Option<T>> = std::mem::take(items).into_iter().map(Some).collect();
    *items = keep
        .into_iter()
        .filter_map(|index| slots[index].take())
        .collect();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        Timestamp::parse_rfc3339(text).expect("timestamp")
    }

    fn scope(id: &str, taken: &str, complete: bool) -> ScopeStatus {
        ScopeStatus {
            caller_identities: Vec::new(),
            id: ScopeId::from(id),
            cloud: Cloud::Aws,
            kind: ScopeKind::Account,
            taken_at: at(taken),
            complete,
            caller: None,
            errors: Vec::new(),
        }
    }

    #[test]
    fn a_newer_version_is_refused_by_version_not_by_field() {
        let text = br#"{"format":"lapse-snapshot","version":7,"taken_at":"2026-01-01T00:00:00Z","scopes":[],"new_thing":1}"#;
        let error = Snapshot::from_json_slice(text).expect_err("version 7");
        assert!(
            matches!(
                error,
                SnapshotError::UnsupportedVersion {
                    found: 7,
                    line: 1,
                    ..
                }
            ),
            "{error}"
        );
    }

    #[test]
    fn a_missing_version_is_not_read_as_version_0() {
        let text = br#"{"format":"lapse-snapshot","taken_at":"2026-01-01T00:00:00Z","scopes":[]}"#;
        let error = Snapshot::from_json_slice(text).expect_err("no version");
        assert!(
            matches!(&error, SnapshotError::Malformed { source } if source.to_string().contains("missing field `version`")),
            "{error:?}"
        );
    }

    #[test]
    fn records_outside_their_scopes_are_refused_with_their_place() {
        let text = br#"{"format": "lapse-snapshot", "version": 1, "taken_at": "2026-01-01T00:00:00Z",
 "scopes": [{"id": "aws:111122223333", "cloud": "aws", "kind": "account", "taken_at": "2026-01-01T00:00:00Z", "complete": true}],
 "principals": [
  {"id": "arn:aws:iam::111122223333:user/a", "cloud": "aws", "scope": "aws:111122223333", "kind": "human"},
  {"id": "arn:aws:iam::999999999999:user/x", "cloud": "aws", "scope": "aws:111122223333", "kind": "human"}]}"#;
        let error = Snapshot::from_json_slice(text).expect_err("forged");
        assert_eq!(error.position(), (5, 3));
        assert!(
            error.to_string().contains("principals[1] (line 5, column 3): principal `arn:aws:iam::999999999999:user/x` is in account 999999999999, not in its scope aws:111122223333"),
            "{error}"
        );
    }

    #[test]
    fn a_later_reading_of_a_scope_replaces_the_earlier_one() {
        let mut old = Snapshot::empty(at("2026-01-01T00:00:00Z"));
        old.scopes
            .push(scope("aws:1", "2026-01-01T00:00:00Z", false));
        let mut new = Snapshot::empty(at("2026-01-02T00:00:00Z"));
        new.scopes
            .push(scope("aws:1", "2026-01-02T00:00:00Z", true));
        let merged = Snapshot::merge(vec![new, old]);
        assert_eq!(merged.scopes.len(), 1);
        assert!(merged.scopes[0].complete);
        assert_eq!(merged.taken_at, at("2026-01-01T00:00:00Z"));
    }
}
