//! IAM policies as Resource Manager returns them, read at version 3, and what lapse derives from
//! them: grant ids, native expiry of conditional bindings, member kinds.
//!
//! Shapes follow the `Policy` resource
//! (<https://cloud.google.com/resource-manager/reference/rest/Shared.Types/Policy>). Fields lapse
//! does not model (`auditConfigs`, a condition's `location`) are kept verbatim, so a policy written
//! back after an edit loses nothing.

use lapse_sdk::{PrincipalKind, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// An IAM policy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Policy {
    /// 1 or 3; conditional bindings need 3.
    #[serde(default)]
    pub(crate) version: i64,
    /// Role bindings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) bindings: Vec<Binding>,
    /// Concurrency token: a write with a stale one fails with 409 `ABORTED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) etag: Option<String>,
    /// Everything else (`auditConfigs`), verbatim.
    #[serde(flatten)]
    pub(crate) rest: Map<String, Value>,
}

impl Policy {
    /// Why this answer cannot stand for the live policy, if it cannot: without an etag a write
    /// could not detect a concurrent change, and `_withcond_` roles are conditional bindings
    /// flattened by a version-1 read, whose conditions are lost (written back, they would be
    /// rejected or drop every condition).
    pub(crate) fn unusable(&self) -> Option<String> {
        if self.etag.as_deref().is_none_or(str::is_empty) {
            return Some("the policy came without an etag".to_owned());
        }
        self.bindings
            .iter()
            .find(|binding| binding.role.contains("_withcond_"))
            .map(|binding| {
                format!(
                    "the policy came at version {} with conditional bindings folded into `_withcond_` roles ({}), although version 3 was requested",
                    self.version, binding.role
                )
            })
    }
}

/// One role granted to members, perhaps under a condition.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Binding {
    /// `roles/…`, `projects/…/roles/…` or `organizations/…/roles/…`.
    pub(crate) role: String,
    /// IAM member strings.
    #[serde(default)]
    pub(crate) members: Vec<String>,
    /// The condition, when the binding is conditional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) condition: Option<Expr>,
    /// Anything else, verbatim.
    #[serde(flatten)]
    pub(crate) rest: Map<String, Value>,
}

/// A CEL condition (`google.type.Expr`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Expr {
    /// The CEL expression.
    #[serde(default)]
    pub(crate) expression: String,
    /// Its title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) title: Option<String>,
    /// Its description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) description: Option<String>,
    /// Anything else (`location`), verbatim.
    #[serde(flatten)]
    pub(crate) rest: Map<String, Value>,
}

impl Expr {
    /// The title, with an empty one read as none (the API returns either).
    pub(crate) fn title(&self) -> Option<&str> {
        self.title.as_deref().filter(|title| !title.is_empty())
    }

    /// True when both are the very same condition: expression, title, description and any
    /// other field (an empty title or description reads as none).
    pub(crate) fn same_as(&self, other: &Expr) -> bool {
        let description = |expr: &Expr| expr.description.clone().filter(|text| !text.is_empty());
        self.expression == other.expression
            && self.title() == other.title()
            && description(self) == description(other)
            && self.rest == other.rest
    }

    /// True when this is the condition a grant record names: same expression, same title.
    pub(crate) fn matches(&self, expression: &str, title: Option<&str>) -> bool {
        self.expression == expression && self.title() == title.filter(|title| !title.is_empty())
    }
}

/// A short, stable digest of a condition expression: what tells apart conditional bindings whose
/// titles collide or are empty.
pub(crate) fn expression_digest(expression: &str) -> String {
    let digest = Sha256::digest(expression.as_bytes());
    hex::encode(&digest[..4])
}

/// The grant id of one member of one binding at `resource` (`projects/acme-prod`):
/// `<resource>|<role>|<member>`, and for a conditional binding `|<title>`. When the title is
/// empty, or another conditional binding of the same role in this policy has the same title
/// with another expression, `#<first 8 hex digits of SHA-256(expression)>` follows the title.
pub(crate) fn grant_id(policy: &Policy, resource: &str, binding: &Binding, member: &str) -> String {
    let mut id = format!("{resource}|{}|{member}", binding.role);
    if let Some(condition) = &binding.condition {
        let title = condition.title().unwrap_or_default();
        let collides = title.is_empty()
            || policy.bindings.iter().any(|other| {
                other.role == binding.role
                    && other.condition.as_ref().is_some_and(|other| {
                        other.title().unwrap_or_default() == title
                            && other.expression != condition.expression
                    })
            });
        id.push('|');
        id.push_str(title);
        if collides {
            id.push('#');
            id.push_str(&expression_digest(&condition.expression));
        }
    }
    id
}

/// The role that lets a federated identity act as a service account.
pub(crate) const WORKLOAD_IDENTITY_USER: &str = "roles/iam.workloadIdentityUser";

