//! The policy language: loading one file or a folder of files, checking it, and compiling it
//! into the form the diff engine evaluates.
//!
//! Errors name file, line and column. Each file is read within [`input::POLICY_LIMIT`] and must
//! be UTF-8; [`syntax`] then checks the YAML text for what serde_yaml accepts silently or cannot
//! read in bounded time (nulls, duplicate and merge keys, deep nesting, alias bombs). Shape and
//! value errors come from serde_yaml (every scalar type parses itself in a visitor, so the
//! position is the offending scalar's); cross-entry errors (duplicate rule ids, an exception
//! naming a missing rule, a scope or declaration whose ids contradict each other) are positioned
//! with [`locate::Locations`].

mod document;
mod locate;
mod selector;
mod syntax;
mod values;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use lapse_sdk::check::cut;
use lapse_sdk::{Cloud, Timestamp};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use document::{
    AwsScopeDocument, AzureScopeDocument, DeclaredGrantDocument, Defaults, ExceptionDocument,
    GcpScopeDocument, OwnerDocument, PolicyDocument, PrivilegedDocument, RuleAction, RuleDocument,
    RuleSubject, ScopesDocument, SelectorDocument, UnknownAge,
};
pub use selector::{Patterns, Selector, Target};
pub use values::{Duration, MAX_DURATION_SECONDS, OneOrMany, Pattern, PolicyTime, PolicyVersion};

use crate::error::{Diagnostic, Diagnostics, Error, Result};
use crate::finding::{FindingKind, Severity};
use crate::input::{self, InputKind};
use locate::Locations;

/// Where a policy entry is written: reports point at it, SARIF uses it as the location.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct Origin {
    /// The file.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// The entry's path in the document (`rules[2]`).
    pub path: String,
}

/// A `defaults` value and where it is set.
#[derive(Clone, Debug)]
pub struct DefaultValue<T> {
    /// The value.
    pub value: T,
    /// Where the policy sets it.
    pub origin: Origin,
}

/// The effective defaults.
#[derive(Clone, Debug)]
pub struct EffectiveDefaults {
    /// `credential_max_age`.
    pub credential_max_age: Option<DefaultValue<Duration>>,
    /// `credential_max_idle`.
    pub credential_max_idle: Option<DefaultValue<Duration>>,
    /// `grant_max_ttl`.
    pub grant_max_ttl: Option<DefaultValue<Duration>>,
    /// `principal_max_idle`.
    pub principal_max_idle: Option<DefaultValue<Duration>>,
    /// `unknown_age` (hold unless set).
    pub unknown_age: UnknownAge,
    /// `standing_privilege` (revoke unless set).
    pub standing_privilege: RuleAction,
    /// `owner_tags` (`lapse:owner`, `owner` unless set).
    pub owner_tags: Vec<String>,
}

impl Default for EffectiveDefaults {
    fn default() -> Self {
        EffectiveDefaults {
            credential_max_age: None,
            credential_max_idle: None,
            grant_max_ttl: None,
            principal_max_idle: None,
            unknown_age: UnknownAge::Hold,
            standing_privilege: RuleAction::Revoke,
            owner_tags: vec!["lapse:owner".to_owned(), "owner".to_owned()],
        }
    }
}

/// A `privileged` entry.
#[derive(Clone, Debug)]
pub struct PrivilegedEntry {
    /// Entitlement patterns.
    pub entitlement: Patterns,
    /// Clouds it is limited to.
    pub clouds: Option<Vec<Cloud>>,
    /// Where it is written.
    pub origin: Origin,
}

/// A `protect` entry.
#[derive(Clone, Debug)]
pub struct ProtectEntry {
    /// What it protects.
    pub selector: Selector,
    /// Where it is written.
    pub origin: Origin,
}

/// A declared grant.
#[derive(Clone, Debug)]
pub struct DeclaredGrant {
    /// The principal as written.
    pub principal_text: String,
    /// True when `principal_text` is an exact id (no glob): indexed for lookup.
    pub principal_is_literal: bool,
    /// The principal pattern.
    pub principal: Patterns,
    /// The entitlement as written.
    pub entitlement_text: String,
    /// The entitlement pattern.
    pub entitlement: Patterns,
    /// The cloud, given or inferred from the ids.
    pub cloud: Option<Cloud>,
    /// Scope pattern.
    pub scope: Option<Patterns>,
    /// Resource pattern.
    pub resource: Option<Patterns>,
    /// Owner.
    pub owner: Option<String>,
    /// Ticket.
    pub ticket: Option<String>,
    /// Approver.
    pub approved_by: Option<String>,
    /// Reason.
    pub reason: Option<String>,
    /// Expiry.
    pub expires: Option<Timestamp>,
    /// Time-to-live per grant.
    pub max_ttl: Option<Duration>,
    /// Where it is written.
    pub origin: Origin,
}

