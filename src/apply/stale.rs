//! Whether a target read live just before its action still is what the plan saw.
//!
//! A plan was reviewed against a record; the action may only proceed on that record. The live
//! reading is compared on what the decision rested on: presence, a credential's status and
//! last use, the privilege of a grant's content. What a provider could not read (an unknown
//! last use) is no evidence of change; anything that moved is.

use lapse_sdk::{Action, CredentialStatus, TargetState, Timestamp, Usage};

/// What to do with a target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// It is as planned: act.
    Proceed,
    /// It already shows the change: no call, a success.
    AlreadyDone,
    /// It no longer exists: no call, a success.
    Gone,
    /// It changed since the plan: skip, and say how.
    Stale(String),
}

/// Judges a live reading against the planned action. `planned_unique_id` is the immutable id
/// of the target's principal as the plan saw it; `taken_at` is when the plan's snapshot was
/// read: a use after it is a use the plan did not see.
#[must_use]
pub fn judge(
    action: &Action,
    planned_unique_id: Option<&str>,
    live: &TargetState,
    taken_at: Timestamp,
) -> Verdict {
    if !live.present {
        return Verdict::Gone;
    }
    if let Some(reason) = recreated(action, planned_unique_id, live) {
        return Verdict::Stale(reason);
    }
    match action {
        Action::DeactivateCredential { credential } => {
            if let Some(reason) = used_since(credential.last_used, live.last_used, taken_at) {
                return Verdict::Stale(reason);
            }
            if live.revoked {
                return Verdict::AlreadyDone;
            }
        }
        Action::DeleteCredential { credential } => {
            if let Some(reason) = used_since(credential.last_used, live.last_used, taken_at) {
                return Verdict::Stale(reason);
            }
            // A deletion planned after a grace period of inactivity is void once someone
            // switched the key back on: the grace period is broken.
            if credential.status == CredentialStatus::Inactive
                && live.status == Some(CredentialStatus::Active)
            {
                return Verdict::Stale(
                    "it was planned for deletion while inactive, and is active again".to_owned(),
                );
            }
        }
        Action::RevokeGrant { grant } => {
            if live.revoked {
                return Verdict::AlreadyDone;
            }
            if let Some(privileged) = live.privileged
                && privileged != grant.privileged
            {
                return Verdict::Stale(format!(
                    "its content changed since the plan: it was {} and is {} now",
                    if grant.privileged {
                        "privileged"
                    } else {
                        "not privileged"
                    },
                    if privileged {
                        "privileged"
                    } else {
                        "not privileged"
                    }
                ));
            }
        }
        Action::DisablePrincipal { .. } => {
            if live.revoked {
                return Verdict::AlreadyDone;
            }
        }
    }
    Verdict::Proceed
}

/// A sentence when the live principal is not the one the plan saw: same name, another
/// immutable id, so it was deleted and re-created since. Unknown on either side is no evidence.
#[must_use]
pub fn recreated(
    action: &Action,
    planned_unique_id: Option<&str>,
    live: &TargetState,
) -> Option<String> {
    let (Some(planned), Some(now)) = (planned_unique_id, live.unique_id.as_deref()) else {
        return None;
    };
    (planned != now).then(|| {
        format!(
            "the principal {} was deleted and re-created since the plan (its immutable id was {planned} and is {now} now): the action was reviewed for the old one, not for this one; plan again",
            super::guards::principal_of(action)
        )
    })
}

/// A sentence when the live last use is later than the plan knew.
fn used_since(planned: Usage, live: Usage, taken_at: Timestamp) -> Option<String> {
    let Usage::At(used) = live else {
        return None;
    };
    let later = match planned {
        Usage::At(known) => used > known,
        Usage::Never => true,
        // The plan did not know its last use: only a use after the snapshot is news.
        Usage::Unknown => used > taken_at,
    };
    later.then(|| {
        format!(
            "it was used at {used}, after the plan saw it ({})",
            match planned {
                Usage::At(known) => format!("last used {known}"),
                Usage::Never => "never used".to_owned(),
                Usage::Unknown => format!("snapshot of {taken_at}"),
            }
        )
    })
}

#[cfg(test)]
mod tests {
    use lapse_sdk::{Cloud, Credential, CredentialKind, Grant, GrantKind, Via};

    use super::*;

    fn at(text: &str) -> Timestamp {
        Timestamp::parse_rfc3339(text).expect("instant")
    }

    fn key(last_used: Usage, status: CredentialStatus) -> Credential {
        Credential {
            id: "AKIAEXAMPLE".into(),
            principal: "arn:aws:iam::1:user/batch".into(),
            cloud: Cloud::Aws,
            scope: "aws:1".into(),
            kind: CredentialKind::AwsAccessKey,
            display_name: None,
            created_at: Some(at("2026-01-01T00:00:00Z")),
            expires_at: None,
            last_used,
            status,
            cloud_managed: false,
        }
    }

    fn live(revoked: bool, last_used: Usage) -> TargetState {
        TargetState {
            present: true,
            revoked,
            last_used,
            ..TargetState::default()
        }
    }

    const TAKEN: &str = "2026-03-01T00:00:00Z";

