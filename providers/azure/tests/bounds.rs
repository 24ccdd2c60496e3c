//! The Azure provider under its call bounds, against the in-repo fake: a Graph or ARM endpoint
//! that never answers, one that throttles without end, and a credential that never gives a
//! token each end their scopes as incomplete within about one operation bound, saying it timed
//! out, after how long and where.

use std::sync::Arc;
use std::time::{Duration, Instant};

use lapse_provider_azure::fake::{
    FakeAzure, Fault, Misbehaviour, SUBSCRIPTION, State, StaticCredential, Subscription, TENANT,
    ids,
};
use lapse_provider_azure::{AzureProvider, AzureSettings, TenantScope};
use lapse_sdk::{CallBounds, Snapshot, SnapshotRequest};

/// The operation bound these tests run with: short, so a case takes seconds.
const OPERATION: Duration = Duration::from_secs(2);

fn bounds() -> CallBounds {
    CallBounds::default().with_operation(OPERATION)
}

fn provider(
    fake: &FakeAzure,
    subscriptions: &[&str],
    credential: Arc<dyn azure_core::credentials::TokenCredential>,
) -> AzureProvider {
    AzureProvider::new(AzureSettings {
        tenants: vec![TenantScope {
            tenant: TENANT.to_owned(),
            subscriptions: subscriptions.iter().map(|sub| (*sub).to_owned()).collect(),
        }],
        graph_url: fake.url.clone(),
        arm_url: fake.url.clone(),
        concurrency: 2,
        credential: Some(credential),
        bounds: bounds(),
    })
}

fn caller() -> Arc<dyn azure_core::credentials::TokenCredential> {
    StaticCredential::for_caller(ids::LAPSE_READER, TENANT)
}

/// Every error of every scope, as one text per scope.
fn errors(snapshot: &Snapshot) -> Vec<(String, bool, String)> {
    snapshot
        .scopes
        .iter()
        .map(|scope| {
            (
                scope.id.as_str().to_owned(),
                scope.complete,
                scope
                    .errors
                    .iter()
                    .map(|error| format!("{}: {}", error.operation, error.message))
                    .collect::<Vec<_>>()
                    .join("\n"),
            )
        })
        .collect()
}

fn requests_to(fake: &FakeAzure, fragment: &str) -> usize {
    fake.state()
        .requests
        .iter()
        .filter(|request| request.contains(fragment))
        .count()
}

#[tokio::test]
async fn graph_and_arm_that_never_answer_end_every_scope_within_about_one_operation_bound() {
    let fake = FakeAzure::start(State::contoso());
    fake.fault(Fault::misbehaving(None, "/", Misbehaviour::Hang).times(usize::MAX));
    let provider = provider(&fake, &[SUBSCRIPTION], caller());
    let started = Instant::now();
    let snapshot = provider.take_snapshot(&SnapshotRequest::default()).await;
    let took = started.elapsed();

    // One bound for the calls made side by side, then every later call in each scope is not
    // sent; generous, but far below the minutes a fixed per-request timeout took.
    assert!(took < OPERATION * 3, "took {took:?}");
    let scopes = errors(&snapshot);
    assert_eq!(scopes.len(), 2, "{scopes:#?}");
    for (scope, complete, text) in &scopes {
        assert!(!complete, "{scope} is incomplete");
        assert!(
            text.contains("timed out after 2s without a whole answer from http://127.0.0.1:"),
            "{scope} says it timed out, after how long and where: {text}"
        );
        assert!(text.contains("--timeout"), "{text}");
    }
    // The tenant's later Graph reads were not sent: each would have hung as long again.
    let tenant = &scopes
        .iter()
        .find(|(scope, ..)| scope.contains("/tenants/"))
        .expect("tenant")
        .2;
    assert!(tenant.contains("not sent, because"), "{tenant}");
    assert_eq!(
        requests_to(
            &fake,
            "roleManagement/directory/roleAssignmentScheduleInstances"
        ),
        0,
        "{:#?}",
        fake.state().requests
    );
}

