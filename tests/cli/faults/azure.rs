//! Faults between lapse and the azure provider's server.
//!
//! Each fault is injected by the in-repo fake of Graph and ARM (the answer to matching
//! requests: never answered, the connection reset, HTTP 500 on the second page of a list, 429
//! without end, the body cut in half with a matching length, an empty 200, an HTML page as a
//! 200), on Graph and on ARM at once, through the binary and lapse's real credential chain:
//!
//! - `lapse plan --timeout 3s` (a live snapshot): exit 3, the tenant scope incomplete naming
//!   the Graph list and the subscription scope naming the ARM list, within 30 s;
//! - `lapse apply --execute --timeout 3s` of a plan made before the fault, with the fault on the
//!   reads of the targets (a role assignment in ARM, an application's secrets in Graph): exit
//!   1, every action failed, and no request but a GET reached the fake.
//!
//! A fault on the scope's own lists during apply makes its live read incomplete, and the
//! account guard refuses the plan (exit 4) before any target is read: that case is the last.

use std::time::{Duration, Instant};

use lapse_provider_azure::fake::{Fault, Misbehaviour, SUBSCRIPTION, TENANT, ids};
use serde_json::Value;

use crate::azure::World;
use crate::live::{LiveWorld, output_text};

/// `--timeout` for every faulted run, and the bound each must end within: generous, far below
/// the minutes a hung endpoint took before.
const TIMEOUT: &str = "3s";
const WITHIN: Duration = Duration::from_secs(30);

/// The faults of the matrix.
#[derive(Clone, Copy, Debug)]
enum Injected {
    Hang,
    Reset,
    ServerErrorOnPageTwo,
    ThrottleForever,
    Truncated,
    Empty,
    Garbage,
}

impl Injected {
    /// The fault on GET requests whose path and query contain `fragment` (for a list: its
    /// first page, or its second for [`Injected::ServerErrorOnPageTwo`]).
    fn on(self, fragment: &str) -> Fault {
        let misbehaving = |misbehaviour| Fault::misbehaving(Some("GET"), fragment, misbehaviour);
        match self {
            Injected::Hang => misbehaving(Misbehaviour::Hang),
            Injected::Reset => misbehaving(Misbehaviour::Reset),
            Injected::Truncated => misbehaving(Misbehaviour::Truncated),
            Injected::Empty => misbehaving(Misbehaviour::Empty),
            Injected::Garbage => misbehaving(Misbehaviour::Garbage),
            Injected::ServerErrorOnPageTwo => Fault::new(
                Some("GET"),
                fragment,
                500,
                "InternalServerError",
                "Encountered an internal server error.",
            ),
            Injected::ThrottleForever => Fault::new(
                Some("GET"),
                fragment,
                429,
                "TooManyRequests",
                "Too many requests. Please retry after the time given in Retry-After.",
            )
            .header("retry-after", "1"),
        }
        .times(usize::MAX)
    }

    /// Where on a list it strikes: the second page for a server error, the first otherwise.
    fn page(self, list: &str) -> String {
        match self {
            Injected::ServerErrorOnPageTwo => format!("{list}?$skiptoken=2"),
            _ => format!("{list}?"),
        }
    }
}

/// The Graph and ARM lists a live snapshot reads first, both paged by the fake (service
/// principals: three pages; role assignments: four).
const GRAPH_LIST: &str = "/v1.0/servicePrincipals";
const ARM_LIST: &str = "/providers/Microsoft.Authorization/roleAssignments";
const GRAPH_OPERATION: &str = "graph:GET /servicePrincipals";
const ARM_OPERATION: &str = "arm:GET roleAssignments";

