//! Splits the OVSDB byte stream into JSON messages.
//!
//! RFC 7047 sends concatenated JSON objects with no length prefix or newline guarantee. Parsing
//! the whole buffer again after every read (e.g. `StreamDeserializer` over a growing buffer)
//! is quadratic for a multi-megabyte initial snapshot, so this scanner remembers where it
//! stopped (nesting depth, inside-string and escape state) and hands each complete top-level
//! value to serde_json exactly once. The bytes it tracks (`{}[]"\`) are ASCII and never occur
//! inside a multi-byte UTF-8 sequence, so scanning bytes is safe.

use serde_json::Value;

use crate::Error;

/// Incremental splitter of concatenated top-level JSON objects/arrays.
#[derive(Debug, Default)]
pub struct Splitter {
    buf: Vec<u8>,
    /// Bytes of `buf` already returned as messages (dropped on the next `extend`).
    consumed: usize,
    /// Next byte to scan.
    scan: usize,
    /// Start of the message being scanned, if one has begun.
    start: Option<usize>,
    depth: usize,
    in_string: bool,
    escape: bool,
}

impl Splitter {
    pub fn new() -> Splitter {
        Splitter::default()
    }

    /// Appends bytes read from the socket.
    pub fn extend(&mut self, data: &[u8]) {
        if self.consumed > 0 {
            self.buf.drain(..self.consumed);
            self.scan -= self.consumed;
            self.start = self.start.map(|s| s - self.consumed);
            self.consumed = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// Bytes received but not yet returned as a message.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.consumed
    }

    /// The next complete message, `Ok(None)` if more bytes are needed. Garbage between
    /// messages (anything but whitespace before `{` or `[`) is a protocol error.
    pub fn next_message(&mut self) -> Result<Option<Value>, Error> {
        while self.scan < self.buf.len() {
            let b = self.buf[self.scan];
            let i = self.scan;
            self.scan += 1;
            if self.start.is_none() {
                match b {
                    b' ' | b'\t' | b'\r' | b'\n' => self.consumed = self.scan,
                    b'{' | b'[' => {
                        self.start = Some(i);
                        self.depth = 1;
                    }
                    _ => {
                        return Err(Error::Protocol(format!(
                            "unexpected byte {:?} between JSON messages",
                            b as char
                        )))
                    }
                }
                continue;
            }
            if self.in_string {
                if self.escape {
                    self.escape = false;
                } else if b == b'\\' {
                    self.escape = true;
                } else if b == b'"' {
                    self.in_string = false;
                }
                continue;
            }
            match b {
                b'"' => self.in_string = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' => {
                    self.depth -= 1;
                    if self.depth == 0 {
                        let start = self.start.take().unwrap_or(i);
                        self.consumed = self.scan;
                        return serde_json::from_slice(&self.buf[start..self.scan])
                            .map(Some)
                            .map_err(|e| Error::Protocol(format!("bad JSON message: {e}")));
                    }
                }
                _ => {}
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn split_all(chunks: &[&[u8]]) -> Vec<Value> {
        let mut s = Splitter::new();
        let mut out = Vec::new();
        for c in chunks {
            s.extend(c);
            while let Some(v) = s.next_message().unwrap() {
                out.push(v);
            }
        }
        assert_eq!(s.pending(), 0);
        out
    }

    #[test]
    fn splits_at_every_byte_boundary() {
        let msgs = [
            json!({"id": 1, "result": ["a}b", "c\"{d", "e\\", {"x": [1, {}]}], "error": null}),
            json!({"method": "update", "params": [null, {"T": {"u": {"new": {"n": "é]"}}}}]}),
            json!([1, 2]),
        ];
        let mut wire = Vec::new();
        for (i, m) in msgs.iter().enumerate() {
            wire.extend(serde_json::to_vec(m).unwrap());
            if i == 0 {
                wire.extend(b" \n");
            }
        }
        assert_eq!(split_all(&[&wire]), msgs);
        for cut in 0..wire.len() {
            let (a, b) = wire.split_at(cut);
            assert_eq!(split_all(&[a, b]), msgs, "cut at {cut}");
        }
        let bytes: Vec<&[u8]> = wire.chunks(1).collect();
        assert_eq!(split_all(&bytes), msgs);
    }

    #[test]
    fn rejects_garbage() {
        let mut s = Splitter::new();
        s.extend(b"{} x");
        assert_eq!(s.next_message().unwrap(), Some(json!({})));
        assert!(s.next_message().is_err());
    }
}
