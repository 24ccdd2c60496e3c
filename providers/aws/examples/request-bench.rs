//! Requests and wall time of an AWS snapshot on a moto estate of N users, each with an access
//! key and a managed policy: the numbers behind "requests grow with pages, not with users".
//!
//! `cargo run --release -p lapse-provider-aws --example request-bench -- 1000 5000`
//!
//! Needs the pinned moto that `scripts/test` installs (or `LAPSE_MOTO_PYTHON`).

use std::time::Instant;

use aws_credential_types::Credentials;
use lapse_provider_aws::testing::MotoServer;
use lapse_provider_aws::{AwsProvider, AwsSettings};
use lapse_sdk::SnapshotRequest;

#[allow(clippy::print_stdout)] // a benchmark reports on stdout
#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|size| size.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![1000, 5000]
    } else {
        sizes
    };
    println!(
        "| users | requests (default) | wall (default) | requests (--exact) | wall (--exact) |"
    );
    println!("|---:|---:|---:|---:|---:|");
    for users in sizes {
        let moto = MotoServer::start();
        seed(&moto, users).await;
        let settings = |exact: bool| AwsSettings {
            endpoint_url: Some(moto.endpoint.clone()),
            credentials: Some(Credentials::new("testing", "testing", None, None, "bench")),
            exact,
            ..AwsSettings::default()
        };
        // A first run generates the credential report, as the scheduled run before would have.
        AwsProvider::new(settings(false))
            .take_snapshot(&SnapshotRequest::default())
            .await;
        let mut row = Vec::new();
        for exact in [false, true] {
            let provider = AwsProvider::new(settings(exact));
            let started = Instant::now();
            let snapshot = provider.take_snapshot(&SnapshotRequest::default()).await;
            let elapsed = started.elapsed();
            assert!(snapshot.is_complete(), "{:?}", snapshot.scopes);
            assert_eq!(snapshot.credentials.len(), users);
            row.push(format!(
                "{} | {:.2} s",
                provider.request_count(),
                elapsed.as_secs_f64()
            ));
        }
        println!("| {users} | {} | {} |", row[0], row[1]);
    }
}

async fn seed(moto: &MotoServer, users: usize) {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(&moto.endpoint)
        .credentials_provider(Credentials::new("testing", "testing", None, None, "bench"))
        .load()
        .await;
    let iam = aws_sdk_iam::Client::new(&config);
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in (0..users).collect::<Vec<_>>().chunks(users.div_ceil(16)) {
        let iam = iam.clone();
        let chunk = chunk.to_vec();
        tasks.spawn(async move {
            for index in chunk {
                let name = format!("svc-{index:05}");
                iam.create_user()
                    .user_name(&name)
                    .send()
                    .await
                    .expect("user");
                iam.create_access_key()
                    .user_name(&name)
                    .send()
                    .await
                    .expect("key");
                iam.attach_user_policy()
                    .user_name(&name)
                    .policy_arn("arn:aws:iam::aws:policy/ReadOnlyAccess")
                    .send()
                    .await
                    .expect("attach");
            }
        });
    }
    while let Some(result) = tasks.join_next().await {
        result.expect("seed task");
    }
}