/// Whether a service account's own policy lets workloads authenticate as it by federation at
/// `at`: `roles/iam.workloadIdentityUser` granted to a workload identity pool member
/// (`principal://…`, `principalSet://…`) or to a GKE workload identity member
/// (`serviceAccount:<project>.svc.id.goog[<namespace>/<account>]`, the older form of the same
/// thing), under no condition that has already ended. Such a workload needs no key.
pub(crate) fn federates(policy: &Policy, at: Timestamp) -> bool {
    policy.bindings.iter().any(|binding| {
        binding.role == WORKLOAD_IDENTITY_USER
            && binding.condition.as_ref().is_none_or(|condition| {
                condition_expiry(&condition.expression).is_none_or(|end| end > at)
            })
            && binding.members.iter().any(|member| {
                member.starts_with("principal://")
                    || member.starts_with("principalSet://")
                    || member
                        .strip_prefix("serviceAccount:")
                        .is_some_and(|name| name.contains(".svc.id.goog["))
            })
    })
}

/// The instant a condition ends the grant, when it says so natively: the expression is
/// `request.time < timestamp("RFC 3339")` (whitespace aside), or a conjunction (`&&`) with such
/// clauses, whose earliest bound wins. Any disjunction (`||`) means the grant may hold by
/// another path, so there is no expiry.
pub(crate) fn condition_expiry(expression: &str) -> Option<Timestamp> {
    let clauses = split_conjunction(expression)?;
    clauses
        .iter()
        .filter_map(|clause| upper_bound(clause))
        .min()
}

/// Top-level `&&` clauses, or `None` when the expression has a top-level `||`, unbalanced
/// parentheses, or an unterminated string.
fn split_conjunction(expression: &str) -> Option<Vec<String>> {
    let expression = strip_parentheses(expression.trim());
    let mut clauses = Vec::new();
    let mut depth = 0_i32;
    let mut quote: Option<char> = None;
    let mut current = String::new();
    let mut chars = expression.chars().peekable();
    while let Some(c) = chars.next() {
        if let Some(open) = quote {
            current.push(c);
            if c == '\\' {
                if let Some(next) = chars.next() {
                    current.push(next);
                }
            } else if c == open {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' => {
                quote = Some(c);
                current.push(c);
            }
            '(' => {
                depth += 1;
                current.push(c);
            }
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return None;
                }
                current.push(c);
            }
            '|' if chars.peek() == Some(&'|') => return None,
            '&' if chars.peek() == Some(&'&') && depth == 0 => {
                chars.next();
                clauses.push(std::mem::take(&mut current));
            }
            _ => current.push(c),
        }
    }
    if depth != 0 || quote.is_some() {
        return None;
    }
    clauses.push(current);
    Some(clauses)
}

/// The text without parentheses that wrap all of it.
fn strip_parentheses(mut text: &str) -> &str {
    loop {
        let Some(inner) = text
            .strip_prefix('(')
            .and_then(|rest| rest.strip_suffix(')'))
        else {
            return text;
        };
        // `(a) && (b)` starts and ends with parentheses that do not wrap it all.
        let mut depth = 0_i32;
        let wraps = inner.chars().all(|c| {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                _ => {}
            }
            depth >= 0
        });
        if !wraps || depth != 0 {
            return text;
        }
        text = inner.trim();
    }
}

/// The bound of one `request.time < timestamp("…")` clause.
fn upper_bound(clause: &str) -> Option<Timestamp> {
    let compact: String = strip_parentheses(clause.trim())
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let literal = compact
        .strip_prefix("request.time<timestamp(")?
        .strip_suffix(')')?;
    let inner = literal
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
        .or_else(|| {
            literal
                .strip_prefix('\'')
                .and_then(|rest| rest.strip_suffix('\''))
        })?;
    Timestamp::parse_rfc3339(inner).ok()
}

/// What an IAM member string says about its holder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Member {
    /// Human, workload or group.
    pub(crate) kind: PrincipalKind,
    /// The member type (`user`, `serviceAccount`, `deleted`, `principalSet`, …).
    pub(crate) native_type: String,
    /// The name without its type prefix (an email, a domain, a pool subject).
    pub(crate) name: String,
    /// A Google-managed service agent.
    pub(crate) cloud_managed: bool,
}

/// Classifies an IAM member string
/// (<https://cloud.google.com/iam/docs/principal-identifiers>).
pub(crate) fn member(member: &str) -> Member {
    let (native_type, name) = if member.starts_with("principal://") {
        ("principal", member)
    } else if member.starts_with("principalSet://") {
        ("principalSet", member)
    } else {
        member.split_once(':').unwrap_or(("", member))
    };
    // `deleted:serviceAccount:x@p.iam.gserviceaccount.com?uid=123` keeps its old type's kind.
    let effective = if native_type == "deleted" {
        name.split_once(':').map_or("", |(inner, _)| inner)
    } else {
        native_type
    };
    let kind = match effective {
        "user" => PrincipalKind::Human,
        "serviceAccount" | "principal" => PrincipalKind::Workload,
        // Groups, whole domains, pools, allUsers: sets of identities.
        _ => PrincipalKind::Group,
    };
    let native_type = if native_type.is_empty() {
        member
    } else {
        native_type
    };
    Member {
        kind,
        native_type: native_type.to_owned(),
        name: name.to_owned(),
        cloud_managed: native_type == "serviceAccount" && is_service_agent(name),
    }
}