#[tokio::test]
async fn an_endpoint_that_never_answers_is_given_up_once_for_every_subscription() {
    // Six subscriptions read two at a time behind an ARM that never answers: without giving
    // the service up after its first silent timeout, each pair would wait its own bound.
    let mut state = State::contoso();
    let subscriptions: Vec<String> = (1..=6)
        .map(|index| format!("{index}{index}{index}{index}{index}{index}{index}{index}-0000-4000-8000-000000000000"))
        .collect();
    for subscription in &subscriptions {
        state
            .subscriptions
            .insert(subscription.clone(), Subscription::default());
    }
    let fake = FakeAzure::start(state);
    fake.fault(Fault::misbehaving(None, "/subscriptions/", Misbehaviour::Hang).times(usize::MAX));
    let named: Vec<&str> = subscriptions.iter().map(String::as_str).collect();
    let provider = provider(&fake, &named, caller());
    let started = Instant::now();
    let snapshot = provider.take_snapshot(&SnapshotRequest::default()).await;
    let took = started.elapsed();
    assert!(
        took < OPERATION * 2 + Duration::from_secs(1),
        "took {took:?}"
    );
    let scopes = errors(&snapshot);
    for (scope, complete, text) in &scopes {
        if scope.contains("/subscriptions/") {
            assert!(!complete, "{scope}: {text}");
            assert!(
                text.contains("timed out") || text.contains("not sent, because"),
                "{scope}: {text}"
            );
        } else {
            // Graph answered: the directory is whole.
            assert!(complete, "{scope}: {text}");
        }
    }
    assert!(
        requests_to(&fake, "/providers/Microsoft.Authorization/roleAssignments?") <= 2,
        "{:#?}",
        fake.state().requests
    );
}

#[tokio::test]
async fn throttling_without_end_ends_within_the_operation_bound_and_says_so() {
    let fake = FakeAzure::start(State::contoso());
    // Retry-After of a minute: believed only up to the bounds' cap, and the operation
    // deadline comes first.
    fake.throttle("/v1.0/servicePrincipals", usize::MAX, 60);
    let provider = provider(&fake, &[], caller());
    let started = Instant::now();
    let snapshot = provider.take_snapshot(&SnapshotRequest::default()).await;
    let took = started.elapsed();
    assert!(took < OPERATION * 3, "took {took:?}");
    let (scope, complete, text) = &errors(&snapshot)[0];
    assert!(!complete, "{scope}");
    assert!(
        text.contains("graph:GET /servicePrincipals: timed out after 2s"),
        "{text}"
    );
    assert!(text.contains("the last attempt:"), "{text}");
    assert!(text.contains("HTTP 429"), "{text}");
    assert_eq!(
        requests_to(&fake, "GET /v1.0/servicePrincipals?"),
        1,
        "one attempt, then a wait the deadline cut short"
    );
}

/// A credential whose token request never returns: a token endpoint or `az` that hangs.
#[derive(Debug)]
struct Silent;

#[async_trait::async_trait]
impl azure_core::credentials::TokenCredential for Silent {
    async fn get_token(
        &self,
        _scopes: &[&str],
        _options: Option<azure_core::credentials::TokenRequestOptions<'_>>,
    ) -> azure_core::Result<azure_core::credentials::AccessToken> {
        std::future::pending().await
    }
}

#[tokio::test]
async fn a_credential_that_never_gives_a_token_ends_the_tenant_within_the_bound() {
    let fake = FakeAzure::start(State::contoso());
    let provider = provider(&fake, &[SUBSCRIPTION], Arc::new(Silent));
    let started = Instant::now();
    let snapshot = provider.take_snapshot(&SnapshotRequest::default()).await;
    let took = started.elapsed();
    assert!(took < OPERATION * 3, "took {took:?}");
    for (scope, complete, text) in errors(&snapshot) {
        assert!(!complete, "{scope}");
        assert!(
            text.contains("authenticate: timed out after 2s without a whole answer from lapse's credential, injected credential"),
            "{scope}: {text}"
        );
    }
    assert_eq!(fake.request_count(), 0, "nothing was sent without a token");
}
