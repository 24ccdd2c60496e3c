//! An in-repo fake of the Google Cloud REST endpoints lapse calls: IAM service accounts, their
//! keys and their own `getIamPolicy`/`setIamPolicy` (v1), Resource Manager
//! `getIamPolicy`/`setIamPolicy` (v3), and Policy Analyzer `activities:query`. No Google
//! emulator exists for these APIs. Every IAM policy, a container's or an account's, is served
//! by the same code: etags, 409 on a stale one, version-1 flattening, and the injected faults.
//!
//! It listens on 127.0.0.1 on its own thread with its own runtime, so in-process tests and the
//! `lapse` binary (another process) reach it alike, and stops when dropped. One base URL serves
//! every endpoint. Bodies follow the documented shapes (cited at each); faults can be injected:
//! 403 for one permission on one project, 403 `SERVICE_DISABLED` for an API turned off in a
//! project, a concurrent writer between a read and a write, a pager that repeats its token, a
//! policy answered at version 1 or without its etag, a check that the bearer is a JWT signed by
//! a given service-account key, and [`Fault`]s on chosen requests ([`FakeGcp::inject`]): a
//! connection accepted and never answered, a connection reset, any status (429 and 503 with
//! `Retry-After`), a 200 whose body is cut short, empty or not JSON, and an answer that comes
//! late.
//!
//! Connection faults are decided before HTTP is spoken: every connection's request line is
//! peeked, and every answer closes its connection, so each request arrives on a connection of
//! its own and any request can be the one that hangs or is reset.
//!
//! The OAuth token and token info endpoints, IAM Credentials `generateAccessToken`
//! (impersonation) and the metadata server's account email are served too, so the caller of
//! user credentials, of an impersonation chain and on Google Cloud compute can be found.

#![allow(clippy::missing_panics_doc)] // test support: a poisoned lock is a failed test

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{self, KeyPair as _};
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use crate::GcpSettings;

/// `validBeforeTime` of a key that never expires.
pub const NO_EXPIRY: &str = "9999-12-31T23:59:59Z";

/// A key to seed.
#[derive(Clone, Debug)]
pub struct FakeKey {
    /// The key id (last segment of its name).
    pub id: String,
    /// `USER_MANAGED` or `SYSTEM_MANAGED`.
    pub key_type: String,
    /// RFC 3339.
    pub valid_after: String,
    /// RFC 3339; [`NO_EXPIRY`] for none.
    pub valid_before: String,
    /// Disabled.
    pub disabled: bool,
}

impl FakeKey {
    /// An enabled user-managed key created at `valid_after` that never expires.
    #[must_use]
    pub fn user(id: &str, valid_after: &str) -> Self {
        FakeKey {
            id: id.to_owned(),
            key_type: "USER_MANAGED".to_owned(),
            valid_after: valid_after.to_owned(),
            valid_before: NO_EXPIRY.to_owned(),
            disabled: false,
        }
    }
}

/// What the fake does to a request an [`Injection`] targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Accept the connection and the request, and never answer.
    Hang,
    /// Accept the connection, then reset it (TCP RST) before a byte of answer.
    Reset,
    /// Answer this status in Google's error shape; 429 and 503 carry `Retry-After`.
    Status(u16),
    /// 200 with the first half of the real answer, its `Content-Length` matching the cut body:
    /// the HTTP exchange is whole, the document is not.
    Truncated,
    /// 200 with an empty body.
    Empty,
    /// 200 with a body that is not JSON (an HTML error page, as a proxy would send).
    Garbage,
    /// The real answer, this many milliseconds late.
    Slow(u64),
}

impl Fault {
    /// Decided from the request line, before any HTTP answer.
    fn on_connection(self) -> bool {
        matches!(self, Fault::Hang | Fault::Reset)
    }
}

/// A fault and the requests it hits: those whose `<path>?<query>` (path percent-decoded)
/// contains `target`, after the first `after` of them, `times` of them (every one when `None`).
#[derive(Clone, Debug)]
pub struct Injection {
    target: String,
    fault: Fault,
    after: u32,
    times: Option<u32>,
    retry_after: u32,
}

impl Injection {
    /// `fault` on every request whose `<path>?<query>` contains `target`
    /// (`/serviceAccounts?` is the account list and only it).
    #[must_use]
    pub fn new(target: &str, fault: Fault) -> Self {
        Injection {
            target: target.to_owned(),
            fault,
            after: 0,
            times: None,
            retry_after: 0,
        }
    }

    /// Lets the first `count` targeted requests through (page k of a list: `k - 1`).
    #[must_use]
    pub fn after(self, count: u32) -> Self {
        Injection {
            after: count,
            ..self
        }
    }

    /// Hits only `count` requests, then lets the rest through.
    #[must_use]
    pub fn times(self, count: u32) -> Self {
        Injection {
            times: Some(count),
            ..self
        }
    }

    /// The `Retry-After` seconds a 429 or 503 carries (0 unless set).
    #[must_use]
    pub fn retry_after(self, seconds: u32) -> Self {
        Injection {
            retry_after: seconds,
            ..self
        }
    }
}

#[derive(Clone, Debug)]
struct Account {
    unique_id: String,
    display_name: String,
    disabled: bool,
    keys: BTreeMap<String, FakeKey>,
}

#[derive(Clone, Debug)]
struct StoredPolicy {
    /// Bindings and anything else (`auditConfigs`), as the last writer sent them.
    body: Value,
    etag: String,
}

type Hook = Box<dyn FnOnce(&mut Value) + Send>;

#[derive(Default)]
struct State {
    projects: BTreeMap<String, BTreeMap<String, Account>>,
    policies: BTreeMap<String, StoredPolicy>,
    /// (project, activity type) → activities.
    activities: HashMap<(String, String), Vec<Value>>,
    analyzer_enabled: HashSet<String>,
    /// project → APIs turned off (`iam.googleapis.com`, `cloudresourcemanager.googleapis.com`).
    disabled_apis: HashMap<String, HashSet<String>>,
    /// project → denied permissions.
    denied: HashMap<String, HashSet<String>>,
    /// Faults on chosen requests, first match first.
    injections: Vec<Injection>,
    /// Run after the next `getIamPolicy` of a resource has answered: another writer.
    after_read: HashMap<String, Hook>,
    /// `(client_email, RSAPublicKey DER)`: bearers must be JWTs this key signed.
    signer: Option<(String, Vec<u8>)>,
    /// OAuth refresh token → (user email, scopes granted at login).
    users: HashMap<String, (String, Vec<String>)>,
    /// Access tokens the token endpoint issued → (email, scopes).
    tokens: HashMap<String, (String, Vec<String>)>,
    /// The metadata server's attached service account.
    metadata_email: Option<String>,
    /// `generateAccessToken` calls: (account impersonated, delegates asked through).
    impersonations: Vec<(String, Vec<String>)>,
    requests: Vec<String>,
    etags: u64,
    next_unique_id: u64,
    page_size_max: usize,
    /// Every page answers with the token it was asked for (a broken pager).
    loop_pages: bool,
    /// `getIamPolicy` answers at version 1 whatever was requested.
    policies_at_version_1: bool,
    /// `getIamPolicy` answers without an etag.
    omit_policy_etag: bool,
}

