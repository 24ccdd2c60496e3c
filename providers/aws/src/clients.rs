//! SDK clients for one account, and the one place calls are bounded, retried and counted.
//!
//! lapse's [`CallBounds`] are the only retry and time policy: the SDK's own retries are off
//! (nesting them inside lapse's loop multiplied the attempts), every attempt has the SDK's
//! connect and attempt timeouts, and each operation with all its attempts and waits runs under
//! one deadline. An operation that times out marks its clients as hung: every later call on
//! them fails at once, so a scan or an apply does not wait out the same dead endpoint again.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
use aws_config::identity::IdentityCache;
use aws_config::sts::AssumeRoleProvider;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    AfterDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;
use backon::{BackoffBuilder, ExponentialBuilder};
use lapse_sdk::{CallBounds, ProviderError, ProviderErrorKind};

use crate::error::Failure;
use crate::{AccountScope, AwsSettings};

/// Counts every request a provider's clients send (each attempt, retries included): what the
/// request-count benchmark reads.
#[derive(Debug)]
struct CountRequests(Arc<AtomicU64>);

impl Intercept for CountRequests {
    fn name(&self) -> &'static str {
        "CountRequests"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Checks that every successful answer is a whole document (see [`crate::whole`]) before the
/// SDK's lenient parser turns half of one into a shorter list.
#[derive(Debug)]
struct WholeAnswers;

impl Intercept for WholeAnswers {
    fn name(&self) -> &'static str {
        "WholeAnswers"
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let response = context.response();
        if !response.status().is_success() {
            return Ok(());
        }
        let operation = cfg.load::<Metadata>().map_or("", Metadata::name);
        crate::whole::check(operation, response.body().bytes()).map_err(BoxError::from)
    }
}

/// Who the clients act as.
#[derive(Clone, Debug)]
pub(crate) struct Identity {
    pub(crate) account: String,
    pub(crate) arn: String,
}

impl Identity {
    /// The account and partition actions act in.
    pub(crate) fn acting(&self) -> crate::actions::Acting<'_> {
        crate::actions::Acting {
            account: &self.account,
            partition: self.arn.split(':').nth(1).unwrap_or("aws"),
        }
    }
}

/// IAM and STS clients for one account, with the bounds every call on them keeps.
#[derive(Clone, Debug)]
pub(crate) struct Clients {
    pub(crate) iam: aws_sdk_iam::Client,
    pub(crate) sts: aws_sdk_sts::Client,
    bounds: CallBounds,
    /// Where each service is reached, for messages.
    iam_endpoint: String,
    sts_endpoint: String,
    /// The first timeout met on these clients: later calls fail at once with it.
    hung: Arc<Mutex<Option<ProviderError>>>,
}

impl Clients {
    /// Clients from the default credential chain (or the profile), assuming the account's role
    /// when it names one. Retries are lapse's alone; the SDK's timeouts come from the bounds,
    /// and so do those of the STS client that assumes the role.
    pub(crate) async fn for_account(
        settings: &AwsSettings,
        scope: &AccountScope,
        requests: &Arc<AtomicU64>,
    ) -> Self {
        let bounds = settings.bounds;
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(bounds.connect)
            .operation_attempt_timeout(bounds.attempt)
            .build();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(aws_config::Region::new(settings.region.clone()))
            .retry_config(RetryConfig::disabled())
            .timeout_config(timeouts)
            // Loading credentials (AssumeRole included) happens inside a call, under its
            // deadline; the cache's own limit only must not cut it shorter.
            .identity_cache(IdentityCache::lazy().load_timeout(bounds.operation).build());
        if let Some(profile) = &settings.profile {
            loader = loader.profile_name(profile);
        }
        if let Some(endpoint) = &settings.endpoint_url {
            loader = loader.endpoint_url(endpoint);
        }
        if let Some(credentials) = &settings.credentials {
            loader = loader.credentials_provider(credentials.clone());
        }
        let mut config = loader.load().await;
        if let Some(role) = &scope.assume_role {
            let mut builder = AssumeRoleProvider::builder(role.clone()).session_name(
                scope
                    .session_name
                    .clone()
                    .unwrap_or_else(|| "lapse".to_owned()),
            );
            if let Some(external_id) = &scope.external_id {
                builder = builder.external_id(external_id.clone());
            }
            let provider = builder.configure(&config).build().await;
            config = config
                .into_builder()
                .credentials_provider(
                    aws_credential_types::provider::SharedCredentialsProvider::new(provider),
                )
                .build();
        }
        let iam = aws_sdk_iam::config::Builder::from(&config)
            .interceptor(CountRequests(Arc::clone(requests)))
            .interceptor(WholeAnswers)
            .build();
        let sts = aws_sdk_sts::config::Builder::from(&config)
            .interceptor(CountRequests(Arc::clone(requests)))
            .interceptor(WholeAnswers)
            .build();
        let endpoint = settings.endpoint_url.clone();
        Clients {
            iam: aws_sdk_iam::Client::from_conf(iam),
            sts: aws_sdk_sts::Client::from_conf(sts),
            bounds,
            iam_endpoint: endpoint
                .clone()
                .unwrap_or_else(|| "https://iam.amazonaws.com".to_owned()),
            sts_endpoint: endpoint
                .unwrap_or_else(|| format!("https://sts.{}.amazonaws.com", settings.region)),
            hung: Arc::default(),
        }
    }

