//! One run at a time per state file: an exclusive lock on a sidecar file (`state.db.lock`).
//!
//! The lock lives beside the database rather than on it so that SQLite's own locking is left
//! alone, and so that it also covers the read-only inspection that precedes any write. The lock
//! is the operating system's (`flock` on Unix): it is released when the process ends, however
//! it ends, so a crashed run never leaves the state locked. The lock file itself stays; it holds
//! nothing and need not be kept by CI.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// An exclusive hold on a state file, released on drop.
#[derive(Debug)]
pub(crate) struct StateLock {
    // Held for its lock; closing the file releases it.
    _file: File,
}

/// The lock file of a state file: its name with `.lock` appended.
pub(crate) fn lock_path(state: &Path) -> PathBuf {
    let mut name = state.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    state.with_file_name(name)
}

impl StateLock {
    /// Takes the lock, waiting up to `timeout` for another run to release it. `on_wait` is
    /// called once, when the lock is found held, so the caller can say why it is waiting.
    ///
    /// The wait measures elapsed time with a monotonic clock; no wall-clock time is read here
    /// or recorded anywhere.
    pub(crate) fn acquire(
        state: &Path,
        timeout: Duration,
        on_wait: &mut dyn FnMut(&Path),
    ) -> Result<StateLock> {
        let path = lock_path(state);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| Error::StateIo {
                path: path.clone(),
                source,
            })?;
        let started = Instant::now();
        let mut pause = Duration::from_millis(20);
        let mut told = false;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(StateLock { _file: file }),
                Err(TryLockError::Error(source)) => {
                    return Err(Error::StateIo { path, source });
                }
                Err(TryLockError::WouldBlock) => {}
            }
            let waited = started.elapsed();
            if waited >= timeout {
                return Err(Error::StateLocked {
                    path: state.to_owned(),
                    lock: path,
                    waited_seconds: waited.as_secs(),
                });
            }
            if !told {
                on_wait(&path);
                told = true;
            }
            std::thread::sleep(pause.min(timeout.saturating_sub(waited)));
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_file_sits_beside_the_state() {
        assert_eq!(
            lock_path(Path::new("ci/.lapse/state.db")),
            Path::new("ci/.lapse/state.db.lock")
        );
    }

    #[test]
    fn a_held_lock_refuses_a_second_holder_and_is_free_after_drop() {
        let folder = tempfile::tempdir().expect("tempdir");
        let state = folder.path().join("state.db");
        let first = StateLock::acquire(&state, Duration::ZERO, &mut |_| {}).expect("first");
        let error =
            StateLock::acquire(&state, Duration::ZERO, &mut |_| {}).expect_err("second holder");
        assert!(matches!(error, Error::StateLocked { .. }), "{error}");
        assert!(error.to_string().contains("--lock-timeout"));
        drop(first);
        StateLock::acquire(&state, Duration::ZERO, &mut |_| {}).expect("free again");
    }

    #[test]
    fn a_waiter_is_told_once_and_gets_the_lock_when_it_is_released() {
        let folder = tempfile::tempdir().expect("tempdir");
        let state = folder.path().join("state.db");
        let holder = StateLock::acquire(&state, Duration::ZERO, &mut |_| {}).expect("holder");
        let (told_sender, told) = std::sync::mpsc::channel();
        let waiter_state = state.clone();
        let waiter = std::thread::spawn(move || {
            StateLock::acquire(&waiter_state, Duration::from_secs(60), &mut |_| {
                told_sender.send(()).expect("send");
            })
        });
        // Released only once the waiter has said it waits: no sleeps, no races.
        told.recv().expect("the waiter says it waits");
        drop(holder);
        waiter
            .join()
            .expect("join")
            .expect("the waiter gets the lock");
        assert!(told.try_recv().is_err(), "told once");
    }
}