impl State {
    /// The fault for a request to `target` (`<path>?<query>`), counting it against the
    /// injections it matches; only connection faults when `connection`, only the others when
    /// not (each injection is judged at one stage, so it counts each request once).
    fn fault_for(&mut self, target: &str, connection: bool) -> Option<(Fault, u32)> {
        for injection in &mut self.injections {
            if injection.fault.on_connection() != connection
                || !target.contains(injection.target.as_str())
            {
                continue;
            }
            if injection.after > 0 {
                injection.after -= 1;
                continue;
            }
            match &mut injection.times {
                Some(0) => continue,
                Some(times) => *times -= 1,
                None => {}
            }
            return Some((injection.fault, injection.retry_after));
        }
        None
    }

    fn next_etag(&mut self) -> String {
        self.etags += 1;
        // Real etags are base64 of 8 bytes (`BwWQAG4vI0U=` in recorded answers).
        STANDARD.encode(self.etags.to_be_bytes())
    }
}

/// The running fake. Dropping it stops the server.
pub struct FakeGcp {
    address: SocketAddr,
    state: Arc<Mutex<State>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for FakeGcp {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("FakeGcp")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl Drop for FakeGcp {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl FakeGcp {
    /// Starts the fake on 127.0.0.1 on a free port.
    #[must_use]
    pub fn start() -> Self {
        let state = Arc::new(Mutex::new(State {
            page_size_max: 100,
            next_unique_id: 100_000_000_000_000_000,
            ..State::default()
        }));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.set_nonblocking(true).expect("non-blocking");
        let address = listener.local_addr().expect("local address");
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let shared = Arc::clone(&state);
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let (sender, receiver) = tokio::sync::mpsc::channel(64);
                tokio::spawn(sort_connections(listener, Arc::clone(&shared), sender));
                let app = axum::Router::new().fallback(
                    move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                        let state = Arc::clone(&shared);
                        async move { respond(&state, &method, &uri, &headers, &body).await }
                    },
                );
                let connections = Connections { receiver, address };
                let _ = axum::serve(connections, app)
                    .with_graceful_shutdown(async move {
                        let _ = stopped.await;
                    })
                    .await;
            });
            // Dropping the runtime ends the connections held by a hang.
        });
        FakeGcp {
            address,
            state,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("fake state")
    }

    /// The base URL of every endpoint.
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Settings pointing every API at the fake, reading `projects`.
    #[must_use]
    pub fn settings(&self, projects: &[&str]) -> GcpSettings {
        GcpSettings {
            projects: projects.iter().map(|&project| project.to_owned()).collect(),
            iam_url: self.url(),
            resource_manager_url: self.url(),
            policy_analyzer_url: self.url(),
            oauth2_url: self.url(),
            bounds: lapse_sdk::CallBounds {
                first_backoff: std::time::Duration::from_millis(10),
                ..lapse_sdk::CallBounds::default()
            },
            ..GcpSettings::default()
        }
    }

    /// Creates a project with an empty IAM policy.
    pub fn add_project(&self, project: &str) {
        let mut state = self.lock();
        state.projects.entry(project.to_owned()).or_default();
        if !state.policies.contains_key(&format!("projects/{project}")) {
            let etag = state.next_etag();
            state.policies.insert(
                format!("projects/{project}"),
                StoredPolicy {
                    body: json!({"bindings": []}),
                    etag,
                },
            );
        }
    }

    /// Creates a service account `<account_id>@<project>.iam.gserviceaccount.com`; returns its
    /// email.
    pub fn add_service_account(
        &self,
        project: &str,
        account_id: &str,
        display_name: &str,
    ) -> String {
        self.add_project(project);
        let email = format!("{account_id}@{project}.iam.gserviceaccount.com");
        self.add_account_email(project, &email, display_name);
        email
    }

    /// Creates a service account with any email (a Google service agent, say), with an empty
    /// IAM policy of its own.
    pub fn add_account_email(&self, project: &str, email: &str, display_name: &str) {
        self.add_project(project);
        let mut state = self.lock();
        let resource = format!("projects/{project}/serviceAccounts/{email}");
        if !state.policies.contains_key(&resource) {
            let etag = state.next_etag();
            state.policies.insert(
                resource,
                StoredPolicy {
                    body: json!({"bindings": []}),
                    etag,
                },
            );
        }
        state.next_unique_id += 1;
        let unique_id = state.next_unique_id.to_string();
        state
            .projects
            .entry(project.to_owned())
            .or_default()
            .insert(
                email.to_owned(),
                Account {
                    unique_id,
                    display_name: display_name.to_owned(),
                    disabled: false,
                    keys: BTreeMap::new(),
                },
            );
    }

    /// Adds a key to an account; returns its full resource name.
    pub fn add_key(&self, project: &str, email: &str, key: FakeKey) -> String {
        let mut state = self.lock();
        let account = state
            .projects
            .get_mut(project)
            .and_then(|accounts| accounts.get_mut(email))
            .expect("seed the account first");
        let name = format!("projects/{project}/serviceAccounts/{email}/keys/{}", key.id);
        account.keys.insert(key.id.clone(), key);
        name
    }

    /// Replaces a resource's (`projects/p`, `folders/1`, `projects/p/serviceAccounts/<email>`)
    /// bindings, as another tool would.
    pub fn set_bindings(&self, resource: &str, bindings: Value) {
        let mut state = self.lock();
        let etag = state.next_etag();
        state.policies.insert(
            resource.to_owned(),
            StoredPolicy {
                body: json!({"bindings": bindings}),
                etag,
            },
        );
    }

    /// Replaces a service account's own bindings (who may act as it), as another tool would;
    /// returns the account's resource name, which [`FakeGcp::policy`] takes.
    pub fn set_account_bindings(&self, project: &str, email: &str, bindings: Value) -> String {
        let resource = format!("projects/{project}/serviceAccounts/{email}");
        self.set_bindings(&resource, bindings);
        resource
    }

    /// The stored policy body (bindings) and its etag.
    #[must_use]
    pub fn policy(&self, resource: &str) -> Option<(Value, String)> {
        self.lock()
            .policies
            .get(resource)
            .map(|stored| (stored.body.clone(), stored.etag.clone()))
    }

    /// The key as `keys.get` would answer, if it exists.
    #[must_use]
    pub fn key(&self, name: &str) -> Option<Value> {
        let state = self.lock();
        find_key(&state, name).map(|(project, email, key)| key_json(project, email, key))
    }

    /// Whether an account is disabled (`None` when it does not exist).
    #[must_use]
    pub fn account_disabled(&self, project: &str, email: &str) -> Option<bool> {
        self.lock()
            .projects
            .get(project)
            .and_then(|accounts| accounts.get(email))
            .map(|account| account.disabled)
    }

    /// Turns Policy Analyzer on for a project (off by default: 403 `SERVICE_DISABLED`, as an
    /// unenabled API answers).
    pub fn enable_policy_analyzer(&self, project: &str) {
        self.lock().analyzer_enabled.insert(project.to_owned());
    }

    /// Records a last authentication: `activity_type` is `serviceAccountKeyLastAuthentication`
    /// or `serviceAccountLastAuthentication`; `resource` is the key's or account's resource name.
    pub fn add_last_authentication(
        &self,
        project: &str,
        activity_type: &str,
        resource: &str,
        at: &str,
    ) {
        // Shape: https://cloud.google.com/policy-intelligence/docs/activity-analyzer-service-account-authentication
        // ("activities": [{"fullResourceName", "activityType", "observationPeriod", "activity"}]).
        let inner = if activity_type == "serviceAccountKeyLastAuthentication" {
            "serviceAccountKey"
        } else {
            "serviceAccount"
        };
        let activity = json!({
            "fullResourceName": format!("//iam.googleapis.com/{resource}"),
            "activityType": activity_type,
            "observationPeriod": {"startTime": "2026-01-01T07:00:00Z", "endTime": at},
            "activity": {
                "lastAuthenticatedTime": at,
                inner: {
                    "fullResourceName": format!("//iam.googleapis.com/{resource}"),
                    "projectNumber": "123456789012",
                    "serviceAccountId": "1",
                }
            }
        });
        self.lock()
            .activities
            .entry((project.to_owned(), activity_type.to_owned()))
            .or_default()
            .push(activity);
    }

    /// Turns an API (`iam.googleapis.com`, `cloudresourcemanager.googleapis.com`) off for a
    /// project: its requests answer 403 `SERVICE_DISABLED`, as an API never enabled does.
    pub fn disable_api(&self, project: &str, service: &str) {
        self.lock()
            .disabled_apis
            .entry(project.to_owned())
            .or_default()
            .insert(service.to_owned());
    }

    /// Every request on this project that needs `permission` answers 403 `PERMISSION_DENIED`.
    pub fn deny(&self, project: &str, permission: &str) {
        self.lock()
            .denied
            .entry(project.to_owned())
            .or_default()
            .insert(permission.to_owned());
    }

    /// The next `times` requests whose path contains `path_part` answer 429
    /// `RESOURCE_EXHAUSTED` with `Retry-After: 0`.
    pub fn throttle(&self, path_part: &str, times: u32) {
        self.inject(Injection::new(path_part, Fault::Status(429)).times(times));
    }

    /// The next `times` requests whose path contains `path_part` answer 503 `UNAVAILABLE`.
    pub fn unavailable(&self, path_part: &str, times: u32) {
        self.inject(Injection::new(path_part, Fault::Status(503)).times(times));
    }

    /// The next `times` requests whose path contains `path_part` answer 404 `NOT_FOUND`, as an
    /// eventually consistent read or a verb on a just-deleted object can.
    pub fn not_found(&self, path_part: &str, times: u32) {
        self.inject(Injection::new(path_part, Fault::Status(404)).times(times));
    }

    /// Puts a fault on the requests `injection` targets, after those injected before it.
    pub fn inject(&self, injection: Injection) {
        self.lock().injections.push(injection);
    }

    /// Removes every injected fault (and the throttles put by [`FakeGcp::throttle`] and its
    /// kin): requests from now on are answered as they should be.
    pub fn clear_faults(&self) {
        self.lock().injections.clear();
    }

    /// The requests that would change something (`setIamPolicy`, `:disable`, `:enable`,
    /// `DELETE`), as `METHOD /path`, whether or not they were answered.
    #[must_use]
    pub fn writes(&self) -> Vec<String> {
        self.requests()
            .into_iter()
            .filter(|request| {
                request.starts_with("DELETE ")
                    || [":setIamPolicy", ":disable", ":enable", ":undelete"]
                        .iter()
                        .any(|verb| request.ends_with(verb))
            })
            .collect()
    }

    /// Every paged list answers with a `nextPageToken` equal to the one it was asked for (the
    /// first page with the first page's token): a pager that never ends.
    pub fn loop_pages(&self) {
        self.lock().loop_pages = true;
    }

    /// `getIamPolicy` answers at version 1 whatever version was requested, as an old API
    /// version or a proxy would: conditional bindings come back as `_withcond_` roles.
    pub fn answer_policies_at_version_1(&self) {
        self.lock().policies_at_version_1 = true;
    }

    /// `getIamPolicy` answers without the `etag` field (not the documented shape).
    pub fn omit_policy_etag(&self) {
        self.lock().omit_policy_etag = true;
    }

    /// Another writer: right after the next `getIamPolicy` of `resource` has answered, `edit`
    /// changes the stored bindings body and the etag moves on, so a write with the etag just
    /// read fails with 409.
    pub fn write_after_next_read(
        &self,
        resource: &str,
        edit: impl FnOnce(&mut Value) + Send + 'static,
    ) {
        self.lock()
            .after_read
            .insert(resource.to_owned(), Box::new(edit));
    }

    /// From now on every request must carry a JWT bearer signed by this key with `iss` =
    /// its client email (401 otherwise).
    pub fn require_signed_by(&self, key: &TestServiceAccountKey) {
        self.lock().signer = Some((key.client_email.clone(), key.public_key.clone()));
    }

    /// A user who logged in with `scopes` granted: the `authorized_user` file
    /// `gcloud auth application-default login` writes, its `token_uri` at this fake's token
    /// endpoint (`POST /token`), whose tokens `POST /tokeninfo` (form body) describes.
    #[must_use]
    pub fn authorized_user(&self, email: &str, scopes: &[&str]) -> Value {
        let mut state = self.lock();
        let refresh_token = format!("1//fake-refresh-{}", state.users.len() + 1);
        state.users.insert(
            refresh_token.clone(),
            (
                email.to_owned(),
                scopes.iter().map(|&scope| scope.to_owned()).collect(),
            ),
        );
        json!({
            "type": "authorized_user",
            "client_id": "764086051850-fake.apps.googleusercontent.com",
            "client_secret": "fake-client-secret",
            "refresh_token": refresh_token,
            "token_uri": format!("{}/token", self.url()),
            "universe_domain": "googleapis.com"
        })
    }

    /// google-cloud-auth user credentials for [`FakeGcp::authorized_user`], without scopes of
    /// their own (tokens then carry every scope granted at login).
    #[must_use]
    pub fn user_credentials(
        &self,
        email: &str,
        scopes: &[&str],
    ) -> google_cloud_auth::credentials::Credentials {
        google_cloud_auth::credentials::user_account::Builder::new(
            self.authorized_user(email, scopes),
        )
        .build()
        .expect("user credentials")
    }

    /// The `generateAccessToken` calls answered: the account impersonated and the delegates
    /// the request named.
    #[must_use]
    pub fn impersonations(&self) -> Vec<(String, Vec<String>)> {
        self.lock().impersonations.clone()
    }

    /// The metadata server (`GET /computeMetadata/v1/...`) names this attached account.
    pub fn set_metadata_email(&self, email: &str) {
        self.lock().metadata_email = Some(email.to_owned());
    }

    /// Serves at most `size` service accounts per page, whatever the caller asks.
    pub fn limit_page_size(&self, size: usize) {
        self.lock().page_size_max = size.max(1);
    }

    /// Requests answered so far, as `METHOD /path`.
    #[must_use]
    pub fn requests(&self) -> Vec<String> {
        self.lock().requests.clone()
    }

    /// How many requests were answered so far.
    #[must_use]
    pub fn request_count(&self) -> usize {
        self.lock().requests.len()
    }
}

