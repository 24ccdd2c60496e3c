//! Reading input files with bounds: no file makes lapse allocate more than its kind's limit
//! (a policy, a snapshot, a plan), whatever its size on disk says (a device or a pipe reports
//! none), and text that is not UTF-8 is refused at the first bad byte's line and column.

use std::io::Read as _;
use std::path::Path;

use crate::error::{Error, Result};

/// The largest policy file read: hand-written policies are kilobytes; `lapse init` over a very
/// large estate writes a few megabytes per 10,000 grants.
pub const POLICY_LIMIT: u64 = 64 << 20;

/// The largest snapshot file read. The largest measured estate (100k principals, 1M grants)
/// is 555 MiB over ten files; one file per account or project stays far below this.
pub const SNAPSHOT_LIMIT: u64 = 2 << 30;

/// The largest saved plan read.
pub const PLAN_LIMIT: u64 = 2 << 30;

/// What kind of file is read, for limits and messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputKind {
    /// A policy file.
    Policy,
    /// A snapshot file.
    Snapshot,
    /// A saved plan.
    Plan,
}

impl InputKind {
    /// The most bytes read from a file of this kind.
    #[must_use]
    pub fn limit(self) -> u64 {
        match self {
            InputKind::Policy => POLICY_LIMIT,
            InputKind::Snapshot => SNAPSHOT_LIMIT,
            InputKind::Plan => PLAN_LIMIT,
        }
    }

    fn name(self) -> &'static str {
        match self {
            InputKind::Policy => "policy file",
            InputKind::Snapshot => "snapshot file",
            InputKind::Plan => "plan file",
        }
    }

    fn advice(self) -> &'static str {
        match self {
            InputKind::Policy => "split it into several files in a policy folder",
            InputKind::Snapshot => {
                "take one snapshot file per account, subscription or project and pass them all"
            }
            InputKind::Plan => "plan per scope (one snapshot file each) and apply each plan",
        }
    }
}

/// Reads a whole file, refusing one larger than its kind's limit before reading it, or, when
/// its size is not known in advance, as soon as the limit is passed.
///
/// # Errors
/// [`Error::Read`] when it cannot be read, [`Error::TooLarge`] past the limit.
pub fn read(path: &Path, kind: InputKind) -> Result<Vec<u8>> {
    let read_error = |source| Error::Read {
        path: path.to_owned(),
        source,
    };
    let limit = kind.limit();
    let too_large = |size: u64| Error::TooLarge {
        path: path.to_owned(),
        size,
        limit,
        kind: kind.name(),
        advice: kind.advice(),
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let size = file.metadata().map_err(read_error)?.len();
    if size > limit {
        return Err(too_large(size));
    }
    let capacity = usize::try_from(size).unwrap_or(0);
    read_bounded(file, path, kind, capacity)
}

/// Reads standard input whole, within its kind's limit (a pipe has no size to check first).
///
/// # Errors
/// [`Error::Read`] when it cannot be read, [`Error::TooLarge`] past the limit.
pub fn read_stdin(kind: InputKind) -> Result<Vec<u8>> {
    read_bounded(std::io::stdin().lock(), Path::new("<stdin>"), kind, 0)
}

/// Reads at most one byte past the limit, so a stream without end is refused, not buffered.
fn read_bounded(
    reader: impl std::io::Read,
    path: &Path,
    kind: InputKind,
    capacity: usize,
) -> Result<Vec<u8>> {
    let limit = kind.limit();
    let mut bytes = Vec::with_capacity(capacity);
    reader
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
    if bytes.len() as u64 > limit {
        return Err(Error::TooLarge {
            path: path.to_owned(),
            size: bytes.len() as u64,
            limit,
            kind: kind.name(),
            advice: kind.advice(),
        });
    }
    Ok(bytes)
}

/// The bytes as UTF-8 text.
///
/// # Errors
/// [`Error::NotUtf8`] at the line and column of the first byte that is not UTF-8.
pub fn text(path: &Path, bytes: Vec<u8>) -> Result<String> {
    String::from_utf8(bytes).map_err(|error| {
        let bytes = error.as_bytes();
        let offset = error.utf8_error().valid_up_to();
        let (line, column) = lapse_sdk::json_position::line_column(bytes, offset);
        Error::NotUtf8 {
            path: path.to_owned(),
            line,
            column,
            byte: bytes.get(offset).copied().unwrap_or_default(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_past_its_limit_is_refused_without_being_read() {
        let folder = tempfile::tempdir().expect("tempdir");
        let path = folder.path().join("huge.yaml");
        let file = std::fs::File::create(&path).expect("create");
        // Sparse: no disk space, and reading it would allocate the whole limit.
        file.set_len(POLICY_LIMIT + 1).expect("set_len");
        let error = read(&path, InputKind::Policy).expect_err("too large");
        assert!(matches!(error, Error::TooLarge { .. }), "{error}");
        assert!(error.to_string().contains("huge.yaml"), "{error}");
    }

    #[test]
    fn not_utf8_names_the_line_and_column_of_the_first_bad_byte() {
        let error = text(
            Path::new("p.yaml"),
            b"version: 1\nowner: caf\xe9\n".to_vec(),
        )
        .expect_err("latin-1");
        assert_eq!(
            error.to_string(),
            "p.yaml:2:11: not UTF-8 (byte 0xe9): save the file as UTF-8"
        );
    }
}
