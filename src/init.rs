//! `lapse init`: a starter policy that adopts today's estate.
//!
//! Every live grant is declared (with the owner the cloud knows, if any), the hygiene defaults of
//! the baseline pack are set, and whatever those defaults would flag today is waived for a
//! review period by a named, dated exception. Planning the same snapshot with the result at the
//! same instant finds no open drift; tightening starts from there.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use lapse_sdk::{GrantKind, Snapshot, Timestamp};

use crate::diff::{self, Memory};
use crate::finding::{FindingKind, SubjectType};
use crate::policy::{
    DeclaredGrantDocument, Defaults, Duration, ExceptionDocument, Pattern, Policy, PolicyDocument,
    PolicyTime, PolicyVersion, UnknownAge,
};

/// What `init` needs to know besides the snapshot.
#[derive(Clone, Debug)]
pub struct InitOptions {
    /// The instant of adoption.
    pub now: Timestamp,
    /// How long adoption waivers last.
    pub review_period: Duration,
}

/// The approver written on adoption waivers, so that they are recognisable in reports.
pub const ADOPTION_APPROVER: &str = "lapse init (adoption baseline)";

/// Builds the starter policy document.
#[must_use]
pub fn starter_policy(snapshot: &Snapshot, options: &InitOptions) -> PolicyDocument {
    let defaults = Defaults {
        credential_max_age: Some(Duration::from_seconds(90 * 86_400)),
        credential_max_idle: Some(Duration::from_seconds(45 * 86_400)),
        grant_max_ttl: None,
        principal_max_idle: Some(Duration::from_seconds(90 * 86_400)),
        unknown_age: Some(UnknownAge::Hold),
        standing_privilege: None,
        owner_tags: None,
    };
    let adopted_on = options.now.as_offset().date();

    let owners: std::collections::HashMap<&str, &str> = snapshot
        .principals
        .iter()
        .filter_map(|principal| Some((principal.id.as_str(), principal.owner.as_deref()?)))
        .collect();
    let mut seen = BTreeSet::new();
    let mut grants = Vec::new();
    for grant in &snapshot.grants {
        // Group membership of the Google kind does not exist; everything else is declared as is.
        let key = (
            grant.principal.as_str(),
            grant.entitlement.as_str(),
            grant.kind == GrantKind::PimEligible,
        );
        if !seen.insert(key) {
            continue;
        }
        grants.push(DeclaredGrantDocument {
            principal: Pattern(literal(grant.principal.as_str())),
            entitlement: Pattern(literal(&grant.entitlement)),
            cloud: Some(grant.cloud),
            scope: None,
            resource: None,
            owner: owners
                .get(grant.principal.as_str())
                .map(|owner| (*owner).to_owned()),
            ticket: None,
            approved_by: None,
            reason: Some(format!("existing at adoption on {adopted_on}")),
            expires: None,
            max_ttl: None,
        });
    }

    let mut document = PolicyDocument {
        version: PolicyVersion,
        scopes: crate::policy::ScopesDocument::default(),
        defaults,
        privileged: Vec::new(),
        protect: Vec::new(),
        grants,
        rules: Vec::new(),
        exceptions: Vec::new(),
        owners: Vec::new(),
    };

    // Whatever the defaults flag today is waived for the review period, one subject at a time.
    let until = PolicyTime(options.now.plus_seconds(options.review_period.seconds()));
    let policy = compile(&document);
    let evaluation = diff::evaluate(snapshot, &policy, &Memory::default(), options.now);
    let mut waived = BTreeSet::new();
    for finding in &evaluation.findings {
        if finding.kind == FindingKind::DeclaredMissing
            || finding.kind == FindingKind::ExceptionExpired
        {
            continue;
        }
        let subject = &finding.subject;
        let credential =
            (subject.subject_type == SubjectType::Credential).then(|| subject.id.clone());
        let entitlement = subject.entitlement.clone();
        if !waived.insert((
            finding.kind,
            subject.principal.0.clone(),
            credential.clone(),
            entitlement.clone(),
        )) {
            continue;
        }
        document.exceptions.push(ExceptionDocument {
            rule: None,
            kind: Some(finding.kind),
            principal: Pattern(literal(subject.principal.as_str())),
            entitlement: entitlement.map(|value| Pattern(literal(&value))),
            credential: credential.map(|value| Pattern(literal(&value))),
            until,
            approved_by: ADOPTION_APPROVER.to_owned(),
            reason: format!("existing at adoption on {adopted_on}: review and fix or re-approve"),
            ticket: None,
        });
    }
    document
}

/// The document as YAML, with a header saying what it is.
#[must_use]
pub fn to_yaml(document: &PolicyDocument, options: &InitOptions) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "# Starter policy written by `lapse init` on {}.",
        options.now.as_offset().date()
    );
    let _ = writeln!(
        text,
        "# It declares every grant that existed then, so the first plan is clean. Next:"
    );
    let _ = writeln!(
        text,
        "#   1. add owner, ticket and approved_by to the declarations you keep; delete the rest;"
    );
    let _ = writeln!(
        text,
        "#   2. give privileged declarations an `expires` or a `max_ttl`;"
    );
    let _ = writeln!(
        text,
        "#   3. resolve the adoption exceptions before they run out ({} from adoption).",
        options.review_period
    );
    text.push_str(&serde_yaml::to_string(document).unwrap_or_default());
    text
}

/// Glob metacharacters in ids are escaped so a declaration matches exactly that id.
fn literal(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        if matches!(character, '*' | '?' | '[' | ']' | '{' | '}' | '\\') {
            escaped.push('\\');
        }
        escaped.push(character);
    }
    escaped
}

/// Compiles a generated document by round-tripping it through the loader, so `init` judges
/// exactly what a later `plan` will read.
fn compile(document: &PolicyDocument) -> Policy {
    let text = serde_yaml::to_string(document).unwrap_or_default();
    crate::policy::from_sources(&[(std::path::PathBuf::from("init.yaml"), text)])
        .unwrap_or_default()
}