/// The world of the Azure end-to-end tests, with a rule that deletes client secrets older than
/// 30 days, so a plan changes Graph (the billing API's secret) as well as ARM (jsmith's Owner,
/// the deploy pipeline's Contributor).
fn world() -> World {
    let world = World::new();
    let policy = std::fs::read_to_string(world.policy()).expect("policy");
    std::fs::write(
        world.policy(),
        format!(
            "{policy}rules:\n  - {{id: secret-rotation, match: {{credential: azure-password}}, max_age: 30d, action: delete}}\n"
        ),
    )
    .expect("policy");
    world
}

/// Every request that could change something, as the fake saw it.
fn writes(world: &World) -> Vec<String> {
    world
        .fake
        .state()
        .requests
        .iter()
        .filter(|request| !request.starts_with("GET "))
        .cloned()
        .collect()
}

fn scope<'a>(scopes: &'a Value, prefix: &str) -> &'a Value {
    scopes
        .as_array()
        .expect("scopes")
        .iter()
        .find(|scope| {
            scope["id"]
                .as_str()
                .is_some_and(|id| id.starts_with(prefix))
        })
        .unwrap_or_else(|| panic!("no {prefix} scope in {scopes:#}"))
}

/// The scope is incomplete, and one of its errors names the operation.
fn incomplete_naming(scope: &Value, operation: &str, injected: Injected) {
    assert_eq!(scope["complete"], false, "{injected:?}: {scope:#}");
    assert!(
        scope["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .any(|error| error["operation"] == operation),
        "{injected:?}: {operation} named in {scope:#}"
    );
}

/// A live plan made before any fault, which must find the three changes.
fn plan_before_the_fault(world: &World) {
    let plan = world.plan();
    let targets: Vec<&str> = plan["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .map(|change| {
            change["grant"]["id"]
                .as_str()
                .or_else(|| change["credential"]["id"].as_str())
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(targets.len(), 3, "{targets:?}");
    assert!(targets.contains(&ids::BILLING_SECRET), "{targets:?}");
    assert!(
        targets.iter().any(|id| id.ends_with(ids::JSMITH_OWNER)),
        "{targets:?}"
    );
}

/// `apply --execute` with the fault on every target's read: exit 1, all failed, no write.
fn apply_holds(world: &World, injected: Injected) {
    world.fake.state().faults.clear();
    // The single-object reads of the targets: a role assignment (ARM), an application with
    // its secrets (Graph). The scope lists apply reads first stay whole.
    world.fake.fault(injected.on(&format!("{ARM_LIST}/")));
    world
        .fake
        .fault(injected.on(&format!("/v1.0/applications/{}", ids::BILLING_APP)));
    let started = Instant::now();
    let output = world.apply(&["--execute", "--yes", "--timeout", TIMEOUT]);
    let took = started.elapsed();
    assert_eq!(
        output.status.code(),
        Some(1),
        "{injected:?}: {}",
        output_text(&output)
    );
    assert!(took < WITHIN, "{injected:?}: apply took {took:?}");
    let report: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("{injected:?}: {error}: {}", output_text(&output)));
    let actions = report["actions"].as_array().expect("actions");
    assert_eq!(actions.len(), 3, "{injected:?}: {report:#}");
    for action in actions {
        assert_eq!(action["status"], "failed", "{injected:?}: {action:#}");
    }
    assert_eq!(writes(world), Vec::<String>::new(), "{injected:?}");
    assert!(
        world.fake.state().subscriptions[SUBSCRIPTION]
            .role_assignments
            .iter()
            .any(|item| item["name"] == ids::JSMITH_OWNER),
        "{injected:?}: jsmith's Owner untouched"
    );
}

/// `plan --timeout 3s` with the fault on the first list of Graph and of ARM: exit 3, both
/// scopes incomplete naming their list.
fn plan_holds(world: &World, injected: Injected) {
    world.fake.state().faults.clear();
    world.fake.fault(injected.on(&injected.page(GRAPH_LIST)));
    world.fake.fault(injected.on(&injected.page(ARM_LIST)));
    let started = Instant::now();
    let output = world
        .lapse("plan")
        .args([
            "--now",
            crate::NOW,
            "--format",
            "json",
            "--timeout",
            TIMEOUT,
        ])
        .arg("--policy")
        .arg(world.policy())
        .output()
        .expect("plan");
    let took = started.elapsed();
    assert_eq!(
        output.status.code(),
        Some(3),
        "{injected:?}: {}",
        output_text(&output)
    );
    assert!(took < WITHIN, "{injected:?}: plan took {took:?}");
    let plan: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("{injected:?}: {error}: {}", output_text(&output)));
    incomplete_naming(
        scope(&plan["scopes"], &format!("azure:/tenants/{TENANT}")),
        GRAPH_OPERATION,
        injected,
    );
    incomplete_naming(
        scope(
            &plan["scopes"],
            &format!("azure:/subscriptions/{SUBSCRIPTION}"),
        ),
        ARM_OPERATION,
        injected,
    );
    assert_eq!(writes(world), Vec::<String>::new(), "{injected:?}");
}

