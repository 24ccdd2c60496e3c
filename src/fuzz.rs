//! Property tests over the loaders of what lapse reads from files: the policy parser, the
//! snapshot loader and the saved-plan reader, fed random YAML-ish text and random mutations of
//! valid files (byte flips, truncations, splices, repeated and dropped lines, values swapped
//! between records). They hold when nothing panics, nothing hangs, and every refusal says
//! where: a line within the file and a column.
//!
//! Part of `cargo test`; the case counts keep the whole harness to a few seconds in a debug
//! build. Failures proptest finds are kept in `proptest-regressions/fuzz.txt`.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use lapse_sdk::{Snapshot, SnapshotError, Timestamp};
use proptest::prelude::*;

use crate::error::Error;
use crate::input;
use crate::policy::from_sources;
use crate::report::parse_plan_bytes;

const POLICIES: [&str; 7] = [
    include_str!("../tests/fixtures/basic/policy.yaml"),
    include_str!("../tests/fixtures/state/policy.yaml"),
    include_str!("../examples/demo/policy.yaml"),
    include_str!("../policies/baseline.yaml"),
    include_str!("../policies/cis-key-hygiene.yaml"),
    include_str!("../policies/strict-jit.yaml"),
    "version: 1\nscopes:\n  aws: [{account: \"111122223333\"}]\nprotect:\n  - &admins {principal: [\"arn:aws:iam::*:role/admin-*\", break-glass]}\nrules:\n  - id: jit\n    match: {privileged: true, tags: {team: \"*\"}}\n    max_ttl: 8h\n    unknown_age: revoke\nexceptions:\n  - {rule: jit, principal: 'a*', until: 2027-01-01, approved_by: bob, reason: \"migration: phase 2\"}\n",
];

const SNAPSHOTS: [&[u8]; 4] = [
    include_bytes!("../tests/fixtures/basic/snapshot.json"),
    include_bytes!("../examples/demo/aws-111122223333.json"),
    include_bytes!("../examples/demo/azure-contoso.json"),
    include_bytes!("../examples/demo/gcp-acme-prod.json"),
];

/// Pieces random YAML-ish text is made of: the policy's keys and values, YAML's indicators,
/// anchors, aliases, merge keys, tags, quotes, block scalars, tabs, odd characters.
const PIECES: [&str; 54] = [
    "version",
    "1",
    "2",
    ": ",
    ":",
    "\n",
    "\n  ",
    "\n    ",
    "- ",
    "-",
    "[",
    "]",
    "{",
    "}",
    ", ",
    "&a ",
    "*a",
    "&b ",
    "*b",
    "<<",
    "~",
    "null",
    "\"",
    "'",
    "\\",
    "#",
    "---",
    "...",
    "!!str ",
    "!x ",
    "|",
    ">",
    "\t",
    " ",
    "rules",
    "grants",
    "protect",
    "principal",
    "entitlement",
    "max_ttl",
    "8h",
    "99999999999999999999d",
    "id",
    "match",
    "tags",
    "until",
    "2026-02-30",
    "exceptions",
    "arn:aws:iam::*:role/[a",
    "é",
    "?",
    "%YAML 1.2",
    "@",
    "`",
];

/// Lines of `text`, for bounds on reported positions: YAML also breaks lines at a lone CR.
fn line_count(text: &[u8]) -> usize {
    yaml_lines(&String::from_utf8_lossy(text)).len()
}

/// Lines of JSON, which breaks lines at LF only.
fn json_line_count(text: &[u8]) -> usize {
    text.iter().filter(|byte| **byte == b'\n').count() + 1
}

/// Lines as YAML counts them: broken at LF, CRLF and a lone CR.
fn yaml_lines(text: &str) -> Vec<String> {
    text.replace("\r\n", "\n")
        .split(['\n', '\r'])
        .map(str::to_owned)
        .collect()
}

