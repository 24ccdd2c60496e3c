//! Hostile input: bad policy, snapshot and plan files are each refused with an error naming file and position, and nothing is written.
//!
//! One table of cases, each a small input written at run time (huge and deep ones generated,
//! never committed), run through the binary in an empty folder. For every case:
//! - exit 1, nothing on stdout;
//! - stderr names the file and says where: `bad.yaml:LINE:COLUMN`, serde_json's
//!   `line L column C`, `(line L, column C)` with the record's path (`grants[1]`), or "the
//!   whole file" for a file refused by its size;
//! - stderr holds the case's own words: what is wrong and what to do next;
//! - the folder holds nothing but the input afterwards: no plan (`--out`), no state
//!   (`.lapse/state.db`), no journal, no report;
//! - it ends within 30 seconds (anchor bombs and deep nesting are refused, not worked through).
//!
//! Policies run through `plan --out`, snapshots through `plan --out`, plans through both
//! `report --plan -o` and `apply --execute --yes`.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Policy,
    Snapshot,
    Plan,
}

impl Kind {
    fn file(self) -> &'static str {
        match self {
            Kind::Policy => "bad.yaml",
            Kind::Snapshot | Kind::Plan => "bad.json",
        }
    }
}

enum Content {
    Bytes(Vec<u8>),
    /// A sparse file of this many bytes: no disk space, and no test memory.
    Sparse(u64),
}

struct Case {
    name: &'static str,
    kind: Kind,
    content: Content,
    /// Substrings stderr must hold: the position and the message.
    expect: Vec<String>,
}

fn case(name: &'static str, kind: Kind, bytes: impl Into<Vec<u8>>, expect: &[&str]) -> Case {
    Case {
        name,
        kind,
        content: Content::Bytes(bytes.into()),
        expect: expect.iter().map(|text| (*text).to_owned()).collect(),
    }
}

fn pretty(value: &Value) -> Vec<u8> {
    serde_json::to_vec_pretty(value).expect("json")
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&fs::read(path).expect("read")).expect("json")
}

/// The basic fixture snapshot (one AWS account), changed by `edit`.
fn aws_snapshot(edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut snapshot = read_json(&fixture("basic", "snapshot.json"));
    edit(&mut snapshot);
    pretty(&snapshot)
}

/// A demo snapshot file, changed by `edit`.
fn demo_snapshot(file: &str, edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut snapshot = read_json(&repo(&format!("examples/demo/{file}")));
    edit(&mut snapshot);
    pretty(&snapshot)
}

/// The demo plan, saved by this build, changed by `edit`.
fn demo_plan(base: &Value, edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut plan = base.clone();
    edit(&mut plan);
    pretty(&plan)
}

/// The index of the first action on a record of this scope prefix and kind.
fn action_index(plan: &Value, action: &str, scope_prefix: &str) -> usize {
    plan["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .position(|change| {
            change["action"] == action
                && ["grant", "credential", "principal"].iter().any(|key| {
                    change[key]["scope"]
                        .as_str()
                        .is_some_and(|scope| scope.starts_with(scope_prefix))
                })
        })
        .unwrap_or_else(|| panic!("no {action} in {scope_prefix} in the demo plan"))
}

/// Recomputes an action's target digest after an edit, as a forger would.
fn fix_digest(change: &mut Value) {
    let mut action = change.clone();
    for key in [
        "sequence",
        "finding_ids",
        "reversible",
        "target_digest",
        "principal_unique_id",
    ] {
        action.as_object_mut().expect("object").remove(key);
    }
    let action: lapse_sdk::Action = serde_json::from_value(action).expect("action");
    let unique_id = change["principal_unique_id"].as_str().map(str::to_owned);
    change["target_digest"] =
        Value::from(lapse::plan::target_digest(&action, unique_id.as_deref()));
}

fn billion_laughs() -> String {
    let mut text = String::from(
        "version: 1\nprivileged:\n  - entitlement: &a [x, x, x, x, x, x, x, x, x, x]\n",
    );
    for level in 1..9u8 {
        let name = char::from(b'a' + level);
        let previous = char::from(b'a' + level - 1);
        let items = vec![format!("*{previous}"); 10].join(", ");
        text.push_str(&format!("  - entitlement: &{name} [{items}]\n"));
    }
    text
}