/// A rule.
#[derive(Clone, Debug)]
pub struct Rule {
    /// Id.
    pub id: String,
    /// Description.
    pub description: Option<String>,
    /// What its limits measure.
    pub subject: RuleSubject,
    /// What it applies to.
    pub selector: Selector,
    /// Grants: TTL.
    pub max_ttl: Option<Duration>,
    /// Credentials: maximum age.
    pub max_age: Option<Duration>,
    /// Credentials or principals: maximum idle time.
    pub max_idle: Option<Duration>,
    /// Credentials: the grace period after lapse deactivated one, before it is deleted.
    pub delete_after: Option<Duration>,
    /// Grants: unknown age handling.
    pub unknown_age: Option<UnknownAge>,
    /// What to do.
    pub action: RuleAction,
    /// Severity override.
    pub severity: Option<Severity>,
    /// Where it is written.
    pub origin: Origin,
}

/// An exception.
#[derive(Clone, Debug)]
pub struct Exception {
    /// The rule it waives.
    pub rule: Option<String>,
    /// The finding kind it waives.
    pub kind: Option<FindingKind>,
    /// The principal as written.
    pub principal_text: String,
    /// Principal pattern.
    pub principal: Patterns,
    /// Entitlement pattern.
    pub entitlement: Option<Patterns>,
    /// Credential id pattern.
    pub credential: Option<Patterns>,
    /// Until.
    pub until: Timestamp,
    /// Approver.
    pub approved_by: String,
    /// Reason.
    pub reason: String,
    /// Ticket.
    pub ticket: Option<String>,
    /// Where it is written.
    pub origin: Origin,
}

/// An owner entry.
#[derive(Clone, Debug)]
pub struct OwnerEntry {
    /// Principal pattern.
    pub principal: Patterns,
    /// The owner.
    pub owner: String,
    /// Where it is written.
    pub origin: Origin,
}

/// A checked, compiled policy.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    /// The files it was read from, in order.
    pub files: Vec<PathBuf>,
    /// SHA-256 over the files' contents, in merge order.
    pub digest: String,
    /// Scopes to scan.
    pub scopes: ScopesDocument,
    /// Defaults.
    pub defaults: EffectiveDefaults,
    /// Extra privileged entitlements.
    pub privileged: Vec<PrivilegedEntry>,
    /// Protected principals.
    pub protect: Vec<ProtectEntry>,
    /// Declared grants.
    pub grants: Vec<DeclaredGrant>,
    /// Rules.
    pub rules: Vec<Rule>,
    /// Exceptions.
    pub exceptions: Vec<Exception>,
    /// Owners.
    pub owners: Vec<OwnerEntry>,
}

impl Policy {
    /// True when the policy declares nothing and has no rules: a plan from it would revoke
    /// everything undeclared, which is almost never what was meant.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.grants.is_empty() && self.rules.is_empty() && self.protect.is_empty()
    }
}

/// Loads a policy file, or every `*.yaml`/`*.yml` file under a folder (sorted by path), merged.
///
/// # Errors
/// [`Error::Read`] when a file cannot be read, [`Error::TooLarge`] past
/// [`input::POLICY_LIMIT`], [`Error::NotUtf8`] at the first byte that is not UTF-8,
/// [`Error::EmptyPolicyFolder`] for a folder with no policy file, [`Error::Policy`] with every
/// problem found, each with file, line and column.
pub fn load(path: &Path) -> Result<Policy> {
    let metadata = std::fs::metadata(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })?;
    let files = if metadata.is_dir() {
        let mut files = Vec::new();
        collect_policy_files(path, &mut files, &mut HashSet::new())?;
        if files.is_empty() {
            return Err(Error::EmptyPolicyFolder {
                path: path.to_owned(),
            });
        }
        files
    } else {
        vec![path.to_owned()]
    };
    let mut sources = Vec::with_capacity(files.len());
    for file in files {
        let bytes = input::read(&file, InputKind::Policy)?;
        let text = input::text(&file, bytes)?;
        sources.push((file, text));
    }
    from_sources(&sources)
}

