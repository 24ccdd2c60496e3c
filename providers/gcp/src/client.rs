//! One HTTP client for IAM, Resource Manager and Policy Analyzer: google-cloud-auth supplies the
//! `Authorization` header, reqwest sends, and every attempt is counted.
//!
//! Every call follows one policy, the settings' [`lapse_sdk::CallBounds`]: a connect timeout and
//! a per-attempt timeout on the HTTP client; one retry loop (429 `RESOURCE_EXHAUSTED` and 503
//! `UNAVAILABLE` always; for reads also 500, 502, 504 and an answer lost to the network) with
//! jittered exponential backoff, never shorter than the server's `Retry-After` (believed up to
//! the bounds' longest wait); and a deadline over the whole operation, attempts and waits
//! included, after which the call fails as timed out. Google's own default retry policy leaves
//! 429 out and no other retry is nested inside this one. 409 `ABORTED` is not retried here: it
//! means "redo the whole read-modify-write", which only the caller can do.
//!
//! An endpoint that let one operation time out would make every later call wait as long again,
//! so a timeout halts the calls that share its scope (a [`Client::for_scope`] clone) and its
//! endpoint: those in flight end at once and later ones are not sent.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use google_cloud_auth::credentials::{CacheableResource, Credentials};
use http::{Extensions, HeaderMap};
use lapse_sdk::{CallBounds, ProviderError};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::time::Instant;

use crate::GcpSettings;
use crate::error::{Failure, GcpError, Method};

/// Why a call failed: the service said no, or lapse could not ask.
#[derive(Debug)]
pub(crate) enum CallError {
    /// The service answered with an error.
    Api(Failure),
    /// No answer: credentials, transport, time, or an answer that is not the documented shape.
    Local(GcpError),
}

impl CallError {
    /// The HTTP status, when the service answered.
    pub(crate) fn status(&self) -> Option<u16> {
        match self {
            CallError::Api(failure) => Some(failure.status),
            CallError::Local(_) => None,
        }
    }

    /// True for a call not sent because an earlier one timed out: the scope already says so.
    pub(crate) fn is_abandoned(&self) -> bool {
        matches!(self, CallError::Local(GcpError::Abandoned { .. }))
    }

    /// The error as the engine sees it.
    pub(crate) fn into_provider_error(self, method: Method) -> ProviderError {
        match self {
            CallError::Api(failure) => failure.into_provider_error(method),
            CallError::Local(error) => error.into_provider_error(method.name),
        }
    }
}

/// Calls that end together: once one of them times out, those still in flight end and later
/// ones are not sent.
#[derive(Clone, Debug)]
pub(crate) struct Halt(Arc<tokio::sync::watch::Sender<Option<String>>>);

impl Default for Halt {
    fn default() -> Self {
        Halt(Arc::new(tokio::sync::watch::Sender::new(None)))
    }
}

impl Halt {
    /// Why these calls stopped, once they have.
    fn reason(&self) -> Option<String> {
        self.0.borrow().clone()
    }

    /// Stops these calls; the first reason stays.
    fn stop(&self, reason: &str) {
        self.0.send_if_modified(|current| {
            if current.is_some() {
                return false;
            }
            *current = Some(reason.to_owned());
            true
        });
    }

    /// Waits until these calls stop, and says why.
    async fn stopped(&self) -> String {
        let mut receiver = self.0.subscribe();
        let reason = match receiver.wait_for(Option::is_some).await {
            Ok(reason) => reason.clone(),
            // The sender lives as long as `self`: never reached.
            Err(_) => None,
        };
        match reason {
            Some(reason) => reason,
            None => std::future::pending().await,
        }
    }
}

/// What one attempt came to, when it was not an answer to keep.
enum Attempt {
    /// The service answered with an error.
    Answered(Failure),
    /// No whole answer within the attempt's time.
    Unanswered,
    /// No answer: the request or its answer was lost on the way.
    Lost(GcpError),
    /// Lapse could not ask (credentials): another attempt would not help.
    Fatal(GcpError),
}