/// Reads `bytes` as a policy file would be read, and checks the refusal says where.
fn check_policy(bytes: &[u8]) -> Result<(), TestCaseError> {
    let file = Path::new("fuzz.yaml");
    let lines = line_count(bytes);
    let text = match input::text(file, bytes.to_vec()) {
        Ok(text) => text,
        Err(Error::NotUtf8 { line, column, .. }) => {
            prop_assert!(line >= 1 && line <= lines && column >= 1);
            return Ok(());
        }
        Err(other) => return Err(TestCaseError::fail(format!("unexpected error: {other}"))),
    };
    match from_sources(&[(PathBuf::from(file), text)]) {
        Ok(_) => Ok(()),
        Err(Error::Policy { diagnostics }) => {
            prop_assert!(!diagnostics.0.is_empty());
            for diagnostic in &diagnostics.0 {
                prop_assert!(
                    diagnostic.line >= 1 && diagnostic.line <= lines + 1 && diagnostic.column >= 1,
                    "{diagnostic} is outside a file of {lines} lines"
                );
                prop_assert!(!diagnostic.message.trim().is_empty());
                // Where the message names a key, the line it points at holds that key.
                // A key folded over several lines is found by its first word.
                if let Some(key) =
                    named_key(&diagnostic.message).and_then(|key| key.split_whitespace().next())
                {
                    let line = text_line(bytes, diagnostic.line);
                    prop_assert!(
                        line.contains(key),
                        "{diagnostic} points at line {:?}, which lacks `{key}`",
                        line
                    );
                }
            }
            Ok(())
        }
        Err(other) => Err(TestCaseError::fail(format!("unexpected error: {other}"))),
    }
}

/// The key a policy message points at, for the messages that point at a key: an unknown
/// field, a key written twice. (A null is placed at its value, or at its key when empty.)
fn named_key(message: &str) -> Option<&str> {
    let key = ["unknown field `", "key `"].iter().find_map(|marker| {
        message.find(marker).map(|start| {
            let rest = &message[start + marker.len()..];
            &rest[..rest.find('`').unwrap_or(rest.len())]
        })
    })?;
    (!key.is_empty()).then_some(key)
}

/// The 1-based line of `bytes`, as text.
fn text_line(bytes: &[u8], line: usize) -> String {
    yaml_lines(&String::from_utf8_lossy(bytes))
        .into_iter()
        .nth(line.saturating_sub(1))
        .unwrap_or_default()
}

/// The character at a 1-based line and column of JSON, whose lines break at LF only.
fn character_at(bytes: &[u8], line: usize, column: usize) -> Option<char> {
    String::from_utf8_lossy(bytes)
        .split('\n')
        .nth(line.saturating_sub(1))?
        .chars()
        .nth(column.saturating_sub(1))
}

fn check_snapshot(bytes: &[u8]) -> Result<(), TestCaseError> {
    match Snapshot::from_json_slice(bytes) {
        Ok(snapshot) => {
            // What loads is what lapse would have written: every record inside its scope.
            prop_assert!(lapse_sdk::check::check_snapshot(&snapshot).is_empty());
            Ok(())
        }
        Err(error) => {
            let (line, column) = error.position();
            let lines = json_line_count(bytes);
            // serde_json says column 0 at the very start of a line.
            let column_ok = column >= 1 || matches!(error, SnapshotError::Malformed { .. });
            prop_assert!(
                line >= 1 && line <= lines && column_ok,
                "{error} at {line}:{column} is outside a file of {lines} lines"
            );
            prop_assert!(!error.to_string().trim().is_empty());
            // Positions found after parsing point at the value itself: a record's `{`, the
            // format's string, the version's number.
            match &error {
                SnapshotError::Inconsistent { problems } => {
                    for problem in &problems.listed {
                        let found = character_at(bytes, problem.line, problem.column);
                        prop_assert!(found == Some('{'), "{problem} points at {found:?}");
                    }
                }
                SnapshotError::WrongFormat { line, column, .. } if (*line, *column) != (1, 1) => {
                    let found = character_at(bytes, *line, *column);
                    prop_assert!(found == Some('"'), "{error} points at {found:?}");
                }
                SnapshotError::UnsupportedVersion { line, column, .. } => {
                    let found = character_at(bytes, *line, *column);
                    prop_assert!(
                        found.is_some_and(|found| found.is_ascii_digit()),
                        "{error} points at {found:?}"
                    );
                }
                _ => {}
            }
            Ok(())
        }
    }
}

