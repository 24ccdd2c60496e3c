//! Synthetic estate generator: writes snapshot files and a matching policy, for benchmarks.
//!
//! ```text
//! cargo run --release --example gen-estate -- --principals 100000 --grants 1000000 \
//!     --credentials 200000 --files 10 --out bench-estate --seed 1
//! ```
//!
//! The estate is split into scopes (AWS accounts, Azure subscriptions, Google Cloud projects in
//! turn, 10 by default), written to `DIR/estate-NN.json` like a CI matrix would (scopes are dealt
//! round-robin to the files, so `--files 1` writes the very same estate into one file), plus
//! `DIR/policy.yaml`: defaults, about 200 declared grants (mostly literal, a few globs that cover
//! the estate's standard access), 8 rules, about 50 exceptions and a few `protect` entries.
//!
//! Output is a pure function of the arguments: a splitmix64 generator seeded per scope and per
//! pass keeps it reproducible whatever the number of files. Records are streamed to disk one at a
//! time, so the generator holds at most one scope's principals in memory.

#![allow(clippy::print_stdout, clippy::print_stderr, clippy::unwrap_used)]

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use lapse_sdk::{
    Cloud, Condition, Credential, CredentialId, CredentialKind, CredentialStatus, ExpirySource,
    Grant, GrantId, GrantKind, Principal, PrincipalId, PrincipalKind, SNAPSHOT_FORMAT,
    SNAPSHOT_VERSION, ScopeId, ScopeKind, ScopeStatus, Timestamp, Usage, Via,
};

const MINUTE: i64 = 60;
const HOUR: i64 = 3_600;
const DAY: i64 = 86_400;

const USAGE: &str = "usage: gen-estate [--principals N] [--grants N] [--credentials N] [--files N] \
[--scopes N] [--out DIR] [--seed N] [--now RFC3339]";

// ---------------------------------------------------------------------------------------------
// Arguments

struct Args {
    principals: usize,
    grants: usize,
    credentials: usize,
    files: usize,
    scopes: usize,
    out: PathBuf,
    seed: u64,
    now: i64,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        principals: 10_000,
        grants: 100_000,
        credentials: 20_000,
        files: 10,
        scopes: 0,
        out: PathBuf::from("estate"),
        seed: 1,
        now: Timestamp::parse_rfc3339("2026-11-20T06:00:00Z")
            .map_err(|error| error.to_string())?
            .unix_seconds(),
    };
    let mut iter = std::env::args().skip(1);
    while let Some(flag) = iter.next() {
        if flag == "-h" || flag == "--help" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let value = iter
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let number = || {
            value
                .replace('_', "")
                .parse::<u64>()
                .map_err(|_| format!("{flag}: `{value}` is not a number"))
        };
        match flag.as_str() {
            "--principals" => args.principals = number()? as usize,
            "--grants" => args.grants = number()? as usize,
            "--credentials" => args.credentials = number()? as usize,
            "--files" => args.files = (number()? as usize).max(1),
            "--scopes" => args.scopes = number()? as usize,
            "--seed" => args.seed = number()?,
            "--out" => args.out = PathBuf::from(&value),
            "--now" => {
                args.now = Timestamp::parse_rfc3339(&value)
                    .map_err(|error| error.to_string())?
                    .unix_seconds();
            }
            _ => return Err(format!("unknown argument `{flag}`\n{USAGE}")),
        }
    }
    if args.scopes == 0 {
        args.scopes = args.files.max(10);
    }
    args.scopes = args.scopes.max(args.files);
    Ok(args)
}

// ---------------------------------------------------------------------------------------------
// Deterministic randomness

/// The splitmix64 finalizer: a bijection on u64, so distinct inputs give distinct outputs.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

struct Rng(u64);

