//! Line and column of policy entries, for errors found after deserialization (a duplicate rule
//! id, an exception naming a rule that does not exist) and for reports that point at the entry
//! that decided a finding.
//!
//! serde_yaml reports positions only for its own errors, so the file is read a second time as
//! YAML events (yaml-rust2 gives each event a marker) and the start of every node down to
//! `rules[2].id` depth is recorded.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// How deep paths are recorded: `section[index].field`.
const MAX_DEPTH: usize = 3;

/// Start positions (1-based line and column) of nodes by path, e.g. `grants[3]`, `rules[0].id`.
#[derive(Debug, Default)]
pub(crate) struct Locations {
    positions: HashMap<String, (usize, usize)>,
}

impl Locations {
    /// Reads the positions of `source`. A file that does not parse yields no positions: its
    /// syntax error is reported by serde_yaml with a position of its own.
    pub(crate) fn of(source: &str) -> Self {
        let mut recorder = Recorder::default();
        let mut parser = Parser::new_from_str(source);
        if parser.load(&mut recorder, false).is_err() {
            return Locations::default();
        }
        Locations {
            positions: recorder.positions,
        }
    }

    /// The position of `path`, or of its closest recorded ancestor, or the top of the file.
    pub(crate) fn find(&self, path: &str) -> (usize, usize) {
        let mut candidate = path;
        loop {
            if let Some(position) = self.positions.get(candidate) {
                return *position;
            }
            match candidate.rfind(['.', '[']) {
                Some(cut) => candidate = &candidate[..cut],
                None => return (1, 1),
            }
        }
    }
}

enum Frame {
    /// `pending` is the mapping's own path, recorded at its first key: yaml-rust2 marks a block
    /// mapping's start only once it has scanned past the first key.
    Mapping {
        expecting_key: bool,
        key: String,
        pending: Option<String>,
    },
    Sequence {
        index: usize,
    },
}

#[derive(Default)]
struct Recorder {
    stack: Vec<Frame>,
    positions: HashMap<String, (usize, usize)>,
}

impl Recorder {
    /// The path of the node that starts now, or None when it is a mapping key.
    fn current_path(&self) -> Option<String> {
        let mut path = String::new();
        for frame in &self.stack {
            match frame {
                Frame::Mapping {
                    expecting_key: true,
                    ..
                } => return None,
                Frame::Mapping { key, .. } => {
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(key);
                }
                Frame::Sequence { index } => {
                    path.push('[');
                    path.push_str(&index.to_string());
                    path.push(']');
                }
            }
        }
        Some(path)
    }

    /// The path of the node that starts now, unless it is a key or too deep to record.
    fn recordable_path(&self) -> Option<String> {
        let depth = self.stack.len();
        if depth == 0 || depth > MAX_DEPTH {
            return None;
        }
        self.current_path()
    }

    fn record(&mut self, path: String, mark: Marker) {
        self.positions
            .entry(path)
            .or_insert((mark.line(), mark.col() + 1));
    }

    /// Records a node's start, unless it is a key or too deep.
    fn node_starts(&mut self, mark: Marker) {
        if let Some(path) = self.recordable_path() {
            self.record(path, mark);
        }
    }

    /// Moves the enclosing collection on after a complete node.
    fn node_ends(&mut self) {
        match self.stack.last_mut() {
            Some(Frame::Mapping { expecting_key, .. }) => *expecting_key = !*expecting_key,
            Some(Frame::Sequence { index }) => *index += 1,
            None => {}
        }
    }
}

impl MarkedEventReceiver for Recorder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        match event {
            Event::Scalar(value, ..) => {
                if let Some(Frame::Mapping {
                    expecting_key: true,
                    key,
                    pending,
                }) = self.stack.last_mut()
                {
                    value.clone_into(key);
                    if let Some(path) = pending.take() {
                        self.record(path, mark);
                    }
                } else {
                    self.node_starts(mark);
                }
                self.node_ends();
            }
            Event::Alias(_) => {
                self.node_starts(mark);
                self.node_ends();
            }
            Event::MappingStart(..) => {
                let pending = self.recordable_path();
                self.stack.push(Frame::Mapping {
                    expecting_key: true,
                    key: String::new(),
                    pending,
                });
            }
            Event::SequenceStart(..) => {
                self.node_starts(mark);
                self.stack.push(Frame::Sequence { index: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
                self.node_ends();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_and_their_fields_are_located() {
        let source = "version: 1\nrules:\n  - id: first\n    max_ttl: 8h\n  - id: second\n    action: revoke\n";
        let locations = Locations::of(source);
        assert_eq!(locations.find("rules[0]"), (3, 5));
        assert_eq!(locations.find("rules[1].id"), (5, 9));
        assert_eq!(locations.find("rules[1].action"), (6, 13));
        // A path not recorded falls back to its closest ancestor.
        assert_eq!(locations.find("rules[1].match.principal"), (5, 5));
    }

    #[test]
    fn flow_style_entries_are_located_too() {
        let source = "version: 1\nprotect:\n  - {principal: 'a'}\n  - {tags: {x: y}}\n";
        let locations = Locations::of(source);
        assert_eq!(locations.find("protect[1]"), (4, 6));
    }
}
