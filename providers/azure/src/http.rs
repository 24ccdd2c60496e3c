//! The one place Graph and ARM are called: tokens (fetched once per audience and reused until
//! near expiry), the one retry and timeout policy ([`lapse_sdk::CallBounds`]: connect and
//! per-attempt timeouts on the HTTP client, attempts with backoff that the servers'
//! `Retry-After`, `retry-after-ms` and `x-ms-retry-after-ms` override up to a cap, a deadline
//! around each operation with all its retries; a POST is sent again only after a 429), answers
//! read whole or not at all, paging that stays on the host it started on, and the request count.
//!
//! An operation that times out ends its scope's calls to that service: the client a scope reads
//! with ([`Client::for_scope`]) refuses further calls there at once, since each would wait as
//! long again. A service that let an operation time out without answering anything at all (a
//! hung endpoint, not a throttling one) is given up for the rest of the run, in every scope.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use azure_core::credentials::{AccessToken, TokenCredential};
use backon::{ExponentialBuilder, Retryable};
use base64::Engine;
use lapse_sdk::CallBounds;
use reqwest::Method;
use serde_json::Value;

use crate::error::{AzureError, service_error};
use crate::{AzureSettings, CredentialSource};

/// Which service a request goes to: decides the base URL and the token audience.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Api {
    Graph,
    Arm,
}

/// One API operation: its name in errors and the permission it needs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Operation {
    pub(crate) name: &'static str,
    pub(crate) permission: &'static str,
}

/// A successful response.
#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) body: Value,
}

/// How long the server asked to wait, read as azure_core's pipeline reads it and in its order:
/// `x-ms-retry-after-ms`, `retry-after-ms` (milliseconds), then `Retry-After` (seconds, or an
/// HTTP date, read by [`lapse_sdk::parse_retry_after`]). Believed up to the bounds' cap, so a far
/// date cannot hold the run.
fn server_delay(
    headers: &reqwest::header::HeaderMap,
    now: time::OffsetDateTime,
    bounds: &CallBounds,
) -> Option<Duration> {
    let value = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::trim)
    };
    let delay = ["x-ms-retry-after-ms", "retry-after-ms"]
        .into_iter()
        .find_map(|name| value(name)?.parse::<u64>().ok().map(Duration::from_millis))
        .or_else(|| lapse_sdk::parse_retry_after(value("retry-after")?, now))?;
    Some(bounds.believe(delay))
}

/// Scheme, host and port of a URL: where a request (and the token with it) goes.
fn origin(url: &str) -> Option<(String, String, u16)> {
    let url = reqwest::Url::parse(url).ok()?;
    Some((
        url.scheme().to_owned(),
        url.host_str()?.to_ascii_lowercase(),
        url.port_or_known_default()?,
    ))
}

/// An origin for a message: never the path or query, which may hold tokens of their own.
fn describe_origin(url: &str) -> String {
    origin(url).map_or_else(
        || "an address that is not a URL".to_owned(),
        |(scheme, host, port)| format!("{scheme}://{host}:{port}"),
    )
}

/// Who the token says the caller is.
#[derive(Clone, Debug, Default)]
pub(crate) struct Caller {
    /// Object id (`oid`), else application id (`appid`/`azp`).
    pub(crate) id: Option<String>,
    /// The application (client) id the token was issued to (`appid`/`azp`): joins an app-only
    /// caller to the application whose secrets it signs in with.
    pub(crate) application: Option<String>,
    /// Tenant id (`tid`).
    pub(crate) tenant: Option<String>,
}

/// Services that stopped answering, each with the message that said so. Shared by every call
/// it covers, so the first timeout spares the others their wait.
type Stopped = Mutex<HashMap<Api, String>>;

struct Inner {
    http: reqwest::Client,
    credential: Arc<dyn TokenCredential>,
    source: CredentialSource,
    graph_url: String,
    arm_url: String,
    tokens: tokio::sync::Mutex<HashMap<Api, AccessToken>>,
    requests: Arc<AtomicU64>,
    concurrency: usize,
    bounds: CallBounds,
    /// Services that let an operation time out without a single answer in this run.
    unresponsive: Stopped,
}

impl std::fmt::Debug for Inner {
    // Tokens and the credential stay out of debug output.
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Client")
            .field("source", &self.source)
            .field("graph_url", &self.graph_url)
            .field("arm_url", &self.arm_url)
            .field("bounds", &self.bounds)
            .finish_non_exhaustive()
    }
}

