//! The Google Cloud provider when the network or the service misbehaves: every call bounded in
//! time and attempts, a timeout said as one, and a read that met a hung endpoint ended at once
//! instead of hanging once per call. Against the in-repo fake's fault injection.

use std::time::{Duration, Instant};

use lapse_provider_gcp::fake::{FakeGcp, FakeKey, Fault, Injection, TestServiceAccountKey};
use lapse_provider_gcp::{GcpProvider, GcpSettings};
use lapse_sdk::{CallBounds, ProviderErrorKind, ScopeStatus, Snapshot, SnapshotRequest};
use serde_json::json;

const PROJECT: &str = "acme-prod";
const OTHER_PROJECT: &str = "acme-dev";
const CLOSED_TOKEN_URI: &str = "http://127.0.0.1:9/token";
const LAPSE: &str = "lapse-reader@acme-ops.iam.gserviceaccount.com";
const ACCOUNT_LIST: &str = "/v1/projects/acme-prod/serviceAccounts?";
/// Far beyond any bound these tests set: reaching it means a bound did not hold.
const GENEROUS: Duration = Duration::from_secs(30);

/// The fake with a small estate, and settings that sign with a generated key and give every
/// operation `operation` at most.
fn world(operation: Duration) -> (FakeGcp, GcpSettings) {
    let fake = FakeGcp::start();
    let key = TestServiceAccountKey::generate(LAPSE);
    fake.require_signed_by(&key);
    for project in [PROJECT, OTHER_PROJECT] {
        for name in ["exporter", "deployer", "batch"] {
            let email = fake.add_service_account(project, name, name);
            fake.add_key(
                project,
                &email,
                FakeKey::user(&format!("{name}0001"), "2025-01-14T09:05:33Z"),
            );
        }
        fake.set_bindings(
            &format!("projects/{project}"),
            json!([{"role": "roles/viewer", "members": ["user:ana@acme.example"]}]),
        );
    }
    fake.limit_page_size(2);
    let base = fake.settings(&[PROJECT]);
    let settings = GcpSettings {
        credentials: Some(key.credentials(CLOSED_TOKEN_URI)),
        bounds: CallBounds {
            first_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(100),
            ..CallBounds::default().with_operation(operation)
        },
        ..base
    };
    (fake, settings)
}

async fn take(settings: &GcpSettings) -> (Snapshot, Duration) {
    let started = Instant::now();
    let provider = GcpProvider::new(settings.clone());
    let snapshot = provider.take_snapshot(&SnapshotRequest::default()).await;
    (snapshot, started.elapsed())
}