/// A service-account key generated for a test (RSA 2048, PKCS#8), never committed anywhere.
#[derive(Clone)]
pub struct TestServiceAccountKey {
    /// The account's email.
    pub client_email: String,
    /// The private key id.
    pub private_key_id: String,
    private_key_pem: String,
    public_key: Vec<u8>,
}

impl std::fmt::Debug for TestServiceAccountKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("TestServiceAccountKey")
            .field("client_email", &self.client_email)
            .finish_non_exhaustive()
    }
}

impl TestServiceAccountKey {
    /// Generates a fresh key for `client_email`.
    #[must_use]
    pub fn generate(client_email: &str) -> Self {
        let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
            .expect("RSA key generation");
        let pkcs8 = pair.as_der().expect("PKCS#8");
        let encoded = STANDARD.encode(pkcs8.as_ref());
        // PEM armour around the key generated just above: no key is stored in the repository.
        let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
        for line in encoded.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
            pem.push('\n');
        }
        pem.push_str("-----END PRIVATE KEY-----\n");
        TestServiceAccountKey {
            client_email: client_email.to_owned(),
            private_key_id: "0123456789abcdef0123456789abcdef01234567".to_owned(),
            private_key_pem: pem,
            public_key: pair.public_key().as_ref().to_vec(),
        }
    }

    /// The key file as the IAM console downloads it (`type: service_account`). `token_uri`
    /// should be an address nothing listens on: a service-account key signs its own JWT and
    /// must never call it.
    #[must_use]
    pub fn to_json(&self, token_uri: &str) -> Value {
        let project = self
            .client_email
            .split_once('@')
            .and_then(|(_, domain)| domain.split('.').next())
            .unwrap_or("test");
        json!({
            "type": "service_account",
            "project_id": project,
            "private_key_id": self.private_key_id,
            "private_key": self.private_key_pem,
            "client_email": self.client_email,
            "client_id": "100000000000000000001",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": token_uri,
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/test",
            "universe_domain": "googleapis.com"
        })
    }

    /// google-cloud-auth credentials built from this key (the same code path ADC takes for a
    /// `service_account` file).
    #[must_use]
    pub fn credentials(&self, token_uri: &str) -> google_cloud_auth::credentials::Credentials {
        google_cloud_auth::credentials::service_account::Builder::new(self.to_json(token_uri))
            .build()
            .expect("service-account credentials")
    }
}

