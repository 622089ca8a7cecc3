//! A byte-preserving scanner over the header of a message.
//!
//! The input is queued message content: header, an empty line, body, with LF
//! line endings (CRLF is tolerated: a `\r` before `\n` is part of the line
//! ending). The scanner never copies or changes the content; it reports where
//! each header field starts and ends, so callers can keep the exact bytes.
//!
//! # Rules (as Postfix's cleanup classifies lines)
//! * A header field starts with a name of printable ASCII other than `:`,
//!   optionally followed by spaces or tabs, then `:`. Lines that start with a
//!   space or tab continue the previous field.
//! * The header ends at the first empty line (which belongs to neither part),
//!   or at the first line that is not a header field or a continuation: that
//!   line and everything after it is body. So a message that starts with a
//!   `From ` line, with a continuation line, or with text, has no header.
//! * A message may end inside the header (no body) or have no final newline.
//!
//! # Security
//! No I/O, no panics on any input, and work linear in the input length (one
//! pass per call; [`find`] and [`has_header`] stop at the end of the header).

/// One header field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field<'a> {
    /// The field name as written (without trailing spaces or the colon).
    pub name: &'a [u8],
    /// The complete field: first line and continuation lines, with their line endings.
    pub raw: &'a [u8],
    /// Offset of the field's first byte in the content.
    pub offset: usize,
    /// Length of the prefix of `raw` up to and including the colon.
    colon_end: usize,
}

impl<'a> Field<'a> {
    /// Whether the field has this name (ASCII case-insensitive).
    pub fn name_is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name.as_bytes())
    }

    /// The field name as text (invalid UTF-8 cannot occur: names are ASCII).
    pub fn name_str(&self) -> &'a str {
        std::str::from_utf8(self.name).unwrap_or("")
    }

    /// The value unfolded: the bytes after the colon with line endings removed
    /// and leading and trailing white space trimmed. Continuation lines keep
    /// their leading white space, as RFC 5322 unfolding does.
    pub fn value(&self) -> Vec<u8> {
        let rest = self.raw.get(self.colon_end..).unwrap_or_default();
        let mut out: Vec<u8> = rest.iter().copied().filter(|&b| b != b'\n').collect();
        // A CR is part of a line ending only when it preceded an LF; after the
        // LF removal above, stray CRs are dropped too, which is what readers expect.
        out.retain(|&b| b != b'\r');
        let start = out.iter().position(|b| !is_wsp(*b)).unwrap_or(out.len());
        let end = out
            .iter()
            .rposition(|b| !is_wsp(*b))
            .map_or(start, |p| p + 1);
        out.get(start..end).map(<[u8]>::to_vec).unwrap_or_default()
    }

    /// [`Field::value`] as text, invalid UTF-8 replaced.
    pub fn value_string(&self) -> String {
        String::from_utf8_lossy(&self.value()).into_owned()
    }
}

/// Where the header ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderEnd {
    /// Length of the header fields (excluding the separating empty line).
    pub header_len: usize,
    /// Offset of the first body byte (after the empty line, if there was one).
    pub body_start: usize,
}

