//! Compiled selectors: the `match` of rules, `protect` entries and the matching parts of
//! declarations and exceptions.

use std::collections::BTreeMap;

use globset::{GlobSet, GlobSetBuilder};
use lapse_sdk::{
    Cloud, Credential, CredentialKind, Grant, GrantKind, Principal, PrincipalKind, ScopeId,
};

use super::document::SelectorDocument;
use super::values::{OneOrMany, Pattern};

/// A set of patterns matched at once. Built from patterns already checked when parsing.
#[derive(Clone, Debug)]
pub struct Patterns {
    set: GlobSet,
}

impl Patterns {
    /// Compiles patterns (already validated by deserialization).
    pub(crate) fn new<'a>(patterns: impl IntoIterator<Item = &'a Pattern>) -> Self {
        let mut builder = GlobSetBuilder::new();
        for pattern in patterns {
            if let Ok(glob) = pattern.glob() {
                builder.add(glob);
            }
        }
        Patterns {
            set: builder.build().unwrap_or_else(|_| GlobSet::empty()),
        }
    }

    /// Compiles one pattern.
    pub(crate) fn one(pattern: &Pattern) -> Self {
        Self::new(std::iter::once(pattern))
    }

    /// True when any pattern matches `text`.
    #[must_use]
    pub fn is_match(&self, text: &str) -> bool {
        self.set.is_match(text)
    }

    /// True when any pattern matches the principal's id, its id without a Google `type:` prefix,
    /// or its display name.
    #[must_use]
    pub fn matches_principal(&self, id: &str, display_name: Option<&str>) -> bool {
        self.is_match(id)
            || unprefixed_member(id).is_some_and(|bare| self.is_match(bare))
            || display_name.is_some_and(|name| self.is_match(name))
    }

    /// True when any pattern matches the scope id with or without its cloud prefix.
    #[must_use]
    pub fn matches_scope(&self, scope: &ScopeId) -> bool {
        self.is_match(scope.as_str())
            || scope
                .as_str()
                .split_once(':')
                .is_some_and(|(_, bare)| self.is_match(bare))
    }
}

/// A Google member without its type (`serviceAccount:a@b` -> `a@b`); None for other ids.
fn unprefixed_member(id: &str) -> Option<&str> {
    let (prefix, rest) = id.split_once(':')?;
    matches!(
        prefix,
        "user" | "serviceAccount" | "group" | "domain" | "principal" | "principalSet"
    )
    .then_some(rest)
}

/// What a selector is matched against. Fields a subject does not have (a credential has no
/// entitlement) make selectors that ask for them fail to match.
#[derive(Clone, Copy, Debug)]
pub struct Target<'a> {
    /// Cloud.
    pub cloud: Cloud,
    /// Scope.
    pub scope: &'a ScopeId,
    /// Principal id.
    pub principal_id: &'a str,
    /// The principal record, when the snapshot has one.
    pub principal: Option<&'a Principal>,
    /// The grant, for grants.
    pub grant: Option<&'a Grant>,
    /// Whether the grant is privileged, for grants.
    pub privileged: bool,
    /// The credential, for credentials.
    pub credential: Option<&'a Credential>,
}

impl<'a> Target<'a> {
    /// A principal on its own.
    #[must_use]
    pub fn principal(principal: &'a Principal) -> Self {
        Target {
            cloud: principal.cloud,
            scope: &principal.scope,
            principal_id: principal.id.as_str(),
            principal: Some(principal),
            grant: None,
            privileged: false,
            credential: None,
        }
    }

    /// A grant and its holder.
    #[must_use]
    pub fn grant(grant: &'a Grant, principal: Option<&'a Principal>, privileged: bool) -> Self {
        Target {
            cloud: grant.cloud,
            scope: &grant.scope,
            principal_id: grant.principal.as_str(),
            principal,
            grant: Some(grant),
            privileged,
            credential: None,
        }
    }

    /// A credential and its holder.
    #[must_use]
    pub fn credential(credential: &'a Credential, principal: Option<&'a Principal>) -> Self {
        Target {
            cloud: credential.cloud,
            scope: &credential.scope,
            principal_id: credential.principal.as_str(),
            principal,
            grant: None,
            privileged: false,
            credential: Some(credential),
        }
    }