fn policy_cases() -> Vec<Case> {
    use Kind::Policy;
    let width = {
        let big = vec!["x"; 5_000].join(", ");
        format!(
            "version: 1\nprivileged:\n  - entitlement: &big [{big}]\n{}",
            "  - entitlement: *big\n".repeat(5_000)
        )
    };
    let deep_block: String = (1..200)
        .map(|depth| format!("{}-\n", "  ".repeat(depth)))
        .collect();
    let utf16: Vec<u8> = [0xFF, 0xFE]
        .into_iter()
        .chain("version: 1\n".encode_utf16().flat_map(u16::to_le_bytes))
        .collect();
    vec![
        case(
            "truncated policy",
            Policy,
            "version: 1\nrules:\n  - id: \"keys\n    max_age: 9",
            &["bad.yaml:3:", "quoted scalar"],
        ),
        case(
            "empty policy",
            Policy,
            "",
            &[
                "bad.yaml:1:1: missing field `version`",
                "a policy starts with `version: 1`",
            ],
        ),
        case(
            "wrong policy version",
            Policy,
            "version: 2\n",
            &[
                "bad.yaml:1:10: version: policy version 2 is not supported",
                "this lapse reads `version: 1`",
            ],
        ),
        case(
            "version as a string",
            Policy,
            "version: \"1\"\n",
            &["bad.yaml:1:10: version: invalid type: string \"1\""],
        ),
        case(
            "a list, not a policy",
            Policy,
            "- version: 1\n",
            &["bad.yaml:1:1: invalid type: sequence"],
        ),
        case(
            "a snapshot given as a policy (wrong format)",
            Policy,
            pretty(&read_json(&fixture("basic", "snapshot.json"))),
            &[
                "bad.yaml:2:3: unknown field `credentials`",
                "check the spelling",
            ],
        ),
        case(
            "unknown key",
            Policy,
            "version: 1\nrulez: []\n",
            &["bad.yaml:2:1: unknown field `rulez`", "expected one of"],
        ),
        case(
            "tab indentation",
            Policy,
            "version: 1\nrules:\n\t- id: a\n",
            &["bad.yaml:3:", "YAML indents with spaces, not tabs"],
        ),
        case(
            "byte-order mark inside",
            Policy,
            "version: 1\n\u{feff}rules: []\n",
            &[
                "bad.yaml:2:1: a byte-order mark (U+FEFF) inside the file",
                "remove it",
            ],
        ),
        case(
            "UTF-16 policy",
            Policy,
            utf16,
            &[
                "bad.yaml:1:1: not UTF-8 (byte 0xff)",
                "save the file as UTF-8",
            ],
        ),
        case(
            "Latin-1 byte",
            Policy,
            &b"version: 1\nowners:\n  - principal: a\n    owner: caf\xe9\n"[..],
            &[
                "bad.yaml:4:15: not UTF-8 (byte 0xe9)",
                "save the file as UTF-8",
            ],
        ),
        case(
            "NUL byte",
            Policy,
            "version: 1\nrules:\n  - id: a\u{0}b\n",
            &[
                "bad.yaml:3:10: control character U+0000 is not allowed",
                "remove it",
            ],
        ),
        case(
            "escape character",
            Policy,
            "version: 1\nowners:\n  - principal: a\n    owner: \u{1b}[31mred\n",
            &["bad.yaml:4:12: control character U+001B"],
        ),
        case(
            "duplicate top-level key",
            Policy,
            "version: 1\nrules: []\nrules: []\n",
            &[
                "bad.yaml:3:1: key `rules` is written twice in this mapping (first on line 2)",
                "remove the other",
            ],
        ),
        case(
            "duplicate tag key",
            Policy,
            "version: 1\nprotect:\n  - tags: {break-glass: \"true\", break-glass: \"false\"}\n",
            &["bad.yaml:3:33: key `break-glass` is written twice"],
        ),
        case(
            "merge key",
            Policy,
            "version: 1\ndefaults: &d {credential_max_age: 90d}\nrules:\n  - <<: *d\n    id: keys\n",
            &[
                "bad.yaml:4:5: YAML merge keys (`<<`) are not supported",
                "write the keys out",
            ],
        ),
        case(
            "billion laughs",
            Policy,
            billion_laughs(),
            &[
                "bad.yaml:6:50: aliases expand this document past",
                "alias bomb",
            ],
        ),
        case(
            "one list aliased 5,000 times",
            Policy,
            width,
            &["bad.yaml:", "aliases expand this document past"],
        ),
        case(
            "100,000 unclosed brackets",
            Policy,
            format!("version: 1\nprotect: {}", "[".repeat(100_000)),
            &["bad.yaml:2:", "nested"],
        ),
        case(
            "100,000 nested mappings",
            Policy,
            format!(
                "version: 1\nprotect: {}1{}",
                "{a: ".repeat(100_000),
                "}".repeat(100_000)
            ),
            &["bad.yaml:2:", "nested"],
        ),
        case(
            "deep block nesting",
            Policy,
            format!("version: 1\nprotect:\n{deep_block}"),
            &["bad.yaml:", "nested more than 64 levels deep"],
        ),
        case(
            "second document",
            Policy,
            "version: 1\n---\nversion: 1\n",
            &[
                "bad.yaml:2:1: a second YAML document starts here",
                "put each in its own file of a policy folder",
            ],
        ),
        case(
            "number where a list belongs",
            Policy,
            "version: 1\nprotect: 5\n",
            &["bad.yaml:2:10: protect: invalid type: integer `5`"],
        ),
        case(
            "number where a boolean belongs",
            Policy,
            "version: 1\nrules:\n  - id: a\n    max_ttl: 8h\n    match: {privileged: 1}\n",
            &[
                "bad.yaml:5:25: rules[0].match.privileged: invalid type: integer `1`, expected a boolean",
            ],
        ),
        case(
            "null approver",
            Policy,
            "version: 1\nexceptions:\n  - rule: defaults\n    principal: a\n    until: 2027-01-01\n    approved_by: ~\n    reason: r\n",
            &[
                "bad.yaml:6:18: `approved_by` has no value",
                "write the value, or remove the key",
            ],
        ),
        case(
            "null principal in protect (would protect every AWS principal)",
            Policy,
            "version: 1\nprotect:\n  - principal: null\n    cloud: aws\n",
            &["bad.yaml:3:16: `principal` has no value"],
        ),
        case(
            "empty reason",
            Policy,
            "version: 1\nexceptions:\n  - rule: defaults\n    principal: a\n    until: 2027-01-01\n    approved_by: bob\n    reason:\n",
            &["bad.yaml:7:5: `reason` has no value"],
        ),
        case(
            "date out of range",
            Policy,
            "version: 1\ngrants:\n  - principal: a\n    entitlement: b\n    expires: 99999-01-01\n",
            &[
                "bad.yaml:5:14: grants[0].expires: `99999-01-01` is not a timestamp",
                "expected RFC 3339",
            ],
        ),
        case(
            "impossible date",
            Policy,
            "version: 1\ngrants:\n  - principal: a\n    entitlement: b\n    expires: 2026-02-30\n",
            &["bad.yaml:5:14: grants[0].expires: `2026-02-30` is not a timestamp"],
        ),
        case(
            "duration overflowing i64",
            Policy,
            "version: 1\ndefaults:\n  credential_max_age: 99999999999999999999d\n",
            &[
                "bad.yaml:3:23: defaults.credential_max_age: `99999999999999999999d` is too large for a duration",
            ],
        ),
        case(
            "duration past the calendar (fits i64)",
            Policy,
            "version: 1\nrules:\n  - id: keys\n    subject: credentials\n    max_idle: 45d\n    delete_after: 9999999999999d\n",
            &[
                "bad.yaml:6:19: rules[0].delete_after: `9999999999999d` is longer than 100 years",
                "leave the key out",
            ],
        ),
        case(
            "negative duration",
            Policy,
            "version: 1\ndefaults:\n  grant_max_ttl: -8h\n",
            &["bad.yaml:3:18: defaults.grant_max_ttl: `-8h` is not a duration"],
        ),
        case(
            "account that is not 12 digits",
            Policy,
            "version: 1\nscopes:\n  aws: [{account: \"12345\"}]\n",
            &[
                "bad.yaml:3:",
                "account `12345` is not a 12-digit AWS account id",
            ],
        ),
        case(
            "role to assume in another account",
            Policy,
            "version: 1\nscopes:\n  aws:\n    - account: \"111122223333\"\n      assume_role: arn:aws:iam::999999999999:role/lapse-read\n",
            &[
                "bad.yaml:",
                "is in account 999999999999, not in the scope's account 111122223333",
                "name the role in 111122223333",
            ],
        ),
        case(
            "subscription with a path",
            Policy,
            "version: 1\nscopes:\n  azure: [{tenant: contoso.onmicrosoft.com, subscriptions: [\"../other\"]}]\n",
            &[
                "bad.yaml:3:",
                "subscription `../other` is neither a subscription id nor `*`",
            ],
        ),
        case(
            "project and folder in one entry",
            Policy,
            "version: 1\nscopes:\n  gcp: [{project: acme-prod, folder: \"42\"}]\n",
            &[
                "bad.yaml:3:",
                "give exactly one of `project`, `folder` or `organization`",
            ],
        ),
        case(
            "declared principal outside its declared scope",
            Policy,
            "version: 1\ngrants:\n  - principal: arn:aws:iam::999999999999:user/x\n    entitlement: arn:aws:iam::aws:policy/ReadOnlyAccess\n    scope: \"111122223333\"\n",
            &[
                "bad.yaml:5:12:",
                "is in account 999999999999, outside the declared scope 111122223333",
                "can never match",
            ],
        ),
        case(
            "declared Google resource in another project",
            Policy,
            "version: 1\ngrants:\n  - principal: user:ana@acme.example\n    entitlement: roles/viewer\n    scope: projects/acme-prod\n    resource: projects/other\n",
            &[
                "bad.yaml:5:12:",
                "resource `projects/other` is outside the declared scope projects/acme-prod",
            ],
        ),
        case(
            "duplicate rule ids",
            Policy,
            "version: 1\nrules:\n  - {id: keys, max_age: 90d}\n  - {id: keys, max_age: 30d}\n",
            &[
                "bad.yaml:4:",
                "rule id `keys` is already used at",
                "rule ids must be unique",
            ],
        ),
        case(
            "exception naming no rule",
            Policy,
            "version: 1\nexceptions:\n  - rule: nothing\n    principal: a\n    until: 2027-01-01\n    approved_by: bob\n    reason: r\n",
            &[
                "bad.yaml:3:",
                "names rule `nothing`, which no policy file defines",
            ],
        ),
        case(
            "broken glob",
            Policy,
            "version: 1\nprotect:\n  - principal: \"arn:aws:iam::*:role/[admin\"\n",
            &[
                "bad.yaml:3:16: protect[0].principal: `arn:aws:iam::*:role/[admin` is not a valid glob",
            ],
        ),
        case(
            "unknown action",
            Policy,
            "version: 1\nrules:\n  - id: a\n    max_ttl: 8h\n    action: nuke\n",
            &["bad.yaml:5:13: rules[0].action: unknown variant `nuke`"],
        ),
        case(
            "enormous key (16 MiB)",
            Policy,
            format!("version: 1\n{}: 1\n", "k".repeat(16 << 20)),
            &[
                "bad.yaml:2:16777217: simple key expect ':'",
                "within 1024 characters",
            ],
        ),
        case(
            "enormous string where a list belongs (16 MiB)",
            Policy,
            format!("version: 1\nprotect: {}\n", "x".repeat(16 << 20)),
            &[
                "bad.yaml:2:10: protect: invalid type: string \"xxxx",
                "… (cut: the message quotes",
            ],
        ),
        Case {
            name: "huge policy (65 MiB, sparse)",
            kind: Policy,
            content: Content::Sparse((64 << 20) + 1),
            expect: vec![
                "bad.yaml is 65 MiB, more than the 64 MiB a policy file may be".to_owned(),
                "the whole file".to_owned(),
                "split it into several files".to_owned(),
            ],
        },
    ]
}

