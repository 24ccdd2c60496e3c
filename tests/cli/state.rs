//! Memory between runs: several `plan` runs over changing snapshots of one estate, `--now`
//! stepping forward, on a state file in a temporary folder; refused files; the lock; `history`.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use crate::*;

const T0: &str = "2026-11-20T06:00:00Z";
const ANA_ADMIN: &str =
    "arn:aws:iam::111122223333:user/ana|arn:aws:iam::aws:policy/AdministratorAccess";
const CONTRACTOR_READ: &str =
    "arn:aws:iam::111122223333:user/contractor|arn:aws:iam::aws:policy/ReadOnlyAccess";
const BREAKGLASS_ADMIN: &str =
    "arn:aws:iam::111122223333:role/breakglass|arn:aws:iam::aws:policy/AdministratorAccess";

/// The state file lives here, under a folder that does not exist yet.
struct Estate {
    folder: tempfile::TempDir,
}

/// The outcome of one run.
struct Run {
    code: i32,
    plan: Value,
    stderr: String,
}

impl Run {
    /// The findings about one subject, as (kind, age source, held?).
    fn about(&self, subject: &str) -> Vec<(String, String, bool)> {
        self.plan["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .filter(|finding| finding["subject"]["id"] == subject)
            .map(|finding| {
                (
                    finding["kind"].as_str().unwrap_or_default().to_owned(),
                    finding["evidence"]["age"]["source"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    finding["action"]["held"].is_string(),
                )
            })
            .collect()
    }
}

impl Estate {
    fn new() -> Self {
        Estate {
            folder: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn state(&self) -> PathBuf {
        self.folder.path().join("ci-cache/.lapse/state.db")
    }

    fn plan(&self, step: &str, now: &str) -> Run {
        let output = lapse()
            .arg("plan")
            .arg("--policy")
            .arg(fixture("state", "policy.yaml"))
            .arg("--snapshot")
            .arg(fixture("state", step))
            .args(["--now", now, "--format", "json", "--lock-timeout", "0s"])
            .arg("--state")
            .arg(self.state())
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        let plan = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
        Run {
            code: output.status.code().expect("exit code"),
            plan,
            stderr,
        }
    }

    fn history(&self, extra: &[&str]) -> std::process::Output {
        lapse()
            .arg("history")
            .arg("--state")
            .arg(self.state())
            .args(extra)
            .output()
            .expect("run")
    }

    /// The six runs of the story told in `tests/fixtures/state/`.
    fn run_the_story(&self) -> Vec<Run> {
        [
            ("step1.json", T0),
            ("step1.json", "2026-11-20T08:00:00Z"),
            ("step2.json", "2026-11-20T16:00:00Z"),
            ("step3-incomplete.json", "2026-11-20T18:00:00Z"),
            ("step2.json", "2026-11-20T20:00:00Z"),
            ("step4.json", "2026-11-21T02:00:00Z"),
        ]
        .iter()
        .map(|(step, now)| self.plan(step, now))
        .collect()
    }
}

#[test]
fn a_grant_without_a_cloud_time_ages_from_first_sight_and_exceeds_its_ttl_on_the_third_run() {
    let estate = Estate::new();
    let first = estate.plan("step1.json", T0);
    assert_eq!(first.code, 2, "{}", first.stderr);
    assert_eq!(
        first.about(ANA_ADMIN),
        [("standing-privilege".to_owned(), "unknown".to_owned(), true)],
        "first sight: the age is unknown and the revocation held"
    );
    assert!(
        first.stderr.contains("unknown age (first seen now)"),
        "a fresh state says so: {}",
        first.stderr
    );
    assert_eq!(
        first.about(BREAKGLASS_ADMIN)[0].1,
        "cloud",
        "the cloud's own creation time wins over first sight"
    );

    assert_eq!(
        first.about(CONTRACTOR_READ),
        [("undeclared-grant".to_owned(), "unknown".to_owned(), false)]
    );

    let second = estate.plan("step1.json", "2026-11-20T08:00:00Z");
    assert!(
        second.about(ANA_ADMIN).is_empty(),
        "2h since first seen is within the 8h window"
    );

    let third = estate.plan("step2.json", "2026-11-20T16:00:00Z");
    assert!(
        third.about(CONTRACTOR_READ).is_empty(),
        "the contractor's grant is gone"
    );
    assert_eq!(
        third.about(ANA_ADMIN),
        [("ttl-exceeded".to_owned(), "first-seen".to_owned(), false)]
    );
    let finding = third.plan["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|finding| finding["subject"]["id"] == ANA_ADMIN)
        .expect("finding");
    assert_eq!(finding["evidence"]["age"]["since"], T0);
    assert_eq!(finding["evidence"]["age"]["seconds"], 10 * 3_600);
    assert!(
        finding["evidence"]["summary"]
            .as_str()
            .unwrap_or_default()
            .contains("age since first seen"),
        "{}",
        finding["evidence"]["summary"]
    );
    assert!(third.stderr.contains("run 3 recorded"), "{}", third.stderr);
}

#[test]
fn a_complete_scan_marks_what_is_gone_and_an_incomplete_one_removes_nothing() {
    let estate = Estate::new();
    let runs = estate.run_the_story();
    let codes: Vec<i32> = runs.iter().map(|run| run.code).collect();
    assert_eq!(codes, [2, 2, 2, 3, 2, 0], "the incomplete run exits 3");
    assert!(
        runs[2]
            .stderr
            .contains("removed 1 principal(s), 0 credential(s), 1 grant(s)")
    );
    assert!(
        runs[3]
            .stderr
            .contains("removed 0 principal(s), 0 credential(s), 0 grant(s)"),
        "the incomplete scan lacks two grants but removes nothing: {}",
        runs[3].stderr
    );
    // Ana's grant was missing from the incomplete scan only: it keeps its first sighting.
    let finding = runs[4].plan["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|finding| finding["subject"]["id"] == ANA_ADMIN)
        .expect("ana's grant is still flagged");
    assert_eq!(finding["evidence"]["age"]["since"], T0);
    assert!(runs[5].about(ANA_ADMIN).is_empty(), "gone");

    let output = estate.history(&["--format", "json"]);
    assert_eq!(output.status.code(), Some(0));
    let history: Value = serde_json::from_slice(&output.stdout).expect("json");
    let runs = history["runs"].as_array().expect("runs");
    let removed: Vec<&Value> = runs.iter().map(|run| &run["removed"]["grants"]).collect();
    assert_eq!(removed, [0, 0, 1, 0, 0, 2]);
    let revoked: Vec<&Value> = runs.iter().map(|run| &run["revoked"]["grants"]).collect();
    // The contractor's grant (flagged since the first run) and Ana's (flagged since the third);
    // the waived break-glass grant went too, but nothing was waiting to revoke it.
    assert_eq!(revoked, [0, 0, 1, 0, 0, 1]);
    assert_eq!(runs[2]["revoked"]["max_seconds_to_revoke"], 10 * 3_600);
    assert_eq!(runs[5]["revoked"]["max_seconds_to_revoke"], 10 * 3_600);
    assert_eq!(runs[3]["complete"], false);
}

#[test]
fn history_shows_each_run_as_a_table_and_as_versioned_json() {
    let estate = Estate::new();
    estate.run_the_story();
    let table = estate.history(&["--format", "table"]);
    assert_eq!(table.status.code(), Some(0));
    insta::assert_snapshot!("history_table", String::from_utf8_lossy(&table.stdout));
    let json = estate.history(&["--format", "json"]);
    let history: Value = serde_json::from_slice(&json.stdout).expect("json");
    assert_eq!(history["format"], "lapse-history");
    assert_eq!(history["version"], 1);
    insta::assert_json_snapshot!("history_json", history);

    let since = estate.history(&["--format", "json", "--since", "2026-11-20T18:00:00Z"]);
    let since: Value = serde_json::from_slice(&since.stdout).expect("json");
    let runs: Vec<&Value> = since["runs"]
        .as_array()
        .expect("runs")
        .iter()
        .map(|run| &run["run"])
        .collect();
    assert_eq!(runs, [4, 5, 6]);
    let day = estate.history(&["--format", "json", "--since", "2026-11-21"]);
    let day: Value = serde_json::from_slice(&day.stdout).expect("json");
    assert_eq!(
        day["runs"].as_array().map(Vec::len),
        Some(1),
        "a date is its midnight"
    );
}

#[test]
fn history_without_a_state_file_says_how_to_get_one_and_creates_nothing() {
    let estate = Estate::new();
    lapse()
        .arg("history")
        .arg("--state")
        .arg(estate.state())
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no state file at"))
        .stderr(predicate::str::contains(
            "`lapse plan` records its runs there",
        ));
    assert!(!estate.state().parent().expect("folder").exists());
}

#[test]
fn a_run_older_than_the_last_recorded_one_is_refused() {
    let estate = Estate::new();
    assert_eq!(estate.plan("step2.json", "2026-11-20T16:00:00Z").code, 2);
    let older = estate.plan("step1.json", T0);
    assert_eq!(older.code, 1);
    assert!(
        older.stderr.contains("before the last run recorded"),
        "{}",
        older.stderr
    );
    assert!(older.plan.is_null(), "nothing on stdout");
}

/// Runs `plan` on an existing state file that lapse must refuse, and checks that it exits 1
/// with `message`, prints no plan and leaves the file byte for byte as it was.
fn assert_refused_untouched(estate: &Estate, message: &str) {
    let before = std::fs::read(estate.state()).expect("state file");
    let run = estate.plan("step1.json", "2026-11-22T00:00:00Z");
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains(message), "{}", run.stderr);
    assert!(run.stderr.contains("left untouched"), "{}", run.stderr);
    assert!(run.plan.is_null(), "no plan from a refused state");
    let history = estate.history(&["--format", "json"]);
    assert_eq!(history.status.code(), Some(1));
    assert_eq!(
        std::fs::read(estate.state()).expect("state file"),
        before,
        "byte-identical"
    );
}

#[test]
fn a_corrupt_state_file_is_an_error_and_is_never_reset() {
    let estate = Estate::new();
    std::fs::create_dir_all(estate.state().parent().expect("folder")).expect("mkdir");
    std::fs::write(
        estate.state(),
        b"this was a state file before someone saved a note over it\n".repeat(80),
    )
    .expect("write");
    assert_refused_untouched(&estate, "is not a usable lapse state file");

    // A real state file whose header was damaged.
    let damaged = Estate::new();
    assert_eq!(damaged.plan("step1.json", T0).code, 2);
    let mut bytes = std::fs::read(damaged.state()).expect("state");
    bytes[..16].copy_from_slice(b"NOT SQLITE AT AL");
    std::fs::write(damaged.state(), &bytes).expect("write");
    assert_refused_untouched(&damaged, "is not a usable lapse state file");
}

#[test]
fn a_state_file_from_a_newer_lapse_is_an_error_and_is_left_as_it_is() {
    let estate = Estate::new();
    assert_eq!(estate.plan("step1.json", T0).code, 2);
    let connection = rusqlite::Connection::open(estate.state()).expect("open");
    connection
        .pragma_update(None, "user_version", lapse::state::SCHEMA_VERSION + 1)
        .expect("bump the schema version");
    drop(connection);
    assert_refused_untouched(&estate, "newer than this lapse reads");
}

#[test]
fn another_programs_database_is_refused() {
    let estate = Estate::new();
    std::fs::create_dir_all(estate.state().parent().expect("folder")).expect("mkdir");
    let connection = rusqlite::Connection::open(estate.state()).expect("open");
    connection
        .execute_batch("CREATE TABLE invoices (id INTEGER PRIMARY KEY)")
        .expect("create");
    drop(connection);
    assert_refused_untouched(&estate, "not a lapse state file");
}

/// Holds the state's lock the way a concurrent `lapse plan` would.
fn hold_lock(estate: &Estate) -> std::fs::File {
    let lock = estate.state().with_file_name("state.db.lock");
    std::fs::create_dir_all(lock.parent().expect("folder")).expect("mkdir");
    let file = std::fs::File::create(&lock).expect("lock file");
    file.lock().expect("lock");
    file
}

#[test]
fn a_run_finding_the_state_locked_fails_clearly_when_told_not_to_wait() {
    let estate = Estate::new();
    let held = hold_lock(&estate);
    let run = estate.plan("step1.json", T0);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("is in use by another lapse run"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("--lock-timeout"), "{}", run.stderr);
    drop(held);
    assert_eq!(estate.plan("step1.json", T0).code, 2, "free again");
}

#[test]
fn a_second_run_waits_for_the_first_and_then_records() {
    let estate = Estate::new();
    let held = hold_lock(&estate);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_lapse"))
        .env_remove("LAPSE_POLICY")
        .env_remove("LAPSE_STATE")
        .arg("plan")
        .arg("--policy")
        .arg(fixture("state", "policy.yaml"))
        .arg("--snapshot")
        .arg(fixture("state", "step1.json"))
        .args(["--now", T0, "--format", "json", "--lock-timeout", "10m"])
        .arg("--state")
        .arg(estate.state())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let mut line = String::new();
    stderr.read_line(&mut line).expect("read");
    assert!(line.contains("waiting up to 10m"), "{line}");
    // Released only once the run has said it waits: no sleeps.
    drop(held);
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(2));
    let history: Value =
        serde_json::from_slice(&estate.history(&["--format", "json"]).stdout).expect("json");
    assert_eq!(history["runs"].as_array().map(Vec::len), Some(1));
}

#[test]
fn without_state_nothing_is_written_and_by_default_it_lives_in_dot_lapse() {
    let folder = tempfile::tempdir().expect("tempdir");
    let plan = |extra: &[&str]| {
        lapse()
            .current_dir(folder.path())
            .arg("plan")
            .arg("--policy")
            .arg(fixture("state", "policy.yaml"))
            .arg("--snapshot")
            .arg(fixture("state", "step1.json"))
            .args(["--now", T0, "--format", "json"])
            .args(extra)
            .output()
            .expect("run")
    };
    assert_eq!(plan(&["--no-state"]).status.code(), Some(2));
    assert!(
        !folder.path().join(".lapse").exists(),
        "--no-state writes nothing"
    );
    // Bad input is refused before the state is touched.
    let bad = lapse()
        .current_dir(folder.path())
        .args(["plan", "--policy", "missing.yaml", "--snapshot"])
        .arg(fixture("state", "step1.json"))
        .output()
        .expect("run");
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        !folder.path().join(".lapse").exists(),
        "bad input writes nothing"
    );

    assert_eq!(plan(&[]).status.code(), Some(2));
    assert!(folder.path().join(".lapse/state.db").is_file());
    let history = lapse()
        .current_dir(folder.path())
        .args(["history", "--format", "json"])
        .output()
        .expect("run");
    let history: Value = serde_json::from_slice(&history.stdout).expect("json");
    assert_eq!(history["runs"].as_array().map(Vec::len), Some(1));
}

#[test]
fn a_live_snapshot_with_state_records_an_inventory_run() {
    let moto = lapse_provider_aws::testing::MotoServer::start();
    let estate = Estate::new();
    let folder = tempfile::tempdir().expect("tempdir");
    let out = folder.path().join("aws.json");
    let output = lapse()
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_PROFILE")
        .args(["snapshot", "--aws-endpoint-url", &moto.endpoint])
        .args(["--provider", "aws", "--account", "123456789012", "--out"])
        .arg(&out)
        .arg("--state")
        .arg(estate.state())
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(out.is_file(), "the snapshot is written as without state");
    assert!(stderr.contains("run 1 recorded"), "{stderr}");
    let history: Value =
        serde_json::from_slice(&estate.history(&["--format", "json"]).stdout).expect("json");
    let run = &history["runs"][0];
    assert_eq!(run["command"], "snapshot");
    assert!(
        run.get("findings").is_none(),
        "an inventory run has no findings"
    );
    assert_eq!(run["scopes"], 1);
}

/// `plan` of `tests/fixtures/recreated/` with a state file: (kind of each finding, its subject).
fn recreated_plan(state: &Path, step: &str, now: &str) -> (i32, Vec<(String, String)>) {
    let output = lapse()
        .arg("plan")
        .arg("--policy")
        .arg(fixture("recreated", "policy.yaml"))
        .arg("--snapshot")
        .arg(fixture("recreated", step))
        .args(["--now", now, "--format", "json", "--lock-timeout", "0s"])
        .arg("--state")
        .arg(state)
        .output()
        .expect("run");
    let plan: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("{error}: {}", String::from_utf8_lossy(&output.stderr)));
    let findings = plan["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|finding| {
            (
                finding["kind"].as_str().unwrap_or_default().to_owned(),
                finding["subject"]["principal"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    (output.status.code().expect("exit code"), findings)
}

const ANA: &str = "arn:aws:iam::111122223333:user/ana";
const BOB: &str = "arn:aws:iam::111122223333:user/bob";
const TWO_DAYS_ON: &str = "2026-11-22T06:00:00Z";

#[test]
fn a_user_re_created_under_the_same_arn_between_runs_is_not_ttl_exceeded() {
    // Both runs by this lapse: the immutable id recorded in the first tells the new ana apart.
    for after in ["after.json", "after-no-unique-id.json"] {
        let folder = tempfile::tempdir().expect("tempdir");
        let state = folder.path().join("state.db");
        recreated_plan(&state, "before.json", T0);
        let (code, findings) = recreated_plan(&state, after, TWO_DAYS_ON);
        assert_eq!(code, 2);
        assert!(
            !findings.contains(&("ttl-exceeded".to_owned(), ANA.to_owned())),
            "{after}: {findings:?}"
        );
        assert!(
            findings.contains(&("ttl-exceeded".to_owned(), BOB.to_owned())),
            "{after}: bob's admin is two days old: {findings:?}"
        );
    }
}

#[test]
fn a_state_file_from_schema_one_is_migrated_and_bounds_first_sight_by_creation() {
    // The first run was recorded by the lapse before schema 2 (no immutable ids stored): the
    // new ana's creation time still bounds the age her grant inherits from the old record.
    let folder = tempfile::tempdir().expect("tempdir");
    let state = folder.path().join("state.db");
    std::fs::copy(fixture("recreated", "state-v1.db"), &state).expect("copy");
    let (code, findings) = recreated_plan(&state, "after.json", TWO_DAYS_ON);
    assert_eq!(code, 2);
    assert!(
        !findings.contains(&("ttl-exceeded".to_owned(), ANA.to_owned())),
        "{findings:?}"
    );
    assert!(
        findings.contains(&("ttl-exceeded".to_owned(), BOB.to_owned())),
        "bob keeps the first sighting the old file recorded: {findings:?}"
    );
    let connection = rusqlite::Connection::open(&state).expect("open");
    let version: i64 = connection
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .expect("version");
    assert_eq!(version, lapse::state::SCHEMA_VERSION);
    let ids: Vec<(String, Option<String>)> = connection
        .prepare("SELECT id, unique_id FROM records WHERE kind = 'principal' ORDER BY id")
        .expect("prepare")
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .expect("query")
        .collect::<rusqlite::Result<_>>()
        .expect("rows");
    assert_eq!(
        ids,
        [
            (ANA.to_owned(), Some("AIDAANA0000000000002".to_owned())),
            (BOB.to_owned(), Some("AIDABOB0000000000001".to_owned()))
        ]
    );
}