impl Rng {
    fn new(seed: u64, scope: usize, pass: u64) -> Self {
        Rng(mix(mix(seed ^ 0x5EED) ^ mix((scope as u64) << 8 | pass)))
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn f64(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn chance(&mut self, p: f64) -> bool {
        self.f64() < p
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
    fn range(&mut self, low: i64, high: i64) -> i64 {
        if high <= low {
            low
        } else {
            low + (self.next() % (high - low) as u64) as i64
        }
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Unique ids: for a fixed `tag`, distinct `n` give distinct values.
struct Ids {
    key: u64,
}

impl Ids {
    fn new(seed: u64) -> Self {
        Ids {
            key: mix(seed ^ 0x1D5_1D5),
        }
    }
    fn u64(&self, tag: u64, n: u64) -> u64 {
        mix(n.wrapping_add(mix(self.key ^ tag)))
    }
    fn guid(&self, tag: u64, n: u64) -> String {
        let hi = self.u64(tag, n);
        let lo = self.u64(tag ^ 0xABCD_0000, n);
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            hi >> 32,
            (hi >> 16) & 0xffff,
            hi & 0xfff,
            0x8000 | (lo >> 48) & 0x3fff,
            lo & 0xffff_ffff_ffff
        )
    }
    /// AWS-style key id: a prefix and 16 base-32 characters, the first 13 encoding `u64` exactly.
    fn aws_key(&self, prefix: &str, tag: u64, n: u64) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        let value = self.u64(tag, n);
        let extra = self.u64(tag ^ 0x77, n);
        let mut text = String::from(prefix);
        for index in 0..13 {
            text.push(ALPHABET[((value >> (index * 5)) & 31) as usize] as char);
        }
        for index in 0..3 {
            text.push(ALPHABET[((extra >> (index * 5)) & 31) as usize] as char);
        }
        text
    }
}

// ---------------------------------------------------------------------------------------------
// Vocabulary

const FIRST: &[&str] = &[
    "ana", "ben", "chloe", "david", "elena", "farid", "grace", "hugo", "ines", "jonas", "kim",
    "lena", "marco", "nadia", "omar", "paula", "quinn", "rosa", "sven", "tara", "uma", "victor",
    "wen", "xavier", "yara", "zoe", "aiko", "bruno", "carla", "dmitri", "emeka", "fatima",
];
const LAST: &[&str] = &[
    "garcia",
    "smith",
    "muller",
    "rossi",
    "nguyen",
    "kowalski",
    "silva",
    "tanaka",
    "okafor",
    "johansson",
    "dubois",
    "schmidt",
    "lopez",
    "kim",
    "patel",
    "novak",
    "jensen",
    "costa",
    "moreau",
    "ibrahim",
    "wright",
    "fischer",
    "santos",
    "berg",
];
const TEAMS: &[&str] = &[
    "payments",
    "checkout",
    "search",
    "identity",
    "data",
    "ml",
    "platform",
    "mobile",
    "web",
    "billing",
    "fraud",
    "growth",
    "infra",
    "security",
    "analytics",
    "support",
];
const APPS: &[&str] = &[
    "api",
    "worker",
    "ingest",
    "scheduler",
    "gateway",
    "indexer",
    "exporter",
    "etl",
    "cache",
    "notifier",
    "reports",
    "sync",
];
const ENVS: &[&str] = &["prod", "prod", "staging", "dev"];
const GROUP_SUFFIX: &[&str] = &["developers", "readers", "oncall"];
const ADMINS: &[&str] = &["admin.ana", "admin.ben", "admin.chloe", "admin.david"];

const AWS_READ_ONLY: &[&str] = &[
    "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess",
    "arn:aws:iam::aws:policy/AmazonDynamoDBReadOnlyAccess",
    "arn:aws:iam::aws:policy/AmazonSQSReadOnlyAccess",
    "arn:aws:iam::aws:policy/AmazonEC2ReadOnlyAccess",
    "arn:aws:iam::aws:policy/AmazonRDSReadOnlyAccess",
    "arn:aws:iam::aws:policy/AmazonSSMReadOnlyAccess",
];
const AWS_SERVICE_ROLE: &[&str] = &[
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy",
    "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole",
];
const AWS_OFF: &[&str] = &[
    "arn:aws:iam::aws:policy/AmazonS3FullAccess",
    "arn:aws:iam::aws:policy/AmazonEC2FullAccess",
    "arn:aws:iam::aws:policy/AmazonDynamoDBFullAccess",
    "arn:aws:iam::aws:policy/AmazonSQSFullAccess",
    "arn:aws:iam::aws:policy/CloudWatchAgentServerPolicy",
];
const AWS_PRIV: &[&str] = &[
    "arn:aws:iam::aws:policy/AdministratorAccess",
    "arn:aws:iam::aws:policy/PowerUserAccess",
    "arn:aws:iam::aws:policy/IAMFullAccess",
];

/// Azure roles: (name, role definition id).
type Role = (&'static str, &'static str);
const AZ_READER: Role = ("Reader", "acdd72a7-3385-48ef-bd42-f606fba81ae7");
const AZ_OWNER: Role = ("Owner", "8e3af657-a8ff-443c-a75c-2fe8c4bcb635");
const AZ_HUMAN: &[Role] = &[
    AZ_READER,
    ("Monitoring Reader", "43d0d8ad-25c7-4714-9337-8ba259a9fe05"),
    (
        "Log Analytics Reader",
        "73c42c96-874c-492b-b04d-ab87d138a893",
    ),
    (
        "Cost Management Reader",
        "72fafb9e-0641-4937-9268-a91bfd8191a3",
    ),
    (
        "Storage Blob Data Reader",
        "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1",
    ),
    (
        "Website Contributor",
        "de139f84-1756-47ae-9be6-808fbbe84772",
    ),
];
const AZ_WORKLOAD: &[Role] = &[
    AZ_READER,
    (
        "Storage Blob Data Reader",
        "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1",
    ),
    (
        "Storage Blob Data Contributor",
        "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
    ),
    (
        "Key Vault Secrets User",
        "4633458b-17de-408a-b874-0445c86b69e6",
    ),
    ("AcrPull", "7f951dda-4ed3-4680-a7ca-43fe172d538d"),
    (
        "Monitoring Metrics Publisher",
        "3913510d-42f4-4e42-8a64-420c390055eb",
    ),
];
const AZ_GROUP: &[Role] = &[
    AZ_READER,
    (
        "Storage Blob Data Reader",
        "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1",
    ),
    ("Monitoring Reader", "43d0d8ad-25c7-4714-9337-8ba259a9fe05"),
    (
        "Website Contributor",
        "de139f84-1756-47ae-9be6-808fbbe84772",
    ),
];
const AZ_OFF: &[Role] = &[
    (
        "Virtual Machine Contributor",
        "9980e02c-c2be-4d73-94e8-173b1dc7cf3c",
    ),
    (
        "Network Contributor",
        "4d97b98b-1d4f-4787-a291-c67834d212e7",
    ),
    ("SQL DB Contributor", "9b7fa17d-e63e-47b0-bb0a-15c516ac86ec"),
    (
        "Storage Account Contributor",
        "17d1049b-9a84-46fb-8f53-869881c3d3ab",
    ),
    (
        "Key Vault Administrator",
        "00482a5a-887f-4fb3-b363-3b7fe8e74483",
    ),
    (
        "Key Vault Crypto Service Encryption User",
        "e147488a-f6f5-4113-8e2d-b22465e65bf6",
    ),
];
const AZ_PRIV: &[Role] = &[
    AZ_OWNER,
    ("Contributor", "b24988ac-6180-42a0-ab88-20f7382dd24c"),
    (
        "User Access Administrator",
        "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9",
    ),
    (
        "Role Based Access Control Administrator",
        "f58310d9-a9f6-439a-9e8d-f62e7b41a168",
    ),
];

const GCP_SA: &[&str] = &[
    "roles/storage.objectViewer",
    "roles/storage.objectCreator",
    "roles/pubsub.publisher",
    "roles/pubsub.subscriber",
    "roles/logging.logWriter",
    "roles/monitoring.metricWriter",
    "roles/cloudsql.client",
    "roles/secretmanager.secretAccessor",
    "roles/cloudtrace.agent",
    "roles/artifactregistry.reader",
];
const GCP_HUMAN: &[&str] = &[
    "roles/viewer",
    "roles/browser",
    "roles/logging.viewer",
    "roles/monitoring.viewer",
    "roles/bigquery.dataViewer",
    "roles/bigquery.jobUser",
];
const GCP_GROUP: &[&str] = &[
    "roles/viewer",
    "roles/bigquery.jobUser",
    "roles/bigquery.dataViewer",
    "roles/storage.objectViewer",
];
const GCP_OFF: &[&str] = &[
    "roles/compute.instanceAdmin.v1",
    "roles/container.developer",
    "roles/bigquery.dataEditor",
    "roles/run.admin",
    "roles/cloudfunctions.developer",
    "roles/storage.admin",
];
const GCP_PRIV: &[&str] = &[
    "roles/owner",
    "roles/editor",
    "roles/iam.serviceAccountUser",
    "roles/iam.serviceAccountTokenCreator",
    "roles/resourcemanager.projectIamAdmin",
];

/// Share of random grants that are privileged, and that fall outside what the policy declares.
const P_PRIVILEGED: f64 = 0.019;
const P_UNDECLARED: f64 = 0.045;

// ---------------------------------------------------------------------------------------------
// Scopes

struct ScopeDef {
    index: usize,
    cloud: Cloud,
    id: ScopeId,
    kind: ScopeKind,
    /// Account id, subscription id or project id.
    name: String,
    /// Google project number.
    number: String,
    taken_at: i64,
    principals: usize,
    credentials: usize,
    grants: usize,
    principal_offset: usize,
    caller: String,
}

/// Splits `total` into `weights.len()` parts proportional to the weights, summing exactly.
fn split(total: usize, weights: &[f64]) -> Vec<usize> {
    let sum: f64 = weights.iter().sum();
    let mut parts = Vec::with_capacity(weights.len());
    let mut cumulative = 0.0;
    let mut given = 0usize;
    for weight in weights {
        cumulative += weight;
        let upto = if sum > 0.0 {
            ((total as f64) * cumulative / sum).round() as usize
        } else {
            0
        };
        let upto = upto.min(total).max(given);
        parts.push(upto - given);
        given = upto;
    }
    if let Some(last) = parts.last_mut() {
        *last += total - given;
    }
    parts
}

fn scopes(args: &Args, ids: &Ids) -> Vec<ScopeDef> {
    let mut rng = Rng::new(args.seed, usize::MAX, 0);
    let weights: Vec<f64> = (0..args.scopes).map(|_| 0.6 + 0.8 * rng.f64()).collect();
    let principals = split(args.principals, &weights);
    let credentials = split(args.credentials, &weights);
    let grants = split(args.grants, &weights);
    let mut offset = 0;
    (0..args.scopes)
        .map(|index| {
            let cloud = Cloud::ALL[index % 3];
            let serial = index as u64;
            let (name, number, id, kind, caller) = match cloud {
                Cloud::Aws => {
                    let account = format!(
                        "{:08}{:04}",
                        10_000_000 + ids.u64(1, serial) % 89_999_999,
                        index
                    );
                    let caller = format!("arn:aws:iam::{account}:role/lapse-reader");
                    let id = format!("aws:{account}");
                    (account.clone(), account, id, ScopeKind::Account, caller)
                }
                Cloud::Azure => {
                    let subscription = ids.guid(2, serial);
                    let id = format!("azure:/subscriptions/{subscription}");
                    // The caller is the managed identity created among the scope's specials.
                    let caller = ids.guid(100 + serial, 5);
                    (
                        subscription,
                        String::new(),
                        id,
                        ScopeKind::Subscription,
                        caller,
                    )
                }
                Cloud::Gcp => {
                    let project = format!(
                        "acme-{}-{}-{:02}",
                        ENVS[index % ENVS.len()],
                        TEAMS[(index * 5) % TEAMS.len()],
                        index
                    );
                    let number = format!(
                        "{:012}",
                        100_000_000_000 + ids.u64(3, serial) % 800_000_000_000
                    );
                    let caller =
                        format!("serviceAccount:lapse-reader@{project}.iam.gserviceaccount.com");
                    let id = format!("gcp:projects/{project}");
                    (project, number, id, ScopeKind::Project, caller)
                }
            };
            let scope = ScopeDef {
                index,
                cloud,
                id: ScopeId(id),
                kind,
                name,
                number,
                taken_at: args.now - HOUR - (index as i64) * 2 * MINUTE,
                principals: principals[index],
                credentials: credentials[index],
                grants: grants[index],
                principal_offset: offset,
                caller,
            };
            offset += principals[index];
            scope
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// What the policy needs to know about the estate, gathered while generating it

#[derive(Clone)]
struct Declared {
    principal: String,
    entitlement: String,
    cloud: Option<Cloud>,
    scope: Option<String>,
    resource: Option<String>,
    owner: Option<String>,
    ticket: Option<String>,
    approved_by: Option<String>,
    reason: String,
    expires: Option<String>,
    max_ttl: Option<String>,
}

#[derive(Clone)]
struct Waiver {
    rule: Option<String>,
    kind: Option<&'static str>,
    principal: String,
    entitlement: Option<String>,
    credential: Option<String>,
    reason: String,
}

#[derive(Default)]
struct Notes {
    /// Declarations of special grants (admins, deployers): always written.
    declared: Vec<Declared>,
    /// Privileged random grants that could be declared literally.
    privileged: Vec<Declared>,
    /// Candidate waivers, in order of preference.
    waivers: Vec<Waiver>,
}

// ---------------------------------------------------------------------------------------------
// Principals

struct Meta {
    weight: f64,
    team: usize,
    special: bool,
    protected: bool,
    legacy: bool,
}

struct Table {
    principals: Vec<Principal>,
    meta: Vec<Meta>,
}

impl Table {
    fn push(&mut self, principal: Principal, meta: Meta) {
        self.principals.push(principal);
        self.meta.push(meta);
    }
}

fn ts(seconds: i64) -> Timestamp {
    Timestamp::from_unix_seconds(seconds).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn base_principal(scope: &ScopeDef, id: String, kind: PrincipalKind, native: &str) -> Principal {
    Principal {
        unique_id: None,
        id: PrincipalId(id),
        cloud: scope.cloud,
        scope: scope.id.clone(),
        kind,
        native_type: Some(native.to_owned()),
        display_name: None,
        created_at: None,
        last_activity: Usage::Unknown,
        owner: None,
        tags: BTreeMap::new(),
        enabled: true,
        cloud_managed: false,
        federation_available: false,
    }
}

fn special_meta() -> Meta {
    Meta {
        weight: 0.0,
        team: 6,
        special: true,
        protected: false,
        legacy: false,
    }
}

/// The fixed principals of each scope: admins, deployers, lapse's own reader, the cloud's own.
fn specials(scope: &ScopeDef, ids: &Ids, now: i64, table: &mut Table) {
    let created = ts(now - 900 * DAY);
    let active = Usage::At(ts(now - 2 * DAY));
    let add = |mut principal: Principal, table: &mut Table| {
        principal.created_at = Some(created);
        if principal.kind != PrincipalKind::Group {
            principal.last_activity = active;
        }
        if matches!(
            principal.kind,
            PrincipalKind::Workload | PrincipalKind::Role
        ) && !principal.cloud_managed
        {
            principal
                .tags
                .insert("owner".into(), "team-platform".into());
        }
        table.push(principal, special_meta());
    };
    let serial = scope.index as u64;
    match scope.cloud {
        Cloud::Aws => {
            let account = &scope.name;
            let arn = |path: &str| format!("arn:aws:iam::{account}:{path}");
            let mut group = base_principal(
                scope,
                arn("group/platform-admins"),
                PrincipalKind::Group,
                "iam-group",
            );
            group.display_name = Some("platform-admins".into());
            add(group, table);
            for admin in ADMINS {
                let mut human = base_principal(
                    scope,
                    arn(&format!("user/people/{admin}")),
                    PrincipalKind::Human,
                    "iam-user",
                );
                human.display_name = Some((*admin).to_owned());
                human.tags.insert("team".into(), "platform".into());
                add(human, table);
            }
            for (path, native) in [
                ("role/break-glass", "iam-role"),
                ("role/terraform-deployer", "iam-role"),
                ("role/lapse-reader", "iam-role"),
                ("role/OrganizationAccountAccessRole", "iam-role"),
            ] {
                let mut role = base_principal(scope, arn(path), PrincipalKind::Role, native);
                role.display_name = path.rsplit('/').next().map(str::to_owned);
                add(role, table);
            }
            for service in ["ecs", "rds", "elasticloadbalancing"] {
                let name = match service {
                    "ecs" => "AWSServiceRoleForECS",
                    "rds" => "AWSServiceRoleForRDS",
                    _ => "AWSServiceRoleForElasticLoadBalancing",
                };
                let mut role = base_principal(
                    scope,
                    arn(&format!(
                        "role/aws-service-role/{service}.amazonaws.com/{name}"
                    )),
                    PrincipalKind::Role,
                    "iam-role",
                );
                role.cloud_managed = true;
                add(role, table);
            }
            let mut sso = base_principal(
                scope,
                arn(&format!(
                    "role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_AdministratorAccess_{:016x}",
                    ids.u64(10, serial)
                )),
                PrincipalKind::Role,
                "iam-role",
            );
            sso.display_name = Some("AWSReservedSSO_AdministratorAccess".into());
            add(sso, table);
            let mut ci = base_principal(
                scope,
                arn("user/svc/ci-deployer"),
                PrincipalKind::Workload,
                "iam-user",
            );
            ci.display_name = Some("ci-deployer".into());
            add(ci, table);
        }
        Cloud::Azure => {
            let guid = |n: u64| ids.guid(100 + serial, n);
            let mut group = base_principal(scope, guid(0), PrincipalKind::Group, "group");
            group.display_name = Some(format!("grp-platform-admins-{:02}", scope.index));
            add(group, table);
            for (n, admin) in ADMINS.iter().enumerate() {
                let mut human =
                    base_principal(scope, guid(1 + n as u64), PrincipalKind::Human, "user");
                human.display_name = Some(format!("{admin}{:02}@acme.example", scope.index));
                add(human, table);
            }
            let mut mi = base_principal(scope, guid(5), PrincipalKind::Workload, "managedIdentity");
            mi.display_name = Some(format!("mi-lapse-reader-{:02}", scope.index));
            add(mi, table);
            let mut terraform =
                base_principal(scope, guid(6), PrincipalKind::Workload, "servicePrincipal");
            terraform.display_name = Some(format!("sp-terraform-platform-{:02}", scope.index));
            add(terraform, table);
            let mut defender =
                base_principal(scope, guid(7), PrincipalKind::Workload, "servicePrincipal");
            defender.display_name = Some("Microsoft Defender for Cloud".into());
            defender.cloud_managed = true;
            add(defender, table);
            let mut breakglass = base_principal(scope, guid(8), PrincipalKind::Human, "user");
            breakglass.display_name = Some(format!("breakglass-{:02}@acme.example", scope.index));
            add(breakglass, table);
        }
        Cloud::Gcp => {
            let project = &scope.name;
            let number = &scope.number;
            let mut group = base_principal(
                scope,
                format!("group:gcp-platform-admins-{:02}@acme.example", scope.index),
                PrincipalKind::Group,
                "group",
            );
            group.display_name = Some(format!("gcp-platform-admins-{:02}", scope.index));
            add(group, table);
            for admin in ADMINS {
                let human = base_principal(
                    scope,
                    format!("user:{admin}{:02}@acme.example", scope.index),
                    PrincipalKind::Human,
                    "user",
                );
                add(human, table);
            }
            for name in ["terraform", "lapse-reader"] {
                let mut sa = base_principal(
                    scope,
                    format!("serviceAccount:{name}@{project}.iam.gserviceaccount.com"),
                    PrincipalKind::Workload,
                    "serviceAccount",
                );
                sa.display_name = Some(name.to_owned());
                add(sa, table);
            }
            for agent in [
                format!("serviceAccount:service-{number}@gcp-sa-pubsub.iam.gserviceaccount.com"),
                format!("serviceAccount:{number}@cloudservices.gserviceaccount.com"),
                format!("serviceAccount:{number}@cloudbuild.gserviceaccount.com"),
            ] {
                let mut sa =
                    base_principal(scope, agent, PrincipalKind::Workload, "serviceAccount");
                sa.cloud_managed = true;
                add(sa, table);
            }
            let breakglass = base_principal(
                scope,
                format!("user:breakglass-{:02}@acme.example", scope.index),
                PrincipalKind::Human,
                "user",
            );
            add(breakglass, table);
        }
    }
}

/// Last sign-in or activity for a random principal created `age` seconds ago.
fn activity(rng: &mut Rng, kind: PrincipalKind, age: Option<i64>, now: i64) -> Usage {
    if kind == PrincipalKind::Group {
        return Usage::Unknown;
    }
    let (recent, stale, never) = match kind {
        PrincipalKind::Human => (0.86, 0.055, 0.03),
        _ => (0.80, 0.055, 0.03),
    };
    let age = age.unwrap_or(3 * 365 * DAY);
    let r = rng.f64();
    if r < recent {
        let ago = rng.range(0, (55 * DAY).min(age).max(HOUR));
        Usage::At(ts(now - ago))
    } else if r < recent + stale {
        let ago = rng.range(95 * DAY, 700 * DAY).min(age);
        Usage::At(ts(now - ago))
    } else if r < recent + stale + never {
        Usage::Never
    } else {
        Usage::Unknown
    }
}

fn build_principals(args: &Args, ids: &Ids, scope: &ScopeDef, notes: &mut Notes) -> Table {
    let mut rng = Rng::new(args.seed, scope.index, 1);
    let now = args.now;
    let mut table = Table {
        principals: Vec::with_capacity(scope.principals),
        meta: Vec::with_capacity(scope.principals),
    };
    specials(scope, ids, now, &mut table);
    let random = scope.principals.saturating_sub(table.principals.len());
    let mut idle_humans = 0;
    let mut unowned = 0;
    for _ in 0..random {
        let global = scope.principal_offset + table.principals.len();
        let r = rng.f64();
        let kind = match scope.cloud {
            Cloud::Aws => match r {
                r if r < 0.25 => PrincipalKind::Human,
                r if r < 0.50 => PrincipalKind::Workload,
                r if r < 0.91 => PrincipalKind::Role,
                _ => PrincipalKind::Group,
            },
            Cloud::Azure => match r {
                r if r < 0.45 => PrincipalKind::Human,
                r if r < 0.90 => PrincipalKind::Workload,
                _ => PrincipalKind::Group,
            },
            Cloud::Gcp => match r {
                r if r < 0.35 => PrincipalKind::Human,
                r if r < 0.88 => PrincipalKind::Workload,
                _ => PrincipalKind::Group,
            },
        };
        let team_index = rng.below(TEAMS.len());
        let team = TEAMS[team_index];
        let app = *rng.pick(APPS);
        let env = *rng.pick(ENVS);
        let first = *rng.pick(FIRST);
        let last = *rng.pick(LAST);
        let person = format!("{first}.{last}{global}");
        let legacy = scope.cloud == Cloud::Aws && kind == PrincipalKind::Role && rng.chance(0.01);
        let (id, native, display) = match (scope.cloud, kind) {
            (Cloud::Aws, PrincipalKind::Human) => (
                format!("arn:aws:iam::{}:user/people/{person}", scope.name),
                "iam-user",
                Some(person.clone()),
            ),
            (Cloud::Aws, PrincipalKind::Workload) => {
                let name = format!("svc-{team}-{app}-{global}");
                (
                    format!("arn:aws:iam::{}:user/svc/{name}", scope.name),
                    "iam-user",
                    Some(name),
                )
            }
            (Cloud::Aws, PrincipalKind::Role) => {
                let name = if legacy {
                    format!("legacy-{app}-{global}")
                } else {
                    format!("app-{team}-{app}-{global}")
                };
                (
                    format!("arn:aws:iam::{}:role/{name}", scope.name),
                    "iam-role",
                    Some(name),
                )
            }
            (Cloud::Aws, PrincipalKind::Group) => {
                let name = format!("team-{team}-{}-{global}", rng.pick(GROUP_SUFFIX));
                (
                    format!("arn:aws:iam::{}:group/{name}", scope.name),
                    "iam-group",
                    Some(name),
                )
            }
            (Cloud::Azure, PrincipalKind::Human) => (
                ids.guid(200, global as u64),
                "user",
                Some(format!("{person}@acme.example")),
            ),
            (Cloud::Azure, PrincipalKind::Workload) => {
                let (prefix, native) = if rng.chance(0.7) {
                    ("sp", "servicePrincipal")
                } else {
                    ("mi", "managedIdentity")
                };
                (
                    ids.guid(200, global as u64),
                    native,
                    Some(format!("{prefix}-{team}-{app}-{global}")),
                )
            }
            (Cloud::Azure, _) => (
                ids.guid(200, global as u64),
                "group",
                Some(format!("grp-{team}-{}-{global}", rng.pick(GROUP_SUFFIX))),
            ),
            (Cloud::Gcp, PrincipalKind::Human) => {
                (format!("user:{person}@acme.example"), "user", None)
            }
            (Cloud::Gcp, PrincipalKind::Workload) => (
                format!(
                    "serviceAccount:{team}-{app}-{global}@{}.iam.gserviceaccount.com",
                    scope.name
                ),
                "serviceAccount",
                Some(format!("{team} {app} ({env})")),
            ),
            (Cloud::Gcp, _) => (
                format!(
                    "group:{team}-{}-{global}@acme.example",
                    rng.pick(GROUP_SUFFIX)
                ),
                "group",
                Some(format!("{team} {}", rng.pick(GROUP_SUFFIX))),
            ),
        };
        let mut principal = base_principal(scope, id, kind, native);
        principal.display_name = display;
        let age = rng.chance(0.92).then(|| rng.range(20 * DAY, 2_500 * DAY));
        principal.created_at = age.map(|age| ts(now - age));
        principal.last_activity = activity(&mut rng, kind, age, now);
        let machine = matches!(kind, PrincipalKind::Workload | PrincipalKind::Role);
        if kind == PrincipalKind::Human {
            principal.tags.insert("team".into(), team.into());
            if rng.chance(0.08) {
                principal
                    .tags
                    .insert("employment".into(), "contractor".into());
            }
            principal.enabled = !rng.chance(0.02);
        }
        let mut has_owner = true;
        if machine {
            principal.tags.insert("env".into(), env.into());
            let r = rng.f64();
            if scope.cloud == Cloud::Azure && r < 0.6 {
                principal.owner = Some(format!("team-{team}@acme.example"));
            } else if r < 0.8 {
                principal
                    .tags
                    .insert("owner".into(), format!("team-{team}"));
            } else if r < 0.975 {
                principal
                    .tags
                    .insert("lapse:owner".into(), format!("team-{team}"));
            } else {
                has_owner = false;
            }
            if rng.chance(0.15) {
                principal.tags.insert(
                    "cost-center".into(),
                    format!("cc-{}", 1000 + team_index * 7),
                );
            }
            if kind == PrincipalKind::Workload && rng.chance(0.05) {
                principal.federation_available = true;
            }
        }
        let protected = machine && rng.chance(0.002);
        if protected {
            principal.tags.insert("lapse:protect".into(), "true".into());
        }
        let base_weight = match (scope.cloud, kind) {
            (Cloud::Aws, PrincipalKind::Role) => 14.0,
            (Cloud::Aws, PrincipalKind::Workload) => 7.0,
            (Cloud::Aws, PrincipalKind::Human) => 3.0,
            (Cloud::Gcp, PrincipalKind::Workload) => 14.0,
            (_, PrincipalKind::Workload) => 10.0,
            (_, PrincipalKind::Human) => 6.0,
            _ => 5.0,
        };
        // Notes for waivers: a couple of idle people, an unowned workload.
        if !protected {
            if kind == PrincipalKind::Human
                && idle_humans < 2
                && principal.enabled
                && principal
                    .last_activity
                    .at()
                    .is_some_and(|at| at.unix_seconds() < now - 95 * DAY)
            {
                idle_humans += 1;
                notes.waivers.push(Waiver {
                    rule: Some("idle-humans".into()),
                    kind: Some("principal-idle"),
                    principal: principal.id.0.clone(),
                    entitlement: None,
                    credential: None,
                    reason: "on extended leave; account kept for return".into(),
                });
            }
            if machine && !has_owner && unowned < 1 && !legacy {
                unowned += 1;
                notes.waivers.push(Waiver {
                    rule: None,
                    kind: Some("unowned"),
                    principal: principal.id.0.clone(),
                    entitlement: None,
                    credential: None,
                    reason: "ownership being transferred after reorganisation".into(),
                });
            }
        }
        table.push(
            principal,
            Meta {
                weight: base_weight * (0.3 + 1.4 * rng.f64()),
                team: team_index,
                special: false,
                protected,
                legacy,
            },
        );
    }
    table
}

// ---------------------------------------------------------------------------------------------
// Credentials

fn build_credentials(
    args: &Args,
    ids: &Ids,
    scope: &ScopeDef,
    table: &Table,
    notes: &mut Notes,
    mut emit: impl FnMut(&Credential) -> io::Result<()>,
) -> io::Result<usize> {
    let mut rng = Rng::new(args.seed, scope.index, 2);
    let now = args.now;
    let holders: Vec<usize> = table
        .principals
        .iter()
        .zip(&table.meta)
        .enumerate()
        .filter(|(_, (principal, meta))| {
            let eligible = match scope.cloud {
                Cloud::Aws => {
                    matches!(
                        principal.kind,
                        PrincipalKind::Human | PrincipalKind::Workload
                    )
                }
                _ => principal.kind == PrincipalKind::Workload,
            };
            eligible
                && !principal.cloud_managed
                && (!meta.special || principal.kind == PrincipalKind::Workload)
        })
        .map(|(index, _)| index)
        .collect();
    if holders.is_empty() {
        return Ok(0);
    }
    let mut console: HashSet<usize> = HashSet::new();
    let mut old_noted = 0;
    let mut written = 0;
    for n in 0..scope.credentials {
        let holder = holders[rng.below(holders.len())];
        let principal = &table.principals[holder];
        let serial = ((scope.index as u64) << 40) | n as u64;
        let mut kind = match (scope.cloud, principal.kind) {
            (Cloud::Aws, PrincipalKind::Human) => match rng.f64() {
                r if r < 0.5 => CredentialKind::AwsConsolePassword,
                r if r < 0.95 => CredentialKind::AwsAccessKey,
                _ => CredentialKind::AwsSshKey,
            },
            (Cloud::Aws, _) => {
                if rng.chance(0.95) {
                    CredentialKind::AwsAccessKey
                } else {
                    CredentialKind::AwsSigningCertificate
                }
            }
            (Cloud::Azure, _) => match rng.f64() {
                r if r < 0.55 => CredentialKind::AzurePassword,
                r if r < 0.8 => CredentialKind::AzureCertificate,
                _ => CredentialKind::AzureFederated,
            },
            (Cloud::Gcp, _) => CredentialKind::GcpSaKey,
        };
        if kind == CredentialKind::AwsConsolePassword && !console.insert(holder) {
            kind = CredentialKind::AwsAccessKey;
        }
        let id = match kind {
            CredentialKind::AwsAccessKey => ids.aws_key("AKIA", 20, serial),
            CredentialKind::AwsSshKey => ids.aws_key("APKA", 21, serial),
            CredentialKind::AwsSigningCertificate => {
                format!("{:016X}{:016X}", ids.u64(22, serial), ids.u64(23, serial))
            }
            CredentialKind::AwsConsolePassword => format!("{}#console-password", principal.id),
            CredentialKind::AzurePassword
            | CredentialKind::AzureCertificate
            | CredentialKind::AzureFederated => ids.guid(24, serial),
            CredentialKind::GcpSaKey => {
                let email = principal.id.0.trim_start_matches("serviceAccount:");
                format!(
                    "projects/{}/serviceAccounts/{email}/keys/{:016x}{:016x}{:08x}",
                    scope.name,
                    ids.u64(25, serial),
                    ids.u64(26, serial),
                    ids.u64(27, serial) >> 32
                )
            }
        };
        let created_known = kind != CredentialKind::AzureFederated || rng.chance(0.5);
        let age = if rng.chance(0.87) {
            rng.range(HOUR, 88 * DAY)
        } else {
            rng.range(91 * DAY, 1_200 * DAY)
        };
        let created_at = (created_known && rng.chance(0.95)).then(|| ts(now - age));
        let r = rng.f64();
        let last_used = if kind == CredentialKind::AzureFederated && rng.chance(0.5) {
            Usage::Unknown
        } else if r < 0.64 {
            Usage::At(ts(now - rng.range(0, (30 * DAY).min(age).max(MINUTE))))
        } else if r < 0.69 && age > 50 * DAY {
            Usage::At(ts(now - rng.range(46 * DAY, age.clamp(47 * DAY, 400 * DAY))))
        } else if r < 0.78 {
            Usage::Never
        } else {
            Usage::Unknown
        };
        let expires_at = match kind {
            CredentialKind::AzurePassword | CredentialKind::AzureCertificate => Some(ts(now - age
                + if rng.chance(0.5) {
                    365 * DAY
                } else {
                    730 * DAY
                })),
            _ => None,
        };
        let status = if rng.chance(0.12) {
            CredentialStatus::Inactive
        } else {
            CredentialStatus::Active
        };
        let cloud_managed = kind == CredentialKind::GcpSaKey && rng.chance(0.06);
        let display_name = match kind {
            CredentialKind::AzurePassword => Some(
                rng.pick(&["ci-secret", "github-actions", "deploy", "client-secret"])
                    .to_string(),
            ),
            CredentialKind::AzureCertificate => Some("CN=workload-cert".into()),
            CredentialKind::AzureFederated => Some(
                rng.pick(&["github-main", "aks-workload", "gitlab-ci"])
                    .to_string(),
            ),
            _ => None,
        };
        let credential = Credential {
            id: CredentialId(id),
            principal: principal.id.clone(),
            cloud: scope.cloud,
            scope: scope.id.clone(),
            kind,
            display_name,
            created_at,
            expires_at,
            last_used,
            status,
            cloud_managed,
        };
        let meta = &table.meta[holder];
        if old_noted < 2
            && !meta.protected
            && !cloud_managed
            && status == CredentialStatus::Active
            && age > 120 * DAY
            && created_at.is_some()
            && expires_at.is_none_or(|at| at.unix_seconds() > now)
            && matches!(
                kind,
                CredentialKind::AwsAccessKey
                    | CredentialKind::GcpSaKey
                    | CredentialKind::AzurePassword
            )
        {
            old_noted += 1;
            notes.waivers.push(Waiver {
                rule: None,
                kind: Some("credential-too-old"),
                principal: principal.id.0.clone(),
                entitlement: None,
                credential: Some(credential.id.0.clone()),
                reason: "vendor integration cannot rotate keys until its next release".into(),
            });
        }
        emit(&credential)?;
        written += 1;
    }
    Ok(written)
}

// ---------------------------------------------------------------------------------------------
// Grants

struct Spec {
    entitlement: String,
    entitlement_id: Option<String>,
    resource: String,
    kind: GrantKind,
    via: Via,
    created_ago: Option<i64>,
    expires_at: Option<i64>,
    expiry_source: Option<ExpirySource>,
    condition: Option<Condition>,
    flagged: bool,
    privileged: bool,
}

impl Spec {
    fn new(entitlement: impl Into<String>, resource: impl Into<String>, kind: GrantKind) -> Self {
        Spec {
            entitlement: entitlement.into(),
            entitlement_id: None,
            resource: resource.into(),
            kind,
            via: Via::Direct,
            created_ago: None,
            expires_at: None,
            expiry_source: None,
            condition: None,
            flagged: false,
            privileged: false,
        }
    }
}

fn azure_role_id(subscription: &str, role: &Role) -> String {
    format!(
        "/subscriptions/{subscription}/providers/Microsoft.Authorization/roleDefinitions/{}",
        role.1
    )
}

fn azure_spec(scope: &ScopeDef, role: &Role, resource: String, kind: GrantKind) -> Spec {
    let mut spec = Spec::new(role.0, resource, kind);
    spec.entitlement_id = Some(azure_role_id(&scope.name, role));
    spec
}

fn azure_resource(rng: &mut Rng, scope: &ScopeDef, team: usize) -> (String, Via) {
    let r = rng.f64();
    if r < 0.10 {
        (format!("/subscriptions/{}", scope.name), Via::Direct)
    } else if r < 0.95 {
        (
            format!(
                "/subscriptions/{}/resourceGroups/rg-{}-{}-{}",
                scope.name,
                TEAMS[team],
                rng.pick(ENVS),
                rng.below(12)
            ),
            Via::Direct,
        )
    } else {
        let group = format!(
            "/providers/Microsoft.Management/managementGroups/mg-{}",
            rng.pick(&["platform", "landing-zones", "corp", "online"])
        );
        (group.clone(), Via::Inherited(group))
    }
}

fn gcp_resource(rng: &mut Rng, scope: &ScopeDef, team: usize) -> String {
    let r = rng.f64();
    if r < 0.75 {
        format!("projects/{}", scope.name)
    } else if r < 0.9 {
        format!(
            "//storage.googleapis.com/projects/_/buckets/{}-{}-{}",
            scope.name,
            TEAMS[team],
            rng.below(20)
        )
    } else {
        format!(
            "//pubsub.googleapis.com/projects/{}/topics/{}-{}",
            scope.name,
            TEAMS[team],
            rng.below(20)
        )
    }
}

/// What random grants point at: a scope's principals and the groups and roles among them.
struct Pools<'a> {
    table: &'a Table,
    aws_groups: Vec<usize>,
    aws_roles: Vec<usize>,
    azure_groups: Vec<usize>,
}

/// One random grant for `principal`. `class`: 0 declared family, 1 undeclared, 2 privileged.
fn random_spec(
    rng: &mut Rng,
    scope: &ScopeDef,
    principal: &Principal,
    meta: &Meta,
    class: u8,
    pools: &Pools<'_>,
) -> Spec {
    let Pools {
        table,
        aws_groups,
        aws_roles,
        azure_groups,
    } = pools;
    let team = TEAMS[meta.team];
    let account = &scope.name;
    let k = rng.below(40);
    match scope.cloud {
        Cloud::Aws => {
            let mut spec = match (principal.kind, class) {
                (_, 2) => {
                    if principal.kind == PrincipalKind::Role && rng.chance(0.3) {
                        let mut spec = Spec::new(
                            format!("inline/admin-{k}"),
                            account.clone(),
                            GrantKind::InlinePolicy,
                        );
                        spec.flagged = true;
                        spec
                    } else {
                        Spec::new(
                            *rng.pick(AWS_PRIV),
                            account.clone(),
                            GrantKind::ManagedPolicy,
                        )
                    }
                }
                (_, 1) => {
                    if rng.chance(0.2) {
                        Spec::new(
                            format!("inline/adhoc-{k}"),
                            account.clone(),
                            GrantKind::InlinePolicy,
                        )
                    } else if principal.kind == PrincipalKind::Human && rng.chance(0.5) {
                        Spec::new(
                            "arn:aws:iam::aws:policy/ReadOnlyAccess",
                            account.clone(),
                            GrantKind::ManagedPolicy,
                        )
                    } else {
                        Spec::new(
                            *rng.pick(AWS_OFF),
                            account.clone(),
                            GrantKind::ManagedPolicy,
                        )
                    }
                }
                (PrincipalKind::Human, _) if !aws_groups.is_empty() => {
                    let group = &table.principals[aws_groups[rng.below(aws_groups.len())]];
                    Spec::new(
                        group.id.0.clone(),
                        account.clone(),
                        GrantKind::GroupMembership,
                    )
                }
                (PrincipalKind::Workload, _) => {
                    let r = rng.f64();
                    if r < 0.6 {
                        Spec::new(
                            format!("arn:aws:iam::{account}:policy/svc-{team}-{k}"),
                            account.clone(),
                            GrantKind::ManagedPolicy,
                        )
                    } else if r < 0.85 || aws_roles.is_empty() {
                        Spec::new(
                            *rng.pick(AWS_READ_ONLY),
                            account.clone(),
                            GrantKind::ManagedPolicy,
                        )
                    } else {
                        let role = &table.principals[aws_roles[rng.below(aws_roles.len())]];
                        Spec::new(role.id.0.clone(), account.clone(), GrantKind::RoleTrust)
                    }
                }
                (PrincipalKind::Role, _) => {
                    let app = principal
                        .display_name
                        .as_deref()
                        .and_then(|name| name.rsplit_once('-'))
                        .map_or("app", |(stem, _)| stem);
                    let r = rng.f64();
                    if r < 0.55 {
                        Spec::new(
                            format!("arn:aws:iam::{account}:policy/{app}-{k}"),
                            account.clone(),
                            GrantKind::ManagedPolicy,
                        )
                    } else if r < 0.75 {
                        Spec::new(
                            *rng.pick(AWS_READ_ONLY),
                            account.clone(),
                            GrantKind::ManagedPolicy,
                        )
                    } else if r < 0.85 {
                        Spec::new(
                            *rng.pick(AWS_SERVICE_ROLE),
                            account.clone(),
                            GrantKind::ManagedPolicy,
                        )
                    } else {
                        Spec::new(
                            format!("inline/{app}-{k}"),
                            account.clone(),
                            GrantKind::InlinePolicy,
                        )
                    }
                }
                _ => {
                    if rng.chance(0.7) {
                        Spec::new(
                            format!("arn:aws:iam::{account}:policy/team-{team}-{k}"),
                            account.clone(),
                            GrantKind::ManagedPolicy,
                        )
                    } else {
                        Spec::new(
                            "arn:aws:iam::aws:policy/ReadOnlyAccess",
                            account.clone(),
                            GrantKind::ManagedPolicy,
                        )
                    }
                }
            };
            if rng.chance(0.15) {
                spec.created_ago = Some(rng.range(HOUR, 1_500 * DAY));
            }
            let r = rng.f64();
            if r < 0.003 {
                spec.expires_at = Some(-rng.range(DAY, 60 * DAY));
                spec.expiry_source = Some(ExpirySource::Tag);
            } else if r < 0.007 {
                spec.expires_at = Some(rng.range(DAY, 60 * DAY));
                spec.expiry_source = Some(ExpirySource::Tag);
            }
            spec
        }
        Cloud::Azure => {
            let (resource, via) = azure_resource(rng, scope, meta.team);
            let created = rng.range(HOUR, 1_200 * DAY);
            let mut spec = match (principal.kind, class) {
                (_, 2) => {
                    let role = rng.pick(AZ_PRIV);
                    let r = rng.f64();
                    if principal.kind == PrincipalKind::Human && r < 0.35 {
                        azure_spec(scope, role, resource, GrantKind::PimEligible)
                    } else if principal.kind == PrincipalKind::Human && r < 0.6 {
                        let mut spec = azure_spec(scope, role, resource, GrantKind::PimActive);
                        let started = rng.range(10 * MINUTE, 10 * HOUR);
                        spec.created_ago = Some(started);
                        spec.expires_at = Some(8 * HOUR - started);
                        spec.expiry_source = Some(ExpirySource::Pim);
                        spec
                    } else {
                        azure_spec(scope, role, resource, GrantKind::RoleAssignment)
                    }
                }
                (kind, class) => {
                    let roles = match (kind, class) {
                        (_, 1) => AZ_OFF,
                        (PrincipalKind::Human, _) => AZ_HUMAN,
                        (PrincipalKind::Workload, _) => AZ_WORKLOAD,
                        _ => AZ_GROUP,
                    };
                    let mut spec =
                        azure_spec(scope, rng.pick(roles), resource, GrantKind::RoleAssignment);
                    spec.via = via;
                    if kind == PrincipalKind::Human
                        && matches!(spec.via, Via::Direct)
                        && !azure_groups.is_empty()
                        && rng.chance(0.55)
                    {
                        let group = &table.principals[azure_groups[rng.below(azure_groups.len())]];
                        spec.via = Via::Group(group.id.clone());
                    }
                    spec
                }
            };
            // Made at a management group, a grant reaches the subscription by inheritance, as
            // the provider reports it.
            if spec.resource.starts_with("/providers/") && matches!(spec.via, Via::Direct) {
                spec.via = Via::Inherited(spec.resource.clone());
            }
            if spec.created_ago.is_none() && rng.chance(0.95) {
                spec.created_ago = Some(created);
            }
            if spec.expires_at.is_none() && rng.chance(0.002) {
                spec.expires_at = Some(-rng.range(DAY, 30 * DAY));
                spec.expiry_source = Some(ExpirySource::Tag);
            }
            spec
        }
        Cloud::Gcp => {
            let resource = gcp_resource(rng, scope, meta.team);
            let role = match (principal.kind, class) {
                (_, 2) => *rng.pick(GCP_PRIV),
                (_, 1) => *rng.pick(GCP_OFF),
                (PrincipalKind::Human, _) => *rng.pick(GCP_HUMAN),
                (PrincipalKind::Workload, _) => *rng.pick(GCP_SA),
                _ => *rng.pick(GCP_GROUP),
            };
            let mut spec = Spec::new(role, resource, GrantKind::IamBinding);
            if rng.chance(0.08) {
                spec.created_ago = Some(rng.range(HOUR, 900 * DAY));
            }
            let r = rng.f64();
            if r < 0.025 {
                let end = if r < 0.004 {
                    -rng.range(HOUR, 45 * DAY)
                } else {
                    rng.range(HOUR, 90 * DAY)
                };
                spec.expires_at = Some(end);
                spec.expiry_source = Some(ExpirySource::Condition);
                spec.condition = Some(Condition {
                    // Filled in by make_grant, which knows `now`.
                    expression: String::new(),
                    title: Some("temporary-access".into()),
                });
            }
            spec
        }
    }
}

fn grant_id(
    ids: &Ids,
    scope: &ScopeDef,
    principal: &PrincipalId,
    spec: &Spec,
    serial: u64,
) -> String {
    match scope.cloud {
        Cloud::Aws => format!("{}|{}|{}", principal, spec.kind.as_str(), spec.entitlement),
        Cloud::Azure => {
            let collection = match spec.kind {
                GrantKind::PimEligible => "roleEligibilityScheduleInstances",
                GrantKind::PimActive => "roleAssignmentScheduleInstances",
                _ => "roleAssignments",
            };
            let mut id = format!(
                "{}/providers/Microsoft.Authorization/{collection}/{}",
                spec.resource,
                ids.guid(30, serial)
            );
            if !matches!(spec.via, Via::Direct) {
                id.push('#');
                id.push_str(principal.as_str());
            }
            id
        }
        Cloud::Gcp => {
            let mut id = format!("{}|{}|{}", spec.resource, spec.entitlement, principal);
            if let Some(condition) = &spec.condition {
                id.push('|');
                id.push_str(condition.title.as_deref().unwrap_or("condition"));
            }
            id
        }
    }
}

fn make_grant(
    ids: &Ids,
    scope: &ScopeDef,
    principal: &Principal,
    spec: Spec,
    serial: u64,
    now: i64,
) -> Grant {
    let id = grant_id(ids, scope, &principal.id, &spec, serial);
    let mut condition = spec.condition;
    if let (Some(condition), Some(at)) = (condition.as_mut(), spec.expires_at) {
        condition.expression = format!("request.time < timestamp(\"{}\")", ts(now + at));
    }
    Grant {
        id: GrantId(id),
        cloud: scope.cloud,
        scope: scope.id.clone(),
        principal: principal.id.clone(),
        entitlement: spec.entitlement,
        entitlement_id: spec.entitlement_id,
        resource: spec.resource,
        kind: spec.kind,
        via: spec.via,
        created_at: spec.created_ago.map(|ago| ts(now - ago)),
        expires_at: spec.expires_at.map(|at| ts(now + at)),
        expiry_source: spec.expiry_source,
        condition,
        privileged: spec.flagged,
    }
}

fn declared(principal: &str, entitlement: &str, scope: &ScopeDef, reason: &str) -> Declared {
    Declared {
        principal: principal.to_owned(),
        entitlement: entitlement.to_owned(),
        cloud: Some(scope.cloud),
        scope: scope.id.0.split_once(':').map(|(_, bare)| bare.to_owned()),
        resource: None,
        owner: Some("team-platform".into()),
        ticket: Some(format!("SEC-{}", 1000 + scope.index * 37 + reason.len())),
        approved_by: Some("ciso@acme.example".into()),
        reason: reason.to_owned(),
        expires: None,
        max_ttl: None,
    }
}

/// The grants of the special principals, and their declarations.
fn special_grants(
    scope: &ScopeDef,
    table: &Table,
    now: i64,
) -> Vec<(usize, Spec, Option<Declared>)> {
    let find = |needle: &str| {
        table
            .principals
            .iter()
            .zip(&table.meta)
            .position(|(principal, meta)| {
                meta.special
                    && (principal.id.0.contains(needle)
                        || principal
                            .display_name
                            .as_deref()
                            .is_some_and(|name| name.contains(needle)))
            })
    };
    let mut out = Vec::new();
    let past = "2026-09-30".to_owned();
    let created = |spec: &mut Spec, days: i64| spec.created_ago = Some(days * DAY);
    let _ = now;
    match scope.cloud {
        Cloud::Aws => {
            let account = &scope.name;
            let admin = "arn:aws:iam::aws:policy/AdministratorAccess";
            let group = find("group/platform-admins").unwrap();
            let group_id = table.principals[group].id.0.clone();
            out.push((
                group,
                Spec::new(admin, account.clone(), GrantKind::ManagedPolicy),
                Some(declared(
                    &group_id,
                    admin,
                    scope,
                    "platform administrators group",
                )),
            ));
            for (n, name) in ADMINS.iter().enumerate() {
                let index = find(&format!("user/people/{name}")).unwrap();
                let id = table.principals[index].id.0.clone();
                let spec = Spec::new(
                    group_id.clone(),
                    account.clone(),
                    GrantKind::GroupMembership,
                );
                let declaration = match n {
                    0 | 1 => Some(declared(
                        &id,
                        &group_id,
                        scope,
                        "platform on-call administrator",
                    )),
                    2 => Some(Declared {
                        expires: Some(past.clone()),
                        ..declared(&id, &group_id, scope, "temporary cover during migration")
                    }),
                    _ => None,
                };
                out.push((index, spec, declaration));
            }
            for (needle, entitlement, declare) in [
                ("role/break-glass", admin, false),
                ("role/terraform-deployer", admin, false),
                (
                    "role/lapse-reader",
                    "arn:aws:iam::aws:policy/SecurityAudit",
                    false,
                ),
                (
                    "role/lapse-reader",
                    "arn:aws:iam::aws:policy/ReadOnlyAccess",
                    false,
                ),
                ("role/OrganizationAccountAccessRole", admin, false),
                ("AWSReservedSSO_AdministratorAccess", admin, false),
                (
                    "user/svc/ci-deployer",
                    "arn:aws:iam::aws:policy/PowerUserAccess",
                    true,
                ),
            ] {
                let index = find(needle).unwrap();
                let id = table.principals[index].id.0.clone();
                let spec = Spec::new(entitlement, account.clone(), GrantKind::ManagedPolicy);
                let declaration = declare.then(|| Declared {
                    max_ttl: Some("365d".into()),
                    ..declared(&id, entitlement, scope, "CI deploys infrastructure changes")
                });
                out.push((index, spec, declaration));
            }
            for (service, policy) in [
                ("ecs", "AmazonECSServiceRolePolicy"),
                ("rds", "AmazonRDSServiceRolePolicy"),
                (
                    "elasticloadbalancing",
                    "AWSElasticLoadBalancingServiceRolePolicy",
                ),
            ] {
                let index = find(&format!("aws-service-role/{service}.amazonaws.com")).unwrap();
                out.push((
                    index,
                    Spec::new(
                        format!("arn:aws:iam::aws:policy/aws-service-role/{policy}"),
                        account.clone(),
                        GrantKind::ManagedPolicy,
                    ),
                    None,
                ));
            }
        }
        Cloud::Azure => {
            let subscription = format!("/subscriptions/{}", scope.name);
            let group = find("grp-platform-admins").unwrap();
            let group_id = table.principals[group].id.clone();
            let mut spec = azure_spec(
                scope,
                &AZ_OWNER,
                subscription.clone(),
                GrantKind::RoleAssignment,
            );
            created(&mut spec, 700);
            out.push((
                group,
                spec,
                Some(declared(
                    &group_id.0,
                    "Owner",
                    scope,
                    "platform administrators group",
                )),
            ));
            for (n, name) in ADMINS.iter().enumerate() {
                let index = find(&format!("{name}{:02}@", scope.index)).unwrap();
                let id = table.principals[index].id.0.clone();
                let mut spec = azure_spec(
                    scope,
                    &AZ_OWNER,
                    subscription.clone(),
                    GrantKind::RoleAssignment,
                );
                spec.via = Via::Group(group_id.clone());
                created(&mut spec, 300 + n as i64);
                let declaration = match n {
                    0 | 1 => Some(declared(
                        &id,
                        "Owner",
                        scope,
                        "platform on-call administrator",
                    )),
                    2 => Some(Declared {
                        expires: Some(past.clone()),
                        ..declared(&id, "Owner", scope, "temporary cover during migration")
                    }),
                    _ => None,
                };
                out.push((index, spec, declaration));
                // Each admin is also eligible for User Access Administrator through PIM.
                let mut eligible = azure_spec(
                    scope,
                    &AZ_PRIV[2],
                    subscription.clone(),
                    GrantKind::PimEligible,
                );
                created(&mut eligible, 200);
                let declaration = (n < 3).then(|| {
                    declared(
                        &id,
                        "User Access Administrator",
                        scope,
                        "PIM-eligible, activation needs approval",
                    )
                });
                out.push((index, eligible, declaration));
            }
            let terraform = find("sp-terraform-platform").unwrap();
            let mut spec = azure_spec(
                scope,
                &AZ_OWNER,
                subscription.clone(),
                GrantKind::RoleAssignment,
            );
            created(&mut spec, 800);
            out.push((
                terraform,
                spec,
                Some(declared(
                    &table.principals[terraform].id.0,
                    "Owner",
                    scope,
                    "infrastructure as code deployer",
                )),
            ));
            let reader = find("mi-lapse-reader").unwrap();
            let mut spec = azure_spec(
                scope,
                &AZ_READER,
                subscription.clone(),
                GrantKind::RoleAssignment,
            );
            created(&mut spec, 100);
            out.push((reader, spec, None));
            let defender = find("Microsoft Defender").unwrap();
            let mut spec = azure_spec(
                scope,
                &("Security Admin", "fb1c8493-542b-48eb-b624-b4c8fea62acd"),
                subscription.clone(),
                GrantKind::RoleAssignment,
            );
            created(&mut spec, 1000);
            out.push((defender, spec, None));
            let breakglass = find("breakglass-").unwrap();
            let mut spec = azure_spec(scope, &AZ_OWNER, subscription, GrantKind::RoleAssignment);
            created(&mut spec, 1000);
            out.push((breakglass, spec, None));
        }
        Cloud::Gcp => {
            let project = format!("projects/{}", scope.name);
            let group = find("gcp-platform-admins").unwrap();
            out.push((
                group,
                Spec::new("roles/owner", project.clone(), GrantKind::IamBinding),
                Some(declared(
                    &table.principals[group].id.0,
                    "roles/owner",
                    scope,
                    "platform administrators group",
                )),
            ));
            for (n, name) in ADMINS.iter().enumerate() {
                let index = find(&format!("user:{name}{:02}@", scope.index)).unwrap();
                let id = table.principals[index].id.0.clone();
                let spec = Spec::new(
                    "roles/resourcemanager.projectIamAdmin",
                    project.clone(),
                    GrantKind::IamBinding,
                );
                let entitlement = "roles/resourcemanager.projectIamAdmin";
                // Declared by bare e-mail, as people write them.
                let bare = id.trim_start_matches("user:").to_owned();
                let declaration = match n {
                    0 | 1 => Some(declared(
                        &bare,
                        entitlement,
                        scope,
                        "platform on-call administrator",
                    )),
                    2 => Some(Declared {
                        expires: Some(past.clone()),
                        ..declared(
                            &bare,
                            entitlement,
                            scope,
                            "temporary cover during migration",
                        )
                    }),
                    _ => None,
                };
                out.push((index, spec, declaration));
            }
            let terraform = find("serviceAccount:terraform@").unwrap();
            out.push((
                terraform,
                Spec::new("roles/owner", project.clone(), GrantKind::IamBinding),
                Some(declared(
                    &table.principals[terraform].id.0,
                    "roles/owner",
                    scope,
                    "infrastructure as code deployer",
                )),
            ));
            let reader = find("serviceAccount:lapse-reader@").unwrap();
            for role in ["roles/iam.securityReviewer", "roles/viewer"] {
                out.push((
                    reader,
                    Spec::new(role, project.clone(), GrantKind::IamBinding),
                    None,
                ));
            }
            for (needle, role) in [
                ("gcp-sa-pubsub", "roles/pubsub.serviceAgent"),
                ("@cloudservices.", "roles/editor"),
                ("@cloudbuild.", "roles/cloudbuild.builds.builder"),
            ] {
                let index = find(needle).unwrap();
                out.push((
                    index,
                    Spec::new(role, project.clone(), GrantKind::IamBinding),
                    None,
                ));
            }
            let breakglass = find("user:breakglass-").unwrap();
            out.push((
                breakglass,
                Spec::new("roles/owner", project, GrantKind::IamBinding),
                None,
            ));
        }
    }
    out
}

fn build_grants(
    args: &Args,
    ids: &Ids,
    scope: &ScopeDef,
    table: &Table,
    notes: &mut Notes,
    mut emit: impl FnMut(&Grant) -> io::Result<()>,
) -> io::Result<usize> {
    let mut rng = Rng::new(args.seed, scope.index, 3);
    let now = args.now;
    let mut serial = (scope.index as u64) << 40;
    let mut written = 0;
    for (index, spec, declaration) in special_grants(scope, table, now) {
        if written >= scope.grants {
            break;
        }
        if let Some(declaration) = declaration {
            notes.declared.push(declaration);
        }
        emit(&make_grant(
            ids,
            scope,
            &table.principals[index],
            spec,
            serial,
            now,
        ))?;
        serial += 1;
        written += 1;
    }
    // Missing on purpose: declared, but long gone from the estate.
    let gone = match scope.cloud {
        Cloud::Aws => (
            format!("arn:aws:iam::{}:role/app-legacy-batch", scope.name),
            format!("arn:aws:iam::{}:policy/app-legacy-batch", scope.name),
        ),
        Cloud::Azure => ("sp-retired-reporting".to_owned(), "Contributor".to_owned()),
        Cloud::Gcp => (
            format!("former.employee{:02}@acme.example", scope.index),
            "roles/bigquery.admin".to_owned(),
        ),
    };
    notes.declared.push(declared(
        &gone.0,
        &gone.1,
        scope,
        "batch reporting (decommissioned)",
    ));

    let by_kind = |cloud: Cloud, kind: PrincipalKind| -> Vec<usize> {
        table
            .principals
            .iter()
            .zip(&table.meta)
            .enumerate()
            .filter(|(_, (principal, meta))| {
                scope.cloud == cloud && principal.kind == kind && !meta.special
            })
            .map(|(index, _)| index)
            .collect()
    };
    let aws_groups = by_kind(Cloud::Aws, PrincipalKind::Group);
    let aws_roles: Vec<usize> = by_kind(Cloud::Aws, PrincipalKind::Role)
        .into_iter()
        .filter(|index| !table.meta[*index].legacy)
        .collect();
    let azure_groups = by_kind(Cloud::Azure, PrincipalKind::Group);
    let pools = Pools {
        table,
        aws_groups,
        aws_roles,
        azure_groups,
    };

    let weights: Vec<f64> = table.meta.iter().map(|meta| meta.weight).collect();
    let quotas = split(scope.grants - written, &weights);
    let mut seen: HashSet<String> = HashSet::new();
    let mut privileged_noted = 0;
    let mut off_noted = false;
    for (index, quota) in quotas.into_iter().enumerate() {
        if quota == 0 {
            continue;
        }
        let principal = &table.principals[index];
        let meta = &table.meta[index];
        seen.clear();
        for _ in 0..quota {
            let r = rng.f64();
            let class = if principal.kind != PrincipalKind::Group && r < P_PRIVILEGED {
                2
            } else if r < P_PRIVILEGED + P_UNDECLARED {
                1
            } else {
                0
            };
            let mut spec = random_spec(&mut rng, scope, principal, meta, class, &pools);
            spec.privileged = class == 2;
            let mut id = grant_id(ids, scope, &principal.id, &spec, serial);
            let mut attempt = 0;
            while !seen.insert(id.clone()) {
                attempt += 1;
                if attempt < 8 {
                    spec = random_spec(&mut rng, scope, principal, meta, class, &pools);
                    spec.privileged = class == 2;
                } else if scope.cloud == Cloud::Aws {
                    // An AWS grant's resource is its account: vary the policy instead.
                    spec.entitlement = format!("{}-{attempt}", spec.entitlement);
                } else {
                    spec.resource = format!("{}/{}", spec.resource, attempt);
                }
                id = grant_id(ids, scope, &principal.id, &spec, serial);
            }
            if !meta.protected {
                if spec.privileged && privileged_noted < 40 && matches!(spec.via, Via::Direct) {
                    privileged_noted += 1;
                    let mut declaration = declared(
                        &principal.id.0,
                        &spec.entitlement,
                        scope,
                        "approved elevated access",
                    );
                    declaration.owner = Some(format!("team-{}", TEAMS[meta.team]));
                    declaration.approved_by =
                        Some(format!("lead-{}@acme.example", TEAMS[meta.team]));
                    if spec.created_ago.is_some() && privileged_noted % 3 == 0 {
                        declaration.max_ttl = Some("30d".into());
                    }
                    if privileged_noted % 5 == 0 {
                        declaration.expires = Some("2027-06-30".into());
                    }
                    notes.privileged.push(declaration);
                }
                if class == 1 && !off_noted && !meta.legacy {
                    off_noted = true;
                    notes.waivers.push(Waiver {
                        rule: None,
                        kind: Some("undeclared-grant"),
                        principal: principal.id.0.clone(),
                        entitlement: Some(spec.entitlement.clone()),
                        credential: None,
                        reason: "access request in review".into(),
                    });
                }
            }
            emit(&make_grant(ids, scope, principal, spec, serial, now))?;
            serial += 1;
            written += 1;
        }
    }
    // Scope-level waivers that do not depend on the draw.
    let undeclared_admin = ADMINS[3];
    let (admin_principal, admin_entitlement) = match scope.cloud {
        Cloud::Aws => (
            format!("arn:aws:iam::{}:user/people/{undeclared_admin}", scope.name),
            None,
        ),
        Cloud::Azure => (
            format!("{undeclared_admin}{:02}@acme.example", scope.index),
            Some("Owner".to_owned()),
        ),
        Cloud::Gcp => (
            format!("user:{undeclared_admin}{:02}@acme.example", scope.index),
            Some("roles/resourcemanager.projectIamAdmin".to_owned()),
        ),
    };
    notes.waivers.insert(
        0,
        Waiver {
            rule: Some("privileged-jit".into()),
            kind: None,
            principal: admin_principal,
            entitlement: admin_entitlement,
            credential: None,
            reason: "new administrator; declaration pending security review".into(),
        },
    );
    let pattern = match scope.cloud {
        Cloud::Aws => format!("arn:aws:iam::{}:role/legacy-*", scope.name),
        Cloud::Azure => format!("sp-{}-*", TEAMS[scope.index % TEAMS.len()]),
        Cloud::Gcp => format!(
            "serviceAccount:*-etl-*@{}.iam.gserviceaccount.com",
            scope.name
        ),
    };
    notes.waivers.insert(
        1,
        Waiver {
            rule: None,
            kind: Some("undeclared-grant"),
            principal: pattern,
            entitlement: None,
            credential: None,
            reason: "migration to declared access in progress".into(),
        },
    );
    Ok(written)
}

// ---------------------------------------------------------------------------------------------
// Writing snapshots

fn write_list<T: serde::Serialize, W: Write>(
    out: &mut W,
    key: &str,
    items: impl FnOnce(&mut dyn FnMut(&T) -> io::Result<()>) -> io::Result<usize>,
) -> io::Result<usize> {
    write!(out, ",\n\"{key}\":[")?;
    let mut first = true;
    let count = items(&mut |item: &T| {
        out.write_all(if first { b"\n" } else { b",\n" })?;
        first = false;
        serde_json::to_writer(&mut *out, item).map_err(io::Error::other)
    })?;
    out.write_all(b"\n]")?;
    Ok(count)
}

struct Totals {
    principals: usize,
    credentials: usize,
    grants: usize,
}

fn write_file(
    args: &Args,
    ids: &Ids,
    scopes: &[&ScopeDef],
    path: &std::path::Path,
    notes: &mut BTreeMap<usize, Notes>,
) -> io::Result<Totals> {
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
    let taken_at = scopes
        .iter()
        .map(|scope| scope.taken_at)
        .min()
        .unwrap_or(args.now);
    write!(
        out,
        "{{\"format\":\"{SNAPSHOT_FORMAT}\",\"version\":{SNAPSHOT_VERSION},\"taken_at\":\"{}\",\n\"scopes\":",
        ts(taken_at)
    )?;
    let statuses: Vec<ScopeStatus> = scopes
        .iter()
        .map(|scope| ScopeStatus {
            caller_identities: Vec::new(),
            id: scope.id.clone(),
            cloud: scope.cloud,
            kind: scope.kind,
            taken_at: ts(scope.taken_at),
            complete: true,
            caller: Some(scope.caller.clone()),
            errors: Vec::new(),
        })
        .collect();
    serde_json::to_writer(&mut out, &statuses).map_err(io::Error::other)?;
    let principals = write_list::<Principal, _>(&mut out, "principals", |emit| {
        let mut count = 0;
        for scope in scopes {
            let table = build_principals(args, ids, scope, notes.entry(scope.index).or_default());
            for principal in &table.principals {
                emit(principal)?;
            }
            count += table.principals.len();
        }
        Ok(count)
    })?;
    let credentials = write_list::<Credential, _>(&mut out, "credentials", |emit| {
        let mut count = 0;
        for scope in scopes {
            let mut scratch = Notes::default();
            let table = build_principals(args, ids, scope, &mut scratch);
            let scope_notes = notes.entry(scope.index).or_default();
            count += build_credentials(args, ids, scope, &table, scope_notes, &mut *emit)?;
        }
        Ok(count)
    })?;
    let grants = write_list::<Grant, _>(&mut out, "grants", |emit| {
        let mut count = 0;
        for scope in scopes {
            let mut scratch = Notes::default();
            let table = build_principals(args, ids, scope, &mut scratch);
            let scope_notes = notes.entry(scope.index).or_default();
            count += build_grants(args, ids, scope, &table, scope_notes, &mut *emit)?;
        }
        Ok(count)
    })?;
    out.write_all(b"\n}\n")?;
    out.flush()?;
    Ok(Totals {
        principals,
        credentials,
        grants,
    })
}

// ---------------------------------------------------------------------------------------------
// Writing the policy

fn q(text: &str) -> String {
    // A JSON string is a valid YAML double-quoted scalar.
    serde_json::to_string(text).unwrap_or_default()
}

fn write_declared(yaml: &mut String, entry: &Declared) {
    let _ = writeln!(yaml, "  - principal: {}", q(&entry.principal));
    let _ = writeln!(yaml, "    entitlement: {}", q(&entry.entitlement));
    if let Some(cloud) = entry.cloud {
        let _ = writeln!(yaml, "    cloud: {cloud}");
    }
    if let Some(scope) = &entry.scope {
        let _ = writeln!(yaml, "    scope: {}", q(scope));
    }
    if let Some(resource) = &entry.resource {
        let _ = writeln!(yaml, "    resource: {}", q(resource));
    }
    if let Some(owner) = &entry.owner {
        let _ = writeln!(yaml, "    owner: {}", q(owner));
    }
    if let Some(ticket) = &entry.ticket {
        let _ = writeln!(yaml, "    ticket: {}", q(ticket));
    }
    if let Some(approved_by) = &entry.approved_by {
        let _ = writeln!(yaml, "    approved_by: {}", q(approved_by));
    }
    let _ = writeln!(yaml, "    reason: {}", q(&entry.reason));
    if let Some(expires) = &entry.expires {
        let _ = writeln!(yaml, "    expires: {}", q(expires));
    }
    if let Some(max_ttl) = &entry.max_ttl {
        let _ = writeln!(yaml, "    max_ttl: {max_ttl}");
    }
}

/// A glob declaration. It names its maintaining team in the reason, not as `owner`: an owner on
/// a glob would make every principal it matches owned and hide the estate's `unowned` findings.
fn glob(principal: &str, entitlement: &str, cloud: Cloud, team: &str, reason: &str) -> Declared {
    Declared {
        principal: principal.to_owned(),
        entitlement: entitlement.to_owned(),
        cloud: Some(cloud),
        scope: None,
        resource: None,
        owner: None,
        ticket: None,
        approved_by: Some("architecture-board@acme.example".into()),
        reason: format!("{reason} (maintained by {team})"),
        expires: None,
        max_ttl: None,
    }
}

fn policy_yaml(args: &Args, notes: &BTreeMap<usize, Notes>) -> (String, usize, usize) {
    let mut yaml = String::new();
    let _ = writeln!(
        yaml,
        "# Generated by `cargo run --example gen-estate -- --principals {} --grants {} --credentials {} --scopes {} --seed {}`.",
        args.principals, args.grants, args.credentials, args.scopes, args.seed
    );
    yaml.push_str(
        r#"version: 1

defaults:
  credential_max_age: 90d
  credential_max_idle: 45d
  principal_max_idle: 90d
  unknown_age: hold

privileged:
  - entitlement: ["arn:aws:iam::*:policy/*-break-glass", "inline/admin-*"]
    cloud: aws
  - entitlement: ["roles/container.admin", "roles/cloudkms.admin"]
    cloud: gcp

protect:
  - principal: ["breakglass*", "arn:aws:iam::*:role/break-glass"]
  - principal: "arn:aws:iam::*:role/terraform-*"
  - tags:
      "lapse:protect": "true"
  - cloud: azure
    entitlement: "Key Vault Crypto Service Encryption User"

rules:
  - id: privileged-jit
    description: Privileged access is just-in-time; undeclared privileged grants live at most 8 hours.
    match:
      privileged: true
    max_ttl: 8h
    unknown_age: hold
    severity: high
  - id: contractor-access
    description: Contractors' undeclared access expires after 30 days.
    match:
      principal_kind: human
      tags:
        employment: contractor
    max_ttl: 30d
    action: report
  - id: gcp-sa-key-rotation
    description: Service-account keys rotate every 90 days and are removed when unused for 30.
    match:
      credential: gcp-sa-key
    max_age: 90d
    max_idle: 30d
  - id: console-password-idle
    match:
      credential: aws-console-password
    max_idle: 90d
  - id: azure-client-secrets
    match:
      credential: [azure-password, azure-certificate]
    max_age: 180d
    max_idle: 60d
  - id: federated-credential-review
    match:
      credential: azure-federated
    max_idle: 180d
    action: report
    severity: low
  - id: idle-humans
    description: People inactive for 60 days are disabled (reversible).
    subject: principals
    match:
      principal_kind: human
    max_idle: 60d
    action: disable
  - id: idle-prod-workloads
    subject: principals
    match:
      principal_kind: [workload, role]
      tags:
        env: prod
    max_idle: 180d
    action: report

owners:
  - principal: "arn:aws:iam::*:role/legacy-*"
    owner: team-platform
  - principal: "mi-platform-*"
    owner: team-platform

"#,
    );

    // Declared grants: a few globs for the estate's standard access, then literals.
    let globs = [
        glob(
            "arn:aws:iam::*:role/app-*",
            "arn:aws:iam::*:policy/app-*",
            Cloud::Aws,
            "team-platform",
            "application roles hold their own customer-managed policies",
        ),
        glob(
            "arn:aws:iam::*:role/app-*",
            "arn:aws:iam::aws:policy/{Amazon*ReadOnlyAccess,service-role/*}",
            Cloud::Aws,
            "team-platform",
            "read-only and execution-role managed policies for applications",
        ),
        glob(
            "arn:aws:iam::*:role/app-*",
            "inline/app-*",
            Cloud::Aws,
            "team-platform",
            "inline policies generated by the app module",
        ),
        glob(
            "arn:aws:iam::*:user/svc/*",
            "arn:aws:iam::{*:policy/svc-*,*:role/app-*,aws:policy/Amazon*ReadOnlyAccess}",
            Cloud::Aws,
            "team-platform",
            "service users: own policies, read-only access, assuming app roles",
        ),
        glob(
            "arn:aws:iam::*:user/people/*",
            "arn:aws:iam::*:group/team-*",
            Cloud::Aws,
            "team-it",
            "people get access through team groups",
        ),
        glob(
            "arn:aws:iam::*:group/team-*",
            "arn:aws:iam::{*:policy/team-*,aws:policy/ReadOnlyAccess}",
            Cloud::Aws,
            "team-it",
            "team groups hold team policies",
        ),
        glob(
            "{sp,mi}-*",
            "{Reader,Storage Blob Data Reader,Storage Blob Data Contributor,Key Vault Secrets User,AcrPull,Monitoring Metrics Publisher}",
            Cloud::Azure,
            "team-platform",
            "standard workload roles",
        ),
        glob(
            "*@acme.example",
            "{Reader,Monitoring Reader,Log Analytics Reader,Cost Management Reader,Storage Blob Data Reader,Website Contributor}",
            Cloud::Azure,
            "team-it",
            "standard roles for people",
        ),
        glob(
            "grp-*",
            "{Reader,Storage Blob Data Reader,Monitoring Reader,Website Contributor}",
            Cloud::Azure,
            "team-it",
            "standard roles for groups",
        ),
        glob(
            "serviceAccount:*@*.iam.gserviceaccount.com",
            "roles/{storage.objectViewer,storage.objectCreator,pubsub.*,logging.logWriter,monitoring.metricWriter,cloudsql.client,secretmanager.secretAccessor,cloudtrace.agent,artifactregistry.reader}",
            Cloud::Gcp,
            "team-platform",
            "standard service-account roles",
        ),
        glob(
            "user:*@acme.example",
            "roles/{viewer,browser,logging.viewer,monitoring.viewer,bigquery.dataViewer,bigquery.jobUser}",
            Cloud::Gcp,
            "team-it",
            "standard roles for people",
        ),
        glob(
            "group:*@acme.example",
            "roles/{viewer,bigquery.jobUser,bigquery.dataViewer,storage.objectViewer}",
            Cloud::Gcp,
            "team-it",
            "standard roles for groups",
        ),
    ];
    yaml.push_str("grants:\n");
    let mut count = 0;
    for entry in &globs {
        write_declared(&mut yaml, entry);
        count += 1;
    }
    for scope_notes in notes.values() {
        for entry in &scope_notes.declared {
            write_declared(&mut yaml, entry);
            count += 1;
        }
    }
    // Fill up to about 200 with literal declarations of privileged grants, round-robin.
    let target = 200usize;
    let mut round = 0;
    while count < target {
        let mut added = false;
        for scope_notes in notes.values() {
            if count >= target {
                break;
            }
            if let Some(entry) = scope_notes.privileged.get(round) {
                write_declared(&mut yaml, entry);
                count += 1;
                added = true;
            }
        }
        if !added {
            break;
        }
        round += 1;
    }

    // Exceptions: about 50, round-robin over the scopes' candidates; every 12th has expired.
    yaml.push_str("\nexceptions:\n");
    let mut exceptions = 0;
    let target = 50usize;
    let mut round = 0;
    while exceptions < target {
        let mut added = false;
        for scope_notes in notes.values() {
            if exceptions >= target {
                break;
            }
            let Some(waiver) = scope_notes.waivers.get(round) else {
                continue;
            };
            added = true;
            exceptions += 1;
            let until = if exceptions % 12 == 0 {
                "2026-10-31"
            } else {
                "2027-03-31"
            };
            let _ = writeln!(yaml, "  - principal: {}", q(&waiver.principal));
            if let Some(rule) = &waiver.rule {
                let _ = writeln!(yaml, "    rule: {rule}");
            }
            if let Some(kind) = waiver.kind {
                let _ = writeln!(yaml, "    kind: {kind}");
            }
            if let Some(entitlement) = &waiver.entitlement {
                let _ = writeln!(yaml, "    entitlement: {}", q(entitlement));
            }
            if let Some(credential) = &waiver.credential {
                let _ = writeln!(yaml, "    credential: {}", q(credential));
            }
            let _ = writeln!(yaml, "    until: {}", q(until));
            let _ = writeln!(yaml, "    approved_by: {}", q("security-lead@acme.example"));
            let _ = writeln!(yaml, "    reason: {}", q(&waiver.reason));
            let _ = writeln!(
                yaml,
                "    ticket: {}",
                q(&format!("RISK-{}", 400 + exceptions))
            );
        }
        if !added {
            break;
        }
        round += 1;
    }
    (yaml, count, exceptions)
}

// ---------------------------------------------------------------------------------------------

fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    if let Err(error) = run(&args) {
        eprintln!("gen-estate: {error}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> io::Result<()> {
    let ids = Ids::new(args.seed);
    let scopes = scopes(args, &ids);
    std::fs::create_dir_all(&args.out)?;
    let mut notes: BTreeMap<usize, Notes> = BTreeMap::new();
    let mut total = Totals {
        principals: 0,
        credentials: 0,
        grants: 0,
    };
    let mut bytes = 0u64;
    for file in 0..args.files {
        let mine: Vec<&ScopeDef> = scopes
            .iter()
            .filter(|scope| scope.index % args.files == file)
            .collect();
        let path = args.out.join(format!("estate-{file:02}.json"));
        let totals = write_file(args, &ids, &mine, &path, &mut notes)?;
        bytes += std::fs::metadata(&path)?.len();
        eprintln!(
            "{}: {} scope(s), {} principals, {} credentials, {} grants",
            path.display(),
            mine.len(),
            totals.principals,
            totals.credentials,
            totals.grants
        );
        total.principals += totals.principals;
        total.credentials += totals.credentials;
        total.grants += totals.grants;
    }
    let (yaml, declared, exceptions) = policy_yaml(args, &notes);
    let policy = args.out.join("policy.yaml");
    std::fs::write(&policy, yaml)?;
    eprintln!(
        "{}: {declared} declared grants, 8 rules, {exceptions} exceptions",
        policy.display()
    );
    eprintln!(
        "total: {} scopes, {} principals, {} credentials, {} grants, {:.1} MiB of snapshots",
        scopes.len(),
        total.principals,
        total.credentials,
        total.grants,
        bytes as f64 / (1024.0 * 1024.0)
    );
    Ok(())
}
