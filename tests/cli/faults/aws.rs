//! Faults between lapse and the aws provider's server: moto behind a fault proxy
//! (`lapse_provider_aws::testing::FaultProxy`), the real binary with `--timeout 3s`. For every
//! fault, `snapshot` and `plan` end the account as incomplete naming the operation (exit 3)
//! within a generous bound, and `apply --execute` over a plan made before the fault exits 1 with
//! no mutating call reaching moto. The cases of one table run side by side, each through its
//! own proxy in front of one moto, so the matrix costs about one bound per table.

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use aws_credential_types::Credentials;
use lapse_provider_aws::testing::{Fault, FaultProxy, MotoServer, Paging, Target};
use serde_json::Value;

use crate::live::output_text;
use crate::*;

const ACCOUNT: &str = "123456789012";
const DETAILS: &str = "iam:GetAccountAuthorizationDetails";
/// What every faulted run must end within: `--timeout 3s` per operation, with room to spare.
const BOUND: Duration = Duration::from_secs(30);

const POLICY: &str = "version: 1
scopes:
  aws: [{account: \"123456789012\"}]
owners:
  - {principal: '*', owner: platform}
grants:
  - {principal: \"arn:aws:iam::123456789012:user/ops\", entitlement: \"arn:aws:iam::aws:policy/ReadOnlyAccess\", owner: platform, approved_by: alice@example.com, ticket: SEC-1, expires: 2099-01-01}
rules:
  - {id: idle-keys, match: {credential: aws-access-key}, max_idle: 30d, action: deactivate}
";

/// `ops` holds standing AdministratorAccess and a declared ReadOnlyAccess, `batch` an idle key:
/// a plan with two actions.
fn seed(moto: &MotoServer) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(&moto.endpoint)
            .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
            .load()
            .await;
        let iam = aws_sdk_iam::Client::new(&config);
        iam.create_user()
            .user_name("ops")
            .send()
            .await
            .expect("user");
        iam.attach_user_policy()
            .user_name("ops")
            .policy_arn("arn:aws:iam::aws:policy/AdministratorAccess")
            .send()
            .await
            .expect("attach");
        iam.attach_user_policy()
            .user_name("ops")
            .policy_arn("arn:aws:iam::aws:policy/ReadOnlyAccess")
            .send()
            .await
            .expect("attach");
        iam.create_user()
            .user_name("batch")
            .path("/jobs/")
            .send()
            .await
            .expect("user");
        iam.create_access_key()
            .user_name("batch")
            .send()
            .await
            .expect("key");
    });
}

/// Forty days on: past the idle limit of the key moto just created.
fn forty_days_on() -> String {
    (time::OffsetDateTime::now_utc() + time::Duration::days(40))
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format")
}

/// `lapse <subcommand>` through `proxy` with `--timeout 3s`.
fn through(proxy: &FaultProxy, subcommand: &str) -> assert_cmd::Command {
    let mut command = lapse();
    command
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
        .args([subcommand, "--aws-endpoint-url", &proxy.endpoint])
        .args(["--timeout", "3s"]);
    command
}

/// One faulted run: its output and how long it took.
struct Run {
    output: Output,
    took: Duration,
}

fn timed(mut command: assert_cmd::Command) -> Run {
    // A run that outlives the bound three times over is killed, so that a regression fails
    // the matrix instead of hanging it.
    command.timeout(3 * BOUND);
    let started = Instant::now();
    let output = command.output().expect("run lapse");
    Run {
        output,
        took: started.elapsed(),
    }
}

/// Why a `snapshot` or `plan` run did not hold, if it did not: exit 3, the account incomplete
/// naming `operation`, within the bound.
fn incomplete_naming(run: &Run, operation: &str, snapshot_json: Option<&Value>) -> Option<String> {
    let stdout = String::from_utf8_lossy(&run.output.stdout);
    let named = snapshot_json.map_or_else(
        || stdout.contains(operation),
        |snapshot| {
            snapshot["scopes"][0]["complete"] == false
                && snapshot["scopes"][0]["errors"]
                    .as_array()
                    .is_some_and(|errors| {
                        errors.iter().any(|error| error["operation"] == operation)
                    })
        },
    );
    if run.output.status.code() != Some(3) {
        return Some(format!("exit {:?}", run.output.status.code()));
    }
    if !named {
        return Some(format!("{operation} not named as incomplete"));
    }
    if run.took >= BOUND {
        return Some(format!("took {:?}", run.took));
    }
    None
}