/// The HTTP client, the credentials and the request counter, shared by every read and action.
#[derive(Clone)]
pub(crate) struct Client {
    http: reqwest::Client,
    /// Built on first use, inside the runtime: google-cloud-auth starts its token cache as a
    /// task, so building outside a runtime would panic.
    credentials: Arc<tokio::sync::OnceCell<Result<Credentials, String>>>,
    /// Whether the settings brought the credentials (then no credentials file is read).
    injected: bool,
    /// The caller and the chain it came through, found once per provider (it may take a
    /// request or two).
    caller: Arc<tokio::sync::OnceCell<crate::caller::Caller>>,
    oauth2_url: String,
    requests: Arc<AtomicU64>,
    bounds: CallBounds,
    /// The calls of one scope's read ([`Client::for_scope`]); `None` outside a read.
    scope: Option<Halt>,
    /// One halt per endpoint (scheme, host and port), shared by every clone.
    endpoints: Arc<Mutex<HashMap<String, Halt>>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Credentials are left out: whatever they cache is nobody's business in a log.
        formatter
            .debug_struct("Client")
            .field("requests", &self.requests.load(Ordering::Relaxed))
            .field("bounds", &self.bounds)
            .finish_non_exhaustive()
    }
}

/// The OAuth scope for every API lapse calls.
const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";

