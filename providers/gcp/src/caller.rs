//! Who lapse runs as, as an IAM member (`serviceAccount:<email>`, `user:<email>`): the account
//! guard refuses to act in a scope whose caller is unknown, and the engine never revokes the
//! caller's own access.
//!
//! Found with nothing but the credentials lapse already uses, never a guess: the application
//! default credentials file names the account for a key, impersonation, and federation through
//! a service account; user credentials and federation without impersonation ask the token info
//! endpoint about an access token; without a file, the metadata server names the attached
//! account. Tokens are sent only to Google's token info endpoint and are never logged.
//!
//! An impersonation file also says what lapse's access passes through before it becomes the
//! caller: the source credentials (a key's account, or a user) and each delegate of the chain.
//! Disabling any of them, or revoking its right to act as the next, would lock lapse out of its
//! next run, so they are the scope's `caller_identities`, protected like the caller.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::client::{Client, jwt_issuer};

/// The scope that makes token info answer with the token's email.
const USERINFO_EMAIL: &str = "https://www.googleapis.com/auth/userinfo.email";
/// The metadata server's host when `GCE_METADATA_HOST` does not name another.
const METADATA_HOST: &str = "metadata.google.internal";
/// A lookup that takes longer than this is not worth holding the snapshot for.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);

/// What an application default credentials file says about who it authenticates as.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FileIdentity {
    /// The file names the account.
    Member(String),
    /// User credentials (`authorized_user`): ask token info.
    User,
    /// Federation without impersonation, or an impersonation URL lapse cannot read: ask token
    /// info about the token lapse uses.
    AskTokenInfo,
    /// A type lapse does not know, or not the documented shape.
    Unknown,
}

/// Reads an application default credentials file (JSON text). Pure: no file, no network.
pub(crate) fn file_identity(text: &str) -> FileIdentity {
    let Ok(json) = serde_json::from_str::<Value>(text) else {
        return FileIdentity::Unknown;
    };
    let impersonated = || {
        json["service_account_impersonation_url"]
            .as_str()
            .and_then(impersonated_email)
            .map_or(FileIdentity::AskTokenInfo, |email| {
                FileIdentity::Member(format!("serviceAccount:{email}"))
            })
    };
    match json["type"].as_str() {
        Some("service_account") => json["client_email"]
            .as_str()
            .filter(|email| is_email(email))
            .map_or(FileIdentity::Unknown, |email| {
                FileIdentity::Member(format!("serviceAccount:{email}"))
            }),
        Some("impersonated_service_account" | "external_account") => impersonated(),
        Some("authorized_user") => FileIdentity::User,
        _ => FileIdentity::Unknown,
    }
}

/// The account in `…/serviceAccounts/<email>:generateAccessToken`.
fn impersonated_email(url: &str) -> Option<String> {
    let (_, rest) = url.rsplit_once("/serviceAccounts/")?;
    let email = rest.split([':', '?']).next()?.replace("%40", "@");
    is_email(&email).then_some(email)
}

fn is_email(text: &str) -> bool {
    text.split_once('@')
        .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty())
        && !text.contains(['/', ' ', ':'])
}

/// The member for an email token info or the metadata server gave: Google's service accounts
/// all live under `gserviceaccount.com`.
pub(crate) fn member_for_email(email: &str) -> Option<String> {
    if !is_email(email) {
        return None;
    }
    Some(if email.ends_with(".gserviceaccount.com") {
        format!("serviceAccount:{email}")
    } else {
        format!("user:{email}")
    })
}

/// Who lapse runs as, and what its access passes through to get there.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Caller {
    /// The caller as an IAM member; `None` when nothing says.
    pub(crate) member: Option<String>,
    /// The identities before it, source first (IAM members, the caller left out).
    pub(crate) through: Vec<String>,
}

