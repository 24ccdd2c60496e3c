//! Reading snapshot files: in parallel, each bounded in size ([`input::SNAPSHOT_LIMIT`]) and
//! checked for format, version and records that contradict their scopes, then merged.

use std::path::{Path, PathBuf};

use lapse_sdk::Snapshot;
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::input::{self, InputKind};

/// Snapshots read from files and merged, with a digest that identifies the inputs.
#[derive(Clone, Debug)]
pub struct LoadedSnapshot {
    /// The merged snapshot.
    pub snapshot: Snapshot,
    /// SHA-256 over the files' own digests, sorted: the same files give the same digest in any
    /// order.
    pub digest: String,
    /// The files, as given.
    pub files: Vec<PathBuf>,
}

impl LoadedSnapshot {
    /// A snapshot taken live: its digest is over its JSON form.
    #[must_use]
    pub fn live(snapshot: Snapshot) -> Self {
        let json = serde_json::to_vec(&snapshot).unwrap_or_default();
        LoadedSnapshot {
            digest: format!("sha256:{}", hex::encode(Sha256::digest(json))),
            snapshot,
            files: Vec::new(),
        }
    }
}

/// Reads and merges snapshot files.
///
/// # Errors
/// [`Error::Read`] for a file that cannot be read, [`Error::Snapshot`] for one that is not a
/// snapshot of a supported version. The first failing file (in the order given) is reported.
pub fn load(paths: &[PathBuf]) -> Result<LoadedSnapshot> {
    let read: Vec<Result<(Snapshot, [u8; 32])>> =
        paths.par_iter().map(|path| read_one(path)).collect();
    let mut snapshots = Vec::with_capacity(read.len());
    let mut digests = Vec::with_capacity(read.len());
    for result in read {
        let (snapshot, digest) = result?;
        snapshots.push(snapshot);
        digests.push(digest);
    }
    digests.sort_unstable();
    digests.dedup();
    let mut hasher = Sha256::new();
    for digest in &digests {
        hasher.update(digest);
    }
    // Merging also sorts and de-duplicates a single file, so output order never depends on
    // how a provider listed things.
    let snapshot = Snapshot::merge(snapshots);
    Ok(LoadedSnapshot {
        snapshot,
        digest: format!("sha256:{}", hex::encode(hasher.finalize())),
        files: paths.to_vec(),
    })
}

fn read_one(path: &Path) -> Result<(Snapshot, [u8; 32])> {
    let bytes = input::read(path, InputKind::Snapshot)?;
    let digest: [u8; 32] = Sha256::digest(&bytes).into();
    let snapshot = Snapshot::from_json_slice(&bytes).map_err(|source| Error::Snapshot {
        path: path.to_owned(),
        source,
    })?;
    Ok((snapshot, digest))
}