    /// `sts:GetCallerIdentity`.
    pub(crate) async fn caller(&self) -> Result<Identity, ProviderError> {
        let output = self
            .read("sts", "GetCallerIdentity", || {
                self.sts.get_caller_identity().send()
            })
            .await?;
        match (output.account(), output.arn()) {
            (Some(account), Some(arn)) if !account.is_empty() && !arn.is_empty() => Ok(Identity {
                account: account.to_owned(),
                arn: arn.to_owned(),
            }),
            _ => Err(ProviderError {
                kind: ProviderErrorKind::Other,
                operation: "sts:GetCallerIdentity".to_owned(),
                message: "the answer names no account or ARN; check what answers for STS at this endpoint".to_owned(),
                missing_permission: None,
            }),
        }
    }

    /// The timeout these clients met, if any: an endpoint that hung once would hang again.
    pub(crate) fn timed_out(&self) -> Option<ProviderError> {
        self.hung
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// A call that changes nothing: retried on throttling, on IAM's retryable conflicts, and on
    /// transport failures and answers that were not whole (nothing was changed, so asking again
    /// is safe).
    pub(crate) async fn read<T, E, F, Fut>(
        &self,
        service: &str,
        operation: &str,
        request: F,
    ) -> Result<T, ProviderError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        self.call(service, operation, true, request).await
    }

    /// A call that changes something: retried only when IAM said it did not act (throttling,
    /// a conflict). After a lost answer or a failed transport the change may have landed;
    /// the caller's verifying read decides, never a blind second write.
    pub(crate) async fn write<T, E, F, Fut>(
        &self,
        service: &str,
        operation: &str,
        request: F,
    ) -> Result<T, ProviderError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        self.call(service, operation, false, request).await
    }

    fn endpoint(&self, service: &str) -> &str {
        if service == "sts" {
            &self.sts_endpoint
        } else {
            &self.iam_endpoint
        }
    }

    /// One operation under the bounds: at most `bounds.attempts` attempts, exponential jittered
    /// backoff (a server's `Retry-After` believed up to `bounds.max_backoff`), all within
    /// `bounds.operation`.
    async fn call<T, E, F, Fut>(
        &self,
        service: &str,
        operation: &str,
        safe_to_repeat: bool,
        mut request: F,
    ) -> Result<T, ProviderError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        if let Some(earlier) = self.timed_out() {
            return Err(ProviderError {
                operation: format!("{service}:{operation}"),
                message: format!("not attempted: {}", earlier.message),
                ..earlier
            });
        }
        let bounds = self.bounds;
        let started = Instant::now();
        let deadline = started + bounds.operation;
        let mut waits = ExponentialBuilder::default()
            .with_min_delay(bounds.first_backoff)
            .with_max_delay(bounds.max_backoff)
            .with_max_times(bounds.attempts.saturating_sub(1) as usize)
            .with_jitter()
            .build();
        let mut attempt = 1;
        let outcome = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(result) = tokio::time::timeout(left, request()).await else {
                break Err(self.timeout(service, operation, started.elapsed(), attempt));
            };
            let error = match result {
                Ok(value) => break Ok(value),
                Err(error) => error,
            };
            let failure = Failure::of(&error);
            if failure.is_timeout() {
                // A per-attempt timeout: worth another attempt when time is left (a read).
                if !safe_to_repeat || Instant::now() >= deadline {
                    break Err(self.timeout(service, operation, started.elapsed(), attempt));
                }
            } else if !failure.is_retryable(safe_to_repeat) {
                break Err(failure.into_provider_error(service, operation));
            }
            let Some(backoff) = waits.next() else {
                break Err(self.gave_up(failure, service, operation, attempt, started));
            };
            let wait = failure
                .retry_after()
                .map_or(backoff, |asked| bounds.believe(asked));
            if Instant::now() + wait >= deadline {
                break Err(self.gave_up(failure, service, operation, attempt, started));
            }
            tokio::time::sleep(wait).await;
            attempt += 1;
        };
        if let Err(error) = &outcome
            && error.kind == ProviderErrorKind::TimedOut
        {
            let mut hung = self
                .hung
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            hung.get_or_insert_with(|| error.clone());
        }
        outcome
    }

    fn timeout(
        &self,
        service: &str,
        operation: &str,
        after: Duration,
        attempts: u32,
    ) -> ProviderError {
        ProviderError {
            kind: ProviderErrorKind::TimedOut,
            operation: format!("{service}:{operation}"),
            message: format!(
                "{} ({attempts} attempt{})",
                lapse_sdk::timed_out_message(after, self.endpoint(service)),
                if attempts == 1 { "" } else { "s" }
            ),
            missing_permission: None,
        }
    }

    /// The last failure once the attempts or the time ran out, saying so.
    fn gave_up(
        &self,
        failure: Failure,
        service: &str,
        operation: &str,
        attempts: u32,
        started: Instant,
    ) -> ProviderError {
        if failure.is_timeout() {
            return self.timeout(service, operation, started.elapsed(), attempts);
        }
        let mut error = failure.into_provider_error(service, operation);
        error.message = format!(
            "{} (gave up after {attempts} attempt{} in {}s)",
            error.message,
            if attempts == 1 { "" } else { "s" },
            started.elapsed().as_secs_f64().round()
        );
        error
    }
}
