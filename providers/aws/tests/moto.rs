//! The AWS provider against a real moto server, through the real SDK: an estate is built with
//! IAM calls, then the snapshot and the revocations are checked field by field.

use aws_credential_types::Credentials;
use aws_sdk_iam::types::StatusType;
use lapse_provider_aws::testing::MotoServer;
use lapse_provider_aws::{AwsProvider, AwsSettings};
use lapse_sdk::{
    Action, ActionOutcome, CredentialKind, CredentialStatus, GrantKind, PrincipalKind, Provider,
    ProviderErrorKind, Snapshot, SnapshotRequest, Usage, Via,
};

const ACCOUNT: &str = "123456789012";

fn settings(moto: &MotoServer, key: &str, secret: &str) -> AwsSettings {
    AwsSettings {
        endpoint_url: Some(moto.endpoint.clone()),
        credentials: Some(Credentials::new(key, secret, None, None, "test")),
        ..AwsSettings::default()
    }
}

async fn sdk_config(
    moto: &MotoServer,
    key: &str,
    secret: &str,
    token: Option<String>,
) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(&moto.endpoint)
        .credentials_provider(Credentials::new(key, secret, token, None, "test"))
        .load()
        .await
}

async fn iam(moto: &MotoServer) -> aws_sdk_iam::Client {
    aws_sdk_iam::Client::new(&sdk_config(moto, "testing", "testing", None).await)
}

fn arn(kind: &str, name: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT}:{kind}/{name}")
}

