//! `lapse snapshot` and `lapse plan` against a real moto server: what a scheduled run sees.

use aws_credential_types::Credentials;
use lapse_provider_aws::testing::MotoServer;
use serde_json::Value;

use crate::live::findings;
use crate::*;

const ACCOUNT: &str = "123456789012";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

async fn iam(moto: &MotoServer) -> aws_sdk_iam::Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(&moto.endpoint)
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .load()
        .await;
    aws_sdk_iam::Client::new(&config)
}

/// A small estate: a person with standing admin, a workload with one active never-used key and
/// one inactive key, a declared deployer role, a group whose admin policy a member inherits.
fn seed(moto: &MotoServer) -> String {
    runtime().block_on(async {
        let iam = iam(moto).await;
        iam.create_user().user_name("ana").send().await.expect("user");
        iam.create_login_profile().user_name("ana").password("a-Long-passw0rd!").send().await.expect("password");
        iam.attach_user_policy().user_name("ana").policy_arn("arn:aws:iam::aws:policy/AdministratorAccess").send().await.expect("attach");
        iam.create_user().user_name("batch").send().await.expect("user");
        let active = iam.create_access_key().user_name("batch").send().await.expect("key").access_key.expect("key");
        let retired = iam.create_access_key().user_name("batch").send().await.expect("key").access_key.expect("key");
        iam.update_access_key()
            .user_name("batch")
            .access_key_id(retired.access_key_id())
            .status(aws_sdk_iam::types::StatusType::Inactive)
            .send()
            .await
            .expect("deactivate");
        iam.create_role()
            .role_name("ci-deployer")
            .assume_role_policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"codebuild.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#)
            .send()
            .await
            .expect("role");
        iam.attach_role_policy().role_name("ci-deployer").policy_arn("arn:aws:iam::aws:policy/PowerUserAccess").send().await.expect("attach");
        active.access_key_id().to_owned()
    })
}

