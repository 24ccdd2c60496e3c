//! `lapse apply`, `undo` and `report --journal` end to end: the real binary and the real AWS
//! provider against a moto server, through a logging proxy that counts every mutating call and
//! kills lapse at chosen points. Ages come from `--now` forty days on (moto stamps its own
//! clock); nothing sleeps.

mod proxy;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Output;

use aws_credential_types::Credentials;
use lapse_provider_aws::testing::MotoServer;
use proxy::{KillPoint, Proxy};
use serde_json::Value;

use crate::*;

const ACCOUNT: &str = "123456789012";
const ADMIN: &str = "arn:aws:iam::aws:policy/AdministratorAccess";
const READ_ONLY: &str = "arn:aws:iam::aws:policy/ReadOnlyAccess";
const S3_READ: &str = "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess";
const ALLOW_ALL: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
const READ_BUCKET: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::data/*"}]}"#;
const TRUST_ACCOUNT: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"sts:AssumeRole"}]}"#;
/// The actions the estate's plan holds.
const ACTIONS: usize = 5;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

async fn iam(endpoint: &str) -> aws_sdk_iam::Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .load()
        .await;
    aws_sdk_iam::Client::new(&config)
}

fn arn(kind: &str, name: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT}:{kind}/{name}")
}

/// What the tests need to know about the estate.
struct Estate {
    /// batch's key the nightly job uses: waived by an exception, never touched.
    key_in_use: String,
    /// batch's key nobody uses: deactivated.
    key_idle: String,
    /// Its secret, which must never be written anywhere.
    key_idle_secret: String,
}

/// - `batch`: two active keys, one idle (deactivated), one waived: exactly one call.
/// - `ops`: standing AdministratorAccess and an inline admin document (both revoked), a
///   declared ReadOnlyAccess (kept).
/// - `dev`: member of `admins` (revoked: the group holds admin), an expired declaration of
///   AmazonS3ReadOnlyAccess approved by bob (revoked), a declared ReadOnlyAccess (kept).
/// - `break-glass`: AdministratorAccess, protected by the policy.
/// - role `lapse-apply`: the role lapse assumes, with IAMFullAccess: its own caller.
fn seed(endpoint: &str) -> Estate {
    runtime().block_on(async {
        let iam = iam(endpoint).await;
        iam.create_user()
            .user_name("batch")
            .send()
            .await
            .expect("user");
        let in_use = iam
            .create_access_key()
            .user_name("batch")
            .send()
            .await
            .expect("key")
            .access_key
            .expect("key");
        let idle = iam
            .create_access_key()
            .user_name("batch")
            .send()
            .await
            .expect("key")
            .access_key
            .expect("key");
        iam.create_user()
            .user_name("ops")
            .send()
            .await
            .expect("user");
        for policy in [ADMIN, READ_ONLY] {
            iam.attach_user_policy()
                .user_name("ops")
                .policy_arn(policy)
                .send()
                .await
                .expect("attach");
        }
        iam.put_user_policy()
            .user_name("ops")
            .policy_name("legacy")
            .policy_document(ALLOW_ALL)
            .send()
            .await
            .expect("inline");
        iam.create_group()
            .group_name("admins")
            .send()
            .await
            .expect("group");
        iam.attach_group_policy()
            .group_name("admins")
            .policy_arn(ADMIN)
            .send()
            .await
            .expect("attach");
        iam.create_user()
            .user_name("dev")
            .send()
            .await
            .expect("user");
        iam.add_user_to_group()
            .group_name("admins")
            .user_name("dev")
            .send()
            .await
            .expect("member");
        for policy in [READ_ONLY, S3_READ] {
            iam.attach_user_policy()
                .user_name("dev")
                .policy_arn(policy)
                .send()
                .await
                .expect("attach");
        }
        iam.create_user()
            .user_name("break-glass")
            .send()
            .await
            .expect("user");
        iam.attach_user_policy()
            .user_name("break-glass")
            .policy_arn(ADMIN)
            .send()
            .await
            .expect("attach");
        iam.create_role()
            .role_name("lapse-apply")
            .assume_role_policy_document(TRUST_ACCOUNT)
            .send()
            .await
            .expect("role");
        iam.attach_role_policy()
            .role_name("lapse-apply")
            .policy_arn("arn:aws:iam::aws:policy/IAMFullAccess")
            .send()
            .await
            .expect("attach");
        Estate {
            key_in_use: in_use.access_key_id().to_owned(),
            key_idle: idle.access_key_id().to_owned(),
            key_idle_secret: idle.secret_access_key().to_owned(),
        }
    })
}

fn policy_text(estate: &Estate) -> String {
    format!(
        r#"version: 1
scopes:
  aws: [{{account: "{ACCOUNT}", assume_role: "arn:aws:iam::{ACCOUNT}:role/lapse-apply"}}]
defaults: {{credential_max_idle: 30d}}
protect:
  - principal: arn:aws:iam::{ACCOUNT}:user/break-glass
grants:
  - {{principal: "arn:aws:iam::{ACCOUNT}:user/ops", entitlement: "{READ_ONLY}", owner: platform, approved_by: alice@example.com, ticket: SEC-1, expires: 2099-01-01}}
  - {{principal: "arn:aws:iam::{ACCOUNT}:user/dev", entitlement: "{READ_ONLY}", owner: data, approved_by: alice@example.com, ticket: SEC-2, expires: 2099-01-01}}
  - {{principal: "arn:aws:iam::{ACCOUNT}:user/dev", entitlement: "{S3_READ}", owner: data, approved_by: bob@example.com, ticket: SEC-7, expires: 2026-06-30}}
  - {{principal: "arn:aws:iam::{ACCOUNT}:group/admins", entitlement: "{ADMIN}", owner: platform, approved_by: carol@example.com, ticket: SEC-3, expires: 2099-01-01}}
exceptions:
  - rule: defaults
    principal: arn:aws:iam::{ACCOUNT}:user/batch
    credential: {in_use}
    until: 2099-01-01
    approved_by: dana@example.com
    reason: the nightly job still signs with it
"#,
        in_use = estate.key_in_use
    )
}

/// Forty days on: past the idle limit of keys moto just created.
fn forty_days_on() -> String {
    let later = time::OffsetDateTime::now_utc() + time::Duration::days(40);
    later
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format")
}

/// A moto server, a proxy in front of it, the estate, its policy and a saved plan.
struct World {
    moto: MotoServer,
    proxy: Proxy,
    estate: Estate,
    folder: tempfile::TempDir,
    policy: PathBuf,
    plan: PathBuf,
    journal: PathBuf,
    now: String,
}

impl World {
    fn new() -> World {
        let moto = MotoServer::start();
        let estate = seed(&moto.endpoint);
        let proxy = Proxy::start(&moto.endpoint);
        let (folder, policy) = temp_policy(&policy_text(&estate));
        let plan = folder.path().join("plan.json");
        let journal = folder.path().join("journal.jsonl");
        let world = World {
            moto,
            proxy,
            estate,
            folder,
            policy,
            plan,
            journal,
            now: forty_days_on(),
        };
        // --exact: batch's two keys are named by their ids whichever second moto created them
        // in (the credential report can tell them apart only by creation time), so the
        // exception that names one of them always matches.
        let output = world
            .lapse("plan")
            .args(["--exact", "--no-state", "--format", "json", "--out"])
            .arg(&world.plan)
            .arg("--policy")
            .arg(&world.policy)
            .output()
            .expect("plan");
        assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
        world
    }

    /// `lapse <subcommand>` through the proxy, with the world's `--now`, from its folder.
    fn lapse(&self, subcommand: &str) -> assert_cmd::Command {
        self.lapse_at(subcommand, &self.now)
    }

    /// The same at another instant. `report` reads no cloud and takes no `--now`.
    fn lapse_at(&self, subcommand: &str, now: &str) -> assert_cmd::Command {
        let mut command = lapse();
        command
            .current_dir(self.folder.path())
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_ENDPOINT_URL")
            .arg(subcommand);
        if subcommand != "report" {
            command.args(["--aws-endpoint-url", &self.proxy.endpoint, "--now", now]);
        }
        command
    }

    /// `lapse apply PLAN --journal J --no-state --format json` plus `extra`.
    fn apply(&self, extra: &[&str]) -> Output {
        self.lapse("apply")
            .arg(&self.plan)
            .arg("--journal")
            .arg(&self.journal)
            .args(["--no-state", "--format", "json"])
            .args(extra)
            .output()
            .expect("apply")
    }

    /// The same apply, killed by the proxy at the `at`-th mutating call.
    fn apply_killed(&self, at: usize, point: KillPoint) -> std::process::ExitStatus {
        self.proxy.kill_at(at, point);
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_lapse"));
        command
            .current_dir(self.folder.path())
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_ENDPOINT_URL")
            .env_remove("LAPSE_POLICY")
            .env_remove("LAPSE_STATE")
            .args([
                "apply",
                "--aws-endpoint-url",
                &self.proxy.endpoint,
                "--now",
                &self.now,
            ])
            .arg(&self.plan)
            .arg("--journal")
            .arg(&self.journal)
            .args([
                "--no-state",
                "--format",
                "json",
                "--execute",
                "--yes",
                "--concurrency",
                "1",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let mut child = command.spawn().expect("spawn");
        self.proxy.watch(child.id());
        let status = child.wait().expect("wait");
        self.proxy.disarm();
        status
    }

    fn live(&self) -> Live {
        runtime().block_on(Live::read(&self.moto.endpoint))
    }

    fn journal_lines(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.journal)
            .expect("journal")
            .lines()
            .map(|line| serde_json::from_str(line).expect("journal line"))
            .collect()
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "{error}: stdout {} stderr {}",
            text(&output.stdout),
            text(&output.stderr)
        )
    })
}

/// The IAM state the tests compare, read straight from moto.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Live {
    /// key id -> (user, status)
    keys: BTreeMap<String, (String, String)>,
    /// user or group -> attached policy ARNs
    attached: BTreeMap<String, BTreeSet<String>>,
    /// user -> inline policy name -> document
    inline: BTreeMap<String, BTreeMap<String, String>>,
    /// user -> groups
    groups: BTreeMap<String, BTreeSet<String>>,
}

impl Live {
    async fn read(endpoint: &str) -> Live {
        let iam = iam(endpoint).await;
        let mut live = Live {
            keys: BTreeMap::new(),
            attached: BTreeMap::new(),
            inline: BTreeMap::new(),
            groups: BTreeMap::new(),
        };
        let users = iam.list_users().send().await.expect("users");
        for user in users.users() {
            let name = user.user_name().to_owned();
            for key in iam
                .list_access_keys()
                .user_name(&name)
                .send()
                .await
                .expect("keys")
                .access_key_metadata()
            {
                live.keys.insert(
                    key.access_key_id().expect("id").to_owned(),
                    (
                        name.clone(),
                        key.status().expect("status").as_str().to_owned(),
                    ),
                );
            }
            let attached = iam
                .list_attached_user_policies()
                .user_name(&name)
                .send()
                .await
                .expect("attached");
            live.attached.insert(
                name.clone(),
                attached
                    .attached_policies()
                    .iter()
                    .filter_map(|policy| policy.policy_arn().map(str::to_owned))
                    .collect(),
            );
            let mut inline = BTreeMap::new();
            for policy in iam
                .list_user_policies()
                .user_name(&name)
                .send()
                .await
                .expect("inline")
                .policy_names()
            {
                let document = iam
                    .get_user_policy()
                    .user_name(&name)
                    .policy_name(policy)
                    .send()
                    .await
                    .expect("document");
                inline.insert(policy.clone(), document.policy_document().to_owned());
            }
            live.inline.insert(name.clone(), inline);
            let groups = iam
                .list_groups_for_user()
                .user_name(&name)
                .send()
                .await
                .expect("groups");
            live.groups.insert(
                name,
                groups
                    .groups()
                    .iter()
                    .map(|group| group.group_name().to_owned())
                    .collect(),
            );
        }
        for group in iam.list_groups().send().await.expect("groups").groups() {
            let name = group.group_name();
            let attached = iam
                .list_attached_group_policies()
                .group_name(name)
                .send()
                .await
                .expect("group");
            live.attached.insert(
                format!("group:{name}"),
                attached
                    .attached_policies()
                    .iter()
                    .filter_map(|policy| policy.policy_arn().map(str::to_owned))
                    .collect(),
            );
        }
        live
    }

    fn key_status(&self, key: &str) -> &str {
        &self.keys.get(key).expect("key").1
    }

    /// Every planned revocation shows.
    fn all_revoked(&self, estate: &Estate) -> bool {
        self.key_status(&estate.key_idle) == "Inactive"
            && !self.attached["ops"].contains(ADMIN)
            && !self.inline["ops"].contains_key("legacy")
            && !self.groups["dev"].contains("admins")
            && !self.attached["dev"].contains(S3_READ)
    }

    /// What no plan may touch is as it was.
    fn untouched_parts_hold(&self, estate: &Estate) {
        assert_eq!(
            self.key_status(&estate.key_in_use),
            "Active",
            "the other key of batch"
        );
        assert!(self.attached["ops"].contains(READ_ONLY), "declared");
        assert!(self.attached["dev"].contains(READ_ONLY), "declared");
        assert!(self.attached["break-glass"].contains(ADMIN), "protected");
        assert!(self.attached["group:admins"].contains(ADMIN), "declared");
    }
}

/// The five calls the plan makes, as the proxy logs them (order aside).
fn expected_calls(estate: &Estate) -> BTreeSet<String> {
    [
        format!(
            "UpdateAccessKey UserName=batch AccessKeyId={} Status=Inactive",
            estate.key_idle
        ),
        format!("DetachUserPolicy UserName=ops PolicyArn={ADMIN}"),
        "DeleteUserPolicy UserName=ops PolicyName=legacy".to_owned(),
        "RemoveUserFromGroup UserName=dev GroupName=admins".to_owned(),
        format!("DetachUserPolicy UserName=dev PolicyArn={S3_READ}"),
    ]
    .into_iter()
    .collect()
}

/// Per sequence number: the journal's last outcome and verification, and how many intents.
fn journal_summary(lines: &[Value]) -> BTreeMap<u64, (String, bool, usize)> {
    let mut summary: BTreeMap<u64, (String, bool, usize)> = BTreeMap::new();
    for line in lines {
        assert_eq!(line["format"], "lapse-journal");
        assert_eq!(line["version"], 1);
        let Some(sequence) = line["sequence"].as_u64() else {
            continue;
        };
        let entry = summary.entry(sequence).or_default();
        match line["kind"].as_str() {
            Some("intent") => entry.2 += 1,
            Some("outcome") => {
                entry.0 = line["result"].as_str().expect("result").to_owned();
                entry.1 = false;
            }
            Some("verify") => entry.1 = line["verified"] == true,
            _ => {}
        }
    }
    summary
}

#[test]
fn a_dry_run_prints_every_call_and_changes_nothing() {
    let world = World::new();
    let before = world.live();
    let output = world
        .lapse("apply")
        .arg(&world.plan)
        .args(["--no-state", "--format", "table"])
        .output()
        .expect("dry run");
    let stdout = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}{}",
        text(&output.stderr)
    );
    assert!(stdout.contains("dry run, nothing was changed"), "{stdout}");
    assert!(
        stdout.contains("aws aws:123456789012"),
        "calls are grouped per provider and scope: {stdout}"
    );
    for call in [
        format!(
            "iam:UpdateAccessKey UserName=batch AccessKeyId={} Status=Inactive",
            world.estate.key_idle
        ),
        format!("iam:DetachUserPolicy UserName=ops PolicyArn={ADMIN}"),
        "iam:DeleteUserPolicy UserName=ops PolicyName=legacy".to_owned(),
        "iam:RemoveUserFromGroup UserName=dev GroupName=admins".to_owned(),
        format!("iam:DetachUserPolicy UserName=dev PolicyArn={S3_READ}"),
    ] {
        assert!(
            stdout.contains(&format!("would call {call}")),
            "{call} in {stdout}"
        );
    }
    assert!(stdout.contains("5 call(s) would be made"), "{stdout}");
    assert!(
        !stdout.contains(&world.estate.key_in_use),
        "the waived key is in no call"
    );
    assert_eq!(world.live(), before, "snapshot before = after");
    assert!(
        world.proxy.forwarded().is_empty(),
        "{:?}",
        world.proxy.forwarded()
    );
    assert!(!world.journal.exists());
    assert!(
        !world.folder.path().join(".lapse").exists(),
        "a dry run writes nothing"
    );
}

#[test]
fn execute_revokes_exactly_the_planned_targets_verifies_them_and_reports_evidence() {
    let world = World::new();
    let output = world.apply(&["--execute", "--yes"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let report = json(&output);
    assert_eq!(report["format"], "lapse-apply");
    let actions = report["actions"].as_array().expect("actions");
    assert_eq!(actions.len(), ACTIONS);
    for action in actions {
        assert_eq!(action["status"], "done", "{action}");
        assert_eq!(action["verified"], true, "{action}");
    }
    // Exactly the planned calls, each once; the user with two keys got one call.
    let forwarded = world.proxy.forwarded();
    assert_eq!(forwarded.len(), ACTIONS, "{forwarded:#?}");
    assert_eq!(
        forwarded.iter().cloned().collect::<BTreeSet<_>>(),
        expected_calls(&world.estate)
    );
    let live = world.live();
    assert!(live.all_revoked(&world.estate), "{live:#?}");
    live.untouched_parts_hold(&world.estate);

    // The journal: an intent with the before-state before each outcome, then a verification.
    let lines = world.journal_lines();
    for sequence in 1..=ACTIONS as u64 {
        let kinds: Vec<&str> = lines
            .iter()
            .filter(|line| line["sequence"].as_u64() == Some(sequence))
            .filter_map(|line| line["kind"].as_str())
            .collect();
        assert_eq!(kinds, ["intent", "outcome", "verify"], "#{sequence}");
        let intent = lines
            .iter()
            .find(|line| line["sequence"].as_u64() == Some(sequence) && line["kind"] == "intent")
            .expect("intent");
        assert_eq!(intent["before"]["present"], true);
        assert_eq!(intent["before"]["revoked"], false);
    }
    assert_eq!(lines.first().expect("begin")["kind"], "begin");
    assert_eq!(lines.last().expect("end")["kind"], "end");

    // Evidence from the journal alone.
    let evidence = world
        .lapse("report")
        .arg("--journal")
        .arg(&world.journal)
        .args(["--format", "json"])
        .output()
        .expect("report");
    assert_eq!(
        evidence.status.code(),
        Some(0),
        "{}",
        text(&evidence.stderr)
    );
    let evidence = json(&evidence);
    assert_eq!(evidence["format"], "lapse-evidence");
    let revocations = evidence["revocations"].as_array().expect("revocations");
    assert_eq!(revocations.len(), ACTIONS);
    for revocation in revocations {
        assert_eq!(revocation["result"], "done");
        assert_eq!(revocation["verified"], true);
        assert!(revocation["before"].is_object());
        assert!(revocation["at"].is_string());
        assert!(
            !revocation["findings"]
                .as_array()
                .expect("findings")
                .is_empty()
        );
    }
    let expired = revocations
        .iter()
        .find(|revocation| {
            revocation["target"]
                .as_str()
                .is_some_and(|target| target.ends_with(S3_READ))
        })
        .expect("the expired declaration");
    let finding = &expired["findings"][0];
    assert_eq!(finding["kind"], "declared-grant-expired");
    assert_eq!(finding["approved_by"], "bob@example.com");
    assert_eq!(finding["ticket"], "SEC-7");
    assert_eq!(finding["origin"]["path"], "grants[2]");
    let inline = revocations
        .iter()
        .find(|revocation| {
            revocation["target"]
                .as_str()
                .is_some_and(|target| target.ends_with("inline:legacy"))
        })
        .expect("inline");
    assert!(
        inline["before"]["restore"]["document"]
            .as_str()
            .is_some_and(|document| document.contains("\"Action\":\"*\"")),
        "the document is kept for undo: {inline}"
    );
    let markdown = world
        .lapse("report")
        .arg("--journal")
        .arg(&world.journal)
        .args(["--format", "markdown"])
        .output()
        .expect("report");
    let markdown = text(&markdown.stdout);
    assert!(markdown.contains("# lapse evidence"), "{markdown}");
    assert!(markdown.contains("bob@example.com / SEC-7"), "{markdown}");
    assert!(markdown.contains("| verified |"), "{markdown}");

    // Again with the same plan and journal: nothing left to do, no call made.
    let again = world.apply(&["--execute", "--yes"]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stderr));
    assert!(
        json(&again)["actions"]
            .as_array()
            .expect("actions")
            .iter()
            .all(|action| action["earlier"] == true)
    );
    assert_eq!(world.proxy.forwarded().len(), ACTIONS, "no second call");
}

/// Kills lapse at the (k+1)-th mutating call, for every k, then runs it again: all calls are
/// made exactly once, and the journal and the live state agree.
fn killed_then_resumed(point: KillPoint) {
    for k in 0..ACTIONS {
        let world = World::new();
        let status = world.apply_killed(k + 1, point);
        assert!(!status.success(), "k={k}: killed");
        let summary = journal_summary(&world.journal_lines());
        let settled = summary
            .values()
            .filter(|(result, _, _)| result == "done")
            .count();
        assert_eq!(settled, k, "k={k}: {summary:?}");
        assert_eq!(
            summary
                .values()
                .filter(|(result, _, intents)| result.is_empty() && *intents == 1)
                .count(),
            1,
            "k={k}: one intent without an outcome: {summary:?}"
        );
        let forwarded_before = world.proxy.forwarded().len();
        assert_eq!(
            forwarded_before,
            k + usize::from(point == KillPoint::AfterCall),
            "k={k}"
        );

        let output = world.apply(&["--execute", "--yes", "--concurrency", "1"]);
        assert_eq!(
            output.status.code(),
            Some(0),
            "k={k}: {}",
            text(&output.stderr)
        );
        let forwarded = world.proxy.forwarded();
        assert_eq!(
            forwarded.len(),
            ACTIONS,
            "k={k}: each mutation exactly once: {forwarded:#?}\njournal: {:#?}\nrerun: {}",
            world.journal_lines(),
            text(&output.stdout)
        );
        assert_eq!(
            forwarded.iter().cloned().collect::<BTreeSet<_>>(),
            expected_calls(&world.estate),
            "k={k}"
        );

        let summary = journal_summary(&world.journal_lines());
        assert_eq!(summary.len(), ACTIONS, "k={k}");
        for (sequence, (result, verified, intents)) in &summary {
            assert!(verified, "k={k} #{sequence}: {summary:?}");
            let interrupted = *sequence == (k + 1) as u64;
            let expected = match (interrupted, point) {
                (true, KillPoint::AfterCall) => ("reconciled", 1),
                (true, KillPoint::BeforeCall) => ("done", 2),
                _ => ("done", 1),
            };
            assert_eq!((result.as_str(), *intents), expected, "k={k} #{sequence}");
        }
        let live = world.live();
        assert!(
            live.all_revoked(&world.estate),
            "k={k}: the journal and the live state agree"
        );
        live.untouched_parts_hold(&world.estate);
    }
}

#[test]
fn a_kill_after_any_call_reached_the_cloud_is_reconciled_without_a_second_call() {
    killed_then_resumed(KillPoint::AfterCall);
}

#[test]
fn a_kill_before_any_call_reached_the_cloud_is_finished_by_the_rerun() {
    killed_then_resumed(KillPoint::BeforeCall);
}

#[test]
fn stop_after_any_k_then_a_rerun_finishes_the_rest_once() {
    for k in 0..ACTIONS {
        let world = World::new();
        let stop = k.to_string();
        let output = world.apply(&["--execute", "--yes", "--stop-after", &stop]);
        assert_eq!(
            output.status.code(),
            Some(1),
            "k={k}: stopped early is not a success"
        );
        let report = json(&output);
        assert_eq!(report["stopped_after"], k);
        let done = report["actions"]
            .as_array()
            .expect("actions")
            .iter()
            .filter(|action| action["status"] == "done")
            .count();
        assert_eq!(done, k, "k={k}");
        assert_eq!(world.proxy.forwarded().len(), k, "k={k}");
        let output = world.apply(&["--execute", "--yes"]);
        assert_eq!(
            output.status.code(),
            Some(0),
            "k={k}: {}",
            text(&output.stderr)
        );
        assert_eq!(
            world.proxy.forwarded().len(),
            ACTIONS,
            "k={k}: {:#?}\n{}",
            world.proxy.events(),
            text(&output.stdout)
        );
        assert!(world.live().all_revoked(&world.estate), "k={k}");
    }
}

#[test]
fn a_target_changed_since_the_plan_is_skipped_as_stale() {
    let world = World::new();
    runtime().block_on(async {
        // The idle key is used, and the inline document is narrowed, after the plan.
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(&world.moto.endpoint)
            .credentials_provider(Credentials::new(
                &world.estate.key_idle,
                &world.estate.key_idle_secret,
                None,
                None,
                "test",
            ))
            .load()
            .await;
        aws_sdk_sts::Client::new(&config)
            .get_caller_identity()
            .send()
            .await
            .expect("signed");
        iam(&world.moto.endpoint)
            .await
            .put_user_policy()
            .user_name("ops")
            .policy_name("legacy")
            .policy_document(READ_BUCKET)
            .send()
            .await
            .expect("narrowed");
    });
    let output = world.apply(&["--execute", "--yes"]);
    assert_eq!(
        output.status.code(),
        Some(4),
        "a stale target is a guard's refusal: {}",
        text(&output.stderr)
    );
    let report = json(&output);
    let by_target: BTreeMap<String, Value> = report["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .map(|action| {
            (
                action["target"].as_str().expect("target").to_owned(),
                action.clone(),
            )
        })
        .collect();
    let key = &by_target[&world.estate.key_idle];
    assert_eq!(key["status"], "stale");
    assert!(
        key["message"]
            .as_str()
            .is_some_and(|message| message.contains("used at")),
        "{key}"
    );
    let inline = &by_target[&format!("{}|policy|inline:legacy", arn("user", "ops"))];
    assert_eq!(inline["status"], "stale", "{inline}");
    assert_eq!(
        report["actions"]
            .as_array()
            .expect("actions")
            .iter()
            .filter(|action| action["status"] == "done")
            .count(),
        ACTIONS - 2
    );
    let live = world.live();
    assert_eq!(
        live.key_status(&world.estate.key_idle),
        "Active",
        "a key in use is not switched off"
    );
    assert!(live.inline["ops"].contains_key("legacy"));
    assert_eq!(world.proxy.forwarded().len(), ACTIONS - 2);
}

/// Adds an action to a saved plan, with a correct digest (or not).
fn inject(plan: &Path, action: Value, fix_digest: bool) {
    let mut saved: Value =
        serde_json::from_str(&std::fs::read_to_string(plan).expect("plan")).expect("json");
    let parsed: lapse_sdk::Action = serde_json::from_value(action.clone()).expect("action");
    let actions = saved["actions"].as_array_mut().expect("actions");
    let mut change = action;
    change["sequence"] = Value::from(actions.len() + 1);
    change["finding_ids"] = Value::Array(Vec::new());
    change["reversible"] = Value::Bool(true);
    change["target_digest"] = Value::from(if fix_digest {
        lapse::plan::target_digest(&parsed, None)
    } else {
        "sha256:0000".to_owned()
    });
    actions.push(change);
    std::fs::write(plan, serde_json::to_string_pretty(&saved).expect("json")).expect("write");
}

fn revoke(principal: &str, entitlement: &str) -> Value {
    serde_json::json!({
        "action": "revoke-grant",
        "grant": {
            "id": format!("{principal}|policy|{entitlement}"),
            "cloud": "aws",
            "scope": format!("aws:{ACCOUNT}"),
            "principal": principal,
            "entitlement": entitlement,
            "resource": ACCOUNT,
            "kind": "managed-policy",
        }
    })
}

#[test]
fn a_protected_principal_injected_into_a_plan_is_refused_before_any_call() {
    let world = World::new();
    let before = world.live();
    // The policy protects break-glass; lapse runs as the role lapse-apply.
    inject(
        &world.plan,
        revoke(&arn("user", "break-glass"), ADMIN),
        true,
    );
    inject(
        &world.plan,
        revoke(
            &arn("role", "lapse-apply"),
            "arn:aws:iam::aws:policy/IAMFullAccess",
        ),
        true,
    );
    inject(
        &world.plan,
        revoke(
            &arn(
                "role",
                "aws-service-role/ecs.amazonaws.com/AWSServiceRoleForECS",
            ),
            ADMIN,
        ),
        true,
    );
    let output = world.apply(&["--execute", "--yes"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("user/break-glass") && stderr.contains("protected by policy"),
        "{stderr}"
    );
    assert!(
        stderr.contains("role/lapse-apply") && stderr.contains("lapse's own caller identity"),
        "{stderr}"
    );
    assert!(stderr.contains("AWS service-linked role"), "{stderr}");
    assert!(world.proxy.forwarded().is_empty());
    assert_eq!(world.live(), before);
    assert!(!world.journal.exists(), "a refused run journals nothing");

    // An edit that does not fix the digest is caught as such.
    let world = World::new();
    inject(&world.plan, revoke(&arn("user", "ops"), READ_ONLY), false);
    let output = world.apply(&[]);
    let stderr = text(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(1),
        "refused where the plan is read: {stderr}"
    );
    assert!(
        stderr.contains("does not match its target digest"),
        "{stderr}"
    );
}

#[test]
fn guards_refuse_a_plan_over_the_cap_too_old_from_elsewhere_or_without_a_terminal() {
    let world = World::new();
    let before = world.live();
    let output = world.apply(&["--execute", "--yes", "--max-revocations", "2"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("holds 5 revocation(s), more than --max-revocations 2"),
        "{stderr}"
    );
    assert!(
        stderr.contains("raise the cap with --max-revocations 5"),
        "says how: {stderr}"
    );
    let output = world.apply(&["--max-revocations", "0"]);
    assert_eq!(
        output.status.code(),
        Some(4),
        "0 means none: {}",
        text(&output.stderr)
    );
    assert_eq!(
        world.apply(&["--max-revocations", "5"]).status.code(),
        Some(0)
    );

    // A plan older than its limit.
    let later =
        (time::OffsetDateTime::parse(&world.now, &time::format_description::well_known::Rfc3339)
            .expect("now")
            + time::Duration::hours(25))
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format");
    let output = world
        .lapse_at("apply", &later)
        .arg(&world.plan)
        .arg("--no-state")
        .output()
        .expect("apply");
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("--max-plan-age"), "{stderr}");

    // A policy that names another account: the account guard.
    let (_other_folder, other) = temp_policy(
        "version: 1\nscopes:\n  aws: [{account: \"999988887777\"}]\nrules:\n  - {id: keys, match: {credential: aws-access-key}, max_idle: 30d}\n",
    );
    let output = world
        .lapse("apply")
        .arg(&world.plan)
        .arg("--policy")
        .arg(&other)
        .args(["--no-state", "--execute", "--yes"])
        .output()
        .expect("apply");
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("do not name"), "{stderr}");

    // --execute without a terminal and without --yes.
    let output = world.apply(&["--execute"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("--yes"), "{stderr}");
    assert!(world.proxy.forwarded().is_empty());
    assert_eq!(world.live(), before);
}

#[test]
fn a_plan_that_strips_a_principal_of_all_access_or_comes_from_an_empty_policy_is_refused() {
    let moto = MotoServer::start();
    runtime().block_on(async {
        let iam = iam(&moto.endpoint).await;
        iam.create_user()
            .user_name("solo")
            .send()
            .await
            .expect("user");
        iam.attach_user_policy()
            .user_name("solo")
            .policy_arn(ADMIN)
            .send()
            .await
            .expect("attach");
        iam.create_user()
            .user_name("keeper")
            .send()
            .await
            .expect("user");
        iam.attach_user_policy()
            .user_name("keeper")
            .policy_arn(READ_ONLY)
            .send()
            .await
            .expect("attach");
    });
    let (folder, policy) = temp_policy(&format!(
        "version: 1\nscopes:\n  aws: [{{account: \"{ACCOUNT}\"}}]\ngrants:\n  - {{principal: \"{}\", entitlement: \"{READ_ONLY}\", expires: 2099-01-01}}\n",
        arn("user", "keeper")
    ));
    let run = |policy: &Path, extra: &[&str]| {
        lapse()
            .current_dir(folder.path())
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .args([
                "apply",
                "--aws-endpoint-url",
                &moto.endpoint,
                "--no-state",
                "--format",
                "json",
                "--policy",
            ])
            .arg(policy)
            .args(extra)
            .output()
            .expect("apply")
    };
    let output = run(&policy, &[]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("revokes every grant arn:aws:iam::123456789012:user/solo holds"),
        "{stderr}"
    );
    assert!(stderr.contains("--allow-strip-all"), "{stderr}");
    let output = run(&policy, &["--allow-strip-all"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));

    let (_empty_folder, empty) = temp_policy(&format!(
        "version: 1\nscopes:\n  aws: [{{account: \"{ACCOUNT}\"}}]\n"
    ));
    let output = run(&empty, &["--allow-strip-all"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("--allow-empty-policy"), "{stderr}");
}

#[test]
fn only_one_apply_at_a_time_holds_a_journal() {
    let world = World::new();
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(world.journal.with_file_name("journal.jsonl.lock"))
        .expect("lock file");
    lock.lock().expect("held by this test");
    let output = world.apply(&["--execute", "--yes"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("in use by another lapse apply"), "{stderr}");
    assert!(world.proxy.forwarded().is_empty());
    drop(lock);
    assert_eq!(world.apply(&["--execute", "--yes"]).status.code(), Some(0));
}

#[test]
fn undo_restores_the_previous_live_state_and_journals_it() {
    let world = World::new();
    let before = world.live();
    assert_eq!(world.apply(&["--execute", "--yes"]).status.code(), Some(0));
    assert_ne!(world.live(), before);

    let undo = |extra: &[&str]| {
        world
            .lapse("undo")
            .arg("--journal")
            .arg(&world.journal)
            .args(["--no-state", "--format", "json"])
            .args(extra)
            .output()
            .expect("undo")
    };
    let dry = undo(&[]);
    assert_eq!(dry.status.code(), Some(0), "{}", text(&dry.stderr));
    assert!(
        text(&dry.stdout).contains("AttachUserPolicy UserName=ops"),
        "{}",
        text(&dry.stdout)
    );
    assert_eq!(
        world.proxy.forwarded().len(),
        ACTIONS,
        "a dry undo calls nothing"
    );

    let output = undo(&["--execute", "--yes"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    for action in json(&output)["actions"].as_array().expect("actions") {
        assert_eq!(action["status"], "done", "{action}");
        assert_eq!(action["verified"], true, "{action}");
    }
    assert_eq!(
        world.live(),
        before,
        "every reversible change is put back as it was"
    );
    assert_eq!(world.proxy.forwarded().len(), 2 * ACTIONS);

    // Once only; and the journal's evidence shows the undo.
    let again = undo(&["--execute", "--yes"]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stderr));
    assert_eq!(world.proxy.forwarded().len(), 2 * ACTIONS);
    let evidence = world
        .lapse("report")
        .arg("--journal")
        .arg(&world.journal)
        .args(["--format", "json"])
        .output()
        .expect("report");
    for revocation in json(&evidence)["revocations"]
        .as_array()
        .expect("revocations")
    {
        assert_eq!(revocation["undo"]["result"], "done", "{revocation}");
        assert_eq!(revocation["undo"]["verified"], true);
    }

    // One action alone.
    let world = World::new();
    assert_eq!(world.apply(&["--execute", "--yes"]).status.code(), Some(0));
    let output = world
        .lapse("undo")
        .arg("--journal")
        .arg(&world.journal)
        .args([
            "--no-state",
            "--format",
            "json",
            "--execute",
            "--yes",
            "--action",
            "1",
        ])
        .output()
        .expect("undo");
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let live = world.live();
    assert_eq!(
        live.key_status(&world.estate.key_idle),
        "Active",
        "the key is back"
    );
    assert!(
        !live.attached["ops"].contains(ADMIN),
        "the rest stays revoked"
    );
}

#[test]
fn apply_with_a_policy_plans_afresh_and_applies() {
    let world = World::new();
    let output = world
        .lapse("apply")
        .arg("--policy")
        .arg(&world.policy)
        .args(["--no-state", "--format", "json", "--execute", "--yes"])
        .output()
        .expect("apply");
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(world.live().all_revoked(&world.estate));
    let report = json(&output);
    let journal = world
        .folder
        .path()
        .join(report["journal"].as_str().expect("journal"));
    assert!(
        journal.starts_with(world.folder.path().join(".lapse/journal")),
        "{}",
        journal.display()
    );
    assert!(journal.exists());
}

#[test]
fn secrets_never_reach_a_plan_journal_report_or_log() {
    const ENV_SECRET: &str = "CANARY-env-secret-8c1f";
    const ENV_TOKEN: &str = "CANARY-env-token-5d2e";
    const ROLE_SECRET: &str = "CANARY-assumed-secret-77aa";
    const ROLE_TOKEN: &str = "CANARY-assumed-token-19be";
    let world = World::new();
    // The secrets of the role session lapse assumes come back from STS: the proxy swaps them
    // for canaries (moto does not check signatures).
    world.proxy.replace("SecretAccessKey", ROLE_SECRET);
    world.proxy.replace("SessionToken", ROLE_TOKEN);
    let mut outputs = Vec::new();
    let mut run = |subcommand: &str, args: &[&str]| {
        let output = world
            .lapse(subcommand)
            .env("AWS_SECRET_ACCESS_KEY", ENV_SECRET)
            .env("AWS_SESSION_TOKEN", ENV_TOKEN)
            .env("RUST_LOG", "trace")
            .env("RUST_BACKTRACE", "1")
            .args(args)
            .output()
            .expect("run");
        outputs.push((format!("{subcommand} {args:?}"), output));
    };
    let plan = world.plan.display().to_string();
    let journal = world.journal.display().to_string();
    let policy = world.policy.display().to_string();
    run(
        "plan",
        &[
            "--exact", "--policy", &policy, "--out", &plan, "--format", "json",
        ],
    );
    run(
        "apply",
        &[&plan, "--journal", &journal, "--format", "table"],
    );
    run(
        "apply",
        &[
            &plan,
            "--journal",
            &journal,
            "--format",
            "json",
            "--execute",
            "--yes",
        ],
    );
    run("report", &["--journal", &journal, "--format", "json"]);
    run("report", &["--journal", &journal, "--format", "markdown"]);
    run(
        "undo",
        &[
            "--journal",
            &journal,
            "--format",
            "json",
            "--execute",
            "--yes",
        ],
    );
    let canaries = [
        ENV_SECRET,
        ENV_TOKEN,
        ROLE_SECRET,
        ROLE_TOKEN,
        world.estate.key_idle_secret.as_str(),
    ];
    assert_eq!(
        outputs[2].1.status.code(),
        Some(0),
        "{}",
        text(&outputs[2].1.stderr)
    );
    // The canaries were in lapse's hands: the role session came back with them, and lapse
    // signed its calls with that session.
    assert!(
        world.proxy.replaced() > 0,
        "no AssumeRole response passed the proxy"
    );
    assert!(
        world.proxy.requests_with(ROLE_TOKEN) > 0,
        "lapse never used the assumed role"
    );
    for (what, output) in &outputs {
        for canary in canaries {
            assert!(
                !text(&output.stdout).contains(canary),
                "{what} stdout holds {canary}"
            );
            assert!(
                !text(&output.stderr).contains(canary),
                "{what} stderr holds {canary}"
            );
        }
    }
    let mut files = Vec::new();
    let mut folders = vec![world.folder.path().to_owned()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).expect("folder") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                folders.push(path);
            } else {
                files.push(path);
            }
        }
    }
    assert!(
        files.iter().any(|file| file.ends_with("journal.jsonl")),
        "{files:?}"
    );
    for file in files {
        let content = String::from_utf8_lossy(&std::fs::read(&file).expect("read")).into_owned();
        for canary in canaries {
            assert!(
                !content.contains(canary),
                "{} holds {canary}",
                file.display()
            );
        }
    }
}

#[test]
fn a_key_apply_deactivated_is_deleted_by_a_later_run_once_its_grace_period_has_passed() {
    let moto = MotoServer::start();
    let key_id = runtime().block_on(async {
        let iam = iam(&moto.endpoint).await;
        iam.create_user()
            .user_name("batch")
            .send()
            .await
            .expect("user");
        iam.create_user()
            .user_name("ana")
            .send()
            .await
            .expect("user");
        iam.create_login_profile()
            .user_name("ana")
            .password("a-Long-passw0rd!")
            .send()
            .await
            .expect("password");
        iam.create_access_key()
            .user_name("batch")
            .send()
            .await
            .expect("key")
            .access_key
            .expect("key")
            .access_key_id()
            .to_owned()
    });
    let proxy = Proxy::start(&moto.endpoint);
    let (folder, policy) = temp_policy(&format!(
        r#"version: 1
scopes:
  aws: [{{account: "{ACCOUNT}"}}]
rules:
  - {{id: keys, match: {{credential: aws-access-key}}, max_idle: 30d, delete_after: 14d}}
  - {{id: passwords, match: {{credential: aws-console-password}}, max_age: 30d, action: delete}}
"#
    ));
    let start = time::OffsetDateTime::now_utc() + time::Duration::days(40);
    let at = |days: i64| {
        (start + time::Duration::days(days))
            .format(&time::format_description::well_known::Rfc3339)
            .expect("format")
    };
    let run = |subcommand: &str, now: &str, args: &[&str]| {
        lapse()
            .current_dir(folder.path())
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .args([
                subcommand,
                "--aws-endpoint-url",
                &proxy.endpoint,
                "--now",
                now,
            ])
            .args(["--state", "state.db", "--format", "json"])
            .args(args)
            .output()
            .expect("run")
    };
    let plan = |now: &str, out: &str| {
        let output = run(
            "plan",
            now,
            &["--policy", &policy.display().to_string(), "--out", out],
        );
        let plan = json(&output);
        plan["actions"]
            .as_array()
            .expect("actions")
            .iter()
            .map(|action| {
                format!(
                    "{} {}",
                    action["action"].as_str().expect("kind"),
                    action["credential"]["id"].as_str().unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
    };

    // Day 0: the idle key is deactivated (reversible); the password, opted in, is deleted.
    // One key per user: the snapshot names it by creation time, resolved to its id at apply.
    let first = plan(&at(0), "first.json");
    let key = first[0]
        .strip_prefix("deactivate-credential ")
        .expect("a deactivation first")
        .to_owned();
    assert!(
        key.starts_with(&format!("{}#access-key@", arn("user", "batch"))),
        "{key}"
    );
    assert_eq!(
        first,
        [
            format!("deactivate-credential {key}"),
            format!("delete-credential {}#console-password", arn("user", "ana"))
        ]
    );
    let output = run("apply", &at(0), &["first.json", "--execute", "--yes"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));

    // Day 13: within the grace period, nothing to do.
    assert!(plan(&at(13), "second.json").is_empty());
    // Day 15: the key stayed inactive past delete_after: its deletion is its own action.
    assert_eq!(
        plan(&at(15), "third.json"),
        [format!("delete-credential {key}")]
    );
    let output = run(
        "apply",
        &at(15),
        &[
            "third.json",
            "--execute",
            "--yes",
            "--journal",
            "third.jsonl",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let forwarded = proxy.forwarded();
    assert_eq!(
        forwarded,
        [
            format!("UpdateAccessKey UserName=batch AccessKeyId={key_id} Status=Inactive"),
            "DeleteLoginProfile UserName=ana".to_owned(),
            format!("DeleteAccessKey UserName=batch AccessKeyId={key_id}"),
        ]
    );
    let live = runtime().block_on(Live::read(&moto.endpoint));
    assert!(live.keys.is_empty(), "{live:?}");

    // A deletion cannot be undone, and says so.
    let output = lapse()
        .current_dir(folder.path())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .args([
            "undo",
            "--aws-endpoint-url",
            &proxy.endpoint,
            "--no-state",
            "--format",
            "json",
        ])
        .args(["--journal", "third.jsonl", "--execute", "--yes"])
        .output()
        .expect("undo");
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stdout).contains("cannot be undone"),
        "{}",
        text(&output.stdout)
    );
    assert_eq!(proxy.forwarded().len(), 3);
}

#[test]
fn throttled_calls_are_retried_and_still_made_once() {
    let world = World::new();
    world.proxy.throttle(3);
    let output = world.apply(&["--execute", "--yes"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(
        world.proxy.received(),
        ACTIONS + 3,
        "three throttled attempts: {:#?}",
        world.proxy.events()
    );
    assert_eq!(
        world
            .proxy
            .forwarded()
            .iter()
            .cloned()
            .collect::<BTreeSet<_>>(),
        expected_calls(&world.estate)
    );
    assert_eq!(world.proxy.forwarded().len(), ACTIONS);
    assert!(world.live().all_revoked(&world.estate));
}

/// Runs `lapse apply --execute` on a pseudo-terminal (util-linux `script`), typing `typed`.
fn apply_on_a_terminal(world: &World, typed: &str) -> Option<Output> {
    let version = std::process::Command::new("script")
        .arg("--version")
        .output()
        .ok()?;
    if !text(&version.stdout).contains("util-linux") {
        return None;
    }
    let command = format!(
        "{} apply {} --journal {} --aws-endpoint-url {} --now {} --no-state --execute --format json",
        env!("CARGO_BIN_EXE_lapse"),
        world.plan.display(),
        world.journal.display(),
        world.proxy.endpoint,
        world.now
    );
    let mut child = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .current_dir(world.folder.path())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env_remove("LAPSE_POLICY")
        .env_remove("LAPSE_STATE")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .ok()?;
    use std::io::Write as _;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{typed}\n").as_bytes())
        .expect("type");
    Some(child.wait_with_output().expect("wait"))
}

#[test]
fn on_a_terminal_execute_asks_to_type_the_account_being_changed() {
    let world = World::new();
    let before = world.live();
    let Some(wrong) = apply_on_a_terminal(&world, "999988887777") else {
        return; // no util-linux `script` to make a terminal with
    };
    let shown = text(&wrong.stdout);
    assert_eq!(wrong.status.code(), Some(4), "{shown}");
    assert!(
        shown.contains("Type 123456789012 to confirm changes in aws:123456789012"),
        "{shown}"
    );
    assert!(
        shown.contains("#1 deactivate-credential"),
        "the changes are shown first: {shown}"
    );
    assert!(shown.contains("the confirmation did not match"), "{shown}");
    assert_eq!(world.live(), before);
    assert!(world.proxy.forwarded().is_empty());

    let right = apply_on_a_terminal(&world, ACCOUNT).expect("terminal");
    assert_eq!(right.status.code(), Some(0), "{}", text(&right.stdout));
    assert!(world.live().all_revoked(&world.estate));
}

#[test]
fn apply_now_does_not_switch_off_the_plan_age_guard() {
    let folder = tempfile::tempdir().expect("tempdir");
    let plan = |extra: &[&str]| {
        lapse()
            .current_dir(folder.path())
            .args([
                "plan",
                "--no-state",
                "--now",
                NOW,
                "--format",
                "json",
                "--policy",
            ])
            .arg(fixture("recreated", "policy.yaml"))
            .arg("--snapshot")
            .arg(fixture("recreated", "before.json"))
            .args(extra)
            .output()
            .expect("plan")
    };
    let apply = |file: &str| {
        lapse()
            .current_dir(folder.path())
            .args(["apply", file, "--no-state", "--now", NOW])
            .output()
            .expect("apply")
    };
    // A plan judged as of NOW (days before this clock) and saved without saying when it was
    // made: replayed with its own --now, it is still judged by its age.
    let output = plan(&[]);
    std::fs::write(folder.path().join("old.json"), &output.stdout).expect("write");
    let output = apply("old.json");
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("by the clock"), "{stderr}");
    // Saved with --out, it says it was made just now: the same --now is fine.
    plan(&["--out", "fresh.json"]);
    let output = apply("fresh.json");
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
}
