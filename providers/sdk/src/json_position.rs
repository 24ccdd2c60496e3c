//! Where a value sits in a JSON file: serde_json gives a line and column for its own errors
//! only, so an error found after parsing (a record outside its scope, a duplicate id) is placed
//! by walking the bytes once more to the record's path (`grants[3]`).
//!
//! Only used on the error path. The walk never panics and never recurses deeper than
//! [`MAX_DEPTH`], so it is safe on any bytes, parsed or not: it answers `None` when the path is
//! not there.

use std::fmt;

/// Deeper than serde_json's own recursion limit (128): anything it parsed can be walked.
const MAX_DEPTH: usize = 256;

/// One step of a path into a JSON document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Segment<'a> {
    /// An object member.
    Key(&'a str),
    /// An array element.
    Index(usize),
}

/// A path into a JSON document, shown as `grants[3].principal`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JsonPath(pub Vec<Segment<'static>>);

impl JsonPath {
    /// The path of a top-level member's element: `grants[3]`.
    #[must_use]
    pub fn element(key: &'static str, index: usize) -> Self {
        JsonPath(vec![Segment::Key(key), Segment::Index(index)])
    }

    /// This path with a member appended.
    #[must_use]
    pub fn key(mut self, key: &'static str) -> Self {
        self.0.push(Segment::Key(key));
        self
    }
}

impl fmt::Display for JsonPath {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) if index == 0 => formatter.write_str(key)?,
                Segment::Key(key) => write!(formatter, ".{key}")?,
                Segment::Index(position) => write!(formatter, "[{position}]")?,
            }
        }
        Ok(())
    }
}

/// The 1-based line and column (in characters) where the value at `path` starts, if the
/// bytes hold it.
#[must_use]
pub fn position_of(bytes: &[u8], path: &[Segment<'_>]) -> Option<(usize, usize)> {
    let mut walker = Walker { bytes, at: 0 };
    walker.blank();
    let offset = walker.find(path, 0)?;
    Some(line_column(bytes, offset))
}

/// The 1-based line and column (in characters) of a byte offset.
#[must_use]
pub fn line_column(bytes: &[u8], offset: usize) -> (usize, usize) {
    let before = &bytes[..offset.min(bytes.len())];
    let line_start = before
        .iter()
        .rposition(|byte| *byte == b'\n')
        .map_or(0, |newline| newline + 1);
    let line = before.iter().filter(|byte| **byte == b'\n').count() + 1;
    // Characters, not bytes: continuation bytes of UTF-8 sequences are not counted.
    let column = before[line_start..]
        .iter()
        .filter(|byte| (**byte & 0xC0) != 0x80)
        .count()
        + 1;
    (line, column)
}

struct Walker<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Walker<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn blank(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        self.blank();
        (self.peek()? == byte).then(|| self.at += 1)
    }

    /// The offset of the value at `path`, starting with the value at the cursor.
    fn find(&mut self, path: &[Segment<'_>], depth: usize) -> Option<usize> {
        self.blank();
        let Some((first, rest)) = path.split_first() else {
            return Some(self.at);
        };
        if depth >= MAX_DEPTH {
            return None;
        }
        match (first, self.peek()?) {
            (Segment::Key(wanted), b'{') => {
                self.at += 1;
                loop {
                    self.blank();
                    if self.peek()? == b'}' {
                        return None;
                    }
                    let key = self.string()?;
                    self.expect(b':')?;
                    if key == wanted.as_bytes() {
                        return self.find(rest, depth + 1);
                    }
                    self.skip(depth + 1)?;
                    self.blank();
                    match self.peek()? {
                        b',' => self.at += 1,
                        _ => return None,
                    }
                }
            }
            (Segment::Index(wanted), b'[') => {
                self.at += 1;
                let mut index = 0;
                loop {
                    self.blank();
                    if self.peek()? == b']' {
                        return None;
                    }
                    if index == *wanted {
                        return self.find(rest, depth + 1);
                    }
                    self.skip(depth + 1)?;
                    self.blank();
                    match self.peek()? {
                        b',' => self.at += 1,
                        _ => return None,
                    }
                    index += 1;
                }
            }
            _ => None,
        }
    }

    /// The raw bytes of a string (escapes left as written: keys searched for have none).
    fn string(&mut self) -> Option<&'a [u8]> {
        self.blank();
        if self.peek()? != b'"' {
            return None;
        }
        self.at += 1;
        let start = self.at;
        loop {
            match self.peek()? {
                b'"' => {
                    let bytes: &'a [u8] = self.bytes;
                    let text = &bytes[start..self.at];
                    self.at += 1;
                    return Some(text);
                }
                b'\\' => self.at += 2,
                _ => self.at += 1,
            }
        }
    }

    fn skip(&mut self, depth: usize) -> Option<()> {
        if depth >= MAX_DEPTH {
            return None;
        }
        self.blank();
        match self.peek()? {
            b'"' => self.string().map(|_| ()),
            open @ (b'{' | b'[') => {
                let close = if open == b'{' { b'}' } else { b']' };
                self.at += 1;
                loop {
                    self.blank();
                    if self.peek()? == close {
                        self.at += 1;
                        return Some(());
                    }
                    if open == b'{' {
                        self.string()?;
                        self.expect(b':')?;
                    }
                    self.skip(depth + 1)?;
                    self.blank();
                    match self.peek()? {
                        b',' => self.at += 1,
                        byte if byte == close => {}
                        _ => return None,
                    }
                }
            }
            _ => {
                let start = self.at;
                while self.peek().is_some_and(|byte| {
                    !matches!(byte, b',' | b']' | b'}' | b' ' | b'\t' | b'\n' | b'\r')
                }) {
                    self.at += 1;
                }
                (self.at > start).then_some(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_elements_and_members_by_path() {
        let text = b"{\"format\": \"x\",\n \"grants\": [\n  {\"id\": \"a\"},\n  {\"id\": \"b\\\"\", \"n\": [1, 2]}\n ]}";
        assert_eq!(position_of(text, &[Segment::Key("format")]), Some((1, 12)));
        assert_eq!(
            position_of(text, &[Segment::Key("grants"), Segment::Index(1)]),
            Some((4, 3))
        );
        assert_eq!(
            position_of(
                text,
                &[Segment::Key("grants"), Segment::Index(1), Segment::Key("n")]
            ),
            Some((4, 22))
        );
        assert_eq!(
            position_of(text, &[Segment::Key("grants"), Segment::Index(2)]),
            None
        );
        assert_eq!(position_of(text, &[Segment::Key("missing")]), None);
    }

    #[test]
    fn never_panics_on_broken_or_deep_input() {
        let deep = "[".repeat(100_000);
        assert_eq!(
            position_of(deep.as_bytes(), &[Segment::Index(0); 300]),
            None
        );
        for text in [
            &b"{\"a\": [1, 2"[..],
            b"{\"a",
            b"",
            b"\"",
            b"{\"a\":}",
            b"\xff\xfe",
        ] {
            let _ = position_of(text, &[Segment::Key("a"), Segment::Index(3)]);
        }
    }

    #[test]
    fn columns_count_characters() {
        assert_eq!(line_column("é\nxé—y".as_bytes(), 9), (2, 4));
    }
}
