//! What the live end-to-end tests of every provider share: one run's folder and policy, and the
//! snapshot → plan → apply → undo commands, each cloud bringing only how to reach its fake.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

/// A provider's test world: its fake, its credentials, and a folder holding the policy, plans,
/// journals and snapshots of one run.
pub(crate) trait LiveWorld {
    /// `lapse <subcommand>` reaching this world's fake, with `--no-state` on commands that
    /// record state by default.
    fn lapse(&self, subcommand: &str) -> assert_cmd::Command;

    /// The run's folder.
    fn folder(&self) -> &Path;

    /// The policy file.
    fn policy(&self) -> &Path;

    fn path(&self, name: &str) -> PathBuf {
        self.folder().join(name)
    }

    /// `lapse snapshot <scope flags> --out <name>`, which must read everything (exit 0).
    fn snapshot_with(&self, name: &str, scope: &[&str]) -> Value {
        let out = self.path(name);
        let output = self
            .lapse("snapshot")
            .args(scope)
            .arg("--out")
            .arg(&out)
            .output()
            .expect("snapshot");
        assert_eq!(output.status.code(), Some(0), "{}", output_text(&output));
        serde_json::from_slice(&std::fs::read(&out).expect("read")).expect("snapshot json")
    }

    /// A live plan saved to `plan.json`, which must find drift (exit 2).
    fn plan(&self) -> Value {
        let output = self
            .lapse("plan")
            .args(["--now", crate::NOW, "--format", "json", "--out"])
            .arg(self.path("plan.json"))
            .arg("--policy")
            .arg(self.policy())
            .output()
            .expect("plan");
        assert_eq!(output.status.code(), Some(2), "{}", output_text(&output));
        serde_json::from_slice(&output.stdout).expect("plan json")
    }

    /// `lapse apply plan.json` with the run's journal.
    fn apply(&self, extra: &[&str]) -> Output {
        self.lapse("apply")
            .arg(self.path("plan.json"))
            .arg("--journal")
            .arg(self.path("journal.jsonl"))
            .args(["--now", crate::NOW, "--format", "json"])
            .args(extra)
            .output()
            .expect("apply")
    }

    /// `lapse undo` of the run's journal.
    fn undo(&self, extra: &[&str]) -> Output {
        self.lapse("undo")
            .arg("--journal")
            .arg(self.path("journal.jsonl"))
            .args(["--format", "json"])
            .args(extra)
            .output()
            .expect("undo")
    }
}

/// A finished command's stdout and stderr, for assertion messages.
pub(crate) fn output_text(output: &Output) -> String {
    format!(
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A plan's findings as sorted (kind, subject id) pairs.
pub(crate) fn findings(plan: &Value) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = plan["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|finding| {
            (
                finding["kind"].as_str().unwrap_or_default().to_owned(),
                finding["subject"]["id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    found.sort();
    found
}