fn snapshot_cases() -> Vec<Case> {
    use Kind::Snapshot;
    let basic = fs::read(fixture("basic", "snapshot.json")).expect("basic");
    let half = basic[..basic.len() / 2].to_vec();
    let header =
        r#"{"format":"lapse-snapshot","version":1,"taken_at":"2026-11-20T06:00:00Z","scopes":[]"#;
    let utf16: Vec<u8> = [0xFF, 0xFE]
        .into_iter()
        .chain(header.encode_utf16().flat_map(u16::to_le_bytes))
        .collect();
    let other_account = "arn:aws:iam::999999999999:user/x";
    vec![
        case(
            "truncated snapshot",
            Snapshot,
            half,
            &[
                "bad.json: not a lapse snapshot: EOF while parsing",
                "at line",
            ],
        ),
        case(
            "empty snapshot",
            Snapshot,
            "\n",
            &[
                "bad.json: the file is empty (line 1, column 1)",
                "take the snapshot again",
            ],
        ),
        case(
            "a plan given as a snapshot (wrong format tag)",
            Snapshot,
            aws_snapshot(|s| s["format"] = json!("lapse-plan")),
            &[
                "bad.json: not a lapse snapshot: `format` is \"lapse-plan\", expected \"lapse-snapshot\" (line @{\"lapse-plan\"}, column 13)",
            ],
        ),
        case(
            "no format tag",
            Snapshot,
            aws_snapshot(|s| {
                s.as_object_mut().expect("object").remove("format");
            }),
            &["`format` is \"\"", "(line 1, column 1)"],
        ),
        case(
            "wrong snapshot version",
            Snapshot,
            aws_snapshot(|s| s["version"] = json!(2)),
            &[
                "bad.json: snapshot format version 2 is not supported (line @{\"version\"}, column 14",
                "upgrade lapse",
            ],
        ),
        case(
            "no version (read as version 0 before)",
            Snapshot,
            aws_snapshot(|s| {
                s.as_object_mut().expect("object").remove("version");
            }),
            &["bad.json: not a lapse snapshot: missing field `version` at line"],
        ),
        case(
            "version as a string",
            Snapshot,
            aws_snapshot(|s| s["version"] = json!("1")),
            &[
                "bad.json: not a lapse snapshot: invalid type: string \"1\", expected u32 at line @{\"version\"} column 16",
            ],
        ),
        case(
            "byte-order mark",
            Snapshot,
            [&[0xEF, 0xBB, 0xBF][..], &basic].concat(),
            &[
                "bad.json: the file starts with a UTF-8 byte-order mark (line 1, column 1)",
                "save it as UTF-8 without a BOM",
            ],
        ),
        case(
            "UTF-16 snapshot",
            Snapshot,
            utf16,
            &["UTF-16 byte-order mark (line 1, column 1)"],
        ),
        case(
            "Latin-1 byte in a string",
            Snapshot,
            latin1(
                String::from_utf8_lossy(&basic)
                    .replacen("legacy-batch\",", "legacy-batch\u{e9}\",", 1)
                    .as_bytes(),
            ),
            &["bad.json: not a lapse snapshot: invalid unicode code point at line"],
        ),
        case(
            "NUL in a string",
            Snapshot,
            String::from_utf8_lossy(&basic).replacen("ci-deployer\"", "ci-deployer\u{0}\"", 1),
            &[
                "bad.json: not a lapse snapshot: control character (\\u0000-\\u001F) found while parsing a string at line",
            ],
        ),
        case(
            "duplicate field",
            Snapshot,
            String::from_utf8_lossy(&basic).replacen(
                "\"version\": 1,",
                "\"version\": 1, \"version\": 1,",
                1,
            ),
            &["bad.json: not a lapse snapshot: duplicate field `version` at line 3"],
        ),
        case(
            "duplicate tag key",
            Snapshot,
            String::from_utf8_lossy(&basic).replacen(
                "{\"lapse:owner\": \"platform-team\"}",
                "{\"lapse:owner\": \"platform-team\", \"lapse:owner\": \"nobody\"}",
                1,
            ),
            &[
                "bad.json: not a lapse snapshot: tag `lapse:owner` is written twice at line @{nobody} column",
            ],
        ),
        case(
            "number where a string belongs",
            Snapshot,
            aws_snapshot(|s| s["principals"][0]["id"] = json!(123)),
            &[
                "bad.json: not a lapse snapshot: invalid type: integer `123`, expected a string at line",
            ],
        ),
        case(
            "unknown key on a record",
            Snapshot,
            aws_snapshot(|s| s["grants"][0]["approved"] = json!(true)),
            &[
                "bad.json: not a lapse snapshot: unknown field `approved`",
                "at line",
            ],
        ),
        case(
            "date out of range",
            Snapshot,
            aws_snapshot(|s| s["principals"][0]["created_at"] = json!("+10000-01-01T00:00:00Z")),
            &["`+10000-01-01T00:00:00Z` is not a timestamp", "at line"],
        ),
        case(
            "created after its scope was read",
            Snapshot,
            aws_snapshot(|s| s["credentials"][1]["created_at"] = json!("2099-01-01T00:00:00Z")),
            &[
                "credentials[1] (line",
                "`created_at` 2099-01-01T00:00:00Z is after its scope aws:111122223333 was read",
                "take the snapshot again with `lapse snapshot`",
            ],
        ),
        case(
            "100,000 nested arrays",
            Snapshot,
            format!(
                "{{\"format\":\"lapse-snapshot\",\"version\":1,\"taken_at\":\"2026-11-20T06:00:00Z\",\"scopes\":[],\"principals\":[{{\"id\":\"a\",\"tags\":{{\"x\":{}}}}}]}}",
                "[".repeat(100_000)
            ),
            &["bad.json: not a lapse snapshot:", "at line 1 column"],
        ),
        case(
            "principal of another account",
            Snapshot,
            aws_snapshot(|s| s["principals"][1]["id"] = json!(other_account)),
            &[
                "principals[1] (line",
                "principal `arn:aws:iam::999999999999:user/x` is in account 999999999999, not in its scope aws:111122223333",
                "the file was edited or forged",
            ],
        ),
        case(
            "credential whose principal is in another account",
            Snapshot,
            aws_snapshot(|s| s["credentials"][0]["principal"] = json!(other_account)),
            &[
                "credentials[0] (line",
                "is in account 999999999999, not in its scope aws:111122223333",
            ],
        ),
        case(
            "grant on another account",
            Snapshot,
            aws_snapshot(|s| s["grants"][1]["resource"] = json!("999999999999")),
            &[
                "grants[1] (line",
                "resource `999999999999` is not its scope's account 111122223333",
            ],
        ),
        case(
            "customer policy of another account",
            Snapshot,
            aws_snapshot(|s| {
                s["grants"][2]["entitlement"] = json!("arn:aws:iam::999999999999:policy/batch-s3")
            }),
            &[
                "grants[2] (line",
                "is neither AWS's nor account 111122223333's",
            ],
        ),
        case(
            "record whose cloud disagrees with its scope",
            Snapshot,
            aws_snapshot(|s| s["principals"][0]["cloud"] = json!("gcp")),
            &[
                "principals[0] (line",
                "`cloud` is gcp but its scope aws:111122223333 is an aws scope",
            ],
        ),
        case(
            "record in a scope the file did not read",
            Snapshot,
            aws_snapshot(|s| s["grants"][0]["scope"] = json!("aws:999999999999")),
            &[
                "grants[0] (line",
                "its scope `aws:999999999999` is not among the file's scopes",
            ],
        ),
        case(
            "grant kind of another cloud",
            Snapshot,
            aws_snapshot(|s| s["grants"][0]["kind"] = json!("iam-binding")),
            &[
                "grants[0] (line",
                "a iam-binding grant does not exist in aws",
            ],
        ),
        case(
            "malformed scope id",
            Snapshot,
            aws_snapshot(|s| s["scopes"][0]["id"] = json!("aws:1234")),
            &["scopes[0] (line", "scope id `aws:1234` is none of"],
        ),
        case(
            "scope whose cloud disagrees with its id",
            Snapshot,
            aws_snapshot(|s| s["scopes"][0]["cloud"] = json!("azure")),
            &["scopes[0] (line", "is an aws scope but says `cloud: azure`"],
        ),
        case(
            "scope read twice",
            Snapshot,
            aws_snapshot(|s| {
                let scope = s["scopes"][0].clone();
                s["scopes"].as_array_mut().expect("scopes").push(scope);
            }),
            &["scopes[1] (line", "appears twice"],
        ),
        case(
            "duplicate principal id",
            Snapshot,
            aws_snapshot(|s| {
                let principal = s["principals"][0].clone();
                s["principals"]
                    .as_array_mut()
                    .expect("principals")
                    .push(principal);
            }),
            &[
                "principals[4] (line",
                "is already used by principals[0]",
                "a file holds each record once",
            ],
        ),
        case(
            "duplicate grant id",
            Snapshot,
            aws_snapshot(|s| s["grants"][3]["id"] = s["grants"][0]["id"].clone()),
            &["grants[3] (line", "is already used by grants[0]"],
        ),
        case(
            "Google grant on another project",
            Snapshot,
            demo_snapshot("gcp-acme-prod.json", |s| {
                s["grants"][0]["resource"] = json!("projects/other")
            }),
            &[
                "grants[0] (line",
                "resource `projects/other` is outside its scope gcp:projects/acme-prod",
            ],
        ),
        case(
            "Google key of another project",
            Snapshot,
            demo_snapshot("gcp-acme-prod.json", |s| {
                let id = s["credentials"][0]["id"]
                    .as_str()
                    .expect("id")
                    .replace("projects/acme-prod/", "projects/other/");
                s["credentials"][0]["id"] = json!(id);
            }),
            &[
                "credentials[0] (line",
                "is in project other, not in its scope gcp:projects/acme-prod",
            ],
        ),
        case(
            "Azure assignment in another subscription",
            Snapshot,
            demo_snapshot("azure-contoso.json", |s| {
                let grants = s["grants"].as_array_mut().expect("grants");
                let assignment = grants
                    .iter_mut()
                    .find(|grant| grant["kind"] == "role-assignment")
                    .expect("role assignment");
                assignment["id"] = json!(
                    "/subscriptions/00000000-0000-0000-0000-000000000000/providers/Microsoft.Authorization/roleAssignments/1e5c9a3f-7d2b-4f60-8a4e-3c9f1b7d5e02"
                );
            }),
            &[
                "grants[",
                "is in subscription 00000000-0000-0000-0000-000000000000, not in its scope azure:/subscriptions/3c1f8e2a-7b4d-4e9a-a1c5-9d2f6e8b0a17",
            ],
        ),
        case(
            "enormous id of another account (16 MiB)",
            Snapshot,
            aws_snapshot(|s| {
                s["principals"][1]["id"] = json!(format!(
                    "arn:aws:iam::999999999999:user/{}",
                    "x".repeat(16 << 20)
                ));
            }),
            &[
                "principals[1] (line",
                "principal `arn:aws:iam::999999999999:user/xxxx",
                "… (cut: the message quotes",
            ],
        ),
        Case {
            name: "huge snapshot (2 GiB + 1 byte, sparse)",
            kind: Snapshot,
            content: Content::Sparse((2 << 30) + 1),
            expect: vec![
                "bad.json is 2049 MiB, more than the 2048 MiB a snapshot file may be".to_owned(),
                "the whole file".to_owned(),
                "take one snapshot file per account, subscription or project".to_owned(),
            ],
        },
    ]
}