fn check_plan(bytes: &[u8]) -> Result<(), TestCaseError> {
    let lines = json_line_count(bytes);
    let position = match parse_plan_bytes(bytes, Path::new("fuzz.json")) {
        Ok(_) => return Ok(()),
        Err(Error::PlanFile { source, .. }) => (source.line(), source.column().max(1)),
        Err(
            Error::PlanFormat { line, column, .. }
            | Error::PlanVersion { line, column, .. }
            | Error::NotUtf8 { line, column, .. },
        ) => (line, column),
        Err(Error::PlanEncoding { .. }) => (1, 1),
        Err(Error::PlanForged { problems, .. }) => {
            prop_assert!(!problems.is_empty());
            for problem in &problems.listed {
                prop_assert!(problem.line >= 1 && problem.line <= lines && problem.column >= 1);
            }
            return Ok(());
        }
        Err(other) => return Err(TestCaseError::fail(format!("unexpected error: {other}"))),
    };
    prop_assert!(position.0 >= 1 && position.0 <= lines && position.1 >= 1);
    Ok(())
}

/// One change to a file's bytes.
#[derive(Clone, Debug)]
enum Mutation {
    /// Replace the byte at this fraction of the length.
    Flip(f64, u8),
    /// Keep this fraction of the file.
    Truncate(f64),
    /// Insert bytes of another seed (from, length) at a fraction of this one.
    Splice(f64, usize, f64, usize),
    /// Repeat the line at a fraction of the file.
    RepeatLine(f64),
    /// Drop the line at a fraction of the file.
    DropLine(f64),
    /// Swap two quoted strings of the file (ids, scopes, timestamps change places).
    SwapStrings(f64, f64),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (0.0..1.0f64, any::<u8>()).prop_map(|(at, byte)| Mutation::Flip(at, byte)),
        (0.0..1.0f64).prop_map(Mutation::Truncate),
        (0.0..1.0f64, 0..8usize, 0.0..1.0f64, 1..200usize)
            .prop_map(|(at, seed, from, length)| Mutation::Splice(at, seed, from, length)),
        (0.0..1.0f64).prop_map(Mutation::RepeatLine),
        (0.0..1.0f64).prop_map(Mutation::DropLine),
        (0.0..1.0f64, 0.0..1.0f64).prop_map(|(first, second)| Mutation::SwapStrings(first, second)),
    ]
}

#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_precision_loss
)]
fn index(fraction: f64, length: usize) -> usize {
    ((fraction * length as f64) as usize).min(length.saturating_sub(1))
}

fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation], seeds: &[&[u8]]) -> Vec<u8> {
    for change in mutations {
        if bytes.is_empty() {
            break;
        }
        match *change {
            Mutation::Flip(at, byte) => {
                let at = index(at, bytes.len());
                bytes[at] = byte;
            }
            Mutation::Truncate(keep) => bytes.truncate(index(keep, bytes.len())),
            Mutation::Splice(at, seed, from, length) => {
                let seed = seeds[seed % seeds.len()];
                let from = index(from, seed.len());
                let piece = &seed[from..(from + length).min(seed.len())];
                let at = index(at, bytes.len());
                bytes.splice(at..at, piece.iter().copied());
            }
            Mutation::RepeatLine(at) | Mutation::DropLine(at) => {
                let at = index(at, bytes.len());
                let start = bytes[..at]
                    .iter()
                    .rposition(|byte| *byte == b'\n')
                    .map_or(0, |newline| newline + 1);
                let end = bytes[at..]
                    .iter()
                    .position(|byte| *byte == b'\n')
                    .map_or(bytes.len(), |newline| at + newline + 1);
                if matches!(change, Mutation::RepeatLine(_)) {
                    let line = bytes[start..end].to_vec();
                    bytes.splice(end..end, line);
                } else {
                    bytes.drain(start..end);
                }
            }
            Mutation::SwapStrings(first, second) => {
                let strings = quoted_strings(&bytes);
                if strings.len() >= 2 {
                    let (mut first, mut second) = (
                        strings[index(first, strings.len())],
                        strings[index(second, strings.len())],
                    );
                    if first.0 > second.0 {
                        std::mem::swap(&mut first, &mut second);
                    }
                    if first.1 <= second.0 {
                        let a = bytes[first.0..first.1].to_vec();
                        let b = bytes[second.0..second.1].to_vec();
                        bytes.splice(second.0..second.1, a);
                        bytes.splice(first.0..first.1, b);
                    }
                }
            }
        }
    }
    bytes
}

