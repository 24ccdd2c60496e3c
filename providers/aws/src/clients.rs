//! SDK clients for one account, and the one place calls are retried and counted.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::sts::AssumeRoleProvider;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_smithy_types::retry::RetryConfig;
use backon::{ExponentialBuilder, Retryable};
use lapse_sdk::ProviderError;

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

/// Who the clients act as.
#[derive(Clone, Debug)]
pub(crate) struct Identity {
    pub(crate) account: String,
    pub(crate) arn: String,
}

/// IAM and STS clients for one account.
#[derive(Clone, Debug)]
pub(crate) struct Clients {
    pub(crate) iam: aws_sdk_iam::Client,
    pub(crate) sts: aws_sdk_sts::Client,
}

impl Clients {
    /// Clients from the default credential chain (or the profile), assuming the account's role
    /// when it names one.
    pub(crate) async fn for_account(
        settings: &AwsSettings,
        scope: &AccountScope,
        requests: &Arc<AtomicU64>,
    ) -> Self {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(aws_config::Region::new(settings.region.clone()))
            .retry_config(RetryConfig::standard().with_max_attempts(5));
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
            .build();
        let sts = aws_sdk_sts::config::Builder::from(&config)
            .interceptor(CountRequests(Arc::clone(requests)))
            .build();
        Clients {
            iam: aws_sdk_iam::Client::from_conf(iam),
            sts: aws_sdk_sts::Client::from_conf(sts),
        }
    }

    /// `sts:GetCallerIdentity`.
    pub(crate) async fn caller(&self) -> Result<Identity, ProviderError> {
        let output = call("sts", "GetCallerIdentity", || {
            self.sts.get_caller_identity().send()
        })
        .await?;
        Ok(Identity {
            account: output.account().unwrap_or_default().to_owned(),
            arn: output.arn().unwrap_or_default().to_owned(),
        })
    }
}

/// Makes one API call, retrying throttling and IAM's retryable conflicts with exponential
/// backoff (the SDK's own retries do not cover `LimitExceeded` or `ConcurrentModification`), and
/// turns the final error into the engine's terms.
pub(crate) async fn call<T, E, F, Fut>(
    service: &str,
    operation: &str,
    request: F,
) -> Result<T, ProviderError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let backoff = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(20))
        .with_max_times(6)
        .with_jitter();
    request
        .retry(backoff)
        .when(|error: &SdkError<E, HttpResponse>| Failure::of(error).is_retryable())
        // A server that says when to come back is believed (within the backoff's ceiling);
        // `None` means the retries ran out, and stays so.
        .adjust(|error: &SdkError<E, HttpResponse>, delay| {
            delay.map(|delay| {
                Failure::of(error)
                    .retry_after()
                    .map_or(delay, |after| after.min(Duration::from_secs(20)))
            })
        })
        .await
        .map_err(|error| Failure::of(&error).into_provider_error(service, operation))
}