/// The caller of these credentials and the chain it came through.
pub(crate) async fn resolve(client: &Client, injected: bool) -> Caller {
    // Credentials that do not work read nothing either; and off Google Cloud a metadata lookup
    // would only wait for a host that is not there.
    let Some(bearer) = client.bearer().await else {
        return Caller::default();
    };
    if injected {
        // Injected credentials have no file to read: a service-account key's self-signed JWT
        // names its account, and any other token is asked about.
        let member = match jwt_issuer(&bearer) {
            Some(email) => Some(format!("serviceAccount:{email}")),
            None => token_info(client, &bearer).await,
        };
        return Caller {
            member,
            through: Vec::new(),
        };
    }
    match adc_file() {
        AdcFile::Text(text) => {
            let member = from_file(client, &bearer, &text).await;
            let through = chain(client, &text, member.as_deref()).await;
            Caller { member, through }
        }
        AdcFile::Absent => {
            let host = std::env::var("GCE_METADATA_HOST")
                .ok()
                .filter(|host| !host.trim().is_empty());
            let base = format!("http://{}", host.as_deref().unwrap_or(METADATA_HOST));
            Caller {
                member: metadata_email(client, &base).await,
                through: Vec::new(),
            }
        }
        // google-cloud-auth could not read it either, so `bearer` above already failed; kept
        // for a file that changed between the two reads.
        AdcFile::Unreadable => Caller::default(),
    }
}

/// One identity an impersonation passes through.
#[derive(Debug, PartialEq)]
pub(crate) enum Link {
    /// Named by the file.
    Member(String),
    /// User credentials (`authorized_user`): token info names the user.
    User(Value),
}

/// What an application default credentials file says lapse's access passes through before
/// it becomes the caller, source first: for `impersonated_service_account`, the source
/// credentials' identity, then each delegate. Pure: no file, no network.
pub(crate) fn file_chain(text: &str) -> Vec<Link> {
    let Ok(json) = serde_json::from_str::<Value>(text) else {
        return Vec::new();
    };
    if json["type"].as_str() != Some("impersonated_service_account") {
        return Vec::new();
    }
    let mut chain = Vec::new();
    let source = &json["source_credentials"];
    match source["type"].as_str() {
        Some("service_account") => {
            if let Some(email) = source["client_email"]
                .as_str()
                .filter(|email| is_email(email))
            {
                chain.push(Link::Member(format!("serviceAccount:{email}")));
            }
        }
        Some("authorized_user") => chain.push(Link::User(source.clone())),
        // Federation through an account of its own: that account is a link too.
        Some("external_account") => {
            if let Some(email) = source["service_account_impersonation_url"]
                .as_str()
                .and_then(impersonated_email)
            {
                chain.push(Link::Member(format!("serviceAccount:{email}")));
            }
        }
        _ => {}
    }
    // `projects/-/serviceAccounts/<email>`, or the bare email.
    for delegate in json["delegates"].as_array().into_iter().flatten() {
        if let Some(email) = delegate
            .as_str()
            .and_then(|text| text.rsplit('/').next())
            .filter(|email| is_email(email))
        {
            chain.push(Link::Member(format!("serviceAccount:{email}")));
        }
    }
    chain
}

/// The members a credentials file's impersonation passes through ([`file_chain`]), a user
/// source named by token info; without `caller` and repeats.
pub(crate) async fn chain(client: &Client, text: &str, caller: Option<&str>) -> Vec<String> {
    let mut through: Vec<String> = Vec::new();
    for link in file_chain(text) {
        let found = match link {
            Link::Member(member) => Some(member),
            Link::User(source) => user_member(client, source).await,
        };
        if let Some(found) = found
            && Some(found.as_str()) != caller
            && !through.contains(&found)
        {
            through.push(found);
        }
    }
    through
}

/// The user of `authorized_user` credentials, named by token info about a token with the
/// email scope (gcloud's login grants it).
async fn user_member(client: &Client, json: Value) -> Option<String> {
    let credentials = google_cloud_auth::credentials::user_account::Builder::new(json)
        .with_scopes([USERINFO_EMAIL])
        .build()
        .ok()?;
    let bearer = crate::client::bearer_of(&credentials).await?;
    token_info(client, &bearer).await
}

/// The caller named by an application default credentials file, asking token info when the
/// file does not say.
pub(crate) async fn from_file(client: &Client, bearer: &str, text: &str) -> Option<String> {
    match file_identity(text) {
        FileIdentity::Member(member) => Some(member),
        FileIdentity::AskTokenInfo => token_info(client, bearer).await,
        FileIdentity::User => {
            if let Some(member) = token_info(client, bearer).await {
                return Some(member);
            }
            // lapse's own token may carry only the cloud-platform scope, and token info names
            // the user only for a token with the email scope: ask for one such token from the
            // same refresh token (gcloud's login grants that scope).
            let json: Value = serde_json::from_str(text).ok()?;
            user_member(client, json).await
        }
        FileIdentity::Unknown => None,
    }
}

/// Where google-cloud-auth finds application default credentials.
enum AdcFile {
    Text(String),
    /// No file: google-cloud-auth falls back to the metadata server.
    Absent,
    Unreadable,
}