/// Collects policy files under `folder`, in path order. Symbolic links are followed (a shared
/// file linked into several folders is common), but each folder and file is taken once by its
/// real path: a link back to a parent would otherwise read the same files again, forty levels
/// deep, until the system refused the path.
fn collect_policy_files(
    folder: &Path,
    files: &mut Vec<PathBuf>,
    seen: &mut HashSet<PathBuf>,
) -> Result<()> {
    let read_error = |source| Error::Read {
        path: folder.to_owned(),
        source,
    };
    if !seen.insert(std::fs::canonicalize(folder).map_err(read_error)?) {
        return Ok(());
    }
    let mut entries = std::fs::read_dir(folder)
        .map_err(read_error)?
        .map(|entry| entry.map(|entry| entry.path()))
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(read_error)?;
    entries.sort();
    for entry in entries {
        let hidden = entry
            .file_name()
            .is_some_and(|name| name.to_string_lossy().starts_with('.'));
        if hidden {
            continue;
        }
        if entry.is_dir() {
            collect_policy_files(&entry, files, seen)?;
        } else if entry
            .extension()
            .is_some_and(|extension| extension == "yaml" || extension == "yml")
        {
            let real = std::fs::canonicalize(&entry).map_err(|source| Error::Read {
                path: entry.clone(),
                source,
            })?;
            if seen.insert(real) {
                files.push(entry);
            }
        }
    }
    Ok(())
}

/// Parses and checks policy sources given as (file name, text) pairs, merged in order.
///
/// # Errors
/// [`Error::Policy`] with every problem found.
pub fn from_sources(sources: &[(PathBuf, String)]) -> Result<Policy> {
    let mut diagnostics = Vec::new();
    let mut parsed = Vec::new();
    for (file, text) in sources {
        // YAML allows a byte-order mark at the start (editors on Windows write one); positions
        // are the same without it.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        if let Err(error) = syntax::check(text) {
            diagnostics.push(Diagnostic {
                file: file.clone(),
                line: error.line,
                column: error.column,
                message: cut(error.message),
            });
            continue;
        }
        match serde_yaml::from_str::<PolicyDocument>(text) {
            Ok(document) => parsed.push((file, text, document)),
            Err(error) => diagnostics.push(yaml_diagnostic(file, &error)),
        }
    }
    if !diagnostics.is_empty() {
        return Err(Error::Policy {
            diagnostics: Diagnostics(diagnostics),
        });
    }
    let mut builder = Builder::default();
    for (file, text, document) in parsed {
        builder.add(file, text, document);
    }
    builder.finish(sources)
}

/// Turns a serde_yaml error into a diagnostic, moving its position out of the message.
fn yaml_diagnostic(file: &Path, error: &serde_yaml::Error) -> Diagnostic {
    let (line, column) = error
        .location()
        .map_or((1, 1), |location| (location.line(), location.column()));
    let mut message = error.to_string();
    if let Some(cut) = message.rfind(" at line ") {
        message.truncate(cut);
    }
    Diagnostic {
        file: file.to_owned(),
        line,
        column,
        message: cut(explain(message)),
    }
}

/// Adds the hint a person needs to a few terse serde messages.
fn explain(message: String) -> String {
    if message.contains("unknown field") {
        format!(
            "{message} (check the spelling; unknown keys are refused so that a typo cannot silently disable a rule)"
        )
    } else if message.ends_with("missing field `version`") || message == "missing field `version`" {
        format!("{message}: a policy starts with `version: 1`")
    } else {
        message
    }
}

/// Reserved rule id that names the `defaults` section in exceptions.
const DEFAULTS_RULE: &str = "defaults";

#[derive(Default)]
struct Builder {
    policy: Policy,
    diagnostics: Vec<Diagnostic>,
    rule_ids: HashMap<String, Origin>,
    default_origins: BTreeMap<&'static str, Origin>,
    exceptions_to_check: Vec<(Origin, String)>,
}

struct FileContext<'a> {
    file: &'a Path,
    locations: Locations,
}

impl FileContext<'_> {
    fn origin(&self, path: &str) -> Origin {
        let (line, column) = self.locations.find(path);
        Origin {
            file: self.file.display().to_string(),
            line,
            column,
            path: path.to_owned(),
        }
    }

    fn diagnostic(&self, path: &str, message: impl Into<String>) -> Diagnostic {
        let (line, column) = self.locations.find(path);
        Diagnostic {
            file: self.file.to_owned(),
            line,
            column,
            message: cut(message.into()),
        }
    }
}

