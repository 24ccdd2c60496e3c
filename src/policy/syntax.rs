//! Checks on a policy's YAML text before serde_yaml reads it, for what serde_yaml accepts
//! silently, reports without a position, or cannot read in bounded time:
//!
//! - characters YAML does not allow (NUL and other control characters, a byte-order mark
//!   anywhere but the start), at their line and column;
//! - nesting deeper than [`MAX_DEPTH`]: serde_yaml (libyaml) loads every event before its own
//!   recursion limit applies, and 100,000 unclosed `[` take it minutes; events are streamed
//!   here, so a deep file stops at the limit;
//! - aliases that expand the document past [`alias_budget`] nodes (a "billion laughs", or one
//!   large list aliased many times): serde_yaml's own limit (100 alias jumps per event) still
//!   lets a 200 KB file expand to 10^8 patterns;
//! - YAML merge keys (`<<`), which serde_yaml does not apply (it would report an unknown field
//!   `<<`, or keep `<<` as a tag name);
//! - a key written twice in one mapping, which serde_yaml reports without a position for
//!   fields and accepts for tags (keeping one of the values);
//! - a second document in one file.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// The deepest nesting accepted; a policy needs six levels (`rules[0].match.tags.key`).
pub(crate) const MAX_DEPTH: usize = 64;

/// The nodes aliases may add: as many as the document has, and at least 10,000, so reusing a
/// selector in every rule is fine and an expansion never costs more than reading the file twice.
pub(crate) fn alias_budget(written: u64) -> u64 {
    written.max(10_000)
}

/// A problem found in the text, at a 1-based line and column.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    pub(crate) line: usize,
    pub(crate) column: usize,
    pub(crate) message: String,
}

/// Checks `text` (without a leading byte-order mark).
pub(crate) fn check(text: &str) -> Result<(), SyntaxError> {
    characters(text)?;
    events(text)
}

