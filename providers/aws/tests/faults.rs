//! The AWS provider under faults: a proxy between the real SDK and moto injects each fault, and
//! every read must end its account as incomplete, naming the operation, within the call bounds.
//! The bounds are short (a 3 s operation) so the whole matrix stays fast; the time asserted is
//! generous, a bound and never a speed goal.

use std::time::{Duration, Instant};

use aws_credential_types::Credentials;
use lapse_provider_aws::testing::{Fault, FaultProxy, MotoServer, Paging, Target};
use lapse_provider_aws::{AwsProvider, AwsSettings};
use lapse_sdk::{CallBounds, ProviderErrorKind, ScopeStatus, Snapshot, SnapshotRequest};

const DETAILS: &str = "GetAccountAuthorizationDetails";

fn bounds() -> CallBounds {
    CallBounds::default().with_operation(Duration::from_secs(3))
}

fn settings(endpoint: &str, bounds: CallBounds) -> AwsSettings {
    AwsSettings {
        endpoint_url: Some(endpoint.to_owned()),
        credentials: Some(Credentials::new("testing", "testing", None, None, "test")),
        bounds,
        ..AwsSettings::default()
    }
}

async fn read(endpoint: &str, bounds: CallBounds) -> (Snapshot, Duration) {
    let started = Instant::now();
    let provider = AwsProvider::new(settings(endpoint, bounds));
    let snapshot = provider.take_snapshot(&SnapshotRequest::default()).await;
    (snapshot, started.elapsed())
}

/// Two users (one with a path), a group, two roles and a customer-managed policy: every page of
/// the proxy's paging has something on it.
async fn seed(moto: &MotoServer) {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(&moto.endpoint)
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .load()
        .await;
    let iam = aws_sdk_iam::Client::new(&config);
    for (name, path) in [("ana", "/"), ("batch", "/jobs/")] {
        iam.create_user()
            .user_name(name)
            .path(path)
            .send()
            .await
            .expect("user");
    }
    iam.create_group()
        .group_name("ops")
        .send()
        .await
        .expect("group");
    iam.add_user_to_group()
        .group_name("ops")
        .user_name("ana")
        .send()
        .await
        .expect("member");
    for role in ["ci", "deploy"] {
        iam.create_role()
            .role_name(role)
            .assume_role_policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"codebuild.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#)
            .send()
            .await
            .expect("role");
    }
    iam.create_policy()
        .policy_name("read-data")
        .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}"#)
        .send()
        .await
        .expect("policy");
}

fn only_scope(snapshot: &Snapshot) -> &ScopeStatus {
    assert_eq!(snapshot.scopes.len(), 1, "{:?}", snapshot.scopes);
    &snapshot.scopes[0]
}

