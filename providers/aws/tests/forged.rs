//! Records that do not name the live object exactly are never acted on: a path-prefixed ARN,
//! another account's ARN under this account's scope, a group or policy of another account.
//! Proven against moto through a counting proxy: no mutating call reaches it, and the real
//! object keeps what it had. And the immutable ids the engine compares are filled on both
//! sides: in the snapshot and in every live read.

use aws_credential_types::Credentials;
use lapse_provider_aws::testing::{FaultProxy, MotoServer};
use lapse_provider_aws::{AwsProvider, AwsSettings};
use lapse_sdk::{
    Action, Cloud, Credential, CredentialKind, CredentialStatus, Grant, GrantKind, Principal,
    Provider, Snapshot, SnapshotRequest, Usage, Via,
};

const ACCOUNT: &str = "123456789012";
const ADMIN: &str = "arn:aws:iam::aws:policy/AdministratorAccess";
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

fn provider(endpoint: &str) -> AwsProvider {
    AwsProvider::new(AwsSettings {
        endpoint_url: Some(endpoint.to_owned()),
        credentials: Some(Credentials::new("testing", "testing", None, None, "test")),
        ..AwsSettings::default()
    })
}

fn grant(principal: &str, entitlement: &str, kind: GrantKind) -> Grant {
    Grant {
        id: format!("{principal}|policy|{entitlement}").into(),
        cloud: Cloud::Aws,
        scope: format!("aws:{ACCOUNT}").into(),
        principal: principal.into(),
        entitlement: entitlement.to_owned(),
        entitlement_id: None,
        resource: ACCOUNT.to_owned(),
        kind,
        via: Via::Direct,
        created_at: None,
        expires_at: None,
        expiry_source: None,
        condition: None,
        privileged: true,
    }
}

/// The real `OrganizationAccountAccessRole` (path `/`) with AdministratorAccess; a user `ops`
/// in group `admins` with an access key.
async fn seed(moto: &MotoServer) -> String {
    let iam = iam(moto).await;
    iam.create_role()
        .role_name("OrganizationAccountAccessRole")
        .assume_role_policy_document(TRUST)
        .send()
        .await
        .expect("role");
    iam.attach_role_policy()
        .role_name("OrganizationAccountAccessRole")
        .policy_arn(ADMIN)
        .send()
        .await
        .expect("attach");
    iam.create_user()
        .user_name("ops")
        .send()
        .await
        .expect("user");
    iam.create_group()
        .group_name("admins")
        .send()
        .await
        .expect("group");
    iam.add_user_to_group()
        .group_name("admins")
        .user_name("ops")
        .send()
        .await
        .expect("member");
    iam.create_access_key()
        .user_name("ops")
        .send()
        .await
        .expect("key")
        .access_key
        .expect("key")
        .access_key_id()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn forged_records_are_refused_before_any_mutating_call() {
    let moto = MotoServer::start();
    let key_id = seed(&moto).await;
    let proxy = FaultProxy::start(&moto.endpoint);
    let provider = provider(&proxy.endpoint);
    let role = "OrganizationAccountAccessRole";
    let key = |principal: &str| Credential {
        id: key_id.clone().into(),
        principal: principal.into(),
        cloud: Cloud::Aws,
        scope: format!("aws:{ACCOUNT}").into(),
        kind: CredentialKind::AwsAccessKey,
        display_name: None,
        created_at: None,
        expires_at: None,
        last_used: Usage::Unknown,
        status: CredentialStatus::Active,
        cloud_managed: false,
    };
    let forged = [
        (
            "a path-prefixed ARN of the real role's name",
            Action::RevokeGrant {
                grant: grant(
                    &format!("arn:aws:iam::{ACCOUNT}:role/x/{role}"),
                    ADMIN,
                    GrantKind::ManagedPolicy,
                ),
            },
            "is arn:aws:iam::123456789012:role/OrganizationAccountAccessRole",
        ),
        (
            "another account's role under this account's scope",
            Action::RevokeGrant {
                grant: grant(
                    &format!("arn:aws:iam::999988887777:role/{role}"),
                    ADMIN,
                    GrantKind::ManagedPolicy,
                ),
            },
            "belongs to account 999988887777",
        ),
        (
            "another account's group as a membership",
            Action::RevokeGrant {
                grant: grant(
                    &format!("arn:aws:iam::{ACCOUNT}:user/ops"),
                    "arn:aws:iam::999988887777:group/admins",
                    GrantKind::GroupMembership,
                ),
            },
            "belongs to account 999988887777",
        ),
        (
            "another account's customer-managed policy",
            Action::RevokeGrant {
                grant: grant(
                    &format!("arn:aws:iam::{ACCOUNT}:role/{role}"),
                    "arn:aws:iam::999988887777:policy/AdministratorAccess",
                    GrantKind::ManagedPolicy,
                ),
            },
            "not a managed policy of AWS or of account 123456789012",
        ),
        (
            "a key under a path-prefixed user",
            Action::DeactivateCredential {
                credential: key(&format!("arn:aws:iam::{ACCOUNT}:user/team/ops")),
            },
            "is arn:aws:iam::123456789012:user/ops",
        ),
        (
            "a key under another account's user",
            Action::DeleteCredential {
                credential: key("arn:aws:iam::999988887777:user/ops"),
            },
            "belongs to account 999988887777",
        ),
    ];
    for (case, action, says) in &forged {
        let read = provider.read_target(action).await.expect_err(case);
        assert!(read.message.contains("refused"), "{case}: {read:?}");
        assert!(read.message.contains(says), "{case}: {read:?}");
        let applied = provider.apply(action).await.expect_err(case);
        assert!(applied.message.contains(says), "{case}: {applied:?}");
        let before = lapse_sdk::TargetState {
            present: true,
            restore: serde_json::json!({"policy_arn": ADMIN, "group_name": "admins", "access_key_id": key_id, "status": "Active"}),
            ..lapse_sdk::TargetState::default()
        };
        provider.undo(action, &before).await.expect_err(case);
    }
    assert_eq!(
        proxy.forwarded_mutations(),
        Vec::<String>::new(),
        "no mutating call reached moto"
    );
    let iam = iam(&moto).await;
    let attached = iam
        .list_attached_role_policies()
        .role_name(role)
        .send()
        .await
        .expect("list");
    assert_eq!(
        attached.attached_policies().len(),
        1,
        "the real role keeps its policy"
    );
}

fn principal<'a>(snapshot: &'a Snapshot, arn: &str) -> &'a Principal {
    snapshot
        .principals
        .iter()
        .find(|principal| principal.id.as_str() == arn)
        .unwrap_or_else(|| panic!("{arn} in {:?}", snapshot.principals))
}

