//! lapse's own identity in each account, as the engine must protect it: a user caller's groups
//! (its access through them) and an assumed role's real ARN, path included.

use aws_credential_types::Credentials;
use lapse_provider_aws::testing::MotoServer;
use lapse_provider_aws::{AccountScope, AwsProvider, AwsSettings};
use lapse_sdk::SnapshotRequest;

const ACCOUNT: &str = "123456789012";
const TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"sts:AssumeRole"}]}"#;

async fn iam(moto: &MotoServer) -> aws_sdk_iam::Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(&moto.endpoint)
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .load()
        .await;
    aws_sdk_iam::Client::new(&config)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_caller_brings_its_groups_as_caller_identities() {
    let moto = MotoServer::start();
    let iam = iam(&moto).await;
    iam.create_user()
        .user_name("lapse")
        .path("/automation/")
        .send()
        .await
        .expect("user");
    for group in ["auditors", "iam-operators", "unrelated"] {
        iam.create_group()
            .group_name(group)
            .send()
            .await
            .expect("group");
    }
    for group in ["auditors", "iam-operators"] {
        iam.add_user_to_group()
            .group_name(group)
            .user_name("lapse")
            .send()
            .await
            .expect("member");
    }
    let key = iam
        .create_access_key()
        .user_name("lapse")
        .send()
        .await
        .expect("key")
        .access_key
        .expect("key");
    let provider = AwsProvider::new(AwsSettings {
        endpoint_url: Some(moto.endpoint.clone()),
        credentials: Some(Credentials::new(
            key.access_key_id(),
            key.secret_access_key(),
            None,
            None,
            "test",
        )),
        ..AwsSettings::default()
    });
    let snapshot = provider.take_snapshot(&SnapshotRequest::default()).await;
    let scope = &snapshot.scopes[0];
    assert!(scope.complete, "{:?}", scope.errors);
    assert_eq!(
        scope.caller.as_deref(),
        Some("arn:aws:iam::123456789012:user/automation/lapse")
    );
    assert_eq!(
        scope.caller_identities,
        vec![
            format!("arn:aws:iam::{ACCOUNT}:group/auditors"),
            format!("arn:aws:iam::{ACCOUNT}:group/iam-operators"),
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_assumed_role_caller_is_its_role_with_the_path() {
    let moto = MotoServer::start();
    let iam = iam(&moto).await;
    iam.create_role()
        .role_name("lapse-read")
        .path("/security/tools/")
        .assume_role_policy_document(TRUST)
        .send()
        .await
        .expect("role");
    let provider = AwsProvider::new(AwsSettings {
        endpoint_url: Some(moto.endpoint.clone()),
        credentials: Some(Credentials::new("testing", "testing", None, None, "test")),
        accounts: vec![AccountScope {
            account: ACCOUNT.to_owned(),
            assume_role: Some(format!(
                "arn:aws:iam::{ACCOUNT}:role/security/tools/lapse-read"
            )),
            ..AccountScope::default()
        }],
        ..AwsSettings::default()
    });
    let snapshot = provider.take_snapshot(&SnapshotRequest::default()).await;
    let scope = &snapshot.scopes[0];
    assert!(scope.complete, "{:?}", scope.errors);
    assert_eq!(
        scope.caller.as_deref(),
        Some("arn:aws:iam::123456789012:role/security/tools/lapse-read"),
        "the role's real ARN, which the inventory names, not the session's"
    );
    assert!(scope.caller_identities.is_empty());
}