fn characters(text: &str) -> Result<(), SyntaxError> {
    let mut line = 1;
    let mut column = 1;
    let mut characters = text.chars().peekable();
    while let Some(character) = characters.next() {
        let allowed = matches!(character, '\t' | '\n' | '\r' | '\u{85}')
            || ('\u{20}'..='\u{7E}').contains(&character)
            || ('\u{A0}'..='\u{FFFD}').contains(&character) && character != '\u{FEFF}'
            || character >= '\u{10000}';
        if !allowed {
            let message = if character == '\u{FEFF}' {
                "a byte-order mark (U+FEFF) inside the file: were two files joined? remove it"
                    .to_owned()
            } else {
                format!(
                    "control character U+{:04X} is not allowed in YAML: remove it (a binary file, or text copied with control codes?)",
                    u32::from(character)
                )
            };
            return Err(SyntaxError {
                line,
                column,
                message,
            });
        }
        // YAML breaks lines at LF, CRLF and a lone CR, and so do its parsers' positions.
        let lone_return = character == '\r' && characters.peek() != Some(&'\n');
        if character == '\n' || lone_return {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    Ok(())
}

struct Frame {
    anchor: usize,
    /// Nodes in this collection so far, aliases expanded, itself included.
    size: u64,
    /// Mappings: whether the next node is a key, and the scalar keys seen.
    mapping: Option<(bool, HashMap<String, usize>)>,
    /// Mappings: the last key read, which the next value belongs to, and where it is.
    key: Option<(String, Marker)>,
}

fn at(marker: Marker, message: String) -> SyntaxError {
    SyntaxError {
        line: marker.line(),
        column: marker.col() + 1,
        message,
    }
}

fn events(text: &str) -> Result<(), SyntaxError> {
    let mut parser = Parser::new_from_str(text);
    let mut stack: Vec<Frame> = Vec::new();
    let mut sizes: HashMap<usize, u64> = HashMap::new();
    let mut written: u64 = 0;
    let mut expanded: u64 = 0;
    let mut documents = 0;
    loop {
        let (event, marker) = parser.next_token().map_err(|error| {
            let marker = *error.marker();
            let tab = text
                .get(marker.index()..)
                .is_some_and(|rest| rest.starts_with('\t'));
            let mut message = error.info().to_owned();
            if tab || message.contains("tab") {
                message.push_str(": YAML indents with spaces, not tabs");
            } else if message.contains("simple key") {
                message.push_str(
                    ": a mapping key is written on one line, within 1024 characters, and followed by `:`",
                );
            } else if message.contains("recursion limit") {
                message.push_str(": nested too deeply; a policy needs a handful of levels");
            }
            at(marker, message)
        })?;
        // A node starts: is it a mapping key?
        let is_key = matches!(
            stack.last(),
            Some(Frame {
                mapping: Some((true, _)),
                ..
            })
        );
        let node_size = match &event {
            Event::StreamEnd => return Ok(()),
            Event::DocumentStart => {
                documents += 1;
                if documents > 1 {
                    return Err(at(
                        marker,
                        "a second YAML document starts here: a policy file holds one document; put each in its own file of a policy folder".to_owned(),
                    ));
                }
                continue;
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(at(
                        marker,
                        format!(
                            "nested more than {MAX_DEPTH} levels deep: a policy needs a handful; is the file generated by mistake?"
                        ),
                    ));
                }
                if is_key {
                    check_key(&mut stack, None, marker)?;
                }
                written += 1;
                expanded += 1;
                let mapping =
                    matches!(event, Event::MappingStart(..)).then(|| (true, HashMap::new()));
                stack.push(Frame {
                    anchor: *anchor,
                    size: 1,
                    mapping,
                    key: None,
                });
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let Some(frame) = stack.pop() else {
                    continue;
                };
                if frame.anchor != 0 {
                    sizes.insert(frame.anchor, frame.size);
                }
                frame.size
            }
            Event::Scalar(value, style, anchor, _) => {
                if is_key {
                    if value == "<<" && *style == TScalarStyle::Plain {
                        return Err(at(
                            marker,
                            "YAML merge keys (`<<`) are not supported: lapse reads each entry as written, so write the keys out (an anchor and `*alias` for a whole value works)".to_owned(),
                        ));
                    }
                    check_key(&mut stack, Some(value), marker)?;
                } else if *style == TScalarStyle::Plain
                    && ["", "~", "null", "Null", "NULL"].contains(&value.as_str())
                {
                    return Err(null_value(stack.last(), value.is_empty(), marker));
                }
                written += 1;
                expanded += 1;
                if *anchor != 0 {
                    sizes.insert(*anchor, 1);
                }
                1
            }
            Event::Alias(anchor) => {
                if is_key {
                    check_key(&mut stack, None, marker)?;
                }
                let size = sizes.get(anchor).copied().unwrap_or(1);
                written += 1;
                expanded = expanded.saturating_add(size);
                if expanded > written.saturating_add(alias_budget(written)) {
                    return Err(at(
                        marker,
                        format!(
                            "aliases expand this document past {} nodes, more than twice what is written (an alias bomb?): write the entries out, or alias smaller parts",
                            written.saturating_add(alias_budget(written))
                        ),
                    ));
                }
                size
            }
            Event::Nothing | Event::StreamStart | Event::DocumentEnd => continue,
        };
        // A node ended: it counts in its parent, and a mapping's next node is a key again.
        if let Some(parent) = stack.last_mut() {
            parent.size = parent.size.saturating_add(node_size);
            if let Some((expecting_key, _)) = &mut parent.mapping {
                *expecting_key = !*expecting_key;
            }
        }
    }
}

/// Records a mapping key; a scalar key seen before in the same mapping is an error.
fn check_key(stack: &mut [Frame], key: Option<&String>, marker: Marker) -> Result<(), SyntaxError> {
    let (
        Some(key),
        Some(Frame {
            mapping: Some((_, keys)),
            ..
        }),
    ) = (key, stack.last_mut())
    else {
        return Ok(());
    };
    if let Some(first_line) = keys.get(key) {
        return Err(at(
            marker,
            format!(
                "key `{key}` is written twice in this mapping (first on line {first_line}): YAML keeps only one of them; remove the other"
            ),
        ));
    }
    keys.insert(key.clone(), marker.line());
    if let Some(frame) = stack.last_mut() {
        frame.key = Some((key.clone(), marker));
    }
    Ok(())
}

/// A null where a value is written: serde would read it as the key left out, which in a
/// selector matches everything (`protect: [{principal: ~, cloud: aws}]` protects every AWS
/// principal) and elsewhere drops a limit or an expiry.
/// An empty value is placed at its key: the parser places it at the next token.
fn null_value(parent: Option<&Frame>, empty: bool, marker: Marker) -> SyntaxError {
    let (what, marker) = match parent {
        Some(Frame {
            mapping: Some(_),
            key: Some((key, key_marker)),
            ..
        }) => (
            format!("`{key}` has no value"),
            if empty { *key_marker } else { marker },
        ),
        _ => ("this list item has no value".to_owned(), marker),
    };
    at(
        marker,
        format!(
            "{what} (YAML reads `~`, `null` and nothing as null, which would count as the key left out, matching everything in a selector): write the value, or remove the key"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> SyntaxError {
        check(text).expect_err("refused")
    }

    #[test]
    fn ordinary_policies_pass() {
        check("version: 1\nrules:\n  - id: a\n    match: &m {principal: [a, b]}\n    max_ttl: 8h\n  - id: b\n    match: *m\n    max_ttl: 1h\n")
            .expect("fine");
    }

    #[test]
    fn deep_nesting_stops_at_the_limit_quickly() {
        let text = format!("version: 1\nprotect: {}", "[".repeat(100_000));
        let started = std::time::Instant::now();
        let found = error(&text);
        // Whichever limit stops it first (this one, or yaml-rust2's own flow-level limit while
        // it looks ahead), it stops on that line, quickly.
        assert_eq!(found.line, 2, "{found:?}");
        assert!(found.message.contains("nested"), "{found:?}");
        assert!(started.elapsed().as_secs() < 5);
    }

    #[test]
    fn alias_bombs_are_refused_at_the_alias() {
        let mut text = String::from("version: 1\nx:\n  - &a [x, x, x, x, x, x, x, x, x, x]\n");
        for level in 1..9u8 {
            let name = char::from(b'a' + level);
            let previous = char::from(b'a' + level - 1);
            let items = vec![format!("*{previous}"); 10].join(", ");
            text.push_str(&format!("  - &{name} [{items}]\n"));
        }
        let found = error(&text);
        assert!(found.message.contains("alias bomb"), "{found:?}");
        assert!(found.line > 3, "{found:?}");
    }

    #[test]
    fn one_big_list_aliased_many_times_is_refused() {
        let big = vec!["x"; 5_000].join(", ");
        let aliases = "  - *big\n".repeat(5_000);
        let text = format!("version: 1\nprivileged:\n  - &big [{big}]\n{aliases}");
        let found = error(&text);
        assert!(found.message.contains("alias"), "{found:?}");
    }

    #[test]
    fn merge_keys_duplicates_and_second_documents_are_placed() {
        let found =
            error("version: 1\ndefaults: &d {credential_max_age: 90d}\nrules:\n  - <<: *d\n");
        assert_eq!((found.line, found.column), (4, 5));
        let found = error("version: 1\nprotect:\n  - tags: {a: b, a: c}\n");
        assert_eq!((found.line, found.column), (3, 18));
        assert!(found.message.contains("first on line 3"), "{found:?}");
        let found = error("version: 1\nversion: 1\n");
        assert_eq!((found.line, found.column), (2, 1));
        let found = error("version: 1\n---\nversion: 1\n");
        assert_eq!(found.line, 2);
    }

    #[test]
    fn control_characters_and_inner_byte_order_marks_are_placed() {
        let found = error("version: 1\nrules:\n  - id: a\u{0}b\n");
        assert_eq!((found.line, found.column), (3, 10));
        let found = error("version: 1\n\u{feff}rules: []\n");
        assert_eq!((found.line, found.column), (2, 1));
        let found = error("version: 1\rrules: []\r\n\u{7}\n");
        assert_eq!((found.line, found.column), (3, 1));
    }

    #[test]
    fn nulls_are_refused_where_written() {
        let found = error("version: 1\nprotect:\n  - principal: ~\n    cloud: aws\n");
        assert_eq!((found.line, found.column), (3, 16));
        assert!(
            found.message.starts_with("`principal` has no value"),
            "{found:?}"
        );
        let found = error("version: 1\nexceptions:\n  - reason:\n    rule: x\n");
        assert_eq!(found.line, 3);
        let found = error("version: 1\nprotect:\n  - principal: [a, null]\n");
        assert!(found.message.starts_with("this list item"), "{found:?}");
        check("version: 1\nowners:\n  - principal: a\n    owner: \"null\"\n").expect("quoted");
    }

    #[test]
    fn tabs_say_what_to_use_instead() {
        let found = error("version: 1\nrules:\n\t- id: a\n");
        assert_eq!(found.line, 3);
        assert!(found.message.contains("spaces, not tabs"), "{found:?}");
    }
}