/// Google's error shape (https://cloud.google.com/apis/design/errors#http_mapping).
fn error(status: StatusCode, code: &str, message: &str, details: Value) -> Response {
    let body = json!({"error": {"code": status.as_u16(), "message": message, "status": code, "details": details}});
    (status, axum::Json(body)).into_response()
}

/// The project number disabled-API answers name as the consumer billed.
const PROJECT_NUMBER: &str = "123456789012";

/// The API a path belongs to (one base URL serves them all here).
fn api_of(path: &str) -> Option<&'static str> {
    if path.contains("/activityTypes/") {
        Some("policyanalyzer.googleapis.com")
    } else if path.starts_with("/v3/") {
        Some("cloudresourcemanager.googleapis.com")
    } else if path.starts_with("/v1/projects/") {
        Some("iam.googleapis.com")
    } else {
        None
    }
}

/// A call to an API not enabled for the project billed. Shape: an `ErrorInfo` with reason
/// `SERVICE_DISABLED`, domain `googleapis.com` and `metadata {service, consumer}`
/// (google.api.ErrorReason), plus the activation link Google adds.
fn service_disabled(service: &str) -> Response {
    let title = match service {
        "iam.googleapis.com" => "Identity and Access Management (IAM) API",
        "cloudresourcemanager.googleapis.com" => "Cloud Resource Manager API",
        "policyanalyzer.googleapis.com" => "Policy Analyzer API",
        other => other,
    };
    let activation = format!(
        "https://console.developers.google.com/apis/api/{service}/overview?project={PROJECT_NUMBER}"
    );
    error(
        StatusCode::FORBIDDEN,
        "PERMISSION_DENIED",
        &format!(
            "{title} has not been used in project {PROJECT_NUMBER} before or it is disabled. Enable it by visiting {activation} then retry. If you enabled this API recently, wait a few minutes for the action to propagate to our systems and retry."
        ),
        json!([
            {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "SERVICE_DISABLED",
             "domain": "googleapis.com",
             "metadata": {"service": service, "consumer": format!("projects/{PROJECT_NUMBER}"),
                          "serviceTitle": title, "activationUrl": activation}},
            {"@type": "type.googleapis.com/google.rpc.Help",
             "links": [{"description": "Google developers console API activation", "url": activation}]}
        ]),
    )
}

fn ok(body: Value) -> Response {
    (StatusCode::OK, axum::Json(body)).into_response()
}

fn not_found(what: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        &format!("{what} not found."),
        json!([]),
    )
}

fn find_key<'s>(state: &'s State, name: &str) -> Option<(&'s str, &'s str, &'s FakeKey)> {
    let parts: Vec<&str> = name.split('/').collect();
    let [_, project, _, email, _, id] = parts.as_slice() else {
        return None;
    };
    let (project_id, accounts) = state.projects.get_key_value(*project)?;
    let (email, account) = accounts.get_key_value(*email)?;
    account
        .keys
        .get(*id)
        .map(|key| (project_id.as_str(), email.as_str(), key))
}

/// A key as `keys.get` returns it. Shape:
/// https://cloud.google.com/iam/docs/reference/rest/v1/projects.serviceAccounts.keys#ServiceAccountKey
/// (proto3 JSON leaves `disabled` out when false).
fn key_json(project: &str, email: &str, key: &FakeKey) -> Value {
    let mut value = json!({
        "name": format!("projects/{project}/serviceAccounts/{email}/keys/{}", key.id),
        "validAfterTime": key.valid_after,
        "validBeforeTime": key.valid_before,
        "keyAlgorithm": "KEY_ALG_RSA_2048",
        "keyOrigin": "GOOGLE_PROVIDED",
        "keyType": key.key_type,
    });
    if key.disabled {
        value["disabled"] = json!(true);
    }
    value
}

/// A service account as `serviceAccounts.get`/`list` returns it. Shape:
/// https://cloud.google.com/iam/docs/reference/rest/v1/projects.serviceAccounts#ServiceAccount
fn account_json(project: &str, email: &str, account: &Account) -> Value {
    let mut value = json!({
        "name": format!("projects/{project}/serviceAccounts/{email}"),
        "projectId": project,
        "uniqueId": account.unique_id,
        "email": email,
        "displayName": account.display_name,
        "etag": "MDEwMjE5MjA=",
        "oauth2ClientId": account.unique_id,
    });
    if account.disabled {
        value["disabled"] = json!(true);
    }
    value
}