impl Builder {
    fn add(&mut self, file: &Path, text: &str, document: PolicyDocument) {
        let context = FileContext {
            file,
            locations: Locations::of(text),
        };
        self.policy.files.push(file.to_owned());
        let PolicyDocument {
            version: _,
            scopes,
            defaults,
            privileged,
            protect,
            grants,
            rules,
            exceptions,
            owners,
        } = document;
        self.check_scopes(&context, &scopes);
        self.policy.scopes.aws.extend(scopes.aws);
        self.policy.scopes.azure.extend(scopes.azure);
        self.policy.scopes.gcp.extend(scopes.gcp);
        self.add_defaults(&context, defaults);
        for (index, entry) in privileged.into_iter().enumerate() {
            self.policy.privileged.push(PrivilegedEntry {
                entitlement: Patterns::new(entry.entitlement.iter()),
                clouds: entry.cloud.map(|clouds| clouds.0),
                origin: context.origin(&format!("privileged[{index}]")),
            });
        }
        for (index, entry) in protect.into_iter().enumerate() {
            let path = format!("protect[{index}]");
            if entry.credential.is_some() {
                self.diagnostics.push(context.diagnostic(
                    &format!("{path}.credential"),
                    "`protect` selects principals and grants; protect the credential's principal instead",
                ));
            }
            if is_empty_selector(&entry) {
                self.diagnostics.push(context.diagnostic(
                    &path,
                    "an empty `protect` entry would protect everything: give a principal, tags or another key",
                ));
            }
            self.policy.protect.push(ProtectEntry {
                selector: Selector::compile(&entry),
                origin: context.origin(&path),
            });
        }
        for (index, entry) in grants.into_iter().enumerate() {
            self.add_declared(&context, index, entry);
        }
        for (index, entry) in rules.into_iter().enumerate() {
            self.add_rule(&context, index, entry);
        }
        for (index, entry) in exceptions.into_iter().enumerate() {
            self.add_exception(&context, index, entry);
        }
        for (index, entry) in owners.into_iter().enumerate() {
            let path = format!("owners[{index}]");
            if entry.owner.trim().is_empty() {
                self.diagnostics.push(context.diagnostic(
                    &format!("{path}.owner"),
                    "`owner` is empty: name a team or a person",
                ));
            }
            self.policy.owners.push(OwnerEntry {
                principal: Patterns::one(&entry.principal),
                owner: entry.owner,
                origin: context.origin(&path),
            });
        }
    }

