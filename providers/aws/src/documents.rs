//! IAM policy documents: percent-decoding and the "administrator under another name" check.

use serde_json::Value;

/// Decodes a policy document as IAM returns it (RFC 3986 percent-encoded JSON).
pub(crate) fn decode(document: &str) -> String {
    percent_encoding::percent_decode_str(document)
        .decode_utf8_lossy()
        .into_owned()
}

/// True when the document allows every action, or every IAM action, on every resource: an
/// administrator whatever the policy is called.
pub(crate) fn grants_admin(document: &str) -> bool {
    let Ok(value) = serde_json::from_str::<Value>(document) else {
        return false;
    };
    statements(&value).any(|statement| {
        let allows = statement.get("Effect").and_then(Value::as_str) == Some("Allow");
        let all_actions = strings(statement.get("Action"))
            .any(|action| action == "*" || action.eq_ignore_ascii_case("iam:*"));
        let all_resources = strings(statement.get("Resource")).any(|resource| resource == "*");
        allows && all_actions && all_resources
    })
}

fn statements(document: &Value) -> impl Iterator<Item = &Value> {
    let statement = document.get("Statement");
    let list: Vec<&Value> = match statement {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(item @ Value::Object(_)) => vec![item],
        _ => Vec::new(),
    };
    list.into_iter()
}

fn strings(value: Option<&Value>) -> impl Iterator<Item = &str> {
    let list: Vec<&str> = match value {
        Some(Value::String(text)) => vec![text.as_str()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    list.into_iter()
}

/// AWS principals a trust policy names (`AWS` entries only: services and federated identity
/// providers are not principals of this account's inventory). Account ids become their root ARN.
pub(crate) fn trusted_principals(document: &str, partition: &str) -> Vec<String> {
    let Ok(value) = serde_json::from_str::<Value>(document) else {
        return Vec::new();
    };
    let mut principals = Vec::new();
    for statement in statements(&value) {
        if statement.get("Effect").and_then(Value::as_str) != Some("Allow") {
            continue;
        }
        let Some(principal) = statement.get("Principal") else {
            continue;
        };
        for aws in strings(principal.get("AWS")) {
            let arn = if aws.len() == 12 && aws.chars().all(|c| c.is_ascii_digit()) {
                format!("arn:{partition}:iam::{aws}:root")
            } else {
                aws.to_owned()
            };
            if !principals.contains(&arn) {
                principals.push(arn);
            }
        }
    }
    principals
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_documents_are_decoded() {
        assert_eq!(
            decode("%7B%22Version%22%3A%222012-10-17%22%7D"),
            r#"{"Version":"2012-10-17"}"#
        );
    }

    #[test]
    fn star_on_star_is_admin_in_any_shape() {
        assert!(grants_admin(
            r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"#
        ));
        assert!(grants_admin(
            r#"{"Statement":[{"Effect":"Allow","Action":["s3:Get*","iam:*"],"Resource":["*"]}]}"#
        ));
        assert!(!grants_admin(
            r#"{"Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#
        ));
        assert!(!grants_admin(
            r#"{"Statement":[{"Effect":"Deny","Action":"*","Resource":"*"}]}"#
        ));
        assert!(!grants_admin(
            r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"arn:aws:s3:::b/*"}]}"#
        ));
    }

    #[test]
    fn trust_policies_name_aws_principals_only() {
        let trust = r#"{"Statement":[
            {"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"},
            {"Effect":"Allow","Principal":{"AWS":["999988887777","arn:aws:iam::111122223333:role/ci"]},"Action":"sts:AssumeRole"}]}"#;
        assert_eq!(
            trusted_principals(trust, "aws"),
            [
                "arn:aws:iam::999988887777:root",
                "arn:aws:iam::111122223333:role/ci"
            ]
        );
    }
}