/// The permission each request needs, and the project it touches.
fn needs(method: &Method, path: &str) -> (&'static str, Option<String>) {
    let project = path
        .split('/')
        .skip_while(|part| *part != "projects")
        .nth(1)
        .map(|part| part.split(':').next().unwrap_or(part).to_owned());
    let permission = if path.contains("/activityTypes/serviceAccountKeyLastAuthentication/") {
        "policyanalyzer.serviceAccountKeyLastAuthenticationActivities.query"
    } else if path.contains("/activityTypes/serviceAccountLastAuthentication/") {
        "policyanalyzer.serviceAccountLastAuthenticationActivities.query"
    } else if path.starts_with("/v3/") {
        let kind = if path.starts_with("/v3/projects/") {
            "projects"
        } else if path.starts_with("/v3/folders/") {
            "folders"
        } else {
            "organizations"
        };
        match (kind, path.ends_with(":setIamPolicy")) {
            ("projects", false) => "resourcemanager.projects.getIamPolicy",
            ("projects", true) => "resourcemanager.projects.setIamPolicy",
            ("folders", false) => "resourcemanager.folders.getIamPolicy",
            ("folders", true) => "resourcemanager.folders.setIamPolicy",
            (_, false) => "resourcemanager.organizations.getIamPolicy",
            (_, true) => "resourcemanager.organizations.setIamPolicy",
        }
    } else if path.contains("/keys") {
        if path.ends_with(":disable") {
            "iam.serviceAccountKeys.disable"
        } else if path.ends_with(":enable") {
            "iam.serviceAccountKeys.enable"
        } else if *method == Method::DELETE {
            "iam.serviceAccountKeys.delete"
        } else if path.ends_with("/keys") {
            "iam.serviceAccountKeys.list"
        } else {
            "iam.serviceAccountKeys.get"
        }
    } else if path.ends_with(":getIamPolicy") {
        "iam.serviceAccounts.getIamPolicy"
    } else if path.ends_with(":setIamPolicy") {
        "iam.serviceAccounts.setIamPolicy"
    } else if path.ends_with(":disable") {
        "iam.serviceAccounts.disable"
    } else if path.ends_with(":enable") {
        "iam.serviceAccounts.enable"
    } else if path.ends_with("/serviceAccounts") {
        "iam.serviceAccounts.list"
    } else {
        "iam.serviceAccounts.get"
    };
    (permission, project)
}

fn query_param(uri: &Uri, name: &str) -> Option<String> {
    pair_value(uri.query()?, name)
}

/// A field of an `application/x-www-form-urlencoded` body.
fn form_field(body: &[u8], name: &str) -> Option<String> {
    pair_value(std::str::from_utf8(body).ok()?, name)
}