#[tokio::test(flavor = "multi_thread")]
async fn immutable_ids_are_filled_and_a_recreated_principal_shows_a_new_one() {
    let moto = MotoServer::start();
    seed(&moto).await;
    let proxy = FaultProxy::start(&moto.endpoint);
    let provider = provider(&proxy.endpoint);
    let snapshot = provider.take_snapshot(&SnapshotRequest::default()).await;
    let role_arn = format!("arn:aws:iam::{ACCOUNT}:role/OrganizationAccountAccessRole");
    for arn in [
        role_arn.clone(),
        format!("arn:aws:iam::{ACCOUNT}:user/ops"),
        format!("arn:aws:iam::{ACCOUNT}:group/admins"),
    ] {
        assert!(
            principal(&snapshot, &arn)
                .unique_id
                .as_ref()
                .is_some_and(|id| !id.is_empty()),
            "{arn} has no unique id"
        );
    }
    let planned_id = principal(&snapshot, &role_arn).unique_id.clone();
    let action = Action::RevokeGrant {
        grant: grant(&role_arn, ADMIN, GrantKind::ManagedPolicy),
    };
    let live = provider.read_target(&action).await.expect("read");
    assert!(live.present);
    assert_eq!(
        live.unique_id, planned_id,
        "the same role reads as the same id"
    );

    // Deleted and re-created under the same name, with the same policy: a different role.
    let iam = iam(&moto).await;
    iam.detach_role_policy()
        .role_name("OrganizationAccountAccessRole")
        .policy_arn(ADMIN)
        .send()
        .await
        .expect("detach");
    iam.delete_role()
        .role_name("OrganizationAccountAccessRole")
        .send()
        .await
        .expect("delete");
    iam.create_role()
        .role_name("OrganizationAccountAccessRole")
        .assume_role_policy_document(TRUST)
        .send()
        .await
        .expect("re-create");
    iam.attach_role_policy()
        .role_name("OrganizationAccountAccessRole")
        .policy_arn(ADMIN)
        .send()
        .await
        .expect("attach");
    let live = provider.read_target(&action).await.expect("read");
    assert!(live.present);
    assert_ne!(live.unique_id, planned_id, "the newcomer's id is its own");

    // Undo of a change made to the old role is refused for the newcomer.
    let before = lapse_sdk::TargetState {
        present: true,
        restore: serde_json::json!({"policy_arn": ADMIN}),
        unique_id: planned_id,
        ..lapse_sdk::TargetState::default()
    };
    proxy.clear_records();
    let error = provider.undo(&action, &before).await.expect_err("newcomer");
    assert!(error.message.contains("re-created"), "{error:?}");
    assert!(proxy.forwarded_mutations().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_named_by_a_creation_second_no_key_has_is_an_error_not_gone() {
    let moto = MotoServer::start();
    seed(&moto).await;
    let proxy = FaultProxy::start(&moto.endpoint);
    let provider = provider(&proxy.endpoint);
    let user = format!("arn:aws:iam::{ACCOUNT}:user/ops");
    // As the credential report names keys: the user and a creation instant, here one in which
    // no key of ops was created.
    let credential = Credential {
        id: format!("{user}#access-key@2020-01-01T00:00:00Z").into(),
        principal: user.as_str().into(),
        cloud: Cloud::Aws,
        scope: format!("aws:{ACCOUNT}").into(),
        kind: CredentialKind::AwsAccessKey,
        display_name: None,
        created_at: None,
        expires_at: None,
        last_used: Usage::Never,
        status: CredentialStatus::Active,
        cloud_managed: false,
    };
    for action in [
        Action::DeactivateCredential {
            credential: credential.clone(),
        },
        Action::DeleteCredential {
            credential: credential.clone(),
        },
    ] {
        let read = provider.read_target(&action).await.expect_err("unmatched");
        assert!(read.message.contains("cannot tell which key"), "{read:?}");
        let applied = provider.apply(&action).await.expect_err("unmatched");
        assert!(applied.message.contains("--exact"), "{applied:?}");
    }
    assert!(proxy.forwarded_mutations().is_empty());
    let keys = iam(&moto)
        .await
        .list_access_keys()
        .user_name("ops")
        .send()
        .await
        .expect("keys");
    assert_eq!(
        keys.access_key_metadata()[0].status(),
        Some(&aws_sdk_iam::types::StatusType::Active),
        "the key stays active, and lapse did not say otherwise"
    );
}