/// Google-managed service agents: `service-<number>@gcp-sa-<api>.iam.gserviceaccount.com`,
/// `service-<number>@<api>.iam.gserviceaccount.com` (older agents), the Google APIs agent
/// `<number>@cloudservices.gserviceaccount.com` and the legacy Cloud Build agent.
pub(crate) fn is_service_agent(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    (local.starts_with("service-") && domain.ends_with(".gserviceaccount.com"))
        || domain == "cloudservices.gserviceaccount.com"
        || domain == "cloudbuild.gserviceaccount.com"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Option<Timestamp> {
        Some(Timestamp::parse_rfc3339(text).expect("instant"))
    }

    #[test]
    fn an_expiry_condition_gives_the_grant_its_end() {
        assert_eq!(
            condition_expiry(r#"request.time < timestamp("2026-10-01T00:00:00Z")"#),
            at("2026-10-01T00:00:00Z")
        );
        assert_eq!(
            condition_expiry(r#"  request.time<timestamp( "2026-10-01T00:00:00Z" ) "#),
            at("2026-10-01T00:00:00Z")
        );
        assert_eq!(
            condition_expiry(r#"(request.time < timestamp('2026-10-01T02:00:00+02:00'))"#),
            at("2026-10-01T00:00:00Z")
        );
    }

    #[test]
    fn a_conjunction_ends_at_its_earliest_bound() {
        assert_eq!(
            condition_expiry(
                r#"resource.name.startsWith("projects/_/buckets/x") && request.time < timestamp("2027-01-01T00:00:00Z") && (request.time < timestamp("2026-12-01T00:00:00Z"))"#
            ),
            at("2026-12-01T00:00:00Z")
        );
    }

    #[test]
    fn a_disjunction_or_other_comparison_is_no_expiry() {
        assert_eq!(
            condition_expiry(
                r#"request.time < timestamp("2026-10-01T00:00:00Z") || resource.type == "x""#
            ),
            None
        );
        assert_eq!(
            condition_expiry(r#"request.time > timestamp("2026-10-01T00:00:00Z")"#),
            None
        );
        assert_eq!(
            condition_expiry(r#"!(request.time < timestamp("2026-10-01T00:00:00Z"))"#),
            None
        );
        assert_eq!(
            condition_expiry(r#"request.time < timestamp("soon")"#),
            None
        );
        assert_eq!(
            condition_expiry(r#"resource.name == "a&&b" && request.time < timestamp("bad"#),
            None
        );
    }

    #[test]
    fn a_title_collision_or_empty_title_gets_a_digest() {
        let binding = |title: &str, expression: &str| Binding {
            role: "roles/editor".to_owned(),
            members: vec!["user:a@x".to_owned()],
            condition: Some(Expr {
                expression: expression.to_owned(),
                title: Some(title.to_owned()),
                description: None,
                rest: Map::new(),
            }),
            rest: Map::new(),
        };
        let policy = Policy {
            bindings: vec![
                binding("temp", "a"),
                binding("temp", "b"),
                binding("", "c"),
                binding("once", "d"),
            ],
            ..Policy::default()
        };
        let ids: Vec<String> = policy
            .bindings
            .iter()
            .map(|b| grant_id(&policy, "projects/p", b, "user:a@x"))
            .collect();
        assert_eq!(
            ids[0],
            format!(
                "projects/p|roles/editor|user:a@x|temp#{}",
                expression_digest("a")
            )
        );
        assert_ne!(ids[0], ids[1]);
        assert_eq!(
            ids[2],
            format!(
                "projects/p|roles/editor|user:a@x|#{}",
                expression_digest("c")
            )
        );
        assert_eq!(ids[3], "projects/p|roles/editor|user:a@x|once");
    }

    #[test]
    fn members_are_classified_by_type() {
        assert_eq!(member("user:ana@acme.example").kind, PrincipalKind::Human);
        assert_eq!(member("group:sre@acme.example").kind, PrincipalKind::Group);
        let agent = member("serviceAccount:service-1@gcp-sa-pubsub.iam.gserviceaccount.com");
        assert_eq!(agent.kind, PrincipalKind::Workload);
        assert!(agent.cloud_managed);
        assert!(member("serviceAccount:1@cloudservices.gserviceaccount.com").cloud_managed);
        assert!(!member("serviceAccount:1-compute@developer.gserviceaccount.com").cloud_managed);
        let deleted = member("deleted:serviceAccount:x@p.iam.gserviceaccount.com?uid=1");
        assert_eq!(deleted.kind, PrincipalKind::Workload);
        assert_eq!(deleted.native_type, "deleted");
        assert_eq!(member("domain:acme.example").kind, PrincipalKind::Group);
        let federated = member(
            "principal://iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/subject/s",
        );
        assert_eq!(federated.kind, PrincipalKind::Workload);
        assert_eq!(federated.native_type, "principal");
        assert_eq!(member("allUsers").native_type, "allUsers");
    }
}