fn scope<'s>(snapshot: &'s Snapshot, project: &str) -> &'s ScopeStatus {
    snapshot
        .scopes
        .iter()
        .find(|scope| scope.id.as_str() == format!("gcp:projects/{project}"))
        .expect("scope")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hung_endpoint_ends_the_read_within_one_operation_saying_it_timed_out() {
    let (fake, settings) = world(Duration::from_secs(1));
    fake.inject(Injection::new(ACCOUNT_LIST, Fault::Hang));
    let (snapshot, elapsed) = take(&settings).await;
    assert!(elapsed < GENEROUS, "took {elapsed:?}");
    let scope = scope(&snapshot, PROJECT);
    assert!(!scope.complete);
    assert_eq!(scope.errors.len(), 1, "{:?}", scope.errors);
    let error = &scope.errors[0];
    assert_eq!(error.operation, "iam.projects.serviceAccounts.list");
    // What happened, after how long, and what to check.
    for said in [
        "timed out after 1s",
        "127.0.0.1",
        "proxy, firewall, DNS",
        "--timeout",
    ] {
        assert!(error.message.contains(said), "{said}: {}", error.message);
    }
    // Nothing more was asked of the project: each further call would have hung as long.
    assert_eq!(
        fake.requests(),
        vec!["GET /v1/projects/acme-prod/serviceAccounts".to_owned()]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn once_an_endpoint_has_hung_other_scopes_do_not_wait_on_it_again() {
    let (fake, settings) = world(Duration::from_secs(1));
    fake.inject(Injection::new("/serviceAccounts?", Fault::Hang));
    // One scope at a time: without the endpoint's halt, the second would hang as long again.
    let settings = GcpSettings {
        projects: vec![OTHER_PROJECT.to_owned(), PROJECT.to_owned()],
        concurrency: 1,
        ..settings
    };
    let (snapshot, elapsed) = take(&settings).await;
    assert!(elapsed < GENEROUS, "took {elapsed:?}");
    assert!(snapshot.scopes.iter().all(|scope| !scope.complete));
    assert_eq!(fake.request_count(), 1, "{:?}", fake.requests());
    let messages: Vec<&str> = snapshot
        .scopes
        .iter()
        .map(|scope| scope.errors[0].message.as_str())
        .collect();
    assert!(
        messages
            .iter()
            .any(|message| message.contains("timed out after 1s")),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|message| message.starts_with("given up:") && message.contains("timed out")),
        "{messages:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_whose_connection_was_reset_is_asked_again() {
    let (fake, settings) = world(Duration::from_secs(10));
    fake.inject(Injection::new(ACCOUNT_LIST, Fault::Reset).times(1));
    let (snapshot, _) = take(&settings).await;
    assert!(snapshot.is_complete(), "{:?}", snapshot.scopes);
    assert_eq!(snapshot.credentials.len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connection_reset_every_time_says_what_the_network_did() {
    let (fake, settings) = world(Duration::from_secs(10));
    fake.inject(Injection::new(ACCOUNT_LIST, Fault::Reset));
    let (snapshot, elapsed) = take(&settings).await;
    assert!(elapsed < GENEROUS, "took {elapsed:?}");
    let scope = scope(&snapshot, PROJECT);
    assert!(!scope.complete);
    let error = &scope.errors[0];
    assert_eq!(error.operation, "iam.projects.serviceAccounts.list");
    // reqwest's own text is only "error sending request"; its causes say what happened.
    assert!(
        error.message.to_lowercase().contains("reset")
            || error.message.to_lowercase().contains("closed"),
        "{}",
        error.message
    );
    let attempts = fake
        .requests()
        .iter()
        .filter(|request| request.ends_with("/serviceAccounts"))
        .count();
    assert_eq!(attempts, CallBounds::default().attempts as usize);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_write_whose_answer_was_lost_is_not_sent_again() {
    let (fake, settings) = world(Duration::from_secs(10));
    let (snapshot, _) = take(&settings).await;
    let credential = snapshot
        .credentials
        .iter()
        .find(|credential| credential.id.as_str().ends_with("/keys/exporter0001"))
        .expect("key")
        .clone();
    fake.inject(Injection::new(":disable?", Fault::Reset));
    let provider = GcpProvider::new(settings);
    let action = lapse_sdk::Action::DeactivateCredential { credential };
    let error = lapse_sdk::Provider::apply(&provider, &action)
        .await
        .expect_err("the answer was lost");
    assert_eq!(error.operation, "iam.projects.serviceAccounts.keys.disable");
    assert_eq!(fake.writes().len(), 1, "{:?}", fake.writes());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retry_after_beyond_the_longest_wait_is_believed_only_up_to_it() {
    let (fake, settings) = world(Duration::from_secs(60));
    fake.inject(
        Injection::new("/v3/projects/acme-prod:getIamPolicy", Fault::Status(429))
            .retry_after(3600)
            .times(1),
    );
    let settings = GcpSettings {
        bounds: CallBounds {
            max_backoff: Duration::from_millis(200),
            ..settings.bounds
        },
        ..settings
    };
    let (snapshot, elapsed) = take(&settings).await;
    assert!(snapshot.is_complete(), "{:?}", snapshot.scopes);
    // An hour asked, 200 ms believed: far below the 20 s a fixed cap allowed.
    assert!(elapsed < Duration::from_secs(15), "took {elapsed:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retry_after_is_waited_out_before_asking_again() {
    let (fake, settings) = world(Duration::from_secs(60));
    fake.inject(
        Injection::new("/v3/projects/acme-prod:getIamPolicy", Fault::Status(503))
            .retry_after(1)
            .times(1),
    );
    let settings = GcpSettings {
        bounds: CallBounds {
            max_backoff: Duration::from_secs(5),
            ..settings.bounds
        },
        ..settings
    };
    let (snapshot, elapsed) = take(&settings).await;
    assert!(snapshot.is_complete(), "{:?}", snapshot.scopes);
    assert!(elapsed >= Duration::from_secs(1), "took {elapsed:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn throttling_without_end_stops_within_the_operation_bound() {
    let (fake, settings) = world(Duration::from_secs(2));
    fake.inject(Injection::new(ACCOUNT_LIST, Fault::Status(429)));
    let settings = GcpSettings {
        bounds: CallBounds {
            attempts: 1000,
            ..settings.bounds
        },
        ..settings
    };
    let (snapshot, elapsed) = take(&settings).await;
    assert!(elapsed < GENEROUS, "took {elapsed:?}");
    let error = &scope(&snapshot, PROJECT).errors[0];
    assert_eq!(error.operation, "iam.projects.serviceAccounts.list");
    assert!(
        error.message.contains("429 RESOURCE_EXHAUSTED"),
        "{}",
        error.message
    );
    let attempts = fake
        .requests()
        .iter()
        .filter(|request| request.ends_with("/serviceAccounts"))
        .count();
    assert!((2..1000).contains(&attempts), "{attempts} attempts");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_5xx_on_a_read_is_asked_again() {
    let (fake, settings) = world(Duration::from_secs(10));
    // Page 2 of the account list answers 500 once.
    fake.inject(
        Injection::new(ACCOUNT_LIST, Fault::Status(500))
            .after(1)
            .times(1),
    );
    let (snapshot, _) = take(&settings).await;
    assert!(snapshot.is_complete(), "{:?}", snapshot.scopes);
    assert_eq!(snapshot.credentials.len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_action_on_a_hung_endpoint_times_out_and_writes_nothing() {
    let (fake, settings) = world(Duration::from_secs(1));
    let (snapshot, _) = take(&settings).await;
    let credential = snapshot
        .credentials
        .iter()
        .find(|credential| credential.id.as_str().ends_with("/keys/exporter0001"))
        .expect("key")
        .clone();
    fake.inject(Injection::new("/keys/exporter0001?", Fault::Hang));
    let provider = GcpProvider::new(settings);
    let action = lapse_sdk::Action::DeactivateCredential { credential };
    let started = Instant::now();
    let error = lapse_sdk::Provider::apply(&provider, &action)
        .await
        .expect_err("hung");
    assert!(started.elapsed() < GENEROUS);
    assert_eq!(error.kind, ProviderErrorKind::TimedOut);
    assert_eq!(error.operation, "iam.projects.serviceAccounts.keys.get");
    assert!(
        error.message.contains("timed out after 1s"),
        "{}",
        error.message
    );
    assert!(fake.writes().is_empty(), "{:?}", fake.writes());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_info_that_never_answers_leaves_the_caller_unknown_within_the_bound() {
    let (fake, settings) = world(Duration::from_secs(1));
    fake.inject(Injection::new("/tokeninfo?", Fault::Hang));
    let settings = GcpSettings {
        credentials: Some(fake.user_credentials(
            "alice@example.com",
            &["https://www.googleapis.com/auth/cloud-platform"],
        )),
        ..settings
    };
    // (The fake refuses the user's token on the reads themselves: only the lookup matters.)
    let (snapshot, elapsed) = take(&settings).await;
    assert!(fake.request_count() > 0);
    // A fixed ten-second lookup would have held the read that long.
    assert!(elapsed < Duration::from_secs(8), "took {elapsed:?}");
    assert_eq!(scope(&snapshot, PROJECT).caller, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_answer_is_no_answer_not_an_empty_list() {
    let (fake, settings) = world(Duration::from_secs(10));
    fake.inject(Injection::new(ACCOUNT_LIST, Fault::Empty));
    let (snapshot, _) = take(&settings).await;
    let scope = scope(&snapshot, PROJECT);
    assert!(!scope.complete, "an empty 200 read as zero accounts");
    assert_eq!(
        scope.errors[0].operation,
        "iam.projects.serviceAccounts.list"
    );
    assert!(
        scope.errors[0].message.contains("empty body"),
        "{}",
        scope.errors[0].message
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_cut_short_or_not_json_is_no_answer() {
    // Page 2 of 2 cut in half, its length header matching: the accounts of page 1 are kept,
    // and the scope says it is not whole.
    let (fake, settings) = world(Duration::from_secs(10));
    fake.inject(Injection::new(ACCOUNT_LIST, Fault::Truncated).after(1));
    let (snapshot, _) = take(&settings).await;
    let cut = scope(&snapshot, PROJECT);
    assert!(!cut.complete);
    assert_eq!(cut.errors[0].operation, "iam.projects.serviceAccounts.list");

    let (fake, settings) = world(Duration::from_secs(10));
    fake.inject(Injection::new(
        "/v3/projects/acme-prod:getIamPolicy",
        Fault::Garbage,
    ));
    let (snapshot, _) = take(&settings).await;
    let scope = scope(&snapshot, PROJECT);
    assert!(!scope.complete);
    assert_eq!(
        scope.errors[0].operation,
        "cloudresourcemanager.projects.getIamPolicy"
    );
    assert!(
        scope.errors[0].message.contains("not the documented shape"),
        "{}",
        scope.errors[0].message
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_answer_to_the_read_before_a_write_stops_the_write() {
    let (fake, settings) = world(Duration::from_secs(10));
    let (snapshot, _) = take(&settings).await;
    let principal = snapshot
        .principals
        .iter()
        .find(|principal| {
            principal.id.as_str() == "serviceAccount:exporter@acme-prod.iam.gserviceaccount.com"
        })
        .expect("account")
        .clone();
    fake.inject(Injection::new(
        "/serviceAccounts/exporter@acme-prod.iam.gserviceaccount.com?",
        Fault::Empty,
    ));
    let provider = GcpProvider::new(settings);
    let action = lapse_sdk::Action::DisablePrincipal { principal };
    let error = lapse_sdk::Provider::apply(&provider, &action)
        .await
        .expect_err("no whole answer");
    assert_eq!(error.operation, "iam.projects.serviceAccounts.get");
    assert!(fake.writes().is_empty(), "{:?}", fake.writes());
    assert_eq!(
        fake.account_disabled(PROJECT, "exporter@acme-prod.iam.gserviceaccount.com"),
        Some(false)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_listed_account_whose_email_would_name_another_object_is_not_read() {
    let (fake, settings) = world(Duration::from_secs(10));
    fake.add_account_email(
        PROJECT,
        "x/../../../acme-dev@acme-prod.iam.gserviceaccount.com",
        "",
    );
    let (snapshot, _) = take(&settings).await;
    let scope = scope(&snapshot, PROJECT);
    assert!(!scope.complete);
    assert!(
        scope.errors[0].message.contains("x/../../../acme-dev"),
        "{}",
        scope.errors[0].message
    );
    assert!(
        fake.requests()
            .iter()
            .all(|request| !request.contains("..")),
        "{:?}",
        fake.requests()
    );
}