    /// Scope ids go into API paths and into the names of scopes read: each must have its
    /// cloud's shape, and a role to assume must be in the account it reads, or another
    /// account would be read (and its findings reported) under this one's name.
    fn check_scopes(&mut self, context: &FileContext<'_>, scopes: &ScopesDocument) {
        let plain = |text: &str| {
            !text.is_empty()
                && text
                    .chars()
                    .all(|character| character.is_ascii_alphanumeric() || "-_.".contains(character))
        };
        for (index, scope) in scopes.aws.iter().enumerate() {
            let path = format!("scopes.aws[{index}]");
            let account = scope.account.as_str();
            if account.len() != 12 || !account.bytes().all(|byte| byte.is_ascii_digit()) {
                self.diagnostics.push(context.diagnostic(
                    &format!("{path}.account"),
                    format!("account `{account}` is not a 12-digit AWS account id (quote it, so YAML keeps leading zeros)"),
                ));
                continue;
            }
            if let Some(role) = &scope.assume_role {
                let role_account = role.split(':').nth(4).unwrap_or_default();
                let is_role = role.starts_with("arn:aws")
                    && role.split(':').nth(2) == Some("iam")
                    && role
                        .split(':')
                        .nth(5)
                        .is_some_and(|rest| rest.starts_with("role/"));
                if !is_role {
                    self.diagnostics.push(context.diagnostic(
                        &format!("{path}.assume_role"),
                        format!(
                            "`{role}` is not an IAM role ARN (arn:aws:iam::{account}:role/NAME)"
                        ),
                    ));
                } else if role_account != account {
                    self.diagnostics.push(context.diagnostic(
                        &format!("{path}.assume_role"),
                        format!(
                            "role `{role}` is in account {role_account}, not in the scope's account {account}: lapse would read account {role_account} under {account}'s name; name the role in {account}"
                        ),
                    ));
                }
            }
        }
        for (index, scope) in scopes.azure.iter().enumerate() {
            let path = format!("scopes.azure[{index}]");
            if !plain(&scope.tenant) {
                self.diagnostics.push(context.diagnostic(
                    &format!("{path}.tenant"),
                    format!(
                        "tenant `{}` is neither a tenant id nor a domain name",
                        scope.tenant
                    ),
                ));
            }
            for subscription in &scope.subscriptions {
                if subscription != "*" && !plain(subscription) {
                    self.diagnostics.push(context.diagnostic(
                        &format!("{path}.subscriptions"),
                        format!(
                            "subscription `{subscription}` is neither a subscription id nor `*`"
                        ),
                    ));
                }
            }
        }
        for (index, scope) in scopes.gcp.iter().enumerate() {
            let path = format!("scopes.gcp[{index}]");
            let given: Vec<(&str, &String)> = [
                ("project", scope.project.as_ref()),
                ("folder", scope.folder.as_ref()),
                ("organization", scope.organization.as_ref()),
            ]
            .into_iter()
            .filter_map(|(key, value)| Some((key, value?)))
            .collect();
            let [(key, value)] = given.as_slice() else {
                self.diagnostics.push(context.diagnostic(
                    &path,
                    "give exactly one of `project`, `folder` or `organization` per entry",
                ));
                continue;
            };
            let valid = if *key == "project" {
                // Project ids, and the older domain-scoped form `example.com:project`.
                value.chars().all(|character| {
                    character.is_ascii_lowercase()
                        || character.is_ascii_digit()
                        || "-.:".contains(character)
                }) && value
                    .chars()
                    .next()
                    .is_some_and(|first| first.is_ascii_lowercase())
            } else {
                !value.is_empty() && value.bytes().all(|byte| byte.is_ascii_digit())
            };
            if !valid {
                self.diagnostics.push(context.diagnostic(
                    &format!("{path}.{key}"),
                    if *key == "project" {
                        format!("project `{value}` is not a project id (lowercase letters, digits and hyphens)")
                    } else {
                        format!("{key} `{value}` is not a numeric {key} id")
                    },
                ));
            }
        }
    }

    fn set_default<T: Clone>(
        &mut self,
        context: &FileContext<'_>,
        key: &'static str,
        value: Option<T>,
    ) -> Option<DefaultValue<T>> {
        let value = value?;
        let path = format!("defaults.{key}");
        let origin = context.origin(&path);
        if let Some(first) = self.default_origins.get(key) {
            self.diagnostics.push(context.diagnostic(
                &path,
                format!(
                    "`defaults.{key}` is already set at {}:{}:{}; set each default in one file only",
                    first.file, first.line, first.column
                ),
            ));
            return None;
        }
        self.default_origins.insert(key, origin.clone());
        Some(DefaultValue { value, origin })
    }

    fn add_defaults(&mut self, context: &FileContext<'_>, defaults: Defaults) {
        if let Some(value) =
            self.set_default(context, "credential_max_age", defaults.credential_max_age)
        {
            self.policy.defaults.credential_max_age = Some(value);
        }
        if let Some(value) =
            self.set_default(context, "credential_max_idle", defaults.credential_max_idle)
        {
            self.policy.defaults.credential_max_idle = Some(value);
        }
        if let Some(value) = self.set_default(context, "grant_max_ttl", defaults.grant_max_ttl) {
            self.policy.defaults.grant_max_ttl = Some(value);
        }
        if let Some(value) =
            self.set_default(context, "principal_max_idle", defaults.principal_max_idle)
        {
            self.policy.defaults.principal_max_idle = Some(value);
        }
        if let Some(value) = self.set_default(context, "unknown_age", defaults.unknown_age) {
            self.policy.defaults.unknown_age = value.value;
        }
        if let Some(value) =
            self.set_default(context, "standing_privilege", defaults.standing_privilege)
        {
            if !matches!(value.value, RuleAction::Revoke | RuleAction::Report) {
                self.diagnostics.push(context.diagnostic(
                    "defaults.standing_privilege",
                    "`standing_privilege` is `revoke` or `report`",
                ));
            }
            self.policy.defaults.standing_privilege = value.value;
        }
        if let Some(value) = self.set_default(context, "owner_tags", defaults.owner_tags) {
            self.policy.defaults.owner_tags = value.value;
        }
    }