/// One change to a parsed JSON file: what an editor (or a forger) does to a snapshot or a plan
/// while keeping it well formed.
#[derive(Clone, Debug)]
enum Edit {
    /// Swap two leaves (ids, scopes, clouds, timestamps, digests change places).
    Swap(f64, f64),
    /// Set a leaf to a hostile value.
    Set(f64, usize),
    /// Repeat an array element (duplicate ids, scopes read twice, actions planned twice).
    Repeat(f64),
    /// Remove an object member.
    Remove(f64),
}

const HOSTILE_VALUES: [&str; 12] = [
    "\"arn:aws:iam::999999999999:user/x\"",
    "\"aws:999999999999\"",
    "\"projects/other\"",
    "\"/subscriptions/00000000-0000-0000-0000-000000000000\"",
    "\"gcp\"",
    "\"2099-01-01T00:00:00Z\"",
    "\"\"",
    "null",
    "true",
    "-1",
    "18446744073709551616",
    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
];

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        3 => (0.0..1.0f64, 0.0..1.0f64).prop_map(|(first, second)| Edit::Swap(first, second)),
        2 => (0.0..1.0f64, 0..HOSTILE_VALUES.len()).prop_map(|(at, value)| Edit::Set(at, value)),
        1 => (0.0..1.0f64).prop_map(Edit::Repeat),
        1 => (0.0..1.0f64).prop_map(Edit::Remove),
    ]
}

/// Paths (as JSON pointers) of every leaf, array and object member under `value`.
fn pointers(
    value: &serde_json::Value,
    at: &str,
    leaves: &mut Vec<String>,
    arrays: &mut Vec<String>,
    members: &mut Vec<String>,
) {
    match value {
        serde_json::Value::Object(object) => {
            for (key, child) in object {
                let path = format!("{at}/{}", key.replace('~', "~0").replace('/', "~1"));
                members.push(path.clone());
                pointers(child, &path, leaves, arrays, members);
            }
        }
        serde_json::Value::Array(items) => {
            if !items.is_empty() {
                arrays.push(at.to_owned());
            }
            for (index, child) in items.iter().enumerate() {
                pointers(child, &format!("{at}/{index}"), leaves, arrays, members);
            }
        }
        _ => leaves.push(at.to_owned()),
    }
}

fn apply_edits(bytes: &[u8], edits: &[Edit]) -> Vec<u8> {
    let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return bytes.to_vec();
    };
    for change in edits {
        let (mut leaves, mut arrays, mut members) = (Vec::new(), Vec::new(), Vec::new());
        pointers(&value, "", &mut leaves, &mut arrays, &mut members);
        match *change {
            Edit::Swap(first, second) if !leaves.is_empty() => {
                let first = leaves[index(first, leaves.len())].clone();
                let second = leaves[index(second, leaves.len())].clone();
                let a = value.pointer(&first).cloned().unwrap_or_default();
                let b = value.pointer(&second).cloned().unwrap_or_default();
                if let Some(slot) = value.pointer_mut(&first) {
                    *slot = b;
                }
                if let Some(slot) = value.pointer_mut(&second) {
                    *slot = a;
                }
            }
            Edit::Set(at, hostile) if !leaves.is_empty() => {
                let at = leaves[index(at, leaves.len())].clone();
                let replacement = serde_json::from_str(HOSTILE_VALUES[hostile]).unwrap_or_default();
                if let Some(slot) = value.pointer_mut(&at) {
                    *slot = replacement;
                }
            }
            Edit::Repeat(at) if !arrays.is_empty() => {
                let at = arrays[index(at, arrays.len())].clone();
                if let Some(serde_json::Value::Array(items)) = value.pointer_mut(&at)
                    && let Some(first) = items.first().cloned()
                {
                    items.push(first);
                }
            }
            Edit::Remove(at) if !members.is_empty() => {
                let at = members[index(at, members.len())].clone();
                let (parent, key) = at.rsplit_once('/').unwrap_or(("", &at));
                let key = key.replace("~1", "/").replace("~0", "~");
                if let Some(serde_json::Value::Object(object)) = value.pointer_mut(parent) {
                    object.remove(&key);
                }
            }
            _ => {}
        }
    }
    serde_json::to_vec_pretty(&value).unwrap_or_default()
}