fn is_wsp(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// The line starting at `pos`, including its LF if it has one.
fn line_at(content: &[u8], pos: usize) -> &[u8] {
    let rest = content.get(pos..).unwrap_or_default();
    match rest.iter().position(|&b| b == b'\n') {
        Some(i) => &rest[..=i],
        None => rest,
    }
}

fn is_empty_line(line: &[u8]) -> bool {
    matches!(line, b"\n" | b"\r\n" | b"\r")
}

/// If `line` starts a header field, the length of its name and the offset just
/// after the colon.
pub fn header_name_len(line: &[u8]) -> Option<(usize, usize)> {
    let name_len = line
        .iter()
        .position(|&b| !(33..=126).contains(&b) || b == b':')?;
    if name_len == 0 {
        return None;
    }
    let mut i = name_len;
    while line.get(i).is_some_and(|&b| is_wsp(b)) {
        i += 1;
    }
    (line.get(i) == Some(&b':')).then_some((name_len, i + 1))
}

enum Step<'a> {
    Field(Field<'a>, usize),
    End(HeaderEnd),
}

fn step(content: &[u8], pos: usize) -> Step<'_> {
    let line = line_at(content, pos);
    if line.is_empty() {
        return Step::End(HeaderEnd {
            header_len: pos,
            body_start: pos,
        });
    }
    if is_empty_line(line) {
        return Step::End(HeaderEnd {
            header_len: pos,
            body_start: pos + line.len(),
        });
    }
    let Some((name_len, colon_end)) = header_name_len(line) else {
        return Step::End(HeaderEnd {
            header_len: pos,
            body_start: pos,
        });
    };
    let mut end = pos + line.len();
    loop {
        let next = line_at(content, end);
        if next.first().is_some_and(|&b| is_wsp(b)) {
            end += next.len();
        } else {
            break;
        }
    }
    let raw = &content[pos..end];
    Step::Field(
        Field {
            name: &raw[..name_len],
            raw,
            offset: pos,
            colon_end,
        },
        end,
    )
}

/// An iterator over the header fields of a message.
#[derive(Debug, Clone)]
pub struct Fields<'a> {
    content: &'a [u8],
    pos: usize,
    done: bool,
}

impl<'a> Iterator for Fields<'a> {
    type Item = Field<'a>;

    fn next(&mut self) -> Option<Field<'a>> {
        if self.done {
            return None;
        }
        match step(self.content, self.pos) {
            Step::Field(f, next) => {
                self.pos = next;
                Some(f)
            }
            Step::End(_) => {
                self.done = true;
                None
            }
        }
    }
}

/// Iterates over the header fields of `content`.
pub fn fields(content: &[u8]) -> Fields<'_> {
    Fields {
        content,
        pos: 0,
        done: false,
    }
}

/// Finds where the header ends and the body starts.
pub fn header_end(content: &[u8]) -> HeaderEnd {
    let mut pos = 0;
    loop {
        match step(content, pos) {
            Step::Field(_, next) => pos = next,
            Step::End(end) => return end,
        }
    }
}

/// The header bytes (fields only) and the body bytes.
pub fn split(content: &[u8]) -> (&[u8], &[u8]) {
    let end = header_end(content);
    (&content[..end.header_len], &content[end.body_start..])
}

/// The first field named `name` (case-insensitive).
pub fn find<'a>(content: &'a [u8], name: &str) -> Option<Field<'a>> {
    fields(content).find(|f| f.name_is(name))
}

/// Every field named `name` (case-insensitive), in order.
pub fn find_all<'a>(content: &'a [u8], name: &'a str) -> impl Iterator<Item = Field<'a>> + 'a {
    fields(content).filter(move |f| f.name_is(name))
}

/// Whether the header has a field named `name` (case-insensitive).
pub fn has_header(content: &[u8], name: &str) -> bool {
    find(content, name).is_some()
}