/// Text as Latin-1 bytes: every character below 256 as one byte, so `é` is the lone byte
/// 0xE9, which is not UTF-8.
fn latin1(bytes: &[u8]) -> Vec<u8> {
    String::from_utf8_lossy(bytes)
        .chars()
        .map(|character| u8::try_from(u32::from(character)).unwrap_or(b'?'))
        .collect()
}

fn plan_cases(base: &Value) -> Vec<Case> {
    use Kind::Plan;
    let text = serde_json::to_string_pretty(base).expect("json");
    let aws_key = action_index(base, "deactivate-credential", "aws:");
    let aws_grant = action_index(base, "revoke-grant", "aws:");
    let gcp_grant = action_index(base, "revoke-grant", "gcp:");
    vec![
        case(
            "truncated plan",
            Plan,
            &text.as_bytes()[..text.len() / 2],
            &[
                "bad.json is not a readable lapse plan: EOF while parsing",
                "at line",
            ],
        ),
        case(
            "a snapshot given as a plan",
            Plan,
            fs::read(fixture("basic", "snapshot.json")).expect("basic"),
            &[
                "bad.json is not a lapse plan (format \"lapse-snapshot\", expected \"lapse-plan\", at line 2, column 13)",
                "save one with `lapse plan --out FILE`",
            ],
        ),
        case(
            "wrong plan version",
            Plan,
            demo_plan(base, |p| p["version"] = json!(2)),
            &[
                "bad.json is plan format version 2; this lapse reads version 1 (`version` at line @{\"version\"}, column 14)",
                "plan again",
            ],
        ),
        case(
            "byte-order mark",
            Plan,
            [&[0xEF, 0xBB, 0xBF][..], text.as_bytes()].concat(),
            &[
                "bad.json:1:1: the file starts with a UTF-8 byte-order mark",
                "make the plan again",
            ],
        ),
        case(
            "Latin-1 byte",
            Plan,
            latin1(
                text.replacen("legacy-batch", "legacy-batch\u{e9}", 1)
                    .as_bytes(),
            ),
            &["bad.json:", "not UTF-8 (byte 0xe9)"],
        ),
        case(
            "NUL in a string",
            Plan,
            text.replacen("lapse-plan", "lapse-plan\u{0}", 1),
            &[
                "bad.json is not a readable lapse plan: control character",
                "at line @{lapse-plan\u{0}} column",
            ],
        ),
        case(
            "100,000 unclosed arrays under an unknown key",
            Plan,
            {
                let mut plan = base.clone();
                plan["extra"] = json!("DEEP");
                String::from_utf8(pretty(&plan))
                    .expect("utf-8")
                    .replace("\"DEEP\"", &"[".repeat(100_000))
            },
            &[
                "bad.json is not a readable lapse plan: expected value at line @{\"extra\"} column 100012",
            ],
        ),
        case(
            "forged target digest",
            Plan,
            demo_plan(base, |p| {
                p["actions"][aws_key]["target_digest"] = json!("sha256:0000")
            }),
            &[
                &format!("actions[{aws_key}].target_digest (line"),
                "does not match its target digest",
                "make the plan again with `lapse plan --out FILE`",
            ],
        ),
        case(
            "record edited without its digest",
            Plan,
            demo_plan(base, |p| {
                p["actions"][aws_grant]["grant"]["entitlement"] =
                    json!("arn:aws:iam::aws:policy/ReadOnlyAccess")
            }),
            &[
                &format!("actions[{aws_grant}].target_digest (line"),
                "was edited after the plan was made",
            ],
        ),
        case(
            "principal of another account, digest fixed",
            Plan,
            demo_plan(base, |p| {
                let change = &mut p["actions"][aws_grant];
                change["grant"]["principal"] = json!("arn:aws:iam::999999999999:user/x");
                fix_digest(change);
            }),
            &[
                &format!("actions[{aws_grant}].grant (line"),
                "principal `arn:aws:iam::999999999999:user/x` is in account 999999999999, not in its scope aws:111122223333",
            ],
        ),
        case(
            "Google grant on another project, digest fixed",
            Plan,
            demo_plan(base, |p| {
                let change = &mut p["actions"][gcp_grant];
                change["grant"]["resource"] = json!("projects/victim");
                fix_digest(change);
            }),
            &[
                &format!("actions[{gcp_grant}].grant (line"),
                "resource `projects/victim` is outside its scope gcp:projects/acme-prod",
            ],
        ),
        case(
            "action in a scope the plan did not read, digest fixed",
            Plan,
            demo_plan(base, |p| {
                let change = &mut p["actions"][aws_key];
                change["credential"]["scope"] = json!("aws:999999999999");
                fix_digest(change);
            }),
            &[
                &format!("actions[{aws_key}] (line"),
                "its scope `aws:999999999999` is not among the plan's scopes",
            ],
        ),
        case(
            "duplicate sequence number",
            Plan,
            demo_plan(base, |p| p["actions"][1]["sequence"] = json!(1)),
            &[
                "actions[1].sequence (line",
                "sequence number 1 is already used by actions[0]",
            ],
        ),
        case(
            "reversible flag that lies",
            Plan,
            demo_plan(base, |p| p["actions"][aws_key]["reversible"] = json!(false)),
            &[
                &format!("actions[{aws_key}].reversible (line"),
                "says reversible: false, but a deactivate-credential is reversible",
            ],
        ),
        case(
            "action naming a finding the plan lacks",
            Plan,
            demo_plan(base, |p| {
                p["actions"][0]["finding_ids"] = json!(["LPS-000000000000"])
            }),
            &[
                "actions[0].finding_ids (line",
                "names finding LPS-000000000000, which the plan does not hold",
            ],
        ),
        case(
            "complete snapshot while a scope was not",
            Plan,
            demo_plan(base, |p| p["scopes"][0]["complete"] = json!(false)),
            &[
                "snapshot.complete (line",
                "says the snapshot was complete, but 1 of its scopes were not read completely",
            ],
        ),
        case(
            "finding count that lies",
            Plan,
            demo_plan(base, |p| p["summary"]["findings"] = json!(0)),
            &[
                "summary.findings (line",
                "says 0 findings, but the plan holds",
            ],
        ),
        case(
            "duplicate finding id",
            Plan,
            demo_plan(base, |p| {
                p["findings"][1]["id"] = p["findings"][0]["id"].clone()
            }),
            &["findings[1] (line", "is already used by findings[0]"],
        ),
        Case {
            name: "huge plan (2 GiB + 1 byte, sparse)",
            kind: Plan,
            content: Content::Sparse((2 << 30) + 1),
            expect: vec![
                "bad.json is 2049 MiB, more than the 2048 MiB a plan file may be".to_owned(),
                "the whole file".to_owned(),
            ],
        },
    ]
}