/// One row of the matrix: apply over a plan made before the fault, then a plan under it.
fn holds(injected: Injected) {
    let world = world();
    plan_before_the_fault(&world);
    apply_holds(&world, injected);
    plan_holds(&world, injected);
}

#[test]
fn graph_and_arm_that_never_answer() {
    holds(Injected::Hang);
}

#[test]
fn graph_and_arm_that_reset_the_connection() {
    holds(Injected::Reset);
}

#[test]
fn graph_and_arm_that_fail_on_the_second_page_of_a_list() {
    holds(Injected::ServerErrorOnPageTwo);
}

#[test]
fn graph_and_arm_that_throttle_without_end() {
    holds(Injected::ThrottleForever);
}

#[test]
fn graph_and_arm_answers_cut_in_half() {
    holds(Injected::Truncated);
}

#[test]
fn graph_and_arm_empty_answers() {
    holds(Injected::Empty);
}

#[test]
fn graph_and_arm_garbled_answers() {
    holds(Injected::Garbage);
}

#[test]
fn a_snapshot_of_endpoints_that_never_answer_exits_incomplete_within_the_bound() {
    let world = world();
    world.fake.fault(Injected::Hang.on("/"));
    let out = world.path("hung.json");
    let started = Instant::now();
    let output = world
        .lapse("snapshot")
        .args([
            "--provider",
            "azure",
            "--tenant",
            TENANT,
            "--subscription",
            SUBSCRIPTION,
            "--timeout",
            TIMEOUT,
            "--out",
        ])
        .arg(&out)
        .output()
        .expect("snapshot");
    let took = started.elapsed();
    assert_eq!(output.status.code(), Some(3), "{}", output_text(&output));
    assert!(took < WITHIN, "took {took:?}");
    let snapshot: Value =
        serde_json::from_slice(&std::fs::read(&out).expect("snapshot file")).expect("json");
    for prefix in ["azure:/tenants/", "azure:/subscriptions/"] {
        let scope = scope(&snapshot["scopes"], prefix);
        assert_eq!(scope["complete"], false, "{scope:#}");
        assert!(
            scope["errors"][0]["message"]
                .as_str()
                .is_some_and(|message| message.contains("timed out after 3s")),
            "{scope:#}"
        );
    }
}

#[test]
fn a_fault_on_the_live_read_of_a_scope_refuses_the_apply_before_any_target_is_read() {
    let world = world();
    plan_before_the_fault(&world);
    world
        .fake
        .fault(Injected::ServerErrorOnPageTwo.on(&Injected::ServerErrorOnPageTwo.page(ARM_LIST)));
    let output = world.apply(&["--execute", "--yes", "--timeout", TIMEOUT]);
    assert_eq!(output.status.code(), Some(4), "{}", output_text(&output));
    assert!(
        output_text(&output).contains(&format!(
            "azure:/subscriptions/{SUBSCRIPTION} could not be read completely"
        )),
        "{}",
        output_text(&output)
    );
    assert_eq!(writes(&world), Vec::<String>::new());
}