fn pair_value(pairs: &str, name: &str) -> Option<String> {
    pairs.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name).then(|| percent_decode(value))
    })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'%' if index + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[index + 1..index + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(byte) => {
                        out.push(byte);
                        index += 3;
                    }
                    Err(_) => {
                        out.push(b'%');
                        index += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                index += 1;
            }
            byte => {
                out.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// True when the bearer is a token this fake issued by impersonation.
fn impersonating(state: &State, headers: &HeaderMap) -> bool {
    headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .is_some_and(|token| {
            token.starts_with("ya29.impersonated-") && state.tokens.contains_key(token)
        })
}

/// Checks the bearer is a JWT signed (RS256) by the expected key with the expected `iss`.
fn bearer_is_valid(headers: &HeaderMap, email: &str, public_key: &[u8]) -> bool {
    let Some(token) = headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
    else {
        return false;
    };
    let parts: Vec<&str> = token.split('.').collect();
    let [header, claims, signature_part] = parts.as_slice() else {
        return false;
    };
    let (Ok(signature_bytes), Ok(claims_bytes)) = (
        URL_SAFE_NO_PAD.decode(signature_part),
        URL_SAFE_NO_PAD.decode(claims),
    ) else {
        return false;
    };
    let signed = format!("{header}.{claims}");
    let key = signature::UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, public_key);
    if key.verify(signed.as_bytes(), &signature_bytes).is_err() {
        return false;
    }
    serde_json::from_slice::<Value>(&claims_bytes)
        .is_ok_and(|claims| claims["iss"].as_str() == Some(email))
}

/// Answers one request, spoiling the answer's body when an injection says so, and closing the
/// connection after it (see the module's documentation).
async fn respond(
    state: &Arc<Mutex<State>>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    let (response, spoil) = handle(state, method, uri, headers, body);
    let mut response = match spoil {
        None => response,
        Some(Fault::Slow(milliseconds)) => {
            tokio::time::sleep(std::time::Duration::from_millis(milliseconds)).await;
            response
        }
        Some(fault) => spoiled(response, fault).await,
    };
    response.headers_mut().insert(
        axum::http::header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
    response
}

/// A 200 whose body is `fault`'s: cut in half, empty, or not JSON.
async fn spoiled(response: Response, fault: Fault) -> Response {
    let body = match fault {
        Fault::Truncated => {
            let whole = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap_or_default();
            whole.slice(..whole.len() / 2)
        }
        Fault::Empty => Bytes::new(),
        _ => Bytes::from_static(
            b"<html><head><title>502 Bad Gateway</title></head><body>upstream hiccup</body></html>",
        ),
    };
    (
        StatusCode::OK,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// Google's answer for an injected status: 404 `NOT_FOUND`, 429 `RESOURCE_EXHAUSTED` and 503
/// `UNAVAILABLE` with `Retry-After`, anything else with its canonical code.
fn status_fault(status: u16, retry_after: u32, path: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let (code, message) = match status.as_u16() {
        404 => return not_found(path),
        429 => (
            "RESOURCE_EXHAUSTED",
            "Quota exceeded for quota metric 'Read requests' and limit 'Read requests per minute'.",
        ),
        503 => ("UNAVAILABLE", "The service is currently unavailable."),
        _ => ("INTERNAL", "Internal error encountered."),
    };
    let mut response = error(
        status,
        code,
        message,
        json!([{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "RATE_LIMIT_EXCEEDED", "domain": "googleapis.com"}]),
    );
    if matches!(status.as_u16(), 429 | 503) {
        response
            .headers_mut()
            .insert("retry-after", axum::http::HeaderValue::from(retry_after));
    }
    response
}

fn handle(
    state: &Arc<Mutex<State>>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> (Response, Option<Fault>) {
    let mut hook: Option<(Hook, String)> = None;
    let mut spoil = None;
    let response = {
        let Ok(mut state) = state.lock() else {
            let response = error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL",
                "fake state poisoned",
                json!([]),
            );
            return (response, None);
        };
        let path = percent_decode(uri.path());
        state.requests.push(format!("{method} {path}"));
        answer(
            &mut state, method, uri, &path, headers, body, &mut hook, &mut spoil,
        )
    };
    if let Some((edit, resource)) = hook {
        // The other writer acts after lapse's read has its answer and before its write.
        if let Ok(mut state) = state.lock() {
            let etag = state.next_etag();
            if let Some(stored) = state.policies.get_mut(&resource) {
                edit(&mut stored.body);
                stored.etag = etag;
            }
        }
    }
    (response, spoil)
}

/// Hands axum the connections [`sort_connections`] lets through.
struct Connections {
    receiver: tokio::sync::mpsc::Receiver<(tokio::net::TcpStream, SocketAddr)>,
    address: SocketAddr,
}

impl axum::serve::Listener for Connections {
    type Io = tokio::net::TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.receiver.recv().await {
            Some(connection) => connection,
            // The sorter has stopped: so has the fake.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.address)
    }
}

/// Accepts every connection and reads its request line without consuming it: a request an
/// injected hang or reset targets gets that, every other goes on to axum.
async fn sort_connections(
    listener: tokio::net::TcpListener,
    state: Arc<Mutex<State>>,
    sender: tokio::sync::mpsc::Sender<(tokio::net::TcpStream, SocketAddr)>,
) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let state = Arc::clone(&state);
        let sender = sender.clone();
        tokio::spawn(async move {
            let line = request_line(&stream).await;
            let fault = line.as_ref().and_then(|(method, path, query)| {
                let mut state = state.lock().ok()?;
                let fault = state.fault_for(&format!("{path}?{query}"), true)?;
                state.requests.push(format!("{method} {path}"));
                Some(fault.0)
            });
            match fault {
                Some(Fault::Hang) => {
                    // Held open, never answered, until the fake stops.
                    let _held = stream;
                    std::future::pending::<()>().await;
                }
                Some(_) => {
                    // SO_LINGER 0: closing sends RST, not FIN.
                    let _ = stream.set_zero_linger();
                    drop(stream);
                }
                None => {
                    let _ = sender.send((stream, peer)).await;
                }
            }
        });
    }
}

/// The method, percent-decoded path and raw query of the request waiting on `stream`, read
/// without consuming it; `None` when no request line comes within a few seconds.
async fn request_line(stream: &tokio::net::TcpStream) -> Option<(String, String, String)> {
    let mut buffer = [0_u8; 4096];
    for _ in 0..5000 {
        let read = stream.peek(&mut buffer).await.ok()?;
        if read == 0 {
            return None;
        }
        if let Some(end) = buffer[..read].windows(2).position(|pair| pair == b"\r\n") {
            let line = std::str::from_utf8(&buffer[..end]).ok()?;
            let mut parts = line.split(' ');
            let method = parts.next()?.to_owned();
            let target = parts.next()?;
            let (path, query) = target.split_once('?').unwrap_or((target, ""));
            return Some((method, percent_decode(path), query.to_owned()));
        }
        if read == buffer.len() {
            return None;
        }
        // Part of the line is in: peek returns at once while nothing new arrives.
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    None
}

#[allow(clippy::too_many_lines)]
#[allow(clippy::too_many_arguments)]
fn answer(
    state: &mut State,
    method: &Method,
    uri: &Uri,
    path: &str,
    headers: &HeaderMap,
    body: &Bytes,
    hook: &mut Option<(Hook, String)>,
    spoil: &mut Option<Fault>,
) -> Response {
    // OAuth and the metadata server authenticate by their own means, not by a bearer.
    if let Some(response) = oauth_or_metadata(state, method, path, headers, body) {
        return response;
    }
    if let Some((email, key)) = &state.signer
        && !bearer_is_valid(headers, email, key)
        && !impersonating(state, headers)
    {
        return error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
            json!([]),
        );
    }
    let target = format!("{path}?{}", uri.query().unwrap_or_default());
    match state.fault_for(&target, false) {
        Some((Fault::Status(status), retry_after)) => {
            return status_fault(status, retry_after, path);
        }
        Some((fault, _)) => *spoil = Some(fault),
        None => {}
    }
    let (permission, project) = needs(method, path);
    if let Some(project) = &project
        && let Some(service) = api_of(path)
        && state
            .disabled_apis
            .get(project)
            .is_some_and(|disabled| disabled.contains(service))
    {
        return service_disabled(service);
    }
    if let Some(project) = &project
        && state
            .denied
            .get(project)
            .is_some_and(|denied| denied.contains(permission))
    {
        return error(
            StatusCode::FORBIDDEN,
            "PERMISSION_DENIED",
            &format!("Permission '{permission}' denied on resource (or it may not exist)."),
            json!([{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "IAM_PERMISSION_DENIED",
                    "domain": "iam.googleapis.com", "metadata": {"permission": permission}}]),
        );
    }
    let request: Value = if body.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice(body) {
            Ok(value) => value,
            Err(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "INVALID_ARGUMENT",
                    "Invalid JSON payload received.",
                    json!([]),
                );
            }
        }
    };

    // Resource Manager v3: POST /v3/{resource}:getIamPolicy | :setIamPolicy
    if let Some(rest) = path.strip_prefix("/v3/") {
        let Some((resource, verb)) = rest.rsplit_once(':') else {
            return not_found(rest);
        };
        if resource.contains("/-") || resource.ends_with("/-") {
            // The wildcard answers "denied" for what does not exist.
            return error(
                StatusCode::FORBIDDEN,
                "PERMISSION_DENIED",
                "The caller does not have permission",
                json!([]),
            );
        }
        let Some(stored) = state.policies.get(resource).cloned() else {
            return error(
                StatusCode::FORBIDDEN,
                "PERMISSION_DENIED",
                "The caller does not have permission",
                json!([]),
            );
        };
        let requested = request["options"]["requestedPolicyVersion"]
            .as_i64()
            .unwrap_or(1);
        return policy_call(
            state, method, verb, resource, &stored, requested, &request, hook,
        );
    }

    // Policy Analyzer: GET /v1/projects/{p}/locations/global/activityTypes/{type}/activities:query
    if let Some(rest) = path.strip_prefix("/v1/projects/")
        && let Some((project, tail)) = rest.split_once("/locations/global/activityTypes/")
    {
        let Some(activity_type) = tail.strip_suffix("/activities:query") else {
            return not_found(path);
        };
        if !state.analyzer_enabled.contains(project) {
            return service_disabled("policyanalyzer.googleapis.com");
        }
        let all = state
            .activities
            .get(&(project.to_owned(), activity_type.to_owned()))
            .cloned()
            .unwrap_or_default();
        let filter = query_param(uri, "filter").and_then(|filter| {
            filter
                .strip_prefix("activities.fullResourceName=")
                .map(|value| value.trim_matches('"').to_owned())
        });
        let matching: Vec<Value> = all
            .into_iter()
            .filter(|activity| {
                filter
                    .as_deref()
                    .is_none_or(|wanted| activity["fullResourceName"].as_str() == Some(wanted))
            })
            .collect();
        return page(&matching, uri, 1000, "activities", state.loop_pages);
    }

    // IAM v1: service accounts and keys.
    let Some(rest) = path.strip_prefix("/v1/projects/") else {
        return not_found(path);
    };
    let segments: Vec<&str> = rest.split('/').collect();
    let project = segments[0];
    if project == "-" {
        return error(
            StatusCode::FORBIDDEN,
            "PERMISSION_DENIED",
            "The caller does not have permission",
            json!([]),
        );
    }
    let Some(accounts) = state.projects.get_mut(project) else {
        return error(
            StatusCode::FORBIDDEN,
            "PERMISSION_DENIED",
            &format!("Permission '{permission}' denied on resource (or it may not exist)."),
            json!([]),
        );
    };
    match (method, segments.as_slice()) {
        // Shape: {"accounts": [ServiceAccount], "nextPageToken"} (projects.serviceAccounts.list).
        (&Method::GET, [_, "serviceAccounts"]) => {
            let list: Vec<Value> = accounts
                .iter()
                .map(|(email, account)| account_json(project, email, account))
                .collect();
            let max = state.page_size_max;
            page(&list, uri, max, "accounts", state.loop_pages)
        }
        // Shape: the Policy resource (https://cloud.google.com/iam/docs/reference/rest/v1/Policy),
        // as projects.serviceAccounts.getIamPolicy documents it: `POST …:getIamPolicy` with
        // `options.requestedPolicyVersion` in the query and an empty body.
        (&Method::POST, [_, "serviceAccounts", account_part])
            if account_part.ends_with(":getIamPolicy")
                || account_part.ends_with(":setIamPolicy") =>
        {
            let (email, verb) = account_part.split_once(':').unwrap_or((account_part, ""));
            let resource = format!("projects/{project}/serviceAccounts/{email}");
            // gcloud documents PERMISSION_DENIED, not NOT_FOUND, for a missing account here.
            let stored = accounts
                .contains_key(email)
                .then(|| state.policies.get(&resource).cloned())
                .flatten();
            let Some(stored) = stored else {
                return error(
                    StatusCode::FORBIDDEN,
                    "PERMISSION_DENIED",
                    &format!("Permission '{permission}' denied on resource (or it may not exist)."),
                    json!([]),
                );
            };
            // Only the query says which version: a body is not where IAM v1 reads it.
            let requested = query_param(uri, "options.requestedPolicyVersion")
                .and_then(|version| version.parse::<i64>().ok())
                .unwrap_or(1);
            policy_call(
                state, method, verb, &resource, &stored, requested, &request, hook,
            )
        }
        (_, [_, "serviceAccounts", account_part]) => {
            let (email, verb) = account_part.split_once(':').unwrap_or((account_part, ""));
            let Some(account) = accounts.get_mut(email) else {
                return not_found(&format!(
                    "Service account projects/{project}/serviceAccounts/{email}"
                ));
            };
            match (method, verb) {
                (&Method::GET, "") => ok(account_json(project, email, account)),
                (&Method::POST, "disable") => {
                    account.disabled = true;
                    ok(json!({}))
                }
                (&Method::POST, "enable") => {
                    account.disabled = false;
                    ok(json!({}))
                }
                _ => not_found(path),
            }
        }
        // Shape: {"keys": [ServiceAccountKey]}, not paginated (projects.serviceAccounts.keys.list).
        (&Method::GET, [_, "serviceAccounts", email, "keys"]) => {
            let Some(account) = accounts.get(*email) else {
                return not_found(&format!(
                    "Service account projects/{project}/serviceAccounts/{email}"
                ));
            };
            let wanted: Vec<String> = uri
                .query()
                .unwrap_or_default()
                .split('&')
                .filter_map(|pair| pair.strip_prefix("keyTypes="))
                .map(str::to_owned)
                .collect();
            let keys: Vec<Value> = account
                .keys
                .values()
                .filter(|key| wanted.is_empty() || wanted.contains(&key.key_type))
                .map(|key| key_json(project, email, key))
                .collect();
            ok(json!({"keys": keys}))
        }
        (_, [_, "serviceAccounts", email, "keys", key_part]) => {
            let (id, verb) = key_part.split_once(':').unwrap_or((key_part, ""));
            let Some(account) = accounts.get_mut(*email) else {
                return not_found(&format!(
                    "Service account projects/{project}/serviceAccounts/{email}"
                ));
            };
            if *method == Method::DELETE && verb.is_empty() {
                return match account.keys.remove(id) {
                    Some(_) => ok(json!({})),
                    None => not_found(&format!("Service account key {id}")),
                };
            }
            let Some(key) = account.keys.get_mut(id) else {
                return not_found(&format!("Service account key {id}"));
            };
            match (method, verb) {
                (&Method::GET, "") => ok(key_json(project, email, key)),
                (&Method::POST, "disable") => {
                    key.disabled = true;
                    ok(json!({}))
                }
                (&Method::POST, "enable") => {
                    key.disabled = false;
                    ok(json!({}))
                }
                _ => not_found(path),
            }
        }
        _ => not_found(path),
    }
}