/// Every file under `folder`, relative.
fn contents(folder: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![folder.to_owned()];
    while let Some(current) = pending.pop() {
        for entry in fs::read_dir(&current).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                pending.push(path.clone());
            }
            found.push(path.strip_prefix(folder).expect("inside").to_owned());
        }
    }
    found.sort();
    found
}

/// The commands a case runs, each in the case's folder.
fn commands(kind: Kind) -> Vec<Vec<String>> {
    let strings = |items: &[&str]| items.iter().map(|item| (*item).to_owned()).collect();
    let path = |path: PathBuf| path.display().to_string();
    match kind {
        Kind::Policy => vec![
            [
                strings(&[
                    "plan",
                    "--now",
                    NOW,
                    "--out",
                    "plan.json",
                    "--format",
                    "json",
                    "--policy",
                    "bad.yaml",
                    "--snapshot",
                ]),
                vec![path(fixture("basic", "snapshot.json"))],
            ]
            .concat(),
        ],
        Kind::Snapshot => vec![
            [
                strings(&[
                    "plan",
                    "--now",
                    NOW,
                    "--out",
                    "plan.json",
                    "--format",
                    "json",
                    "--snapshot",
                    "bad.json",
                    "--policy",
                ]),
                vec![path(fixture("basic", "policy.yaml"))],
            ]
            .concat(),
        ],
        Kind::Plan => vec![
            strings(&[
                "report",
                "--plan",
                "bad.json",
                "--format",
                "html",
                "-o",
                "report.html",
            ]),
            strings(&["apply", "bad.json", "--now", NOW, "--execute", "--yes"]),
        ],
    }
}

