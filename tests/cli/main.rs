//! End-to-end tests of the `lapse` binary: one test binary, one module per area, shared helpers
//! here.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;

pub(crate) const NOW: &str = "2026-11-20T06:00:00Z";

pub(crate) fn lapse() -> Command {
    let mut command = Command::cargo_bin("lapse").expect("lapse binary");
    command
        .env_remove("LAPSE_POLICY")
        .env_remove("LAPSE_STATE")
        .env("NO_COLOR", "1");
    command
}

pub(crate) fn fixture(case: &str, file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(case)
        .join(file)
}

pub(crate) fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

pub(crate) fn demo_snapshots() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo("examples/demo"))
        .expect("examples/demo")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| {
            path.extension()
                .is_some_and(|extension| extension == "json")
        })
        .collect();
    files.sort();
    files
}

pub(crate) fn plan_json(policy: &Path, snapshots: &[PathBuf]) -> (i32, Value) {
    let output = lapse()
        .arg("plan")
        .arg("--policy")
        .arg(policy)
        .arg("--snapshot")
        .args(snapshots)
        .args(["--now", NOW, "--format", "json", "--no-state"])
        .output()
        .expect("run");
    let json = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("{error}: {}", String::from_utf8_lossy(&output.stderr)));
    (output.status.code().expect("exit code"), json)
}

/// Writes `text` to a temporary policy file and returns its folder and path.
pub(crate) fn temp_policy(text: &str) -> (tempfile::TempDir, PathBuf) {
    let folder = tempfile::tempdir().expect("tempdir");
    let path = folder.path().join("policy.yaml");
    std::fs::write(&path, text).expect("write");
    (folder, path)
}

mod apply;
mod aws;
mod azure;
mod commands;
mod examples;
mod faults;
mod gcp;
mod hostile;
mod inputs;
mod live;
mod plan;
mod reports;
mod state;