/// Fuzz entry point: exercises every function of this module on `data`.
pub fn fuzz(data: &[u8]) {
    let end = header_end(data);
    assert!(end.header_len <= end.body_start && end.body_start <= data.len());
    let mut total = 0;
    for f in fields(data) {
        assert_eq!(&data[f.offset..f.offset + f.raw.len()], f.raw);
        total += f.raw.len();
        let _value = f.value();
    }
    assert_eq!(total, end.header_len);
    let _split = split(data);
    let _found = has_header(data, "subject");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(c: &[u8]) -> Vec<String> {
        fields(c).map(|f| f.name_str().to_string()).collect()
    }

    #[test]
    fn simple_message() {
        let c = b"Subject: hi\nFrom: a@b\n\nbody\nSubject: not a header\n";
        assert_eq!(names(c), ["Subject", "From"]);
        let end = header_end(c);
        assert_eq!(&c[..end.header_len], b"Subject: hi\nFrom: a@b\n");
        assert_eq!(&c[end.body_start..], b"body\nSubject: not a header\n");
        assert_eq!(find(c, "SUBJECT").unwrap().value(), b"hi");
        assert!(has_header(c, "from"));
        assert!(!has_header(c, "to"));
    }

    #[test]
    fn continuation_lines_are_kept_and_unfolded() {
        let c = b"To: a@b,\n\tc@d,\n  e@f\nX: y\n\n";
        let f = find(c, "to").unwrap();
        assert_eq!(f.raw, b"To: a@b,\n\tc@d,\n  e@f\n");
        assert_eq!(f.value(), b"a@b,\tc@d,  e@f");
        assert_eq!(names(c), ["To", "X"]);
    }

    #[test]
    fn crlf_is_tolerated() {
        let c = b"Subject: a\r\n b\r\nTo: x\r\n\r\nbody\r\n";
        assert_eq!(find(c, "subject").unwrap().value(), b"a b");
        let (h, b) = split(c);
        assert_eq!(h, b"Subject: a\r\n b\r\nTo: x\r\n");
        assert_eq!(b, b"body\r\n");
    }

    #[test]
    fn no_body_and_no_final_newline() {
        let c = b"Subject: a\nTo: b";
        assert_eq!(names(c), ["Subject", "To"]);
        assert_eq!(
            header_end(c),
            HeaderEnd {
                header_len: c.len(),
                body_start: c.len()
            }
        );
        assert_eq!(find(c, "to").unwrap().value(), b"b");
    }

    #[test]
    fn no_header() {
        for c in [
            &b"From someone Sun Nov 22\nSubject: x\n\n"[..],
            b" leading space: x\n",
            b"just text\n",
            b"\nSubject: x\n",
            b":x\n",
            b"",
        ] {
            assert_eq!(fields(c).count(), 0, "{:?}", String::from_utf8_lossy(c));
            assert_eq!(header_end(c).header_len, 0);
        }
        assert_eq!(header_end(b"\nbody").body_start, 1);
        assert_eq!(header_end(b"text\n").body_start, 0);
    }

    #[test]
    fn non_header_line_starts_body() {
        let c = b"Subject: a\nthis is text\nTo: b\n";
        assert_eq!(names(c), ["Subject"]);
        assert_eq!(header_end(c).body_start, 11);
    }

    #[test]
    fn obsolete_space_before_colon() {
        let c = b"Subject  : x\n\n";
        let f = find(c, "subject").unwrap();
        assert_eq!(f.name, b"Subject");
        assert_eq!(f.value(), b"x");
    }

    #[test]
    fn empty_value_and_whitespace_continuation() {
        let c = b"X-Empty:\nX-Ws: \n \n\n";
        assert_eq!(find(c, "x-empty").unwrap().value(), b"");
        assert_eq!(find(c, "x-ws").unwrap().value(), b"");
        assert_eq!(find_all(c, "x-ws").count(), 1);
    }

    #[test]
    fn fuzz_smoke() {
        let samples: [&[u8]; 8] = [
            b"",
            b"\r",
            b":",
            b"a:",
            b"a:\n\x00\n",
            b"\xff\xfe:\n",
            b"a:b\r\n\r",
            b"a : \t\n\t\n\n",
        ];
        for s in samples {
            fuzz(s);
        }
        // Exhaustive over short strings of a small alphabet.
        let alpha = [b'a', b':', b' ', b'\n', b'\r', b'\t'];
        let mut buf = Vec::new();
        for n in 0..6u32 {
            for mut k in 0..alpha.len().pow(n) {
                buf.clear();
                for _ in 0..n {
                    buf.push(alpha[k % alpha.len()]);
                    k /= alpha.len();
                }
                fuzz(&buf);
            }
        }
    }
}