    fn add_declared(
        &mut self,
        context: &FileContext<'_>,
        index: usize,
        entry: DeclaredGrantDocument,
    ) {
        let path = format!("grants[{index}]");
        if let Some(message) = outside_scope(&entry) {
            self.diagnostics
                .push(context.diagnostic(&format!("{path}.scope"), message));
        }
        let cloud = entry
            .cloud
            .or_else(|| infer_cloud(&entry.principal.0, &entry.entitlement.0));
        self.policy.grants.push(DeclaredGrant {
            principal_is_literal: entry.principal.is_literal(),
            principal: Patterns::one(&entry.principal),
            principal_text: entry.principal.0,
            entitlement: Patterns::one(&entry.entitlement),
            entitlement_text: entry.entitlement.0,
            cloud,
            scope: entry.scope.as_ref().map(Patterns::one),
            resource: entry.resource.as_ref().map(Patterns::one),
            owner: entry.owner,
            ticket: entry.ticket,
            approved_by: entry.approved_by,
            reason: entry.reason,
            expires: entry.expires.map(|time| time.0),
            max_ttl: entry.max_ttl,
            origin: context.origin(&path),
        });
    }

    fn add_rule(&mut self, context: &FileContext<'_>, index: usize, entry: RuleDocument) {
        let path = format!("rules[{index}]");
        let origin = context.origin(&path);
        let id = entry.id.trim().to_owned();
        let id_path = format!("{path}.id");
        if id.is_empty()
            || !id
                .chars()
                .all(|character| character.is_ascii_alphanumeric() || "-_.".contains(character))
        {
            self.diagnostics.push(context.diagnostic(
                &id_path,
                format!("rule id `{id}` must be non-empty letters, digits, `-`, `_` or `.`"),
            ));
        } else if id == DEFAULTS_RULE {
            self.diagnostics.push(context.diagnostic(
                &id_path,
                "rule id `defaults` is reserved for the `defaults` section: choose another id",
            ));
        } else if let Some(first) = self.rule_ids.get(&id) {
            self.diagnostics.push(context.diagnostic(
                &id_path,
                format!(
                    "rule id `{id}` is already used at {}:{}:{}; rule ids must be unique",
                    first.file, first.line, first.column
                ),
            ));
        } else {
            self.rule_ids.insert(id.clone(), origin.clone());
        }

        let selector_document = entry.selector.clone().unwrap_or_default();
        let selector = Selector::compile(&selector_document);
        let subject = match entry.subject {
            Some(subject) => Some(subject),
            None if entry.max_ttl.is_some() => Some(RuleSubject::Grants),
            None if entry.max_age.is_some() || selector.is_about_credentials() => {
                Some(RuleSubject::Credentials)
            }
            None => None,
        };
        let Some(subject) = subject else {
            self.diagnostics.push(context.diagnostic(
                &path,
                format!("rule `{id}`: cannot tell what it applies to; add `subject: grants`, `subject: credentials` or `subject: principals`"),
            ));
            return;
        };
        let (needs, allowed_actions, default_action): (&str, &[RuleAction], RuleAction) =
            match subject {
                RuleSubject::Grants => (
                    "max_ttl",
                    &[RuleAction::Revoke, RuleAction::Report],
                    RuleAction::Revoke,
                ),
                RuleSubject::Credentials => (
                    "max_age or max_idle",
                    &[
                        RuleAction::Deactivate,
                        RuleAction::Delete,
                        RuleAction::Report,
                    ],
                    RuleAction::Deactivate,
                ),
                RuleSubject::Principals => (
                    "max_idle",
                    &[RuleAction::Disable, RuleAction::Report],
                    RuleAction::Report,
                ),
            };
        let has_limit = match subject {
            RuleSubject::Grants => entry.max_ttl.is_some(),
            RuleSubject::Credentials => entry.max_age.is_some() || entry.max_idle.is_some(),
            RuleSubject::Principals => entry.max_idle.is_some(),
        };
        if !has_limit {
            self.diagnostics.push(context.diagnostic(
                &path,
                format!(
                    "rule `{id}` applies to {} but sets no limit: add {needs}",
                    subject_name(subject)
                ),
            ));
        }
        let misplaced: &[(&str, bool)] = match subject {
            RuleSubject::Grants => &[
                ("max_age", entry.max_age.is_some()),
                ("max_idle", entry.max_idle.is_some()),
                ("delete_after", entry.delete_after.is_some()),
            ],
            RuleSubject::Credentials => &[
                ("max_ttl", entry.max_ttl.is_some()),
                ("unknown_age", entry.unknown_age.is_some()),
            ],
            RuleSubject::Principals => &[
                ("max_ttl", entry.max_ttl.is_some()),
                ("max_age", entry.max_age.is_some()),
                ("delete_after", entry.delete_after.is_some()),
            ],
        };
        for &(key, present) in misplaced {
            if present {
                self.diagnostics.push(context.diagnostic(
                    &format!("{path}.{key}"),
                    format!(
                        "`{key}` does not apply to {}; this rule applies to {} (see `subject`)",
                        subject_name(subject),
                        subject_name(subject)
                    ),
                ));
            }
        }
        if subject != RuleSubject::Credentials && selector.is_about_credentials() {
            self.diagnostics.push(context.diagnostic(
                &format!("{path}.match.credential"),
                format!(
                    "`match.credential` selects credentials but this rule applies to {}",
                    subject_name(subject)
                ),
            ));
        }
        if subject != RuleSubject::Grants && selector.is_about_grants() {
            self.diagnostics.push(context.diagnostic(
                &format!("{path}.match"),
                format!("`match.entitlement` and `match.privileged` select grants but this rule applies to {}", subject_name(subject)),
            ));
        }
        let action = entry.action.unwrap_or(default_action);
        if !allowed_actions.contains(&action) {
            let names: Vec<&str> = allowed_actions
                .iter()
                .map(|action| action_name(*action))
                .collect();
            self.diagnostics.push(context.diagnostic(
                &format!("{path}.action"),
                format!(
                    "action `{}` does not apply to {}: expected one of {}",
                    action_name(action),
                    subject_name(subject),
                    names.join(", ")
                ),
            ));
        }
        self.policy.rules.push(Rule {
            id,
            description: entry.description,
            subject,
            selector,
            max_ttl: entry.max_ttl,
            max_age: entry.max_age,
            max_idle: entry.max_idle,
            delete_after: entry.delete_after,
            unknown_age: entry.unknown_age,
            action,
            severity: entry.severity,
            origin,
        });
    }