fn snapshot_file(path: &Path) -> Option<Value> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// Runs `case` for every fault at once, each through its own proxy in front of `moto`, and
/// fails with the whole table when any fault did not hold.
fn matrix<F>(moto: &MotoServer, title: &str, setup: impl Fn(&FaultProxy, Fault) + Sync, case: F)
where
    F: Fn(&FaultProxy, Fault) -> Result<String, String> + Sync,
{
    let rows: Vec<(Fault, Result<String, String>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = Fault::ALL
            .iter()
            .map(|&fault| {
                let (setup, case) = (&setup, &case);
                scope.spawn(move || {
                    let proxy = FaultProxy::start(&moto.endpoint);
                    setup(&proxy, fault);
                    (fault, case(&proxy, fault))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().expect("case thread"))
            .collect()
    });
    let table: Vec<String> = rows
        .iter()
        .map(|(fault, result)| match result {
            Ok(note) => format!("{title} | {fault:?} | held | {note}"),
            Err(why) => format!("{title} | {fault:?} | NOT HELD | {why}"),
        })
        .collect();
    // `LAPSE_FAULT_MATRIX=FILE` collects the table (for the documentation of what holds).
    if let Some(file) = std::env::var_os("LAPSE_FAULT_MATRIX") {
        use std::io::Write as _;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(file)
            .expect("matrix file");
        writeln!(file, "{}", table.join("\n")).expect("write matrix");
    }
    assert!(
        rows.iter().all(|(_, result)| result.is_ok()),
        "{}",
        table.join("\n")
    );
}

#[test]
fn every_fault_on_the_bulk_read_ends_snapshot_and_plan_incomplete_within_the_bound() {
    let moto = MotoServer::start();
    seed(&moto);
    let (folder, policy) = temp_policy(POLICY);
    let now = forty_days_on();
    matrix(
        &moto,
        "snapshot+plan, fault on GetAccountAuthorizationDetails",
        |proxy, fault| {
            proxy.set_fault(Some((
                fault,
                Target::Operation("GetAccountAuthorizationDetails".to_owned()),
            )));
        },
        |proxy, fault| {
            let out = folder.path().join(format!("{fault:?}.json"));
            let mut command = through(proxy, "snapshot");
            command
                .args(["--provider", "aws", "--account", ACCOUNT, "--out"])
                .arg(&out);
            let snapshot = timed(command);
            if let Some(why) = incomplete_naming(&snapshot, DETAILS, snapshot_file(&out).as_ref()) {
                return Err(format!(
                    "snapshot: {why}: {}",
                    output_text(&snapshot.output)
                ));
            }
            let mut command = through(proxy, "plan");
            command
                .args(["--no-state", "--format", "json", "--now", &now, "--policy"])
                .arg(&policy);
            let plan = timed(command);
            if let Some(why) = incomplete_naming(&plan, DETAILS, None) {
                return Err(format!("plan: {why}: {}", output_text(&plan.output)));
            }
            let json: Value = serde_json::from_slice(&plan.output.stdout).unwrap_or_default();
            if json["snapshot"]["complete"] != false {
                return Err(format!("plan reads as complete: {}", json["snapshot"]));
            }
            Ok(format!(
                "snapshot {:?}, plan {:?}",
                snapshot.took, plan.took
            ))
        },
    );
}

#[test]
fn a_fault_on_one_page_of_a_paged_bulk_read_ends_the_plan_incomplete() {
    let moto = MotoServer::start();
    seed(&moto);
    let (_folder, policy) = temp_policy(POLICY);
    let now = forty_days_on();
    let plan = |proxy: &FaultProxy| {
        let mut command = through(proxy, "plan");
        command
            .args(["--no-state", "--format", "json", "--now", &now, "--policy"])
            .arg(&policy);
        timed(command)
    };
    // The proxy's four pages, whole: the plan is complete and finds the drift.
    let proxy = FaultProxy::start(&moto.endpoint);
    proxy.set_paging(Paging::Pages);
    let whole = plan(&proxy);
    assert_eq!(
        whole.output.status.code(),
        Some(2),
        "{}",
        output_text(&whole.output)
    );
    assert_eq!(proxy.requests_for("GetAccountAuthorizationDetails"), 4);
    // Each fault on page 2 of 4 (the groups' page: users were read, roles not yet).
    matrix(
        &moto,
        "plan, fault on page 2 of 4",
        |proxy, fault| {
            proxy.set_paging(Paging::Pages);
            proxy.set_fault(Some((fault, Target::AuthorizationPage(2))));
        },
        |proxy, _| {
            let run = plan(proxy);
            match incomplete_naming(&run, DETAILS, None) {
                Some(why) => Err(format!("{why}: {}", output_text(&run.output))),
                None => Ok(format!("{:?}", run.took)),
            }
        },
    );
    // A pager that never ends, or pages that do not say what follows.
    for paging in [
        Paging::RepeatMarker,
        Paging::NoTruncatedFlag,
        Paging::NoMarker,
    ] {
        let proxy = FaultProxy::start(&moto.endpoint);
        proxy.set_paging(paging);
        let run = plan(&proxy);
        assert!(
            incomplete_naming(&run, DETAILS, None).is_none(),
            "{paging:?}: {}",
            output_text(&run.output)
        );
    }
}

#[test]
fn an_endpoint_that_never_answers_ends_the_plan_within_the_bound() {
    let moto = MotoServer::start();
    let (_folder, policy) = temp_policy(POLICY);
    let proxy = FaultProxy::start(&moto.endpoint);
    proxy.set_fault(Some((Fault::Hang, Target::Everything)));
    let mut command = through(&proxy, "plan");
    command
        .args(["--no-state", "--format", "table", "--now", NOW, "--policy"])
        .arg(&policy);
    let run = timed(command);
    let stdout = String::from_utf8_lossy(&run.output.stdout);
    assert_eq!(
        run.output.status.code(),
        Some(3),
        "{}",
        output_text(&run.output)
    );
    assert!(run.took < BOUND, "took {:?}", run.took);
    assert!(stdout.contains("INCOMPLETE aws:123456789012"), "{stdout}");
    assert!(stdout.contains("timed out after 3s"), "{stdout}");
    assert_eq!(proxy.requests(), vec!["GetCallerIdentity".to_owned()]);
}

#[test]
fn no_fault_in_the_reads_before_a_change_lets_apply_change_anything() {
    let moto = MotoServer::start();
    seed(&moto);
    let (folder, policy) = temp_policy(POLICY);
    let now = forty_days_on();
    let plan_path = folder.path().join("plan.json");
    let clean = FaultProxy::start(&moto.endpoint);
    let mut command = through(&clean, "plan");
    command
        .args([
            "--exact",
            "--no-state",
            "--format",
            "json",
            "--now",
            &now,
            "--out",
        ])
        .arg(&plan_path)
        .arg("--policy")
        .arg(&policy);
    let planned = command.output().expect("plan");
    assert_eq!(planned.status.code(), Some(2), "{}", output_text(&planned));
    let plan: Value = serde_json::from_slice(&planned.stdout).expect("plan json");
    assert_eq!(plan["actions"].as_array().map(Vec::len), Some(2), "{plan}");
    let apply = |proxy: &FaultProxy, name: String| {
        let mut command = through(proxy, "apply");
        command
            .arg(&plan_path)
            .arg("--journal")
            .arg(folder.path().join(format!("{name}.jsonl")))
            .args(["--now", &now, "--no-state", "--format", "json"])
            .args(["--execute", "--yes"]);
        timed(command)
    };
    // Held when the run exits `code` within the bound and no mutating call reached moto.
    let held = |proxy: &FaultProxy, run: &Run, code: i32| {
        let mutations = proxy.forwarded_mutations();
        if !mutations.is_empty() {
            return Err(format!("mutating calls reached moto: {mutations:?}"));
        }
        if run.output.status.code() != Some(code) {
            return Err(format!(
                "exit {:?}: {}",
                run.output.status.code(),
                output_text(&run.output)
            ));
        }
        if run.took >= BOUND {
            return Err(format!("took {:?}", run.took));
        }
        Ok(format!("{:?}, 0 mutating calls", run.took))
    };
    // The fault on each action's own reads of its target, after the account read whole:
    // every action fails (exit 1).
    matrix(
        &moto,
        "apply --execute, fault on each target's reads",
        |proxy, fault| proxy.set_fault(Some((fault, Target::ActionReads))),
        |proxy, fault| held(proxy, &apply(proxy, format!("target-{fault:?}")), 1),
    );
    // The fault on the account's bulk reads too: the account guard refuses the whole apply
    // before any action (exit 4), since lapse changes only what it can see whole.
    matrix(
        &moto,
        "apply --execute, fault on every read",
        |proxy, fault| proxy.set_fault(Some((fault, Target::Reads))),
        |proxy, fault| held(proxy, &apply(proxy, format!("all-{fault:?}")), 4),
    );
    // And with no fault the same plan goes through: the matrix's zero is not for lack of a
    // change to make.
    let run = apply(&clean, "clean".to_owned());
    assert_eq!(
        run.output.status.code(),
        Some(0),
        "{}",
        output_text(&run.output)
    );
    assert_eq!(
        clean.forwarded_mutations().len(),
        2,
        "{:?}",
        clean.forwarded_mutations()
    );
}