const TRUST_ACCOUNT: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"sts:AssumeRole"}]}"#;
const ALLOW_ALL: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
const READ_BUCKET: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::data/*"}]}"#;

#[tokio::test(flavor = "multi_thread")]
async fn the_snapshot_carries_every_field_from_bulk_reads() {
    let moto = MotoServer::start();
    let iam = iam(&moto).await;

    // A workload user with two keys; one is used to sign a request, one never.
    iam.create_user()
        .user_name("deploy-bot")
        .tags(
            aws_sdk_iam::types::Tag::builder()
                .key("lapse:owner")
                .value("platform")
                .build()
                .expect("tag"),
        )
        .tags(
            aws_sdk_iam::types::Tag::builder()
                .key("lapse:expires-at")
                .value("2027-03-31")
                .build()
                .expect("tag"),
        )
        .send()
        .await
        .expect("create user");
    let used = iam
        .create_access_key()
        .user_name("deploy-bot")
        .send()
        .await
        .expect("key")
        .access_key
        .expect("key");
    let unused = iam
        .create_access_key()
        .user_name("deploy-bot")
        .send()
        .await
        .expect("key")
        .access_key
        .expect("key");
    let signed = aws_sdk_sts::Client::new(
        &sdk_config(&moto, used.access_key_id(), used.secret_access_key(), None).await,
    );
    signed
        .get_caller_identity()
        .send()
        .await
        .expect("signed request");
    iam.update_access_key()
        .user_name("deploy-bot")
        .access_key_id(unused.access_key_id())
        .status(StatusType::Inactive)
        .send()
        .await
        .expect("deactivate");

    // A person with a console password and admin rights; a group whose policy members inherit.
    iam.create_user()
        .user_name("ana")
        .send()
        .await
        .expect("user");
    iam.create_login_profile()
        .user_name("ana")
        .password("a-Long-passw0rd!")
        .send()
        .await
        .expect("password");
    iam.attach_user_policy()
        .user_name("ana")
        .policy_arn("arn:aws:iam::aws:policy/AdministratorAccess")
        .send()
        .await
        .expect("attach");
    iam.create_group()
        .group_name("operators")
        .send()
        .await
        .expect("group");
    iam.attach_group_policy()
        .group_name("operators")
        .policy_arn("arn:aws:iam::aws:policy/IAMFullAccess")
        .send()
        .await
        .expect("attach");
    iam.add_user_to_group()
        .group_name("operators")
        .user_name("deploy-bot")
        .send()
        .await
        .expect("member");

    // A role trusted by the account, with an inline admin document under another name, used
    // through an AssumeRole session; and a customer-managed policy that is not admin.
    iam.create_role()
        .role_name("ci")
        .assume_role_policy_document(TRUST_ACCOUNT)
        .send()
        .await
        .expect("role");
    iam.put_role_policy()
        .role_name("ci")
        .policy_name("everything")
        .policy_document(ALLOW_ALL)
        .send()
        .await
        .expect("inline");
    let data = iam
        .create_policy()
        .policy_name("read-data")
        .policy_document(READ_BUCKET)
        .send()
        .await
        .expect("policy");
    let data_arn = data
        .policy()
        .and_then(|policy| policy.arn())
        .expect("arn")
        .to_owned();
    iam.attach_role_policy()
        .role_name("ci")
        .policy_arn(&data_arn)
        .send()
        .await
        .expect("attach");
    let sts = aws_sdk_sts::Client::new(&sdk_config(&moto, "testing", "testing", None).await);
    let session = sts
        .assume_role()
        .role_arn(arn("role", "ci"))
        .role_session_name("test")
        .send()
        .await
        .expect("assume")
        .credentials
        .expect("credentials");
    let as_role = aws_sdk_sts::Client::new(
        &sdk_config(
            &moto,
            session.access_key_id(),
            session.secret_access_key(),
            Some(session.session_token().to_owned()),
        )
        .await,
    );
    as_role
        .get_caller_identity()
        .send()
        .await
        .expect("role session request");

    // Exact mode lists the keys for their ids whether or not they were created in the same
    // second (which decides whether the report alone could tell them apart).
    let snapshot = AwsProvider::new(AwsSettings {
        exact: true,
        ..settings(&moto, "testing", "testing")
    })
    .take_snapshot(&SnapshotRequest::default())
    .await;
    assert_eq!(snapshot.scopes.len(), 1);
    let scope = &snapshot.scopes[0];
    assert_eq!(scope.id.as_str(), "aws:123456789012");
    assert!(scope.complete, "{:?}", scope.errors);
    assert!(scope.caller.is_some());

    let principal = |id: &str| {
        snapshot
            .principals
            .iter()
            .find(|principal| principal.id.as_str() == id)
            .unwrap_or_else(|| panic!("no {id}"))
    };
    let bot = principal(&arn("user", "deploy-bot"));
    assert_eq!(
        bot.kind,
        PrincipalKind::Workload,
        "keys and no password: a workload"
    );
    assert_eq!(bot.owner.as_deref(), Some("platform"));
    assert!(
        matches!(bot.last_activity, Usage::At(_)),
        "{:?}",
        bot.last_activity
    );
    assert_eq!(principal(&arn("user", "ana")).kind, PrincipalKind::Human);
    let role = principal(&arn("role", "ci"));
    assert_eq!(role.kind, PrincipalKind::Role);
    assert!(
        matches!(role.last_activity, Usage::At(_)),
        "RoleLastUsed from the AssumeRole session: {:?}",
        role.last_activity
    );
    assert_eq!(
        principal(&arn("group", "operators")).kind,
        PrincipalKind::Group
    );

    let keys: Vec<_> = snapshot
        .credentials
        .iter()
        .filter(|credential| credential.principal.as_str() == arn("user", "deploy-bot"))
        .collect();
    assert_eq!(keys.len(), 2, "two keys, two credentials: {keys:?}");
    let key = |id: &str| {
        keys.iter()
            .find(|key| key.id.as_str() == id)
            .unwrap_or_else(|| panic!("no key {id} in {keys:?}"))
    };
    let used_key = key(used.access_key_id());
    assert_eq!(used_key.status, CredentialStatus::Active);
    assert!(
        matches!(used_key.last_used, Usage::At(_)),
        "{:?}",
        used_key.last_used
    );
    let unused_key = key(unused.access_key_id());
    assert_eq!(unused_key.status, CredentialStatus::Inactive);
    assert_eq!(unused_key.last_used, Usage::Never);
    assert!(snapshot.credentials.iter().any(|credential| {
        credential.kind == CredentialKind::AwsConsolePassword
            && credential.principal.as_str() == arn("user", "ana")
    }));

    let grant = |id: String| {
        snapshot
            .grants
            .iter()
            .find(|grant| grant.id.0 == id)
            .unwrap_or_else(|| panic!("no grant {id}"))
    };
    let admin = grant(format!(
        "{}|policy|arn:aws:iam::aws:policy/AdministratorAccess",
        arn("user", "ana")
    ));
    assert_eq!(admin.kind, GrantKind::ManagedPolicy);
    let inline = grant(format!("{}|policy|inline:everything", arn("role", "ci")));
    assert_eq!(inline.kind, GrantKind::InlinePolicy);
    assert!(
        inline.privileged,
        "Action * on Resource * is admin under any name"
    );
    assert!(!grant(format!("{}|policy|{data_arn}", arn("role", "ci"))).privileged);
    let membership = grant(format!(
        "{}|member|{}",
        arn("user", "deploy-bot"),
        arn("group", "operators")
    ));
    assert_eq!(membership.kind, GrantKind::GroupMembership);
    assert!(
        membership.expires_at.is_some(),
        "the user's lapse:expires-at tag"
    );
    let inherited = grant(format!(
        "{}|via|{}|arn:aws:iam::aws:policy/IAMFullAccess",
        arn("user", "deploy-bot"),
        arn("group", "operators")
    ));
    assert_eq!(inherited.via, Via::Group(arn("group", "operators").into()));
    let trust = grant(format!(
        "{}|trust|arn:aws:iam::123456789012:root",
        arn("role", "ci")
    ));
    assert_eq!(trust.kind, GrantKind::RoleTrust);
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_grow_with_pages_not_with_users() {
    let moto = MotoServer::start();
    let iam = iam(&moto).await;
    let mut counts = Vec::new();
    for batch in 0..2 {
        for index in 0..25 {
            let name = format!("svc-{batch}-{index}");
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
        }
        let provider = AwsProvider::new(settings(&moto, "testing", "testing"));
        let snapshot = provider.take_snapshot(&SnapshotRequest::default()).await;
        counts.push(provider.request_count());
        assert!(snapshot.is_complete());
        assert_eq!(snapshot.credentials.len(), 25 * (batch + 1));
    }
    // The first run also waits for the report to be generated; the second finds it ready.
    assert!(
        counts[1] <= counts[0],
        "25 and 50 users took {} and {} requests",
        counts[0],
        counts[1]
    );
    assert!(counts[0] <= 8, "{} requests for 25 users", counts[0]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_denied_read_marks_the_account_incomplete_and_names_the_permission() {
    let moto = MotoServer::start_with(&[("INITIAL_NO_AUTH_ACTION_COUNT", "4")]);
    let iam = iam(&moto).await;
    // Four unauthenticated setup calls, then moto enforces IAM policies.
    iam.create_user()
        .user_name("auditor")
        .send()
        .await
        .expect("user");
    let key = iam
        .create_access_key()
        .user_name("auditor")
        .send()
        .await
        .expect("key")
        .access_key
        .expect("key");
    iam.put_user_policy()
        .user_name("auditor")
        .policy_name("whoami-only")
        .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sts:GetCallerIdentity","Resource":"*"}]}"#)
        .send()
        .await
        .expect("policy");
    iam.create_user()
        .user_name("someone")
        .send()
        .await
        .expect("user");

    let snapshot = AwsProvider::new(settings(
        &moto,
        key.access_key_id(),
        key.secret_access_key(),
    ))
    .take_snapshot(&SnapshotRequest::default())
    .await;
    let scope = &snapshot.scopes[0];
    assert!(!scope.complete);
    let permissions: Vec<&str> = scope
        .errors
        .iter()
        .filter_map(|error| error.missing_permission.as_deref())
        .collect();
    assert!(
        permissions.contains(&"iam:GetAccountAuthorizationDetails"),
        "{:?}",
        scope.errors
    );
    assert!(
        snapshot.principals.is_empty(),
        "nothing is invented for an unreadable account"
    );
}

async fn snapshot_action(
    moto: &MotoServer,
    pick: impl Fn(&Snapshot) -> Action,
) -> (AwsProvider, Action) {
    let provider = AwsProvider::new(settings(moto, "testing", "testing"));
    let snapshot = provider.take_snapshot(&SnapshotRequest::default()).await;
    (provider, pick(&snapshot))
}

#[tokio::test(flavor = "multi_thread")]
async fn deactivating_one_key_touches_that_key_only_and_undo_restores_it() {
    let moto = MotoServer::start();
    let iam = iam(&moto).await;
    iam.create_user()
        .user_name("batch")
        .send()
        .await
        .expect("user");
    let first = iam
        .create_access_key()
        .user_name("batch")
        .send()
        .await
        .expect("key")
        .access_key
        .expect("key");
    let second = iam
        .create_access_key()
        .user_name("batch")
        .send()
        .await
        .expect("key")
        .access_key
        .expect("key");
    let (provider, action) = snapshot_action(&moto, |snapshot| {
        let credential = snapshot
            .credentials
            .iter()
            .find(|credential| credential.id.as_str() == first.access_key_id())
            .expect("first key")
            .clone();
        Action::DeactivateCredential { credential }
    })
    .await;

    let before = provider.read_target(&action).await.expect("read");
    assert!(before.present && !before.revoked);
    assert_eq!(
        provider.apply(&action).await.expect("apply"),
        ActionOutcome::Done
    );
    let after = provider.read_target(&action).await.expect("verify");
    assert!(after.revoked);
    let statuses = |keys: &aws_sdk_iam::operation::list_access_keys::ListAccessKeysOutput| -> Vec<(String, StatusType)> {
        keys.access_key_metadata()
            .iter()
            .map(|key| (key.access_key_id().unwrap_or_default().to_owned(), key.status().cloned().expect("status")))
            .collect()
    };
    let listed = iam
        .list_access_keys()
        .user_name("batch")
        .send()
        .await
        .expect("list");
    let listed = statuses(&listed);
    assert!(listed.contains(&(first.access_key_id().to_owned(), StatusType::Inactive)));
    assert!(
        listed.contains(&(second.access_key_id().to_owned(), StatusType::Active)),
        "the other key is untouched"
    );
    // Again: already done, no second change.
    assert_eq!(
        provider.apply(&action).await.expect("again"),
        ActionOutcome::AlreadyDone
    );

    assert_eq!(
        provider.undo(&action, &before).await.expect("undo"),
        ActionOutcome::Done
    );
    assert!(!provider.read_target(&action).await.expect("read").revoked);
}

#[tokio::test(flavor = "multi_thread")]
async fn report_ids_resolve_to_the_exact_key_at_apply_time() {
    let moto = MotoServer::start();
    let iam = iam(&moto).await;
    iam.create_user()
        .user_name("solo")
        .send()
        .await
        .expect("user");
    let key = iam
        .create_access_key()
        .user_name("solo")
        .send()
        .await
        .expect("key")
        .access_key
        .expect("key");
    let (provider, action) = snapshot_action(&moto, |snapshot| {
        let credential = snapshot.credentials.first().expect("one key").clone();
        assert!(
            credential.id.as_str().contains("#access-key@"),
            "one key per user comes from the report: {}",
            credential.id
        );
        Action::DeactivateCredential { credential }
    })
    .await;
    let before = provider.read_target(&action).await.expect("read");
    assert_eq!(before.restore["access_key_id"], key.access_key_id());
    provider.apply(&action).await.expect("apply");
    assert!(provider.read_target(&action).await.expect("verify").revoked);
}

#[tokio::test(flavor = "multi_thread")]
async fn grants_are_revoked_exactly_and_restored_by_undo() {
    let moto = MotoServer::start();
    let iam = iam(&moto).await;
    iam.create_user()
        .user_name("ops")
        .send()
        .await
        .expect("user");
    iam.attach_user_policy()
        .user_name("ops")
        .policy_arn("arn:aws:iam::aws:policy/AdministratorAccess")
        .send()
        .await
        .expect("attach");
    iam.attach_user_policy()
        .user_name("ops")
        .policy_arn("arn:aws:iam::aws:policy/ReadOnlyAccess")
        .send()
        .await
        .expect("attach");
    iam.put_user_policy()
        .user_name("ops")
        .policy_name("legacy")
        .policy_document(ALLOW_ALL)
        .send()
        .await
        .expect("inline");
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
    let provider = AwsProvider::new(settings(&moto, "testing", "testing"));
    let snapshot = provider.take_snapshot(&SnapshotRequest::default()).await;
    let action = |id: String| Action::RevokeGrant {
        grant: snapshot
            .grants
            .iter()
            .find(|grant| grant.id.0 == id)
            .unwrap_or_else(|| panic!("no {id}"))
            .clone(),
    };
    let user = arn("user", "ops");
    for action in [
        action(format!(
            "{user}|policy|arn:aws:iam::aws:policy/AdministratorAccess"
        )),
        action(format!("{user}|policy|inline:everything").replace("everything", "legacy")),
        action(format!("{user}|member|{}", arn("group", "admins"))),
    ] {
        let before = provider.read_target(&action).await.expect("read");
        assert!(before.present, "{}", action.target_id());
        assert_eq!(
            provider.apply(&action).await.expect("apply"),
            ActionOutcome::Done
        );
        assert!(
            provider.read_target(&action).await.expect("verify").revoked,
            "{}",
            action.target_id()
        );
        assert_eq!(
            provider.apply(&action).await.expect("again"),
            ActionOutcome::AlreadyDone
        );
        provider.undo(&action, &before).await.expect("undo");
        let restored = provider.read_target(&action).await.expect("read");
        assert!(restored.present, "undo restores {}", action.target_id());
        assert_eq!(restored.restore, before.restore, "restored as it was");
    }
    let attached = iam
        .list_attached_user_policies()
        .user_name("ops")
        .send()
        .await
        .expect("list");
    assert_eq!(
        attached.attached_policies().len(),
        2,
        "the other attachment was never touched"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_target_in_another_account_is_refused() {
    let moto = MotoServer::start();
    let (provider, mut action) = snapshot_action(&moto, |snapshot| Action::RevokeGrant {
        grant: lapse_sdk::Grant {
            id: "x".into(),
            cloud: lapse_sdk::Cloud::Aws,
            scope: snapshot.scopes[0].id.clone(),
            principal: "arn:aws:iam::123456789012:user/nobody".into(),
            entitlement: "arn:aws:iam::aws:policy/ReadOnlyAccess".to_owned(),
            entitlement_id: None,
            resource: ACCOUNT.to_owned(),
            kind: GrantKind::ManagedPolicy,
            via: Via::Direct,
            created_at: None,
            expires_at: None,
            expiry_source: None,
            condition: None,
            privileged: false,
        },
    })
    .await;
    if let Action::RevokeGrant { grant } = &mut action {
        grant.scope = "aws:999988887777".into();
    }
    let error = provider.apply(&action).await.expect_err("wrong account");
    assert_eq!(error.kind, ProviderErrorKind::Denied);
    assert!(
        error.message.contains("landed in account 123456789012"),
        "{}",
        error.message
    );
}