    #[test]
    fn an_idle_key_used_after_the_plan_is_stale() {
        let action = Action::DeactivateCredential {
            credential: key(Usage::Never, CredentialStatus::Active),
        };
        let verdict = judge(
            &action,
            None,
            &live(false, Usage::At(at("2026-03-02T00:00:00Z"))),
            at(TAKEN),
        );
        assert!(
            matches!(&verdict, Verdict::Stale(reason) if reason.contains("never used")),
            "{verdict:?}"
        );
        let action = Action::DeactivateCredential {
            credential: key(
                Usage::At(at("2026-01-05T00:00:00Z")),
                CredentialStatus::Active,
            ),
        };
        assert!(matches!(
            judge(
                &action,
                None,
                &live(false, Usage::At(at("2026-01-06T00:00:00Z"))),
                at(TAKEN)
            ),
            Verdict::Stale(_)
        ));
    }

    #[test]
    fn an_unchanged_key_proceeds_and_unknown_use_is_no_evidence() {
        let action = Action::DeactivateCredential {
            credential: key(
                Usage::At(at("2026-01-05T00:00:00Z")),
                CredentialStatus::Active,
            ),
        };
        assert_eq!(
            judge(
                &action,
                None,
                &live(false, Usage::At(at("2026-01-05T00:00:00Z"))),
                at(TAKEN)
            ),
            Verdict::Proceed
        );
        assert_eq!(
            judge(&action, None, &live(false, Usage::Unknown), at(TAKEN)),
            Verdict::Proceed
        );
        let unknown = Action::DeactivateCredential {
            credential: key(Usage::Unknown, CredentialStatus::Active),
        };
        assert_eq!(
            judge(
                &unknown,
                None,
                &live(false, Usage::At(at("2026-02-01T00:00:00Z"))),
                at(TAKEN)
            ),
            Verdict::Proceed,
            "a use before the snapshot was there when the plan was made"
        );
    }

    #[test]
    fn absent_and_already_revoked_targets_need_no_call() {
        let action = Action::DeactivateCredential {
            credential: key(Usage::Never, CredentialStatus::Active),
        };
        assert_eq!(
            judge(&action, None, &TargetState::default(), at(TAKEN)),
            Verdict::Gone
        );
        assert_eq!(
            judge(&action, None, &live(true, Usage::Never), at(TAKEN)),
            Verdict::AlreadyDone
        );
    }

    #[test]
    fn a_deletion_after_grace_is_stale_once_the_key_is_active_again() {
        let action = Action::DeleteCredential {
            credential: key(Usage::Never, CredentialStatus::Inactive),
        };
        let active = TargetState {
            present: true,
            status: Some(CredentialStatus::Active),
            ..TargetState::default()
        };
        assert!(matches!(
            judge(&action, None, &active, at(TAKEN)),
            Verdict::Stale(_)
        ));
    }

    #[test]
    fn a_principal_re_created_under_the_same_name_is_stale() {
        let action = Action::DeactivateCredential {
            credential: key(Usage::Never, CredentialStatus::Active),
        };
        let reading = |unique_id: Option<&str>| TargetState {
            present: true,
            unique_id: unique_id.map(str::to_owned),
            ..TargetState::default()
        };
        let verdict = judge(
            &action,
            Some("AIDAOLD"),
            &reading(Some("AIDANEW")),
            at(TAKEN),
        );
        assert!(
            matches!(&verdict, Verdict::Stale(reason)
                if reason.contains("deleted and re-created") && reason.contains("AIDAOLD") && reason.contains("AIDANEW")),
            "{verdict:?}"
        );
        // Even when the newcomer's key already looks done: it is not the key that was planned.
        let mut inactive = reading(Some("AIDANEW"));
        inactive.revoked = true;
        assert!(matches!(
            judge(&action, Some("AIDAOLD"), &inactive, at(TAKEN)),
            Verdict::Stale(_)
        ));
        assert_eq!(
            judge(
                &action,
                Some("AIDAOLD"),
                &reading(Some("AIDAOLD")),
                at(TAKEN)
            ),
            Verdict::Proceed
        );
        // Unknown on either side is no evidence.
        assert_eq!(
            judge(&action, None, &reading(Some("AIDANEW")), at(TAKEN)),
            Verdict::Proceed
        );
        assert_eq!(
            judge(&action, Some("AIDAOLD"), &reading(None), at(TAKEN)),
            Verdict::Proceed
        );
    }

    #[test]
    fn a_grant_whose_document_changed_privilege_is_stale() {
        let grant = Grant {
            id: "g".into(),
            cloud: Cloud::Aws,
            scope: "aws:1".into(),
            principal: "arn:aws:iam::1:role/ci".into(),
            entitlement: "inline:everything".to_owned(),
            entitlement_id: None,
            resource: "1".to_owned(),
            kind: GrantKind::InlinePolicy,
            via: Via::Direct,
            created_at: None,
            expires_at: None,
            expiry_source: None,
            condition: None,
            privileged: true,
        };
        let action = Action::RevokeGrant { grant };
        let narrowed = TargetState {
            present: true,
            privileged: Some(false),
            ..TargetState::default()
        };
        assert!(matches!(
            judge(&action, None, &narrowed, at(TAKEN)),
            Verdict::Stale(_)
        ));
        let same = TargetState {
            present: true,
            privileged: Some(true),
            ..TargetState::default()
        };
        assert_eq!(judge(&action, None, &same, at(TAKEN)), Verdict::Proceed);
        let gone = TargetState {
            present: false,
            revoked: true,
            ..TargetState::default()
        };
        assert_eq!(judge(&action, None, &gone, at(TAKEN)), Verdict::Gone);
    }
}