/// `getIamPolicy`/`setIamPolicy` on one stored policy, whichever API serves it (Resource
/// Manager v3 for containers, IAM v1 for a service account): version-3 reads, etags that
/// change on every write, 409 on a stale etag, and the faults injected for policies.
#[allow(clippy::too_many_arguments)]
fn policy_call(
    state: &mut State,
    method: &Method,
    verb: &str,
    resource: &str,
    stored: &StoredPolicy,
    requested: i64,
    request: &Value,
    hook: &mut Option<(Hook, String)>,
) -> Response {
    match (method, verb) {
        (&Method::POST, "getIamPolicy") => {
            let requested = if state.policies_at_version_1 {
                1
            } else {
                requested
            };
            let mut policy = stored.body.clone();
            let conditional = policy["bindings"].as_array().is_some_and(|bindings| {
                bindings
                    .iter()
                    .any(|binding| binding.get("condition").is_some())
            });
            // Documented shape: https://cloud.google.com/iam/docs/reference/rest/v1/Policy
            // ({"version": 3, "etag": "BwWWja0YfJA=", "bindings": [{"role", "members",
            // "condition": {"title", "description", "expression"}}]}).
            let version = if conditional && requested < 3 {
                // A version-1 reader of a conditional policy gets bindings it cannot
                // write back safely: roles marked `_withcond_`.
                if let Some(bindings) = policy["bindings"].as_array_mut() {
                    for binding in bindings {
                        if let Some(condition) =
                            binding.as_object_mut().and_then(|b| b.remove("condition"))
                        {
                            let role = binding["role"].as_str().unwrap_or_default().to_owned();
                            binding["role"] = json!(format!(
                                "{role}_withcond_{}",
                                crate::policy::expression_digest(
                                    condition["expression"].as_str().unwrap_or_default()
                                )
                            ));
                        }
                    }
                }
                1
            } else if conditional {
                3
            } else {
                1
            };
            policy["version"] = json!(version);
            if !state.omit_policy_etag {
                policy["etag"] = json!(stored.etag);
            }
            if policy["bindings"].as_array().is_some_and(Vec::is_empty) {
                policy
                    .as_object_mut()
                    .map(|object| object.remove("bindings"));
            }
            if let Some(edit) = state.after_read.remove(resource) {
                *hook = Some((edit, resource.to_owned()));
            }
            ok(policy)
        }
        (&Method::POST, "setIamPolicy") => {
            let policy = &request["policy"];
            if let Some(etag) = policy["etag"].as_str()
                && etag != stored.etag
            {
                return error(
                    StatusCode::CONFLICT,
                    "ABORTED",
                    "There were concurrent policy changes. Please retry the whole read-modify-write with exponential backoff.",
                    json!([]),
                );
            }
            let bindings = policy["bindings"].as_array().cloned().unwrap_or_default();
            let conditional = bindings
                .iter()
                .any(|binding| binding.get("condition").is_some());
            if conditional && policy["version"].as_i64().unwrap_or(1) < 3 {
                return error(
                    StatusCode::BAD_REQUEST,
                    "INVALID_ARGUMENT",
                    "Policy with conditions must be version 3 or higher.",
                    json!([]),
                );
            }
            if bindings.iter().any(|binding| {
                binding["members"].as_array().is_none_or(Vec::is_empty)
                    || binding["role"].as_str().is_none()
            }) {
                return error(
                    StatusCode::BAD_REQUEST,
                    "INVALID_ARGUMENT",
                    "A binding has no role or no members.",
                    json!([]),
                );
            }
            let mut body = stored.body.clone();
            body["bindings"] = json!(bindings);
            let etag = state.next_etag();
            state.policies.insert(
                resource.to_owned(),
                StoredPolicy {
                    body: body.clone(),
                    etag: etag.clone(),
                },
            );
            body["version"] = json!(if conditional { 3 } else { 1 });
            body["etag"] = json!(etag);
            ok(body)
        }
        _ => not_found(&format!("{resource}:{verb}")),
    }
}

