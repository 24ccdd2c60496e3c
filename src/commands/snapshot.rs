//! `lapse snapshot`: read clouds live and write the snapshot file.

use std::io::IsTerminal;
use std::time::Duration;

use anyhow::Result;
use lapse::policy::ScopesDocument;
use lapse::providers::{AwsOptions, AzureOptions, Configured, GcpOptions, LiveOptions};
use lapse::snapshot::LoadedSnapshot;
use lapse::state::RunCommand;
use lapse_sdk::Cloud;

use super::{resolve_now, state, write_file, write_stdout};
use crate::cli::{CloudArg, LiveArgs, SnapshotArgs};
use crate::exit::Status;

pub(crate) fn run(args: &SnapshotArgs) -> Result<Status> {
    let scopes = match &args.policy {
        Some(path) => lapse::policy::load(path)?.scopes,
        None => ScopesDocument::default(),
    };
    // The state is opened before the (slow) read, so a locked or refused file fails fast.
    let mut store = args
        .state
        .as_deref()
        .map(|path| state::open_path(path, &args.lock_timeout, true))
        .transpose()?;
    let loaded = live(&args.live, &scopes)?;
    state::record(
        store.as_mut(),
        RunCommand::Snapshot,
        &loaded,
        resolve_now(None)?,
        None,
    )?;
    let mut text = serde_json::to_string_pretty(&loaded.snapshot)?;
    text.push('\n');
    match &args.out {
        Some(out) => write_file(out, &text)?,
        None => write_stdout(&text)?,
    }
    Ok(if loaded.snapshot.is_complete() {
        Status::Clean
    } else {
        Status::Incomplete
    })
}

/// Takes a live snapshot, with a spinner on stderr when it is a terminal.
pub(crate) fn live(args: &LiveArgs, scopes: &ScopesDocument) -> Result<LoadedSnapshot> {
    let options = options(args)?;
    let clouds = lapse::providers::clouds(&options, scopes)?;
    let configured = Configured::new(&options, scopes);
    credential_notes(&configured, &clouds);
    let progress = std::io::stderr().is_terminal().then(|| {
        let spinner = indicatif::ProgressBar::new_spinner();
        spinner.set_message("reading clouds");
        spinner.enable_steady_tick(Duration::from_millis(120));
        spinner
    });
    let snapshot = block_on(configured.snapshot(&clouds))?;
    if let Some(spinner) = progress {
        spinner.finish_and_clear();
    }
    Ok(LoadedSnapshot::live(snapshot?))
}

/// Says on stderr which credentials a provider chose, where it chooses among several, so a run
/// under the wrong identity is noticed before it reads or changes anything.
pub(crate) fn credential_notes(configured: &Configured, clouds: &[Cloud]) {
    use std::io::Write as _;
    let mut stderr = std::io::stderr().lock();
    for &cloud in clouds {
        if let Some(source) = configured.credential_source(cloud) {
            // A closed stderr is no reason to fail a run.
            let _ = writeln!(stderr, "{cloud}: credentials from {source}");
        }
    }
}

/// The clouds `--provider` names.
pub(crate) fn clouds(args: &LiveArgs) -> Vec<Cloud> {
    args.providers
        .iter()
        .map(|cloud| match cloud {
            CloudArg::Aws => Cloud::Aws,
            CloudArg::Azure => Cloud::Azure,
            CloudArg::Gcp => Cloud::Gcp,
        })
        .collect()
}

/// AWS endpoint settings the AWS SDK reads from the environment by itself.
const AWS_ENDPOINT_VARIABLES: [&str; 3] = [
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_IAM",
    "AWS_ENDPOINT_URL_STS",
];

/// How to reach the clouds, from the flags. An endpoint override over plain http to another
/// machine is refused here, before any provider is built or any token fetched.
pub(crate) fn options(args: &LiveArgs) -> Result<LiveOptions> {
    let options = options_from_flags(args);
    let from_environment: Vec<(&str, String)> = AWS_ENDPOINT_VARIABLES
        .iter()
        .filter_map(|name| Some((*name, std::env::var(name).ok()?)))
        .collect();
    lapse::providers::refuse_plain_http(
        options.endpoints().into_iter().chain(
            from_environment
                .iter()
                .map(|(name, url)| (*name, url.as_str())),
        ),
    )?;
    Ok(options)
}

fn options_from_flags(args: &LiveArgs) -> LiveOptions {
    LiveOptions {
        clouds: clouds(args),
        aws: AwsOptions {
            profile: args.aws_profile.clone(),
            region: args.aws_region.clone(),
            endpoint_url: args.aws_endpoint_url.clone(),
            accounts: args.accounts.clone(),
            assume_role: args.assume_role.clone(),
            external_id: args.external_id.clone(),
            session_name: args.session_name.clone(),
            exact: args.exact,
        },
        azure: AzureOptions {
            tenant: args.tenant.clone(),
            subscriptions: args.subscriptions.clone(),
            graph_url: args.azure_graph_url.clone(),
            arm_url: args.azure_arm_url.clone(),
        },
        gcp: GcpOptions {
            projects: args.projects.clone(),
            folders: args.folders.clone(),
            organizations: args.organizations.clone(),
            iam_url: args.gcp_iam_url.clone(),
            resource_manager_url: args.gcp_resource_manager_url.clone(),
            policy_analyzer_url: args.gcp_policy_analyzer_url.clone(),
            oauth2_url: args.gcp_oauth2_url.clone(),
        },
        bounds: lapse_sdk::CallBounds::default().with_operation(args.timeout),
    }
}

/// Runs a future to completion on a multi-threaded runtime.
#[cfg(feature = "live")]
pub(crate) fn block_on<T>(future: impl std::future::Future<Output = T>) -> Result<T> {
    use anyhow::Context as _;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    Ok(runtime.block_on(future))
}

/// Without a provider compiled in, nothing awaits: the future is ready at its first poll
/// (with an error saying which provider is missing).
#[cfg(not(feature = "live"))]
pub(crate) fn block_on<T>(future: impl std::future::Future<Output = T>) -> Result<T> {
    let mut future = std::pin::pin!(future);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut context) {
        std::task::Poll::Ready(value) => Ok(value),
        std::task::Poll::Pending => anyhow::bail!("live snapshots need a provider in this build"),
    }
}