/// Byte ranges of `"..."` strings (without escapes inside, which is enough to move values).
fn quoted_strings(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut ranges = Vec::new();
    let mut start = None;
    for (at, byte) in bytes.iter().enumerate() {
        if *byte == b'"' {
            match start.take() {
                None => start = Some(at),
                Some(open) => ranges.push((open, at + 1)),
            }
        }
    }
    ranges
}

/// The demo plan as this build writes it, once.
fn demo_plan() -> &'static [u8] {
    static PLAN: OnceLock<Vec<u8>> = OnceLock::new();
    PLAN.get_or_init(|| {
        let snapshots: Vec<Snapshot> = SNAPSHOTS[1..]
            .iter()
            .map(|bytes| Snapshot::from_json_slice(bytes).expect("demo snapshot"))
            .collect();
        let snapshot = Snapshot::merge(snapshots);
        let policy = from_sources(&[(PathBuf::from("policy.yaml"), POLICIES[2].to_owned())])
            .expect("demo policy");
        let now = Timestamp::parse_rfc3339("2026-11-20T06:00:00Z").expect("now");
        let plan = crate::plan::plan(
            &snapshot,
            "sha256:00",
            &policy,
            &crate::diff::Memory::default(),
            now,
        );
        serde_json::to_vec_pretty(&plan).expect("plan json")
    })
}

fn policy_seeds() -> Vec<&'static [u8]> {
    POLICIES.iter().map(|text| text.as_bytes()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_yaml_ish_text_never_panics_and_every_refusal_is_placed(
        pieces in proptest::collection::vec(proptest::sample::select(PIECES.to_vec()), 0..80),
    ) {
        let text = format!("version: 1\n{}", pieces.concat());
        check_policy(text.as_bytes())?;
        check_policy(pieces.concat().as_bytes())?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn mutated_policies_never_panic_and_every_refusal_is_placed(
        seed in 0..POLICIES.len(),
        mutations in proptest::collection::vec(mutation(), 1..4),
    ) {
        let seeds = policy_seeds();
        check_policy(&mutate(seeds[seed].to_vec(), &mutations, &seeds))?;
    }

    #[test]
    fn mutated_snapshots_never_panic_and_every_refusal_is_placed(
        seed in 0..SNAPSHOTS.len(),
        mutations in proptest::collection::vec(mutation(), 1..4),
    ) {
        check_snapshot(&mutate(SNAPSHOTS[seed].to_vec(), &mutations, &SNAPSHOTS))?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn edited_snapshots_never_panic_and_every_refusal_is_placed(
        seed in 0..SNAPSHOTS.len(),
        edits in proptest::collection::vec(edit(), 1..4),
    ) {
        check_snapshot(&apply_edits(SNAPSHOTS[seed], &edits))?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn edited_plans_never_panic_and_every_refusal_is_placed(
        edits in proptest::collection::vec(edit(), 1..3),
    ) {
        check_plan(&apply_edits(demo_plan(), &edits))?;
    }

    #[test]
    fn mutated_plans_never_panic_and_every_refusal_is_placed(
        mutations in proptest::collection::vec(mutation(), 1..4),
    ) {
        let plan = demo_plan();
        check_plan(&mutate(plan.to_vec(), &mutations, &[plan]))?;
    }
}

#[test]
fn the_seeds_are_accepted_as_they_are() {
    for (index, policy) in POLICIES.iter().enumerate() {
        from_sources(&[(
            PathBuf::from(format!("seed-{index}.yaml")),
            (*policy).to_owned(),
        )])
        .unwrap_or_else(|error| panic!("policy seed {index}: {error}"));
    }
    for (index, snapshot) in SNAPSHOTS.iter().enumerate() {
        Snapshot::from_json_slice(snapshot)
            .unwrap_or_else(|error| panic!("snapshot seed {index}: {error}"));
    }
    parse_plan_bytes(demo_plan(), Path::new("plan.json")).expect("the demo plan");
}