fn assert_incomplete_naming(snapshot: &Snapshot, operation: &str, case: &str) {
    let scope = only_scope(snapshot);
    assert!(!scope.complete, "{case}: read as complete");
    assert!(
        scope
            .errors
            .iter()
            .any(|error| error.operation == format!("iam:{operation}")),
        "{case}: no error names iam:{operation}: {:?}",
        scope.errors
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_fault_on_the_bulk_read_ends_the_account_incomplete_within_the_bound() {
    let moto = MotoServer::start();
    seed(&moto).await;
    let proxy = FaultProxy::start(&moto.endpoint);
    for fault in Fault::ALL {
        proxy.clear_records();
        proxy.set_fault(Some((fault, Target::Operation(DETAILS.to_owned()))));
        let (snapshot, elapsed) = read(&proxy.endpoint, bounds()).await;
        let case = format!("{fault:?}");
        assert_incomplete_naming(&snapshot, DETAILS, &case);
        assert!(
            snapshot.principals.is_empty(),
            "{case}: {:?}",
            snapshot.principals
        );
        assert!(
            elapsed < Duration::from_secs(30),
            "{case}: took {elapsed:?}"
        );
        let attempts = proxy.requests_for(DETAILS);
        assert!(
            (1..=5).contains(&attempts),
            "{case}: {attempts} attempts, more than the bounds allow"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_throttled_endpoint_gets_one_retry_policy_with_its_attempts_and_no_more() {
    let moto = MotoServer::start();
    let proxy = FaultProxy::start(&moto.endpoint);
    proxy.set_fault(Some((
        Fault::Throttle,
        Target::Operation(DETAILS.to_owned()),
    )));
    // Default bounds: five attempts, waits well inside the two-minute operation bound.
    let (snapshot, elapsed) = read(&proxy.endpoint, CallBounds::default()).await;
    let attempts = proxy.requests_for(DETAILS);
    assert_eq!(
        attempts, 5,
        "one loop of five attempts, no SDK retries nested inside"
    );
    assert!(elapsed < Duration::from_secs(30), "took {elapsed:?}");
    let scope = only_scope(&snapshot);
    let error = scope
        .errors
        .iter()
        .find(|error| error.operation == "iam:GetAccountAuthorizationDetails")
        .expect("the throttled read is named");
    assert!(error.message.contains("Throttling"), "{error:?}");
    assert!(
        error.message.contains("gave up after 5 attempts"),
        "{error:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_servers_retry_after_is_honoured_up_to_the_longest_backoff() {
    let moto = MotoServer::start();
    let proxy = FaultProxy::start(&moto.endpoint);
    proxy.set_fault(Some((
        Fault::Throttle,
        Target::Operation(DETAILS.to_owned()),
    )));
    // An hour asked for, believed up to one second: four waits of one second between five
    // attempts, where lapse's own backoff (from 10 ms) would have waited well under one
    // second in all.
    proxy.set_retry_after(Some(3600));
    let bounds = CallBounds {
        first_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_secs(1),
        operation: Duration::from_secs(20),
        ..CallBounds::default()
    };
    let (snapshot, elapsed) = read(&proxy.endpoint, bounds).await;
    assert_incomplete_naming(&snapshot, DETAILS, "throttled with Retry-After");
    assert_eq!(proxy.requests_for(DETAILS), 5);
    assert!(elapsed >= Duration::from_secs(4), "waited only {elapsed:?}");
    assert!(elapsed < Duration::from_secs(20), "took {elapsed:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hung_endpoint_ends_the_account_after_one_operation_bound_and_says_it_timed_out() {
    let moto = MotoServer::start();
    let proxy = FaultProxy::start(&moto.endpoint);
    proxy.set_fault(Some((Fault::Hang, Target::Everything)));
    let (snapshot, elapsed) = read(&proxy.endpoint, bounds()).await;
    assert!(elapsed < Duration::from_secs(30), "took {elapsed:?}");
    let scope = only_scope(&snapshot);
    assert!(!scope.complete);
    let error = &scope.errors[0];
    assert_eq!(error.operation, "sts:GetCallerIdentity");
    assert!(error.message.contains("timed out after 3s"), "{error:?}");
    assert!(error.message.contains(&proxy.endpoint), "{error:?}");
    // Nothing after the call that hung: it would hang again.
    assert_eq!(proxy.requests(), vec!["GetCallerIdentity".to_owned()]);

    // A hang on the bulk read, after the identity answered: the scan stops there.
    proxy.clear_records();
    proxy.set_fault(Some((Fault::Hang, Target::Operation(DETAILS.to_owned()))));
    let (snapshot, elapsed) = read(&proxy.endpoint, bounds()).await;
    assert!(elapsed < Duration::from_secs(30), "took {elapsed:?}");
    assert_incomplete_naming(&snapshot, DETAILS, "hang");
    assert_eq!(
        proxy.requests(),
        vec!["GetCallerIdentity".to_owned(), DETAILS.to_owned()],
        "no call after the timeout"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_credential_report_that_is_never_ready_is_polled_within_one_bound() {
    let moto = MotoServer::start();
    seed(&moto).await;
    let proxy = FaultProxy::start(&moto.endpoint);
    proxy.set_rewrite(
        "GenerateCredentialReport",
        "<State>COMPLETE</State>",
        "<State>STARTED</State>",
    );
    let (snapshot, elapsed) = read(&proxy.endpoint, bounds()).await;
    assert!(elapsed < Duration::from_secs(30), "took {elapsed:?}");
    let scope = only_scope(&snapshot);
    assert!(!scope.complete);
    assert!(
        scope
            .errors
            .iter()
            .any(|error| error.operation == "iam:GenerateCredentialReport"
                && error.message.contains("still being generated after 3s")),
        "{:?}",
        scope.errors
    );
    assert_eq!(proxy.requests_for("GetCredentialReport"), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_assume_role_that_hangs_is_bounded_too() {
    let moto = MotoServer::start();
    let proxy = FaultProxy::start(&moto.endpoint);
    proxy.set_fault(Some((
        Fault::Hang,
        Target::Operation("AssumeRole".to_owned()),
    )));
    let mut settings = settings(&proxy.endpoint, bounds());
    settings.accounts = vec![lapse_provider_aws::AccountScope {
        account: "123456789012".to_owned(),
        assume_role: Some("arn:aws:iam::123456789012:role/lapse-read".to_owned()),
        ..lapse_provider_aws::AccountScope::default()
    }];
    let started = Instant::now();
    let snapshot = AwsProvider::new(settings)
        .take_snapshot(&SnapshotRequest::default())
        .await;
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(30), "took {elapsed:?}");
    let scope = only_scope(&snapshot);
    assert!(!scope.complete);
    assert!(
        scope.errors[0].message.contains("timed out"),
        "{:?}",
        scope.errors
    );
    assert_eq!(proxy.requests_for("AssumeRole"), 1);
    assert_eq!(proxy.requests_for(DETAILS), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn paging_is_followed_to_its_end_and_a_broken_pager_is_never_the_end() {
    let moto = MotoServer::start();
    seed(&moto).await;
    let proxy = FaultProxy::start(&moto.endpoint);
    let (whole, _) = read(&proxy.endpoint, bounds()).await;
    assert!(only_scope(&whole).complete, "{:?}", whole.scopes);
    let mut expected: Vec<String> = whole.principals.iter().map(|p| p.id.0.clone()).collect();
    expected.sort();
    assert_eq!(expected.len(), 5, "{expected:?}");

    proxy.set_paging(Paging::Pages);
    proxy.clear_records();
    let (paged, _) = read(&proxy.endpoint, bounds()).await;
    assert!(only_scope(&paged).complete, "{:?}", paged.scopes);
    assert_eq!(proxy.requests_for(DETAILS), 4, "four pages");
    let mut found: Vec<String> = paged.principals.iter().map(|p| p.id.0.clone()).collect();
    found.sort();
    assert_eq!(found, expected);
    assert_eq!(paged.grants.len(), whole.grants.len());

    for page in 1..=4 {
        proxy.set_fault(Some((Fault::ServerError, Target::AuthorizationPage(page))));
        let (snapshot, elapsed) = read(&proxy.endpoint, bounds()).await;
        assert_incomplete_naming(&snapshot, DETAILS, &format!("503 on page {page}"));
        assert!(snapshot.principals.is_empty(), "page {page}");
        assert!(elapsed < Duration::from_secs(30));
    }
    proxy.set_fault(None);

    for broken in [
        Paging::RepeatMarker,
        Paging::NoTruncatedFlag,
        Paging::NoMarker,
    ] {
        proxy.set_paging(broken);
        proxy.clear_records();
        let (snapshot, _) = read(&proxy.endpoint, bounds()).await;
        let case = format!("{broken:?}");
        assert_incomplete_naming(&snapshot, DETAILS, &case);
        assert!(snapshot.principals.is_empty(), "{case}");
        assert!(
            proxy.requests_for(DETAILS) <= 5,
            "{case}: {:?}",
            proxy.requests()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_timed_out_action_read_fails_as_timed_out() {
    let moto = MotoServer::start();
    seed(&moto).await;
    let proxy = FaultProxy::start(&moto.endpoint);
    let provider = AwsProvider::new(settings(&proxy.endpoint, bounds()));
    let snapshot = provider.take_snapshot(&SnapshotRequest::default()).await;
    let grant = snapshot
        .grants
        .iter()
        .find(|grant| grant.kind == lapse_sdk::GrantKind::GroupMembership)
        .expect("ana's membership")
        .clone();
    proxy.set_fault(Some((Fault::Hang, Target::Reads)));
    let action = lapse_sdk::Action::RevokeGrant { grant };
    let started = Instant::now();
    let error = lapse_sdk::Provider::read_target(&provider, &action)
        .await
        .expect_err("a hung read is no answer");
    assert_eq!(error.kind, ProviderErrorKind::TimedOut, "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(30));
    // The next call on the same account does not wait again.
    let started = Instant::now();
    let again = lapse_sdk::Provider::apply(&provider, &action)
        .await
        .expect_err("no second wait");
    assert_eq!(again.kind, ProviderErrorKind::TimedOut, "{again:?}");
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(proxy.forwarded_mutations().is_empty());
}
