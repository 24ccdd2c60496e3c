//! A snapshot: what providers saw, scope by scope, with each scope's completeness.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

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

/// A snapshot file that cannot be used.
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
    /// The `format` marker is missing or different.
    #[error("not a lapse snapshot: `format` is {found:?}, expected {SNAPSHOT_FORMAT:?}")]
    WrongFormat {
        /// What the file says.
        found: String,
    },
    /// Written by a different version of the format.
    #[error(
        "snapshot format version {found} is not supported (this lapse reads version {SNAPSHOT_VERSION}); take the snapshot again with this lapse, or upgrade lapse"
    )]
    UnsupportedVersion {
        /// What the file says.
        found: u32,
    },
}

/// Only the header, read first so a file from a newer lapse gets a version error rather than an
/// unknown-field error.
#[derive(Deserialize)]
struct Header {
    #[serde(default)]
    format: String,
    #[serde(default)]
    version: u32,
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

    /// Parses a snapshot file's bytes, checking format and version before anything else.
    ///
    /// # Errors
    /// When the bytes are not JSON, not a snapshot, or of another format version.
    pub fn from_json_slice(bytes: &[u8]) -> Result<Self, SnapshotError> {
        // One full parse in the common case; the header alone is read only to explain a
        // failure (a newer version is reported as such, not as an unknown field).
        let check = |format: &str, version: u32| {
            if format != SNAPSHOT_FORMAT {
                Err(SnapshotError::WrongFormat {
                    found: format.to_owned(),
                })
            } else if version != SNAPSHOT_VERSION {
                Err(SnapshotError::UnsupportedVersion { found: version })
            } else {
                Ok(())
            }
        };
        match serde_json::from_slice::<Snapshot>(bytes) {
            Ok(snapshot) => {
                check(&snapshot.format, snapshot.version)?;
                Ok(snapshot)
            }
            Err(source) => {
                if let Ok(header) = serde_json::from_slice::<Header>(bytes) {
                    check(&header.format, header.version)?;
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
            matches!(error, SnapshotError::UnsupportedVersion { found: 7 }),
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