    fn add_exception(&mut self, context: &FileContext<'_>, index: usize, entry: ExceptionDocument) {
        let path = format!("exceptions[{index}]");
        if entry.rule.is_none() && entry.kind.is_none() {
            self.diagnostics.push(context.diagnostic(
                &path,
                "an exception must say what it waives: add `rule: <rule id>` or `kind: <finding kind>`",
            ));
        }
        for (key, value) in [
            ("approved_by", &entry.approved_by),
            ("reason", &entry.reason),
        ] {
            if value.trim().is_empty() {
                self.diagnostics.push(context.diagnostic(
                    &format!("{path}.{key}"),
                    format!("`{key}` is empty: a waiver needs an approver and a reason an auditor can read"),
                ));
            }
        }
        if let Some(rule) = &entry.rule {
            self.exceptions_to_check
                .push((context.origin(&format!("{path}.rule")), rule.clone()));
        }
        self.policy.exceptions.push(Exception {
            rule: entry.rule,
            kind: entry.kind,
            principal: Patterns::one(&entry.principal),
            principal_text: entry.principal.0,
            entitlement: entry.entitlement.as_ref().map(Patterns::one),
            credential: entry.credential.as_ref().map(Patterns::one),
            until: entry.until.0,
            approved_by: entry.approved_by,
            reason: entry.reason,
            ticket: entry.ticket,
            origin: context.origin(&path),
        });
    }

    fn finish(mut self, sources: &[(PathBuf, String)]) -> Result<Policy> {
        for (origin, rule) in std::mem::take(&mut self.exceptions_to_check) {
            if rule != DEFAULTS_RULE && !self.rule_ids.contains_key(&rule) {
                let mut known: Vec<&str> = self.rule_ids.keys().map(String::as_str).collect();
                known.sort_unstable();
                known.push(DEFAULTS_RULE);
                self.diagnostics.push(Diagnostic {
                    file: PathBuf::from(&origin.file),
                    line: origin.line,
                    column: origin.column,
                    message: format!(
                        "exception names rule `{rule}`, which no policy file defines: expected one of {}",
                        known.join(", ")
                    ),
                });
            }
        }
        if !self.diagnostics.is_empty() {
            return Err(Error::Policy {
                diagnostics: Diagnostics(self.diagnostics),
            });
        }
        // Contents in merge order only: the same policy checked out anywhere has the same
        // digest, so a saved plan can be matched to it on another machine.
        let mut hasher = Sha256::new();
        for (_, text) in sources {
            hasher.update(text.as_bytes());
            hasher.update([0]);
        }
        self.policy.digest = format!("sha256:{}", hex::encode(hasher.finalize()));
        Ok(self.policy)
    }
}