/// `@{TEXT}` in an expectation is the 1-based number of the first line of the input holding
/// TEXT: pretty-printed JSON puts keys in alphabetical order, so lines are found, not counted.
fn resolve(expected: &str, input: &[u8]) -> String {
    let Some(start) = expected.find("@{") else {
        return expected.to_owned();
    };
    let end = start + expected[start..].find('}').expect("closing brace");
    let needle = &expected[start + 2..end];
    let text = String::from_utf8_lossy(input);
    let line = text
        .lines()
        .position(|line| line.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} is not in the input"))
        + 1;
    resolve(
        &format!("{}{line}{}", &expected[..start], &expected[end + 1..]),
        input,
    )
}

/// Position, as the message carries it.
fn names_a_position(stderr: &str, file: &str) -> bool {
    let patterns = [
        format!(r"{}:\d+:\d+", regex_escape(file)),
        r"line \d+,? column \d+".to_owned(),
        "the whole file".to_owned(),
    ];
    patterns.iter().any(|pattern| {
        predicates::str::is_match(pattern.as_str())
            .expect("regex")
            .eval(stderr)
    })
}

fn regex_escape(text: &str) -> String {
    text.replace('.', r"\.")
}

fn run(case: &Case) -> Vec<String> {
    let mut failures = Vec::new();
    for arguments in commands(case.kind) {
        let folder = tempfile::tempdir().expect("tempdir");
        let input = folder.path().join(case.kind.file());
        match &case.content {
            Content::Bytes(bytes) => fs::write(&input, bytes).expect("write"),
            Content::Sparse(size) => fs::File::create(&input)
                .and_then(|file| file.set_len(*size))
                .expect("sparse file"),
        }
        let started = Instant::now();
        let output = lapse()
            .current_dir(folder.path())
            .env_remove("AWS_PROFILE")
            .args(&arguments)
            .timeout(Duration::from_secs(60))
            .output()
            .expect("run lapse");
        let elapsed = started.elapsed();
        let stderr = String::from_utf8_lossy(&output.stderr);
        let command = arguments.first().cloned().unwrap_or_default();
        let mut fail = |what: String| {
            failures.push(format!(
                "{} ({command}): {what}\n  stderr: {stderr}",
                case.name
            ));
        };
        if output.status.code() != Some(1) {
            fail(format!("exit {:?}, not 1", output.status.code()));
        }
        if !output.stdout.is_empty() {
            fail(format!(
                "stdout is not empty: {}",
                String::from_utf8_lossy(&output.stdout)
            ));
        }
        if !stderr.contains(case.kind.file()) {
            fail("stderr does not name the file".to_owned());
        }
        if !names_a_position(&stderr, case.kind.file()) {
            fail("stderr names no position".to_owned());
        }
        for expected in &case.expect {
            let expected = match &case.content {
                Content::Bytes(bytes) => resolve(expected, bytes),
                Content::Sparse(_) => expected.clone(),
            };
            if !stderr.contains(expected.as_str()) {
                fail(format!("stderr lacks {expected:?}"));
            }
        }
        if stderr.len() > 16 * 1024 {
            fail(format!(
                "stderr is {} bytes: messages must stay readable",
                stderr.len()
            ));
        }
        if elapsed > Duration::from_secs(30) {
            fail(format!("took {elapsed:?}"));
        }
        let left = contents(folder.path());
        if left != [PathBuf::from(case.kind.file())] {
            fail(format!("wrote {left:?}"));
        }
    }
    failures
}