fn adc_file() -> AdcFile {
    if let Some(path) = std::env::var_os("GOOGLE_APPLICATION_CREDENTIALS") {
        return std::fs::read_to_string(path).map_or(AdcFile::Unreadable, AdcFile::Text);
    }
    let Some(path) = well_known_path() else {
        return AdcFile::Absent;
    };
    match std::fs::read_to_string(path) {
        Ok(text) => AdcFile::Text(text),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => AdcFile::Absent,
        Err(_) => AdcFile::Unreadable,
    }
}

/// gcloud's file (`gcloud auth application-default login`), as google-cloud-auth looks for it.
#[cfg(target_os = "windows")]
fn well_known_path() -> Option<std::path::PathBuf> {
    std::env::var_os("APPDATA").map(|root| {
        std::path::PathBuf::from(root).join("gcloud/application_default_credentials.json")
    })
}

/// gcloud's file (`gcloud auth application-default login`), as google-cloud-auth looks for it.
#[cfg(not(target_os = "windows"))]
fn well_known_path() -> Option<std::path::PathBuf> {
    std::env::var_os("HOME").map(|root| {
        std::path::PathBuf::from(root).join(".config/gcloud/application_default_credentials.json")
    })
}

/// Token info's answer (<https://developers.google.com/identity/protocols/oauth2>): `email`
/// only when the token carries the email scope.
#[derive(Debug, Deserialize)]
struct TokenInfo {
    #[serde(default)]
    email: Option<String>,
}

/// Asks `POST {oauth2}/tokeninfo` whom `bearer` belongs to. The token goes in the form body,
/// never the URL: URLs end up in proxy and server logs.
pub(crate) async fn token_info(client: &Client, bearer: &str) -> Option<String> {
    let url = format!("{}/tokeninfo", client.oauth2_url().trim_end_matches('/'));
    client.count_request();
    let response = client
        .http()
        .post(url)
        .form(&[("access_token", bearer)])
        .timeout(LOOKUP_TIMEOUT.min(client.bounds().attempt))
        .send()
        .await
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    let info: TokenInfo = response.json().await.ok()?;
    member_for_email(info.email.as_deref()?)
}