const POLICY: &str = "version: 1
scopes:
  aws: [{account: \"123456789012\"}]
defaults: {credential_max_age: 90d, credential_max_idle: 30d}
owners:
  - {principal: '*', owner: platform}
grants:
  - principal: arn:aws:iam::123456789012:role/ci-deployer
    entitlement: arn:aws:iam::aws:policy/PowerUserAccess
    owner: platform
    expires: 2099-01-01
";

/// Forty days from now: past the idle limit, short of the age limit. moto stamps its own
/// clock, so ages are made by evaluating later, never by waiting.
fn forty_days_on() -> String {
    let later = time::OffsetDateTime::now_utc() + time::Duration::days(40);
    later
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format")
}

/// `lapse <subcommand>` reading moto with the test credentials.
fn live(moto: &MotoServer, subcommand: &str) -> assert_cmd::Command {
    let mut command = lapse();
    command
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_PROFILE")
        .args([subcommand, "--aws-endpoint-url", &moto.endpoint]);
    command
}

#[test]
fn a_live_plan_finds_standing_admin_and_the_one_idle_key() {
    let moto = MotoServer::start();
    let active_key = seed(&moto);
    let (_folder, policy) = temp_policy(POLICY);
    let now = forty_days_on();
    // Exact key ids, whether or not the two keys share a creation second.
    let output = live(&moto, "plan")
        .args([
            "--exact",
            "--no-state",
            "--format",
            "json",
            "--now",
            &now,
            "--policy",
        ])
        .arg(&policy)
        .output()
        .expect("run");
    assert_eq!(
        output.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let plan: Value = serde_json::from_slice(&output.stdout).expect("plan");
    assert_eq!(plan["snapshot"]["complete"], true);
    let found = findings(&plan);
    assert!(
        found.contains(&(
            "standing-privilege".to_owned(),
            format!(
                "arn:aws:iam::{ACCOUNT}:user/ana|policy|arn:aws:iam::aws:policy/AdministratorAccess"
            )
        )),
        "{found:?}"
    );
    assert!(
        found.contains(&("credential-idle".to_owned(), active_key.clone())),
        "{found:?}"
    );
    assert!(
        !found
            .iter()
            .any(|(_, subject)| subject.contains("ci-deployer")),
        "declared: {found:?}"
    );
    // Two keys, one violates: one action, on that key alone.
    let deactivations: Vec<&Value> = plan["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .filter(|action| action["action"] == "deactivate-credential")
        .collect();
    assert_eq!(deactivations.len(), 1, "{deactivations:?}");
    assert_eq!(deactivations[0]["credential"]["id"], active_key.as_str());
}

#[test]
fn a_snapshot_file_plans_the_same_as_a_live_read() {
    let moto = MotoServer::start();
    seed(&moto);
    let (folder, policy) = temp_policy(POLICY);
    let snapshot = folder.path().join("aws.json");
    live(&moto, "snapshot")
        .args(["--provider", "aws", "--account", ACCOUNT, "--out"])
        .arg(&snapshot)
        .assert()
        .code(0);
    let now = forty_days_on();
    let from_file = lapse()
        .args([
            "plan",
            "--no-state",
            "--format",
            "json",
            "--now",
            &now,
            "--policy",
        ])
        .arg(&policy)
        .arg("--snapshot")
        .arg(&snapshot)
        .output()
        .expect("run");
    let live_plan = live(&moto, "plan")
        .args(["--no-state", "--format", "json", "--now", &now, "--policy"])
        .arg(&policy)
        .output()
        .expect("run");
    let parse = |bytes: &[u8]| serde_json::from_slice::<Value>(bytes).expect("plan");
    assert_eq!(
        findings(&parse(&from_file.stdout)),
        findings(&parse(&live_plan.stdout))
    );
}

#[test]
fn an_unreadable_account_exits_3_and_names_the_missing_permission() {
    let moto = MotoServer::start_with(&[("INITIAL_NO_AUTH_ACTION_COUNT", "3")]);
    let key = runtime().block_on(async {
        let iam = iam(&moto).await;
        iam.create_user().user_name("auditor").send().await.expect("user");
        let key = iam.create_access_key().user_name("auditor").send().await.expect("key").access_key.expect("key");
        iam.put_user_policy()
            .user_name("auditor")
            .policy_name("whoami")
            .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sts:GetCallerIdentity","Resource":"*"}]}"#)
            .send()
            .await
            .expect("policy");
        key
    });
    let (_folder, policy) = temp_policy(POLICY);
    let output = lapse()
        .env("AWS_ACCESS_KEY_ID", key.access_key_id())
        .env("AWS_SECRET_ACCESS_KEY", key.secret_access_key())
        .env("AWS_REGION", "us-east-1")
        .args(["plan", "--aws-endpoint-url", &moto.endpoint])
        .args(["--no-state", "--format", "table", "--policy"])
        .arg(&policy)
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(3), "{stdout}");
    assert!(stdout.contains("INCOMPLETE aws:123456789012"), "{stdout}");
    assert!(
        stdout.contains("missing permission: iam:GetAccountAuthorizationDetails"),
        "{stdout}"
    );
    // The secret of the key lapse ran with appears nowhere.
    assert!(!stdout.contains(key.secret_access_key()));
    assert!(!String::from_utf8_lossy(&output.stderr).contains(key.secret_access_key()));
}

/// A snapshot file edited to hold records that name the real role by another ARN. The same
/// name in another account is refused where the file is read (it lies outside the file's
/// scope). The same name under a path lies inside it, so it is planned: its plan revokes
/// AdministratorAccess, and applying it must change nothing in the real account (zero mutating
/// calls reach moto through a counting proxy), the real role keeps its policies, and the run
/// fails saying it refused.
#[test]
fn forged_records_in_a_snapshot_file_change_nothing_in_the_real_account() {
    use lapse_provider_aws::testing::FaultProxy;
    const ADMIN: &str = "arn:aws:iam::aws:policy/AdministratorAccess";
    const READ_ONLY: &str = "arn:aws:iam::aws:policy/ReadOnlyAccess";
    let moto = MotoServer::start();
    runtime().block_on(async {
        let iam = iam(&moto).await;
        iam.create_role()
            .role_name("deploy")
            .assume_role_policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"codebuild.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#)
            .send()
            .await
            .expect("role");
        for policy in [ADMIN, READ_ONLY] {
            iam.attach_role_policy().role_name("deploy").policy_arn(policy).send().await.expect("attach");
        }
    });
    let real = format!("arn:aws:iam::{ACCOUNT}:role/deploy");
    let forged = [
        format!("arn:aws:iam::{ACCOUNT}:role/x/deploy"),
        "arn:aws:iam::999988887777:role/deploy".to_owned(),
    ];
    let declared = |principal: &str, entitlement: &str| {
        format!(
            "  - {{principal: \"{principal}\", entitlement: \"{entitlement}\", owner: platform, approved_by: alice@example.com, ticket: SEC-1, expires: 2099-01-01}}\n"
        )
    };
    let mut policy_text = format!(
        "version: 1\nscopes:\n  aws: [{{account: \"{ACCOUNT}\"}}]\nowners:\n  - {{principal: '*', owner: platform}}\ngrants:\n{}{}",
        declared(&real, ADMIN),
        declared(&real, READ_ONLY)
    );
    for principal in &forged {
        policy_text.push_str(&declared(principal, READ_ONLY));
    }
    let (folder, policy) = temp_policy(&policy_text);

    // The real snapshot, then the forgery: each of the real role's records copied under a
    // forged ARN.
    let snapshot_path = folder.path().join("aws.json");
    live(&moto, "snapshot")
        .args(["--provider", "aws", "--account", ACCOUNT, "--out"])
        .arg(&snapshot_path)
        .assert()
        .code(0);
    let taken: Value =
        serde_json::from_slice(&std::fs::read(&snapshot_path).expect("read")).expect("json");
    let real_arn = real.as_str();
    let forge = |forged: &[String], path: &std::path::Path| {
        let mut snapshot = taken.clone();
        for list in ["principals", "grants"] {
            let copies: Vec<Value> = snapshot[list]
                .as_array()
                .expect("list")
                .iter()
                .filter(|record| record["id"] == real_arn || record["principal"] == real_arn)
                .flat_map(|record| {
                    forged.iter().map(move |principal| {
                        let text = serde_json::to_string(record).expect("record");
                        serde_json::from_str::<Value>(&text.replace(real_arn, principal))
                            .expect("copy")
                    })
                })
                .collect();
            assert!(!copies.is_empty(), "{list}");
            snapshot[list].as_array_mut().expect("list").extend(copies);
        }
        std::fs::write(path, serde_json::to_vec(&snapshot).expect("json")).expect("write");
    };

    let other_account = folder.path().join("other-account.json");
    forge(&forged, &other_account);
    let refused = lapse()
        .args([
            "plan",
            "--no-state",
            "--format",
            "json",
            "--now",
            NOW,
            "--policy",
        ])
        .arg(&policy)
        .arg("--snapshot")
        .arg(&other_account)
        .output()
        .expect("plan");
    let text = crate::live::output_text(&refused);
    assert_eq!(refused.status.code(), Some(1), "{text}");
    assert!(
        text.contains("arn:aws:iam::999988887777:role/deploy` is in account 999988887777"),
        "{text}"
    );
    let forged = &forged[..1];
    forge(forged, &snapshot_path);

    let plan_path = folder.path().join("plan.json");
    let planned = lapse()
        .args([
            "plan",
            "--no-state",
            "--format",
            "json",
            "--now",
            NOW,
            "--policy",
        ])
        .arg(&policy)
        .arg("--snapshot")
        .arg(&snapshot_path)
        .arg("--out")
        .arg(&plan_path)
        .output()
        .expect("plan");
    assert_eq!(
        planned.status.code(),
        Some(2),
        "{}",
        crate::live::output_text(&planned)
    );
    let plan: Value = serde_json::from_slice(&planned.stdout).expect("plan json");
    let targets: Vec<&str> = plan["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .filter_map(|action| action["grant"]["principal"].as_str())
        .collect();
    assert_eq!(
        targets.len(),
        1,
        "one revocation per forged record: {targets:?}"
    );
    assert!(!targets.contains(&real.as_str()), "{targets:?}");

    let proxy = FaultProxy::start(&moto.endpoint);
    let mut apply = lapse();
    apply
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
        .args(["apply", "--aws-endpoint-url", &proxy.endpoint])
        .arg(&plan_path)
        .arg("--journal")
        .arg(folder.path().join("journal.jsonl"))
        .args([
            "--now",
            NOW,
            "--no-state",
            "--format",
            "json",
            "--execute",
            "--yes",
        ]);
    let applied = apply.output().expect("apply");
    let text = crate::live::output_text(&applied);
    assert_eq!(proxy.forwarded_mutations(), Vec::<String>::new(), "{text}");
    assert_eq!(applied.status.code(), Some(1), "{text}");
    assert!(text.contains("refused"), "{text}");
    let attached = runtime().block_on(async {
        iam(&moto)
            .await
            .list_attached_role_policies()
            .role_name("deploy")
            .send()
            .await
            .expect("list")
            .attached_policies()
            .len()
    });
    assert_eq!(attached, 2, "the real role keeps both policies");
}