/// The demo plan, saved by this build.
fn saved_demo_plan() -> Value {
    let folder = tempfile::tempdir().expect("tempdir");
    let out = folder.path().join("plan.json");
    let output = lapse()
        .args([
            "plan",
            "--now",
            NOW,
            "--no-state",
            "--format",
            "json",
            "--out",
        ])
        .arg(&out)
        .arg("--policy")
        .arg(repo("examples/demo/policy.yaml"))
        .arg("--snapshot")
        .args(demo_snapshots())
        .output()
        .expect("plan");
    assert_eq!(
        output.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    read_json(&out)
}

#[test]
fn every_hostile_input_is_refused_with_its_file_and_position_and_nothing_is_written() {
    let base = saved_demo_plan();
    let cases: Vec<Case> = policy_cases()
        .into_iter()
        .chain(snapshot_cases())
        .chain(plan_cases(&base))
        .collect();
    assert!(cases.len() >= 50, "{} cases", cases.len());
    let failures: Vec<String> = cases.iter().flat_map(run).collect();
    assert!(
        failures.is_empty(),
        "{} of {} hostile inputs were not refused as they should be:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn the_inputs_the_hostile_cases_start_from_are_accepted() {
    // Each hostile case is one edit away from one of these; they must pass as they are.
    let folder = tempfile::tempdir().expect("tempdir");
    let plan = folder.path().join("plan.json");
    fs::write(&plan, pretty(&saved_demo_plan())).expect("write");
    lapse()
        .args(["report", "--format", "json", "--plan"])
        .arg(&plan)
        .assert()
        .code(2);
    for file in demo_snapshots()
        .into_iter()
        .chain([fixture("basic", "snapshot.json")])
    {
        lapse()
            .args(["validate", "--policy"])
            .arg(fixture("basic", "policy.yaml"))
            .arg("--snapshot")
            .arg(&file)
            .assert()
            .code(0);
    }
    // YAML allows a byte-order mark at the start; editors on Windows write one.
    let (_folder, policy) = temp_policy(
        "\u{feff}version: 1\nprotect:\n  - &p {principal: \"arn:aws:iam::*:role/admin\"}\n  - *p\n",
    );
    lapse()
        .args(["validate", "--policy"])
        .arg(&policy)
        .assert()
        .code(0);
}
