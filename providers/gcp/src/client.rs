//! One HTTP client for IAM, Resource Manager and Policy Analyzer: google-cloud-auth supplies the
//! `Authorization` header, reqwest sends, and every attempt is counted.
//!
//! 429 `RESOURCE_EXHAUSTED` and 503 `UNAVAILABLE` are retried here with jittered exponential
//! backoff (honouring `Retry-After`), bounded; Google's own default retry policy leaves 429 out.
//! 409 `ABORTED` is not retried here: it means "redo the whole read-modify-write", which only
//! the caller can do.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use google_cloud_auth::credentials::{CacheableResource, Credentials};
use http::{Extensions, HeaderMap};
use lapse_sdk::ProviderError;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::GcpSettings;
use crate::error::{Failure, GcpError, Method};

/// Why a call failed: the service said no, or lapse could not ask.
#[derive(Debug)]
pub(crate) enum CallError {
    /// The service answered with an error.
    Api(Failure),
    /// No answer: credentials, transport, or an answer that is not the documented shape.
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

    /// The error as the engine sees it.
    pub(crate) fn into_provider_error(self, method: Method) -> ProviderError {
        match self {
            CallError::Api(failure) => failure.into_provider_error(method),
            CallError::Local(error) => error.into_provider_error(method.name),
        }
    }
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
    /// The caller, found once per provider (it may take a request or two).
    caller: Arc<tokio::sync::OnceCell<Option<String>>>,
    oauth2_url: String,
    requests: Arc<AtomicU64>,
    retries: usize,
    retry_min_delay: Duration,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Credentials are left out: whatever they cache is nobody's business in a log.
        formatter
            .debug_struct("Client")
            .field("requests", &self.requests.load(Ordering::Relaxed))
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
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .connect_timeout(Duration::from_secs(10))
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
            retries: settings.retries,
            retry_min_delay: settings.retry_min_delay,
        }
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
        self.caller
            .get_or_init(|| crate::caller::resolve(self, self.injected))
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

    /// Sends one request, retrying throttling, and parses the JSON answer (`{}` for an empty
    /// body).
    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        verb: reqwest::Method,
        url: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<T, CallError> {
        let bytes = self.send(method, verb, url, query, body).await?;
        let bytes = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}".to_vec()
        } else {
            bytes
        };
        serde_json::from_slice(&bytes).map_err(|error| {
            CallError::Local(GcpError::Malformed {
                operation: method.name.to_owned(),
                message: error.to_string(),
            })
        })
    }

    async fn send(
        &self,
        method: Method,
        verb: reqwest::Method,
        url: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Vec<u8>, CallError> {
        let mut delays = ExponentialBuilder::default()
            .with_min_delay(self.retry_min_delay)
            .with_max_delay(Duration::from_secs(20))
            .with_max_times(self.retries)
            .with_jitter()
            .build();
        loop {
            let headers = self.auth_headers().await.map_err(CallError::Local)?;
            let mut request = self
                .http
                .request(verb.clone(), url)
                .headers(headers)
                .query(query);
            if let Some(body) = body {
                request = request.json(body);
            }
            self.requests.fetch_add(1, Ordering::Relaxed);
            let transport = |error: reqwest::Error| {
                CallError::Local(GcpError::Transport {
                    operation: method.name.to_owned(),
                    // Without the URL's query: it never carries a secret, but keep it short.
                    message: error.without_url().to_string(),
                })
            };
            let response = request.send().await.map_err(transport)?;
            let status = response.status();
            let retry_after = response
                .headers()
                .get(http::header::RETRY_AFTER)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let bytes = response.bytes().await.map_err(transport)?;
            if status.is_success() {
                return Ok(bytes.to_vec());
            }
            let failure = Failure::parse(status.as_u16(), &bytes, retry_after);
            if failure.is_retryable()
                && let Some(delay) = delays.next()
            {
                let wait = failure
                    .retry_after
                    .map_or(delay, |after| after.min(Duration::from_secs(20)));
                tokio::time::sleep(wait).await;
                continue;
            }
            return Err(CallError::Api(failure));
        }
    }
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
    fn base64_url_decodes_without_padding() {
        assert_eq!(
            base64_url_decode("eyJpc3MiOiJhQGIifQ").as_deref(),
            Some(br#"{"iss":"a@b"}"#.as_slice())
        );
        assert_eq!(jwt_issuer("x.eyJpc3MiOiJhQGIifQ.y").as_deref(), Some("a@b"));
        assert_eq!(jwt_issuer("opaque-token"), None);
    }
}
