//! The one place Graph and ARM are called: tokens (fetched once per audience and reused until
//! near expiry), the 429/503 retry loop honouring `Retry-After`, `retry-after-ms` and
//! `x-ms-retry-after-ms` (a POST is sent again only after a 429), paging that stays on the host
//! it started on, and the request count.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use azure_core::credentials::{AccessToken, TokenCredential};
use backon::{ExponentialBuilder, Retryable};
use base64::Engine;
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

/// The longest wait a server's retry header is believed for.
const MAX_SERVER_DELAY: Duration = Duration::from_secs(60);

/// How long the server asked to wait, read as azure_core's pipeline reads it and in its order:
/// `x-ms-retry-after-ms`, `retry-after-ms` (milliseconds), then `Retry-After` (seconds, or an
/// HTTP date). At most [`MAX_SERVER_DELAY`], so a far date cannot hold the run.
fn server_delay(
    headers: &reqwest::header::HeaderMap,
    now: time::OffsetDateTime,
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
        .or_else(|| {
            let after = value("retry-after")?;
            after
                .parse::<u64>()
                .ok()
                .map(Duration::from_secs)
                .or_else(|| {
                    let at = azure_core::time::parse_rfc7231(after).ok()?;
                    // A date already past means "now".
                    Some(Duration::try_from(at - now).unwrap_or(Duration::ZERO))
                })
        })?;
    Some(delay.min(MAX_SERVER_DELAY))
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
    /// Tenant id (`tid`).
    pub(crate) tenant: Option<String>,
}

struct Inner {
    http: reqwest::Client,
    credential: Arc<dyn TokenCredential>,
    source: CredentialSource,
    graph_url: String,
    arm_url: String,
    tokens: tokio::sync::Mutex<HashMap<Api, AccessToken>>,
    requests: Arc<AtomicU64>,
    concurrency: usize,
}

impl std::fmt::Debug for Inner {
    // Tokens and the credential stay out of debug output.
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Client")
            .field("source", &self.source)
            .field("graph_url", &self.graph_url)
            .field("arm_url", &self.arm_url)
            .finish_non_exhaustive()
    }
}

/// A Graph and ARM client for one tenant.
#[derive(Clone, Debug)]
pub(crate) struct Client {
    inner: Arc<Inner>,
}

/// One failed attempt, with what the retry loop needs to know.
struct Attempt {
    error: AzureError,
    retryable: bool,
    retry_after: Option<Duration>,
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

impl Client {
    pub(crate) fn new(
        settings: &AzureSettings,
        credential: Arc<dyn TokenCredential>,
        source: CredentialSource,
        requests: Arc<AtomicU64>,
    ) -> Result<Self, AzureError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("lapse/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| AzureError::Transport {
                operation: "http client".to_owned(),
                url: String::new(),
                message: error.to_string(),
            })?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                credential,
                source,
                graph_url: settings.graph_url.trim_end_matches('/').to_owned(),
                arm_url: settings.arm_url.trim_end_matches('/').to_owned(),
                tokens: tokio::sync::Mutex::default(),
                requests,
                concurrency: settings.concurrency.max(1),
            }),
        })
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
        let token = self
            .inner
            .credential
            .get_token(&[scope.as_str()], None)
            .await
            .map_err(|error| AzureError::Credential {
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
        Ok(Caller {
            id: text("oid")
                .or_else(|| text("appid"))
                .or_else(|| text("azp")),
            tenant: text("tid"),
        })
    }

    async fn attempt(
        &self,
        api: Api,
        method: &Method,
        url: &str,
        body: Option<&Value>,
        operation: Operation,
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
        let response = request.send().await.map_err(|error| Attempt {
            error: AzureError::Transport {
                operation: operation.name.to_owned(),
                url: url.split('?').next().unwrap_or(url).to_owned(),
                message: error.to_string(),
            },
            // A read may be sent again after a dropped connection; a write may have landed.
            retryable: idempotent && !error.is_builder(),
            retry_after: None,
        })?;
        let status = response.status().as_u16();
        let retry_after = server_delay(response.headers(), time::OffsetDateTime::now_utc());
        let text = response.text().await.unwrap_or_default();
        let body: Value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if status < 400 {
            return Ok(Response { status, body });
        }
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

    /// Sends one request, retrying throttling (429; 503 too except for a POST) and, for reads,
    /// server errors, with exponential backoff that the server's retry headers override. An
    /// error status is an `Err`.
    pub(crate) async fn send(
        &self,
        api: Api,
        method: Method,
        url: &str,
        body: Option<&Value>,
        operation: Operation,
    ) -> Result<Response, AzureError> {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(200))
            .with_max_delay(Duration::from_secs(30))
            .with_max_times(5)
            .with_jitter();
        (|| self.attempt(api, &method, url, body, operation))
            .retry(backoff)
            .when(|attempt: &Attempt| attempt.retryable)
            // A server that says when to come back is believed (up to a minute); `None` means
            // the retries ran out, and stays so.
            .adjust(|attempt: &Attempt, delay| {
                delay.map(|delay| attempt.retry_after.unwrap_or(delay))
            })
            .await
            .map_err(|attempt| attempt.error)
    }

    /// A GET.
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

    /// Every item of a list, following `@odata.nextLink` (Graph) or `nextLink` (ARM).
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
            match page.get_mut("value").map(Value::take) {
                Some(Value::Array(values)) => items.extend(values),
                _ => {
                    return Err(AzureError::Malformed {
                        operation: operation.name.to_owned(),
                        message: "a list page without a `value` array".to_owned(),
                    });
                }
            }
            next = page["@odata.nextLink"]
                .as_str()
                .or_else(|| page["nextLink"].as_str())
                .filter(|link| !link.is_empty())
                .map(str::to_owned);
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
        let delay = |pairs: &[(&'static str, &str)]| {
            let mut headers = reqwest::header::HeaderMap::new();
            for (name, value) in pairs {
                headers.insert(*name, value.parse().expect("header value"));
            }
            server_delay(&headers, now)
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
        assert_eq!(delay(&[("retry-after", "86400")]), Some(MAX_SERVER_DELAY));
        assert_eq!(
            delay(&[("retry-after", "Sat, 20 Nov 2027 10:00:00 GMT")]),
            Some(MAX_SERVER_DELAY)
        );
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