/// The OAuth token endpoint (refresh-token grant), token info, and the metadata server's
/// account email; `None` for any other path.
fn oauth_or_metadata(
    state: &mut State,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: &Bytes,
) -> Option<Response> {
    // OAuth errors are `{"error", "error_description"}` (RFC 6749 section 5.2).
    let oauth_error = |code: &str, description: &str| {
        (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": code, "error_description": description})),
        )
            .into_response()
    };
    match (method, path) {
        // IAM Credentials `generateAccessToken`
        // (https://cloud.google.com/iam/docs/reference/credentials/rest/v1/projects.serviceAccounts/generateAccessToken):
        // the source credentials' bearer asks for a token of the account in the path, through
        // the request's `delegates`.
        (&Method::POST, _)
            if path.starts_with("/v1/projects/-/serviceAccounts/")
                && path.ends_with(":generateAccessToken") =>
        {
            let email = path
                .trim_start_matches("/v1/projects/-/serviceAccounts/")
                .trim_end_matches(":generateAccessToken")
                .to_owned();
            if let Some((signer, key)) = &state.signer
                && !bearer_is_valid(headers, signer, key)
            {
                return Some(error(
                    StatusCode::UNAUTHORIZED,
                    "UNAUTHENTICATED",
                    "Request had invalid authentication credentials.",
                    json!([]),
                ));
            }
            let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            let scopes: Vec<String> = request["scope"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect();
            let delegates: Vec<String> = request["delegates"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect();
            state.impersonations.push((email.clone(), delegates));
            let token = format!("ya29.impersonated-{}", state.tokens.len() + 1);
            state.tokens.insert(token.clone(), (email, scopes));
            let expires = (time::OffsetDateTime::now_utc() + time::Duration::hours(1))
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
            Some(ok(json!({"accessToken": token, "expireTime": expires})))
        }
        (&Method::POST, "/token") => {
            // google-cloud-auth posts JSON; other clients post a form.
            let request: Value = serde_json::from_slice(body).unwrap_or_else(|_| {
                let form = String::from_utf8_lossy(body);
                let fields: serde_json::Map<String, Value> = form
                    .split('&')
                    .filter_map(|pair| pair.split_once('='))
                    .map(|(key, value)| (key.to_owned(), json!(percent_decode(value))))
                    .collect();
                Value::Object(fields)
            });
            if request["grant_type"].as_str() != Some("refresh_token") {
                return Some(oauth_error("unsupported_grant_type", "Invalid grant_type."));
            }
            let Some((email, granted)) = request["refresh_token"]
                .as_str()
                .and_then(|token| state.users.get(token))
                .cloned()
            else {
                return Some(oauth_error("invalid_grant", "Bad Request"));
            };
            let asked = request["scope"]
                .as_str()
                .or_else(|| request["scopes"].as_str());
            let scopes: Vec<String> = match asked {
                Some(asked) => asked.split_whitespace().map(str::to_owned).collect(),
                None => granted.clone(),
            };
            if scopes.iter().any(|scope| !granted.contains(scope)) {
                return Some(oauth_error(
                    "invalid_scope",
                    "Some requested scopes were invalid.",
                ));
            }
            let token = format!("ya29.fake-{}", state.tokens.len() + 1);
            let scope = scopes.join(" ");
            state.tokens.insert(token.clone(), (email, scopes));
            Some(ok(json!({
                "access_token": token,
                "expires_in": 3599,
                "scope": scope,
                "token_type": "Bearer"
            })))
        }
        // Google also takes `GET ?access_token=`; the fake takes only the form body, so a token
        // sent in a URL (where logs keep it) fails a test.
        (&Method::POST, "/tokeninfo") => {
            let Some((email, scopes)) = form_field(body, "access_token")
                .and_then(|token| state.tokens.get(&token))
                .cloned()
            else {
                return Some(oauth_error("invalid_token", "Invalid Value"));
            };
            // Shape: https://developers.google.com/identity/sign-in/web/backend-auth (token
            // info of an access token); `email` only with the email scope.
            let mut info = json!({
                "azp": "764086051850-fake.apps.googleusercontent.com",
                "aud": "764086051850-fake.apps.googleusercontent.com",
                "sub": "100000000000000000042",
                "scope": scopes.join(" "),
                "exp": "1893456000",
                "expires_in": "3599",
                "access_type": "offline"
            });
            if scopes.iter().any(|scope| {
                scope == "email" || scope == "https://www.googleapis.com/auth/userinfo.email"
            }) {
                info["email"] = json!(email);
                info["email_verified"] = json!("true");
            }
            Some(ok(info))
        }
        (&Method::GET, "/computeMetadata/v1/instance/service-accounts/default/email") => {
            if headers
                .get("metadata-flavor")
                .and_then(|value| value.to_str().ok())
                != Some("Google")
            {
                return Some(
                    (
                        StatusCode::FORBIDDEN,
                        "Missing required header \"Metadata-Flavor\": \"Google\"",
                    )
                        .into_response(),
                );
            }
            Some(match &state.metadata_email {
                Some(email) => (
                    StatusCode::OK,
                    [
                        ("metadata-flavor", "Google"),
                        ("content-type", "application/text"),
                    ],
                    email.clone(),
                )
                    .into_response(),
                None => (StatusCode::NOT_FOUND, "Not Found").into_response(),
            })
        }
        _ => None,
    }
}

/// One page of `items` under `field`, honouring `pageSize` (capped at `max`) and `pageToken`
/// (an offset here; opaque to callers).
/// With `looping`, `nextPageToken` repeats the token asked for.
fn page(items: &[Value], uri: &Uri, max: usize, field: &str, looping: bool) -> Response {
    let size = query_param(uri, "pageSize")
        .and_then(|size| size.parse::<usize>().ok())
        .filter(|size| *size > 0)
        .unwrap_or(20)
        .min(max);
    let start = match query_param(uri, "pageToken") {
        Some(token) => match token
            .strip_prefix("offset-")
            .and_then(|offset| offset.parse::<usize>().ok())
        {
            Some(offset) => offset,
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "INVALID_ARGUMENT",
                    "Invalid page token.",
                    json!([]),
                );
            }
        },
        None => 0,
    };
    let end = (start + size).min(items.len());
    let mut body = json!({});
    let slice = items.get(start..end).unwrap_or_default();
    if !slice.is_empty() {
        body[field] = json!(slice);
    }
    if looping {
        body["nextPageToken"] = json!(format!("offset-{start}"));
    } else if end < items.len() {
        body["nextPageToken"] = json!(format!("offset-{end}"));
    }
    ok(body)
}