impl Client {
    pub(crate) fn new(settings: &GcpSettings, requests: Arc<AtomicU64>) -> Self {
        let credentials = Arc::new(tokio::sync::OnceCell::new_with(
            settings.credentials.clone().map(Ok),
        ));
        let bounds = settings.bounds;
        let http = reqwest::Client::builder()
            .timeout(bounds.attempt)
            .connect_timeout(bounds.connect)
            .user_agent(concat!("lapse/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Client {
            http,
            credentials,
            injected: settings.credentials.is_some(),
            caller: Arc::default(),
            oauth2_url: settings.oauth2_url.clone(),
            requests,
            bounds,
            scope: None,
            endpoints: Arc::default(),
        }
    }

    /// A clone for one scope's read: once one of its calls times out, the rest of the read is
    /// not asked (each call would hang as long again), and the scope ends incomplete.
    pub(crate) fn for_scope(&self) -> Client {
        Client {
            scope: Some(Halt::default()),
            ..self.clone()
        }
    }

    /// The time and attempt limits of every call.
    pub(crate) fn bounds(&self) -> CallBounds {
        self.bounds
    }

    /// The `Authorization` (and quota project) headers.
    async fn auth_headers(&self) -> Result<HeaderMap, GcpError> {
        let credentials = self
            .credentials
            .get_or_init(|| async {
                // Application default credentials: GOOGLE_APPLICATION_CREDENTIALS, gcloud's ADC
                // file, then the metadata server.
                google_cloud_auth::credentials::Builder::default()
                    .with_scopes([CLOUD_PLATFORM])
                    .build()
                    .map_err(|error| error.to_string())
            })
            .await
            .as_ref()
            .map_err(|message| GcpError::Credentials {
                message: message.clone(),
            })?;
        match credentials.headers(Extensions::new()).await {
            Ok(CacheableResource::New { data, .. }) => Ok(data),
            // Only returned when the caller passes an entity tag, which lapse never does.
            Ok(CacheableResource::NotModified) => Err(GcpError::Token {
                message: "no new headers".to_owned(),
            }),
            Err(error) => Err(GcpError::Token {
                message: error.to_string(),
            }),
        }
    }

    /// The identity the credentials act as, as an IAM member; `None` when nothing says (see
    /// [`crate::caller`]).
    pub(crate) async fn caller(&self) -> Option<String> {
        self.found_caller().await.member
    }

    /// The identities lapse's access passes through before it becomes the caller (the source
    /// and delegates of an impersonation), as IAM members.
    pub(crate) async fn caller_identities(&self) -> Vec<String> {
        self.found_caller().await.through
    }

    /// The lookup as a whole is bounded like one operation: a token or metadata endpoint that
    /// never answers leaves the caller unknown, never the run waiting.
    async fn found_caller(&self) -> crate::caller::Caller {
        self.caller
            .get_or_init(|| async {
                tokio::time::timeout(
                    self.bounds.operation,
                    crate::caller::resolve(self, self.injected),
                )
                .await
                .unwrap_or_default()
            })
            .await
            .clone()
    }

    /// The bearer token of lapse's own credentials.
    pub(crate) async fn bearer(&self) -> Option<String> {
        bearer_in(&self.auth_headers().await.ok()?)
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub(crate) fn oauth2_url(&self) -> &str {
        &self.oauth2_url
    }

    /// Counts a request sent outside [`Client::call`].
    pub(crate) fn count_request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Reads under the call policy and parses the JSON answer, which must be whole: Google
    /// answers every call with a JSON object (`{}` for an empty list), so an empty body is no
    /// answer, and a body that does not parse as `T` (cut short, not JSON, another shape) is
    /// an error, never an empty result.
    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        verb: reqwest::Method,
        url: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<T, CallError> {
        let bytes = self.send(method, verb, url, query, body).await?;
        parse_whole(method, &bytes)
    }

    /// The halt of the endpoint `url` names.
    fn endpoint_halt(&self, endpoint: &str) -> Halt {
        let mut endpoints = self
            .endpoints
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        endpoints.entry(endpoint.to_owned()).or_default().clone()
    }

    /// One operation: every attempt and every wait, within [`CallBounds::operation`]. Its
    /// answer's body on success.
    pub(crate) async fn send(
        &self,
        method: Method,
        verb: reqwest::Method,
        url: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Vec<u8>, CallError> {
        let endpoint = endpoint_of(url);
        let halts: Vec<Halt> = self
            .scope
            .iter()
            .cloned()
            .chain([self.endpoint_halt(&endpoint)])
            .collect();
        let abandoned = |reason: String| {
            CallError::Local(GcpError::Abandoned {
                operation: method.name.to_owned(),
                reason,
            })
        };
        if let Some(reason) = halts.iter().find_map(Halt::reason) {
            return Err(abandoned(reason));
        }
        let started = Instant::now();
        let deadline = started + self.bounds.operation;
        let attempts = self.attempts(method, verb, url, query, body, deadline);
        // A read in flight is given up on when its scope or endpoint halts; a write is not: it
        // may land, and only its own answer (or its own deadline) can say.
        let watched: &[Halt] = if method.reads { &halts } else { &[] };
        let stopped = async {
            if watched.is_empty() {
                return std::future::pending().await;
            }
            futures_util::future::select_all(watched.iter().map(|halt| Box::pin(halt.stopped())))
                .await
                .0
        };
        let result = tokio::select! {
            biased;
            finished = tokio::time::timeout_at(deadline, attempts) => finished.unwrap_or(Err(Lost::TimedOut)),
            reason = stopped => return Err(abandoned(reason)),
        };
        match result {
            Ok(bytes) => Ok(bytes),
            Err(Lost::Other(error)) => Err(error),
            Err(Lost::TimedOut) => {
                let after = started.elapsed();
                let reason = format!(
                    "{} timed out after {}s on {endpoint}",
                    method.name,
                    after.as_secs_f64().round()
                );
                for halt in &halts {
                    halt.stop(&reason);
                }
                Err(CallError::Local(GcpError::TimedOut {
                    operation: method.name.to_owned(),
                    after,
                    endpoint,
                }))
            }
        }
    }

    /// Attempts until one answers, the budget of attempts runs out, or the next wait would end
    /// past `deadline`; then the last failure is the answer (it says more than a timeout would),
    /// unless that attempt itself got no answer in time.
    async fn attempts(
        &self,
        method: Method,
        verb: reqwest::Method,
        url: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
        deadline: Instant,
    ) -> Result<Vec<u8>, Lost> {
        let mut delays = ExponentialBuilder::default()
            .with_min_delay(self.bounds.first_backoff)
            .with_max_delay(self.bounds.max_backoff)
            .with_max_times(self.bounds.attempts.saturating_sub(1) as usize)
            .with_jitter()
            .build();
        loop {
            let (error, asked) = match self.attempt(method, verb.clone(), url, query, body).await {
                Ok(bytes) => return Ok(bytes),
                Err(Attempt::Answered(failure)) if failure.is_retryable(method.reads) => {
                    let asked = failure.retry_after;
                    (Lost::Other(CallError::Api(failure)), asked)
                }
                Err(Attempt::Answered(failure)) => {
                    return Err(Lost::Other(CallError::Api(failure)));
                }
                Err(Attempt::Unanswered) if method.reads => (Lost::TimedOut, None),
                Err(Attempt::Lost(error)) if method.reads => {
                    (Lost::Other(CallError::Local(error)), None)
                }
                Err(Attempt::Unanswered) => return Err(Lost::TimedOut),
                Err(Attempt::Lost(error) | Attempt::Fatal(error)) => {
                    return Err(Lost::Other(CallError::Local(error)));
                }
            };
            let Some(backoff) = delays.next() else {
                return Err(error);
            };
            let wait = retry_wait(&self.bounds, backoff, asked);
            if Instant::now() + wait >= deadline {
                return Err(error);
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// One attempt, bounded by the HTTP client's connect and attempt timeouts.
    async fn attempt(
        &self,
        method: Method,
        verb: reqwest::Method,
        url: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Vec<u8>, Attempt> {
        let headers = self.auth_headers().await.map_err(Attempt::Fatal)?;
        let mut request = self.http.request(verb, url).headers(headers).query(query);
        if let Some(body) = body {
            request = request.json(body);
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
        let lost = |error: reqwest::Error| {
            if error.is_timeout() {
                return Attempt::Unanswered;
            }
            Attempt::Lost(GcpError::Transport {
                operation: method.name.to_owned(),
                message: transport_message(&error),
            })
        };
        let response = request.send().await.map_err(lost)?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| lapse_sdk::parse_retry_after(value, time::OffsetDateTime::now_utc()));
        let bytes = response.bytes().await.map_err(lost)?;
        if status.is_success() {
            return Ok(bytes.to_vec());
        }
        Err(Attempt::Answered(Failure::parse(
            status.as_u16(),
            &bytes,
            retry_after,
        )))
    }
}

/// A whole answer of `method` as `T`.
pub(crate) fn parse_whole<T: DeserializeOwned>(
    method: Method,
    bytes: &[u8],
) -> Result<T, CallError> {
    let malformed = |message: String| {
        CallError::Local(GcpError::Malformed {
            operation: method.name.to_owned(),
            message,
        })
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(malformed(
            "an empty body where a JSON object was due".to_owned(),
        ));
    }
    serde_json::from_slice(bytes).map_err(|error| malformed(error.to_string()))
}

/// Why an operation ended without an answer to keep.
enum Lost {
    /// No whole answer came in time: the last attempt's, or the operation's.
    TimedOut,
    /// Anything else, as the caller sees it.
    Other(CallError),
}

/// The pause before the next attempt: the backoff, or longer when the server asked for more
/// (believed up to [`CallBounds::max_backoff`]).
fn retry_wait(bounds: &CallBounds, backoff: Duration, asked: Option<Duration>) -> Duration {
    asked.map_or(backoff, |asked| bounds.believe(asked).max(backoff))
}

/// `scheme://host:port` of a URL: the endpoint a timeout is charged to.
fn endpoint_of(url: &str) -> String {
    reqwest::Url::parse(url).map_or_else(
        |_| url.to_owned(),
        |parsed| {
            let host = parsed.host_str().unwrap_or_default();
            match parsed.port() {
                Some(port) => format!("{host}:{port}"),
                None => host.to_owned(),
            }
        },
    )
}

/// What went wrong on the wire, with every cause reqwest keeps (its own text alone says only
/// "error sending request"), and the URL left out.
fn transport_message(error: &reqwest::Error) -> String {
    let mut message = error.to_string();
    if let Some(url) = error.url() {
        message = message.replace(&format!(" for url ({url})"), "");
    }
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

/// The bearer token of other credentials.
pub(crate) async fn bearer_of(credentials: &Credentials) -> Option<String> {
    match credentials.headers(Extensions::new()).await.ok()? {
        CacheableResource::New { data, .. } => bearer_in(&data),
        CacheableResource::NotModified => None,
    }
}

fn bearer_in(headers: &HeaderMap) -> Option<String> {
    headers
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::to_owned)
}

/// The `iss` claim of a JWT, read without verifying it (it is our own token, read only to name
/// the caller in the snapshot).
pub(crate) fn jwt_issuer(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64_url_decode(payload)?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    claims["iss"].as_str().map(str::to_owned)
}

/// Unpadded URL-safe base64, as JWTs use it.
pub(crate) fn base64_url_decode(text: &str) -> Option<Vec<u8>> {
    let mut bits: u32 = 0;
    let mut count = 0;
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    for byte in text.bytes() {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            b'=' => break,
            _ => return None,
        };
        bits = (bits << 6) | u32::from(value);
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push(u8::try_from((bits >> count) & 0xff).ok()?);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retry_waits_at_least_what_the_server_asked_up_to_the_longest_wait() {
        let bounds = CallBounds::default();
        let backoff = Duration::from_millis(200);
        assert_eq!(retry_wait(&bounds, backoff, None), backoff);
        assert_eq!(retry_wait(&bounds, backoff, Some(Duration::ZERO)), backoff);
        assert_eq!(
            retry_wait(&bounds, backoff, Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
        assert_eq!(
            retry_wait(&bounds, backoff, Some(Duration::from_secs(3600))),
            bounds.max_backoff
        );
    }

    #[test]
    fn a_timeout_is_charged_to_the_host_and_port() {
        assert_eq!(
            endpoint_of("https://iam.googleapis.com/v1/projects/p/serviceAccounts"),
            "iam.googleapis.com"
        );
        assert_eq!(endpoint_of("http://127.0.0.1:8080/v3/x"), "127.0.0.1:8080");
    }

    /// Against the fake: a halt ends reads in flight, never a write.
    #[cfg(feature = "fake")]
    #[tokio::test]
    async fn a_halt_gives_up_reads_in_flight_but_lets_a_write_finish() {
        use crate::fake::{FakeGcp, FakeKey, Fault, Injection};

        let fake = FakeGcp::start();
        let email = fake.add_service_account("acme-prod", "exporter", "exporter");
        let key = fake.add_key(
            "acme-prod",
            &email,
            FakeKey::user("k1", "2025-01-01T00:00:00Z"),
        );
        let settings = GcpSettings {
            credentials: Some(google_cloud_auth::credentials::anonymous::Builder::new().build()),
            ..fake.settings(&["acme-prod"])
        };
        let client = Client::new(&settings, Arc::default());
        let write = Method {
            name: "iam.projects.serviceAccounts.keys.disable",
            permission: "iam.serviceAccountKeys.disable",
            reads: false,
        };
        let read = Method {
            name: "iam.projects.serviceAccounts.keys.get",
            permission: "iam.serviceAccountKeys.get",
            reads: true,
        };
        fake.inject(Injection::new(":disable?", Fault::Slow(500)));
        fake.inject(Injection::new(&format!("{key}?"), Fault::Slow(500)));
        let base = fake.url();
        let halt = client.endpoint_halt(&endpoint_of(&base));
        let disable = format!("{base}/v1/{key}:disable");
        let get = format!("{base}/v1/{key}");
        let empty = serde_json::json!({});
        let (written, given_up, ()) = tokio::join!(
            client.send(write, reqwest::Method::POST, &disable, &[], Some(&empty)),
            client.send(read, reqwest::Method::GET, &get, &[], None),
            async {
                // Once both requests have reached the fake (which holds each answer back),
                // the endpoint halts, as another call's timeout would make it.
                while fake.request_count() < 2 {
                    tokio::task::yield_now().await;
                }
                halt.stop("another call timed out");
            },
        );
        assert!(written.is_ok(), "{written:?}");
        assert!(given_up.is_err_and(|error| error.is_abandoned()));
        assert_eq!(fake.key(&key).expect("key")["disabled"], true);
    }

    #[test]
    fn base64_url_decodes_without_padding() {
        assert_eq!(
            base64_url_decode("eyJpc3MiOiJhQGIifQ").as_deref(),
            Some(br#"{"iss":"a@b"}"#.as_slice())
        );
        assert_eq!(jwt_issuer("x.eyJpc3MiOiJhQGIifQ.y").as_deref(), Some("a@b"));
        assert_eq!(jwt_issuer("opaque-token"), None);
    }
}
