//! The journal's file handling: versioned lines, a torn tail, damage, the lock, resumption state.

use lapse_sdk::{Action, Cloud, Credential, CredentialKind, CredentialStatus, TargetState, Usage};

use super::*;

fn at(text: &str) -> Timestamp {
    Timestamp::parse_rfc3339(text).expect("instant")
}

fn begin() -> Record {
    Record::Begin(Begin {
        at: at("2026-11-20T06:00:00Z"),
        command: JournalCommand::Apply,
        plan_digest: "sha256:plan".to_owned(),
        plan_file: Some("plan.json".to_owned()),
        plan_now: at("2026-11-20T05:00:00Z"),
        plan_made: None,
        plan_policy_digest: "sha256:policy".to_owned(),
        policy_digest: "sha256:policy".to_owned(),
        snapshot_digest: "sha256:snapshot".to_owned(),
        operator: Operator::default(),
        lapse_version: "0.1.0".to_owned(),
        actions: 1,
        max_revocations: 10,
        stop_after: None,
    })
}

fn planned() -> Planned {
    Planned {
        target_digest: "sha256:target".to_owned(),
        reversible: true,
        findings: Vec::new(),
        action: Action::DeactivateCredential {
            credential: Credential {
                id: "AKIAEXAMPLE".into(),
                principal: "arn:aws:iam::1:user/batch".into(),
                cloud: Cloud::Aws,
                scope: "aws:1".into(),
                kind: CredentialKind::AwsAccessKey,
                display_name: None,
                created_at: None,
                expires_at: None,
                last_used: Usage::Never,
                status: CredentialStatus::Active,
                cloud_managed: false,
            },
        },
    }
}

fn intent(attempt: u32) -> Record {
    Record::Intent(Intent {
        sequence: 1,
        at: at("2026-11-20T06:00:01Z"),
        attempt,
        planned: planned(),
        before: TargetState {
            present: true,
            ..TargetState::default()
        },
        calls: vec!["iam:UpdateAccessKey".to_owned()],
    })
}

fn outcome(result: ResultKind) -> Record {
    Record::Outcome(Outcome {
        sequence: 1,
        at: at("2026-11-20T06:00:02Z"),
        result,
        message: None,
        planned: None,
        before: None,
    })
}

#[test]
fn lines_are_versioned_and_read_back() {
    let folder = tempfile::tempdir().expect("tempdir");
    let path = folder.path().join("deep/folder/journal.jsonl");
    let mut journal = Journal::open(&path).expect("open");
    assert!(!path.exists(), "nothing is created before the first line");
    journal.append(begin()).expect("begin");
    journal.append(intent(1)).expect("intent");
    journal.append(outcome(ResultKind::Done)).expect("outcome");
    drop(journal);
    let text = std::fs::read_to_string(&path).expect("read");
    assert_eq!(text.lines().count(), 3);
    for line in text.lines() {
        let value: serde_json::Value = serde_json::from_str(line).expect("json");
        assert_eq!(value["format"], "lapse-journal");
        assert_eq!(value["version"], 1);
        assert!(value["kind"].is_string());
    }
    let contents = read(&path).expect("read back");
    assert_eq!(contents.plan_digest(), Some("sha256:plan"));
    let history = &contents.actions[&1];
    assert_eq!(history.intents.len(), 1);
    assert_eq!(
        history.outcome.as_ref().map(|outcome| outcome.result),
        Some(ResultKind::Done)
    );
    assert!(!history.interrupted());
    assert_eq!(history.before().map(|before| before.present), Some(true));
}

#[test]
fn a_torn_last_line_is_dropped_and_the_next_line_starts_clean() {
    let folder = tempfile::tempdir().expect("tempdir");
    let path = folder.path().join("journal.jsonl");
    let mut journal = Journal::open(&path).expect("open");
    journal.append(begin()).expect("begin");
    journal.append(intent(1)).expect("intent");
    drop(journal);
    // A crash in the middle of writing the outcome.
    let mut text = std::fs::read_to_string(&path).expect("read");
    text.push_str(r#"{"format":"lapse-journal","version":1,"kind":"outc"#);
    std::fs::write(&path, &text).expect("write");

    let mut journal = Journal::open(&path).expect("reopen");
    assert!(journal.contents().actions[&1].interrupted());
    journal
        .append(outcome(ResultKind::Reconciled))
        .expect("outcome");
    drop(journal);
    let contents = read(&path).expect("read");
    assert_eq!(
        contents.actions[&1]
            .outcome
            .as_ref()
            .map(|outcome| outcome.result),
        Some(ResultKind::Reconciled)
    );
    assert_eq!(
        std::fs::read_to_string(&path)
            .expect("read")
            .lines()
            .count(),
        3
    );
}

#[test]
fn a_damaged_line_or_a_newer_version_is_an_error_naming_the_line() {
    let folder = tempfile::tempdir().expect("tempdir");
    let path = folder.path().join("journal.jsonl");
    let mut journal = Journal::open(&path).expect("open");
    journal.append(begin()).expect("begin");
    drop(journal);
    let good = std::fs::read_to_string(&path).expect("read");
    std::fs::write(&path, format!("{good}not json\n{good}")).expect("write");
    let error = Journal::open(&path).expect_err("damaged");
    assert!(matches!(error, Error::Journal { line: 2, .. }), "{error}");
    std::fs::write(&path, good.replace("\"version\":1", "\"version\":2")).expect("write");
    let error = read(&path).expect_err("newer");
    assert!(error.to_string().contains("journal version 2"), "{error}");
    std::fs::write(&path, good.replace("lapse-journal", "something-else")).expect("write");
    assert!(read(&path).is_err());
}

#[test]
fn a_held_journal_refuses_a_second_run() {
    let folder = tempfile::tempdir().expect("tempdir");
    let path = folder.path().join("journal.jsonl");
    let first = Journal::open(&path).expect("first");
    let error = Journal::open(&path).expect_err("second");
    assert!(matches!(error, Error::JournalLocked { .. }), "{error}");
    assert!(error.to_string().contains("one run at a time"), "{error}");
    drop(first);
    Journal::open(&path).expect("free again");
}

#[test]
fn an_intent_after_a_failure_is_open_until_its_own_outcome() {
    let mut contents = JournalContents::default();
    contents.absorb(begin());
    contents.absorb(intent(1));
    assert!(contents.actions[&1].interrupted());
    assert_eq!(contents.actions[&1].next_attempt(), 2);
    contents.absorb(outcome(ResultKind::Failed));
    assert!(!contents.actions[&1].interrupted());
    contents.absorb(intent(2));
    assert!(contents.actions[&1].interrupted(), "a retry that crashed");
    contents.absorb(outcome(ResultKind::Done));
    assert!(!contents.actions[&1].interrupted());
    assert_eq!(contents.runs.len(), 1);
    assert!(contents.runs[0].end.is_none(), "no end: interrupted run");
}