/// A Graph and ARM client for one tenant.
#[derive(Clone, Debug)]
pub(crate) struct Client {
    inner: Arc<Inner>,
    /// The services a timeout ended for the scope this client reads ([`Client::for_scope`]).
    scope: Option<Arc<Stopped>>,
}

/// One failed attempt, with what the retry loop needs to know.
struct Attempt {
    error: AzureError,
    retryable: bool,
    retry_after: Option<Duration>,
}

/// What the attempts of one operation saw, for the message when its deadline passes.
#[derive(Default)]
struct Progress {
    /// True once any attempt got a status line back: the service answers, if not well.
    answered: AtomicBool,
    /// The last failed attempt, as said in the error.
    last: Mutex<Option<String>>,
}

const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";
const ARM_SCOPE: &str = "https://management.azure.com/.default";

/// The token audience for a base URL: the URL itself for a real (HTTPS) cloud endpoint, so
/// sovereign clouds work; the public cloud's for anything else (a local fake).
fn scope_for(base: &str, default: &'static str) -> String {
    if base.starts_with("https://") {
        format!("{}/.default", base.trim_end_matches('/'))
    } else {
        default.to_owned()
    }
}

/// A URL without its query, for messages: a next link's query may carry a token of its own.
fn without_query(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

/// The HTTP client every Graph and ARM call goes through: the bounds' connect timeout, and
/// their per-attempt timeout from sending the request to the last byte of the answer.
pub(crate) fn http_client(bounds: &CallBounds) -> Result<reqwest::Client, AzureError> {
    reqwest::Client::builder()
        .connect_timeout(bounds.connect)
        .timeout(bounds.attempt)
        .user_agent(concat!("lapse/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|error| AzureError::Transport {
            operation: "http client".to_owned(),
            url: String::new(),
            message: error.to_string(),
        })
}

impl Client {
    pub(crate) fn new(
        settings: &AzureSettings,
        credential: Arc<dyn TokenCredential>,
        source: CredentialSource,
        requests: Arc<AtomicU64>,
    ) -> Result<Self, AzureError> {
        Ok(Client {
            inner: Arc::new(Inner {
                http: http_client(&settings.bounds)?,
                credential,
                source,
                graph_url: settings.graph_url.trim_end_matches('/').to_owned(),
                arm_url: settings.arm_url.trim_end_matches('/').to_owned(),
                tokens: tokio::sync::Mutex::default(),
                requests,
                concurrency: settings.concurrency.max(1),
                bounds: settings.bounds,
                unresponsive: Mutex::default(),
            }),
            scope: None,
        })
    }

    /// The same client for reading one scope: once an operation there times out, its other
    /// calls to the same service fail at once instead of each waiting as long again.
    pub(crate) fn for_scope(&self) -> Client {
        Client {
            inner: Arc::clone(&self.inner),
            scope: Some(Arc::default()),
        }
    }

    /// Concurrent requests allowed for per-object reads.
    pub(crate) fn concurrency(&self) -> usize {
        self.inner.concurrency
    }

    /// A Graph URL for a path that starts with `/v1.0` or `/beta`.
    pub(crate) fn graph(&self, path: &str) -> String {
        format!("{}{path}", self.inner.graph_url)
    }

    /// An ARM URL for a path that starts with `/`.
    pub(crate) fn arm(&self, path: &str) -> String {
        format!("{}{path}", self.inner.arm_url)
    }

    async fn token(&self, api: Api) -> Result<String, AzureError> {
        let mut tokens = self.inner.tokens.lock().await;
        let now = time::OffsetDateTime::now_utc();
        if let Some(token) = tokens.get(&api)
            && token.expires_on - now > time::Duration::minutes(5)
        {
            return Ok(token.token.secret().to_owned());
        }
        let scope = match api {
            Api::Graph => scope_for(&self.inner.graph_url, GRAPH_SCOPE),
            Api::Arm => scope_for(&self.inner.arm_url, ARM_SCOPE),
        };
        // The credential's own HTTP calls are bounded where it is built
        // ([`crate::credential::build`]); this bounds the whole fetch, a hung `az` included.
        let limit = self.inner.bounds.operation;
        let fetched = tokio::time::timeout(
            limit,
            self.inner.credential.get_token(&[scope.as_str()], None),
        )
        .await
        .map_err(|_| AzureError::TimedOut {
            operation: "authenticate".to_owned(),
            message: lapse_sdk::timed_out_message(
                limit,
                &format!("lapse's credential, {}", self.inner.source.as_str()),
            ),
        })?;
        let token = fetched.map_err(|error| AzureError::Credential {
            source_name: self.inner.source.as_str(),
            message: error.to_string(),
        })?;
        let secret = token.token.secret().to_owned();
        tokens.insert(api, token);
        Ok(secret)
    }

    /// Who the Graph token was issued to, read from its claims (not verified: it is only
    /// reported, never trusted for a decision).
    pub(crate) async fn caller(&self) -> Result<Caller, AzureError> {
        let token = self.token(Api::Graph).await?;
        let claims = token
            .split('.')
            .nth(1)
            .and_then(|payload| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(payload.trim_end_matches('='))
                    .ok()
            })
            .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
            .unwrap_or(Value::Null);
        let text = |name: &str| claims[name].as_str().map(str::to_owned);
        let application = text("appid").or_else(|| text("azp"));
        Ok(Caller {
            id: text("oid").or_else(|| application.clone()),
            application,
            tenant: text("tid"),
        })
    }

    /// Why a call to `api` is not sent, when an earlier timeout ended that service for this
    /// scope or for the run.
    fn stopped(&self, api: Api) -> Option<String> {
        let read = |stopped: &Stopped| {
            stopped
                .lock()
                .ok()
                .and_then(|stopped| stopped.get(&api).cloned())
        };
        self.scope
            .as_deref()
            .and_then(read)
            .or_else(|| read(&self.inner.unresponsive))
    }

    fn stop(stopped: &Stopped, api: Api, why: &str) {
        if let Ok(mut stopped) = stopped.lock() {
            stopped.entry(api).or_insert_with(|| why.to_owned());
        }
    }

    async fn attempt(
        &self,
        api: Api,
        method: &Method,
        url: &str,
        body: Option<&Value>,
        operation: Operation,
        progress: &Progress,
    ) -> Result<Response, Attempt> {
        let token = self.token(api).await.map_err(|error| Attempt {
            error,
            retryable: false,
            retry_after: None,
        })?;
        let mut request = self
            .inner
            .http
            .request(method.clone(), url)
            .bearer_auth(token)
            .header("accept", "application/json");
        if let Some(body) = body {
            request = request.json(body);
        }
        self.inner.requests.fetch_add(1, Ordering::Relaxed);
        let idempotent = *method == Method::GET;
        let bounds = &self.inner.bounds;
        // A request that got no whole answer: a read may be sent again; a write may have
        // landed, and is not.
        let unanswered = |error: reqwest::Error, what: &str| Attempt {
            error: if error.is_timeout() {
                AzureError::TimedOut {
                    operation: operation.name.to_owned(),
                    message: lapse_sdk::timed_out_message(bounds.attempt, &describe_origin(url)),
                }
            } else {
                AzureError::Transport {
                    operation: operation.name.to_owned(),
                    url: without_query(url).to_owned(),
                    message: format!("{what}: {error}"),
                }
            },
            retryable: idempotent && !error.is_builder(),
            retry_after: None,
        };
        let response = request
            .send()
            .await
            .map_err(|error| unanswered(error, "no answer"))?;
        progress.answered.store(true, Ordering::Relaxed);
        let status = response.status().as_u16();
        let retry_after = server_delay(response.headers(), time::OffsetDateTime::now_utc(), bounds);
        // The whole answer or none: a body cut off on the way is an error, never an empty one.
        let bytes = response
            .bytes()
            .await
            .map_err(|error| unanswered(error, "the answer was cut off"))?;
        let parsed = serde_json::from_slice::<Value>(&bytes);
        if status < 400 {
            return match parsed {
                Ok(body) if body.is_object() => Ok(Response { status, body }),
                // Writes are judged by their status and verified by a read; lapse uses no
                // write's answer, so one it cannot read is not an error.
                _ if !idempotent => Ok(Response {
                    status,
                    body: Value::Null,
                }),
                parsed => Err(Attempt {
                    error: AzureError::Unreadable {
                        operation: operation.name.to_owned(),
                        endpoint: describe_origin(url),
                        message: format!(
                            "HTTP {status} with {}",
                            match parsed {
                                _ if bytes.iter().all(u8::is_ascii_whitespace) =>
                                    "an empty body".to_owned(),
                                Ok(_) => "JSON that is not an object".to_owned(),
                                Err(error) => format!(
                                    "a body of {} bytes that is not whole JSON ({error})",
                                    bytes.len()
                                ),
                            }
                        ),
                    },
                    // A read is safe to ask again; a proxy may have cut this one.
                    retryable: true,
                    retry_after: None,
                }),
            };
        }
        let body =
            parsed.unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        // A POST creates something (a PIM removal request, an object put back by undo): after
        // a 5xx it may have been carried out, and sending it again could act twice, so only a
        // 429, which says it was refused, is sent again; the caller verifies or reports a 5xx.
        let repeatable = *method != Method::POST;
        let retryable = status == 429
            || (repeatable && status == 503)
            || (idempotent && matches!(status, 500 | 502 | 504));
        Err(Attempt {
            error: service_error(operation.name, operation.permission, status, &body),
            retryable,
            retry_after,
        })
    }

    /// Sends one request under the bounds: retrying throttling (429; 503 too except for a
    /// POST) and, for reads, server errors, answers that were cut off and dropped connections,
    /// with exponential backoff that the server's retry headers override (up to the cap), all
    /// within the operation deadline. An error status is an `Err`; so is a read whose answer is
    /// not a whole JSON object.
    pub(crate) async fn send(
        &self,
        api: Api,
        method: Method,
        url: &str,
        body: Option<&Value>,
        operation: Operation,
    ) -> Result<Response, AzureError> {
        if let Some(why) = self.stopped(api) {
            return Err(AzureError::NotSent {
                operation: operation.name.to_owned(),
                reason: why,
            });
        }
        let bounds = self.inner.bounds;
        let backoff = ExponentialBuilder::default()
            .with_min_delay(bounds.first_backoff)
            .with_max_delay(bounds.max_backoff)
            .with_max_times(bounds.attempts.saturating_sub(1) as usize)
            .with_jitter();
        let progress = Progress::default();
        let attempts = (|| self.attempt(api, &method, url, body, operation, &progress))
            .retry(backoff)
            .when(|attempt: &Attempt| attempt.retryable)
            // A server that says when to come back is believed (up to the cap, already
            // applied); `None` means the retries ran out, and stays so.
            .adjust(|attempt: &Attempt, delay| {
                delay.map(|delay| attempt.retry_after.unwrap_or(delay))
            })
            .notify(|attempt: &Attempt, _| {
                if let Ok(mut last) = progress.last.lock() {
                    *last = Some(attempt.error.to_string());
                }
            });
        let error = match tokio::time::timeout(bounds.operation, attempts).await {
            Ok(Ok(response)) => return Ok(response),
            Ok(Err(attempt)) => attempt.error,
            Err(_) => {
                let last = progress
                    .last
                    .lock()
                    .ok()
                    .and_then(|last| last.clone())
                    .map_or_else(String::new, |last| format!(" (the last attempt: {last})"));
                AzureError::TimedOut {
                    operation: operation.name.to_owned(),
                    message: format!(
                        "{}{last}",
                        lapse_sdk::timed_out_message(bounds.operation, &describe_origin(url))
                    ),
                }
            }
        };
        if let AzureError::TimedOut { .. } = &error {
            let why = format!("{} timed out earlier in this run", operation.name);
            if let Some(scope) = &self.scope {
                Client::stop(scope, api, &why);
            }
            // Nothing came back at all: the service is not answering, not just slow to let
            // lapse in, and every scope is spared the same wait.
            if !progress.answered.load(Ordering::Relaxed) {
                Client::stop(&self.inner.unresponsive, api, &why);
            }
        }
        Err(error)
    }

    /// A GET, whose answer is a whole JSON object.
    pub(crate) async fn get(
        &self,
        api: Api,
        url: &str,
        operation: Operation,
    ) -> Result<Value, AzureError> {
        self.send(api, Method::GET, url, None, operation)
            .await
            .map(|response| response.body)
    }

    /// Every item of a list, following `@odata.nextLink` (Graph) or `nextLink` (ARM). Each
    /// page must be whole: a `value` array, and a next link that is a link or absent.
    pub(crate) async fn list(
        &self,
        api: Api,
        url: &str,
        operation: Operation,
    ) -> Result<Vec<Value>, AzureError> {
        // A service that keeps sending a link already followed (or pages without end) would
        // otherwise hold the run forever; it is reported as a read that did not finish.
        const MAX_PAGES: usize = 100_000;
        let mut items = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let first = url;
        let start = origin(first);
        let mut next = Some(url.to_owned());
        while let Some(url) = next.take() {
            // A next link elsewhere than where the list started would carry the bearer token
            // to that host; the list stops there instead, and says so.
            if start.is_none() || origin(&url) != start {
                return Err(AzureError::Malformed {
                    operation: operation.name.to_owned(),
                    message: format!(
                        "the next page is at {}, not at {} where the list started; lapse does not send its token there, so the list is incomplete",
                        describe_origin(&url),
                        describe_origin(first),
                    ),
                });
            }
            if !seen.insert(url.clone()) || seen.len() > MAX_PAGES {
                return Err(AzureError::Malformed {
                    operation: operation.name.to_owned(),
                    message: format!(
                        "paging did not end after {} pages (the next link repeats or never stops)",
                        seen.len()
                    ),
                });
            }
            let mut page = self.get(api, &url, operation).await?;
            let unreadable = |message: &str| AzureError::Unreadable {
                operation: operation.name.to_owned(),
                endpoint: describe_origin(&url),
                message: format!("page {} {message}", seen.len()),
            };
            match page.get_mut("value").map(Value::take) {
                Some(Value::Array(values)) => items.extend(values),
                _ => return Err(unreadable("has no `value` array")),
            }
            next = None;
            for field in ["@odata.nextLink", "nextLink"] {
                match &page[field] {
                    Value::Null => {}
                    Value::String(link) if link.is_empty() => {}
                    Value::String(link) => {
                        next = Some(link.clone());
                        break;
                    }
                    _ => return Err(unreadable(&format!("has a `{field}` that is not a link"))),
                }
            }
        }
        Ok(items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_retry_header_azure_core_reads_is_honoured_and_bounded() {
        let now = time::macros::datetime!(2026-11-20 10:00:00 UTC);
        let bounds = CallBounds {
            max_backoff: Duration::from_secs(60),
            ..CallBounds::default()
        };
        let delay = |pairs: &[(&'static str, &str)]| {
            let mut headers = reqwest::header::HeaderMap::new();
            for (name, value) in pairs {
                headers.insert(*name, value.parse().expect("header value"));
            }
            server_delay(&headers, now, &bounds)
        };
        assert_eq!(delay(&[]), None);
        assert_eq!(delay(&[("retry-after", "7")]), Some(Duration::from_secs(7)));
        assert_eq!(
            delay(&[("retry-after", "Fri, 20 Nov 2026 10:00:30 GMT")]),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            delay(&[("retry-after", "Fri, 20 Nov 2026 09:00:00 GMT")]),
            Some(Duration::ZERO)
        );
        assert_eq!(
            delay(&[("retry-after-ms", "1500")]),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            delay(&[
                ("x-ms-retry-after-ms", "250"),
                ("retry-after-ms", "1500"),
                ("retry-after", "9")
            ]),
            Some(Duration::from_millis(250))
        );
        // Believed only up to the bounds' cap.
        let cap = Some(Duration::from_secs(60));
        assert_eq!(delay(&[("retry-after", "86400")]), cap);
        assert_eq!(
            delay(&[("retry-after", "Sat, 20 Nov 2027 10:00:00 GMT")]),
            cap
        );
        assert_eq!(delay(&[("x-ms-retry-after-ms", "600000")]), cap);
        assert_eq!(delay(&[("retry-after", "soon")]), None);
    }

    #[test]
    fn an_origin_is_scheme_host_and_port() {
        let graph = origin("https://graph.microsoft.com/v1.0/users");
        assert_eq!(
            graph,
            origin("https://GRAPH.microsoft.com:443/v1.0/users?$skiptoken=x")
        );
        assert_ne!(graph, origin("http://graph.microsoft.com/v1.0/users"));
        assert_ne!(graph, origin("https://graph.microsoft.com:8443/v1.0/users"));
        assert_ne!(
            graph,
            origin("https://graph.microsoft.com.evil.example/v1.0/users")
        );
        assert_ne!(
            graph,
            origin("https://graph.microsoft.com@evil.example/v1.0/users")
        );
        assert_eq!(origin("/v1.0/users?$skiptoken=x"), None);
    }
}