/// A declaration whose literal ids lie outside its literal scope can never match anything:
/// an AWS principal of another account, a Google resource in another container.
fn outside_scope(entry: &DeclaredGrantDocument) -> Option<String> {
    let scope = entry.scope.as_ref().filter(|scope| scope.is_literal())?;
    let scope = scope
        .0
        .split_once(':')
        .map_or(scope.0.as_str(), |(prefix, rest)| {
            if ["aws", "azure", "gcp"].contains(&prefix) {
                rest
            } else {
                scope.0.as_str()
            }
        });
    let principal = &entry.principal;
    if principal.is_literal() && principal.0.starts_with("arn:aws") {
        let account = principal.0.split(':').nth(4).unwrap_or_default();
        if scope.len() == 12 && scope.bytes().all(|byte| byte.is_ascii_digit()) && account != scope
        {
            return Some(format!(
                "principal `{principal}` is in account {account}, outside the declared scope {scope}: this declaration can never match; fix the scope or the principal"
            ));
        }
    }
    let resource = entry
        .resource
        .as_ref()
        .filter(|resource| resource.is_literal())?;
    let containers = ["projects/", "folders/", "organizations/"];
    let inside = resource.0 == scope
        || resource
            .0
            .strip_prefix(scope)
            .is_some_and(|rest| rest.starts_with('/'));
    if containers.iter().any(|prefix| scope.starts_with(prefix)) && !inside {
        return Some(format!(
            "resource `{resource}` is outside the declared scope {scope}: this declaration can never match; fix the scope or the resource"
        ));
    }
    None
}

fn is_empty_selector(selector: &SelectorDocument) -> bool {
    selector.cloud.is_none()
        && selector.scope.is_none()
        && selector.principal.is_none()
        && selector.principal_kind.is_none()
        && selector.entitlement.is_none()
        && selector.credential.is_none()
        && selector.privileged.is_none()
        && selector.tags.is_none()
}

fn subject_name(subject: RuleSubject) -> &'static str {
    match subject {
        RuleSubject::Grants => "grants",
        RuleSubject::Credentials => "credentials",
        RuleSubject::Principals => "principals",
    }
}

fn action_name(action: RuleAction) -> &'static str {
    match action {
        RuleAction::Revoke => "revoke",
        RuleAction::Deactivate => "deactivate",
        RuleAction::Disable => "disable",
        RuleAction::Delete => "delete",
        RuleAction::Report => "report",
    }
}

/// The cloud a declaration is about, from the shape of its ids, so that `declared-missing` is
/// only judged against scopes of that cloud.
fn infer_cloud(principal: &str, entitlement: &str) -> Option<Cloud> {
    let either = |test: &dyn Fn(&str) -> bool| test(principal) || test(entitlement);
    if either(&|text| text.starts_with("arn:aws")) {
        Some(Cloud::Aws)
    } else if entitlement.starts_with("roles/")
        || entitlement.starts_with("projects/")
        || entitlement.starts_with("organizations/")
        || ["serviceAccount:", "user:", "group:", "domain:"]
            .iter()
            .any(|prefix| principal.starts_with(prefix))
    {
        Some(Cloud::Gcp)
    } else if either(&|text| {
        text.starts_with("/subscriptions/") || text.starts_with("/providers/") || is_guid(text)
    }) {
        Some(Cloud::Azure)
    } else {
        None
    }
}

fn is_guid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups.iter().zip([8, 4, 4, 4, 12]).all(|(group, length)| {
            group.len() == length && group.chars().all(|c| c.is_ascii_hexdigit())
        })
}

/// The JSON Schema of the policy language, for editors.
#[must_use]
pub fn json_schema() -> schemars::Schema {
    schemars::schema_for!(PolicyDocument)
}

#[cfg(test)]
mod tests;