    fn display_name(&self) -> Option<&'a str> {
        self.principal
            .and_then(|principal| principal.display_name.as_deref())
    }
}

/// A compiled selector. Every field given must match.
#[derive(Clone, Debug, Default)]
pub struct Selector {
    cloud: Option<Vec<Cloud>>,
    scope: Option<Patterns>,
    principal: Option<Patterns>,
    principal_kind: Option<Vec<PrincipalKind>>,
    entitlement: Option<Patterns>,
    grant_kind: Option<Vec<GrantKind>>,
    credential: Option<Vec<CredentialKind>>,
    privileged: Option<bool>,
    tags: Vec<(String, Patterns)>,
}

fn values<T: Copy>(list: Option<&OneOrMany<T>>) -> Option<Vec<T>> {
    list.map(|list| list.iter().copied().collect())
}

impl Selector {
    /// Compiles a selector document.
    #[must_use]
    pub fn compile(document: &SelectorDocument) -> Self {
        Selector {
            cloud: values(document.cloud.as_ref()),
            scope: document
                .scope
                .as_ref()
                .map(|list| Patterns::new(list.iter())),
            principal: document
                .principal
                .as_ref()
                .map(|list| Patterns::new(list.iter())),
            principal_kind: values(document.principal_kind.as_ref()),
            entitlement: document
                .entitlement
                .as_ref()
                .map(|list| Patterns::new(list.iter())),
            grant_kind: values(document.grant_kind.as_ref()),
            credential: values(document.credential.as_ref()),
            privileged: document.privileged,
            tags: document
                .tags
                .as_ref()
                .map(|tags: &BTreeMap<String, Pattern>| {
                    tags.iter()
                        .map(|(key, value)| (key.clone(), Patterns::one(value)))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// True when the selector says something about grants (entitlement or privileged).
    #[must_use]
    pub fn is_about_grants(&self) -> bool {
        self.entitlement.is_some() || self.privileged.is_some() || self.grant_kind.is_some()
    }

    /// True when the selector names credential kinds.
    #[must_use]
    pub fn is_about_credentials(&self) -> bool {
        self.credential.is_some()
    }

    /// True when the selector selects on the principal alone (no grant or credential fields).
    #[must_use]
    pub fn is_about_principals_only(&self) -> bool {
        !self.is_about_grants() && !self.is_about_credentials()
    }

    /// True when the target satisfies every field given. Cheap fields are checked first: this
    /// runs for every grant of the estate.
    #[must_use]
    pub fn matches(&self, target: &Target<'_>) -> bool {
        if let Some(clouds) = &self.cloud
            && !clouds.contains(&target.cloud)
        {
            return false;
        }
        if let Some(wanted) = self.privileged
            && (target.grant.is_none() || wanted != target.privileged)
        {
            return false;
        }
        if let Some(kinds) = &self.grant_kind
            && !target
                .grant
                .is_some_and(|grant| kinds.contains(&grant.kind))
        {
            return false;
        }
        if let Some(kinds) = &self.credential
            && !target
                .credential
                .is_some_and(|credential| kinds.contains(&credential.kind))
        {
            return false;
        }
        if let Some(kinds) = &self.principal_kind
            && !target
                .principal
                .is_some_and(|principal| kinds.contains(&principal.kind))
        {
            return false;
        }
        if let Some(scope) = &self.scope
            && !scope.matches_scope(target.scope)
        {
            return false;
        }
        if let Some(principal) = &self.principal
            && !principal.matches_principal(target.principal_id, target.display_name())
        {
            return false;
        }
        if let Some(entitlement) = &self.entitlement {
            let Some(grant) = target.grant else {
                return false;
            };
            let matched = entitlement.is_match(&grant.entitlement)
                || grant
                    .entitlement_id
                    .as_deref()
                    .is_some_and(|id| entitlement.is_match(id));
            if !matched {
                return false;
            }
        }
        self.tags.iter().all(|(key, value)| {
            target
                .principal
                .and_then(|principal| principal.tags.get(key))
                .is_some_and(|tag| value.is_match(tag))
        })
    }
}