/// Asks the metadata server at `base` for the attached account's email.
pub(crate) async fn metadata_email(client: &Client, base: &str) -> Option<String> {
    let url = format!(
        "{}/computeMetadata/v1/instance/service-accounts/default/email",
        base.trim_end_matches('/')
    );
    client.count_request();
    let response = client
        .http()
        .get(url)
        .header("Metadata-Flavor", "Google")
        .timeout(LOOKUP_TIMEOUT.min(client.bounds().attempt))
        .send()
        .await
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    let email = response.text().await.ok()?;
    // GKE's workload identity without a service account answers `<project>.svc.id.goog`,
    // which is no member: left unknown.
    let email = email.trim();
    is_email(email).then(|| format!("serviceAccount:{email}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_file_names_its_account() {
        let text = r#"{"type": "service_account", "project_id": "acme-ops",
            "private_key_id": "x", "private_key": "(not read: the email names the account)",
            "client_email": "lapse@acme-ops.iam.gserviceaccount.com", "client_id": "1",
            "token_uri": "https://oauth2.googleapis.com/token"}"#;
        assert_eq!(
            file_identity(text),
            FileIdentity::Member("serviceAccount:lapse@acme-ops.iam.gserviceaccount.com".into())
        );
        assert_eq!(
            file_identity(r#"{"type": "service_account"}"#),
            FileIdentity::Unknown
        );
    }

    #[test]
    fn impersonation_names_the_impersonated_account() {
        // As `gcloud auth application-default login --impersonate-service-account` writes it.
        let text = r#"{
            "type": "impersonated_service_account",
            "service_account_impersonation_url": "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/lapse@acme-ops.iam.gserviceaccount.com:generateAccessToken",
            "source_credentials": {"type": "authorized_user", "client_id": "c", "client_secret": "s", "refresh_token": "r"},
            "delegates": []
        }"#;
        assert_eq!(
            file_identity(text),
            FileIdentity::Member("serviceAccount:lapse@acme-ops.iam.gserviceaccount.com".into())
        );
    }

    #[test]
    fn federation_through_an_account_names_it_and_without_one_asks() {
        // As `gcloud iam workload-identity-pools create-cred-config` writes it for CI.
        let through = r#"{
            "universe_domain": "googleapis.com",
            "type": "external_account",
            "audience": "//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/ci/providers/github",
            "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
            "token_url": "https://sts.googleapis.com/v1/token",
            "credential_source": {"file": "token.jwt", "format": {"type": "text"}},
            "service_account_impersonation_url": "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/ci-lapse%40acme-ops.iam.gserviceaccount.com:generateAccessToken"
        }"#;
        assert_eq!(
            file_identity(through),
            FileIdentity::Member("serviceAccount:ci-lapse@acme-ops.iam.gserviceaccount.com".into())
        );
        let direct = r#"{
            "type": "external_account",
            "audience": "//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/ci/providers/github",
            "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
            "token_url": "https://sts.googleapis.com/v1/token",
            "credential_source": {"file": "token.jwt"}
        }"#;
        assert_eq!(file_identity(direct), FileIdentity::AskTokenInfo);
        let unreadable = r#"{"type": "external_account",
            "service_account_impersonation_url": "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/:generateAccessToken"}"#;
        assert_eq!(file_identity(unreadable), FileIdentity::AskTokenInfo);
    }

    #[test]
    fn user_credentials_ask_and_anything_else_is_unknown() {
        let text = r#"{"type": "authorized_user", "client_id": "c.apps.googleusercontent.com",
            "client_secret": "s", "refresh_token": "r", "quota_project_id": "acme-ops"}"#;
        assert_eq!(file_identity(text), FileIdentity::User);
        assert_eq!(
            file_identity(r#"{"type": "gdch_service_account"}"#),
            FileIdentity::Unknown
        );
        assert_eq!(file_identity("{"), FileIdentity::Unknown);
        assert_eq!(file_identity("[]"), FileIdentity::Unknown);
    }

    #[test]
    fn impersonation_passes_through_its_source_and_each_delegate() {
        let text = r#"{
            "type": "impersonated_service_account",
            "service_account_impersonation_url": "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/lapse@acme-ops.iam.gserviceaccount.com:generateAccessToken",
            "source_credentials": {"type": "service_account", "client_email": "ci-source@acme-ci.iam.gserviceaccount.com",
                                   "private_key": "(not read)", "private_key_id": "x", "token_uri": "https://oauth2.googleapis.com/token"},
            "delegates": ["projects/-/serviceAccounts/hop-one@acme-ops.iam.gserviceaccount.com", "hop-two@acme-ops.iam.gserviceaccount.com"]
        }"#;
        assert_eq!(
            file_chain(text),
            vec![
                Link::Member("serviceAccount:ci-source@acme-ci.iam.gserviceaccount.com".into()),
                Link::Member("serviceAccount:hop-one@acme-ops.iam.gserviceaccount.com".into()),
                Link::Member("serviceAccount:hop-two@acme-ops.iam.gserviceaccount.com".into()),
            ]
        );
        // A user source is named by token info; federation through an account names it.
        let user = r#"{"type": "impersonated_service_account",
            "service_account_impersonation_url": "https://x/v1/projects/-/serviceAccounts/lapse@acme-ops.iam.gserviceaccount.com:generateAccessToken",
            "source_credentials": {"type": "authorized_user", "refresh_token": "r"}}"#;
        assert!(matches!(file_chain(user).as_slice(), [Link::User(_)]));
        let federated = r#"{"type": "impersonated_service_account",
            "service_account_impersonation_url": "https://x/v1/projects/-/serviceAccounts/lapse@acme-ops.iam.gserviceaccount.com:generateAccessToken",
            "source_credentials": {"type": "external_account",
                "service_account_impersonation_url": "https://x/v1/projects/-/serviceAccounts/ci@acme-ci.iam.gserviceaccount.com:generateAccessToken"}}"#;
        assert_eq!(
            file_chain(federated),
            vec![Link::Member(
                "serviceAccount:ci@acme-ci.iam.gserviceaccount.com".into()
            )]
        );
        // Nothing else passes through anything.
        assert!(
            file_chain(
                r#"{"type": "service_account", "client_email": "a@b.iam.gserviceaccount.com"}"#
            )
            .is_empty()
        );
        assert!(file_chain("{").is_empty());
    }

    #[test]
    fn emails_become_members() {
        assert_eq!(
            member_for_email("alice@example.com").as_deref(),
            Some("user:alice@example.com")
        );
        assert_eq!(
            member_for_email("lapse@acme-ops.iam.gserviceaccount.com").as_deref(),
            Some("serviceAccount:lapse@acme-ops.iam.gserviceaccount.com")
        );
        assert_eq!(member_for_email("acme-ops.svc.id.goog"), None);
        assert_eq!(member_for_email(""), None);
    }

    /// Against the fake: the token endpoint, token info and the metadata server.
    #[cfg(feature = "fake")]
    mod served {
        use std::sync::Arc;

        use super::super::*;
        use crate::fake::FakeGcp;

        const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";
        const GCLOUD_LOGIN: &[&str] = &[
            "openid",
            USERINFO_EMAIL,
            CLOUD_PLATFORM,
            "https://www.googleapis.com/auth/sqlservice.login",
        ];

        fn client(fake: &FakeGcp) -> Client {
            Client::new(&fake.settings(&[]), Arc::default())
        }

        /// The bearer ADC would give lapse for this file: cloud-platform scope only.
        async fn adc_bearer(file: &Value) -> String {
            let credentials =
                google_cloud_auth::credentials::user_account::Builder::new(file.clone())
                    .with_scopes([CLOUD_PLATFORM])
                    .build()
                    .expect("user credentials");
            crate::client::bearer_of(&credentials)
                .await
                .expect("a token from the fake")
        }

        #[tokio::test]
        async fn a_user_is_named_by_token_info_even_when_lapse_token_has_no_email_scope() {
            let fake = FakeGcp::start();
            let client = client(&fake);
            let file = fake.authorized_user("alice@example.com", GCLOUD_LOGIN);
            let bearer = adc_bearer(&file).await;
            assert_eq!(
                token_info(&client, &bearer).await,
                None,
                "a cloud-platform token says no email"
            );
            assert_eq!(
                from_file(&client, &bearer, &file.to_string())
                    .await
                    .as_deref(),
                Some("user:alice@example.com")
            );
            assert!(
                fake.requests()
                    .iter()
                    .any(|request| request == "POST /tokeninfo")
            );
        }

        #[tokio::test]
        async fn a_user_who_impersonates_an_account_is_named_as_its_source() {
            let fake = FakeGcp::start();
            let client = client(&fake);
            let source = fake.authorized_user("alice@example.com", GCLOUD_LOGIN);
            let file = serde_json::json!({
                "type": "impersonated_service_account",
                "service_account_impersonation_url": format!("{}/v1/projects/-/serviceAccounts/lapse@acme-ops.iam.gserviceaccount.com:generateAccessToken", fake.url()),
                "source_credentials": source,
                "delegates": ["projects/-/serviceAccounts/hop@acme-ops.iam.gserviceaccount.com"]
            });
            let caller = "serviceAccount:lapse@acme-ops.iam.gserviceaccount.com";
            assert_eq!(
                chain(&client, &file.to_string(), Some(caller)).await,
                vec![
                    "user:alice@example.com".to_owned(),
                    "serviceAccount:hop@acme-ops.iam.gserviceaccount.com".to_owned()
                ]
            );
        }

        #[tokio::test]
        async fn a_user_who_granted_no_email_scope_stays_unknown() {
            let fake = FakeGcp::start();
            let client = client(&fake);
            let file = fake.authorized_user("bob@example.com", &[CLOUD_PLATFORM]);
            let bearer = adc_bearer(&file).await;
            assert_eq!(from_file(&client, &bearer, &file.to_string()).await, None);
        }

        #[tokio::test]
        async fn a_token_token_info_rejects_stays_unknown() {
            let fake = FakeGcp::start();
            let client = client(&fake);
            let direct = r#"{"type": "external_account", "audience": "//iam.googleapis.com/x",
                "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
                "token_url": "https://sts.googleapis.com/v1/token", "credential_source": {"file": "t"}}"#;
            assert_eq!(from_file(&client, "ya29.federated", direct).await, None);
        }

        #[tokio::test]
        async fn the_metadata_server_names_the_attached_account() {
            let fake = FakeGcp::start();
            let client = client(&fake);
            assert_eq!(metadata_email(&client, &fake.url()).await, None);
            fake.set_metadata_email("123-compute@developer.gserviceaccount.com");
            assert_eq!(
                metadata_email(&client, &fake.url()).await.as_deref(),
                Some("serviceAccount:123-compute@developer.gserviceaccount.com")
            );
            // GKE workload identity without a service account: no member to name.
            fake.set_metadata_email("acme-ops.svc.id.goog");
            assert_eq!(metadata_email(&client, &fake.url()).await, None);
        }
    }
}
