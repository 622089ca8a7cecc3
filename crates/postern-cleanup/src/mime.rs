//! The body pass: `body_checks` on every body line, and header checks on the
//! headers inside the body (multipart part headers and attached messages),
//! following the MIME structure as far as Postfix's cleanup does.
//!
//! * After the primary header, a `multipart/*` type with a `boundary`
//!   parameter opens a multipart body; `message/rfc822` (or `message/global`)
//!   starts an attached message (its header follows at once).
//! * A line `--boundary` of an open multipart starts a part header;
//!   `--boundary--` closes that multipart (and any nested inside it).
//! * Part headers are checked with `mime_header_checks`; the header of an
//!   attached message with `nested_header_checks`, except its MIME headers
//!   (`mime_header_checks`).
//! * Each body segment (the text between headers and boundaries) is inspected
//!   up to `body_checks_size_limit` bytes.
//!
//! # Security
//! Body bytes are network input: the pass is linear, never panics, and bounds
//! the boundary stack depth ([`MAX_DEPTH`]).
//!
//! # Configuration
//! `body_checks`, `body_checks_size_limit`, `mime_header_checks`,
//! `nested_header_checks`.

use crate::checks::{Checks, Class, Edit, LogCtx, Verdict, is_mime_header};
use crate::maps::Trail;

/// Deepest multipart nesting followed (Postfix's `mime_nesting_limit` default).
pub const MAX_DEPTH: usize = 100;

/// The media type (`type/subtype`, lower case) and boundary of a Content-Type value.
pub fn content_type(value: &str) -> (String, Option<String>) {
    let mut parts = value.split(';');
    let kind = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    let mut boundary = None;
    for p in parts {
        let Some((name, val)) = p.split_once('=') else {
            continue;
        };
        if name.trim().eq_ignore_ascii_case("boundary") {
            let v = val.trim();
            let v = v
                .strip_prefix('"')
                .map(|s| s.split('"').next().unwrap_or(""))
                .unwrap_or(v);
            if !v.is_empty() {
                boundary = Some(v.to_string());
            }
        }
    }
    (kind, boundary)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Body,
    Headers { nested: bool },
}

struct Walk<'a> {
    checks: &'a Checks,
    ctx: &'a LogCtx,
    v: &'a mut Verdict,
    trail: &'a mut Trail,
    out: Vec<u8>,
    stack: Vec<String>,
    header: Option<(Vec<u8>, bool)>,
    part_type: (String, Option<String>),
}

impl Walk<'_> {
    fn flush_header(&mut self) {
        let Some((raw, nested)) = self.header.take() else {
            return;
        };
        let text = String::from_utf8_lossy(&raw);
        let text = text.trim_end_matches(['\n', '\r']).to_string();
        let name = text.split(':').next().unwrap_or("").trim().to_string();
        if name.eq_ignore_ascii_case("Content-Type") {
            self.part_type = content_type(text.split_once(':').map_or("", |(_, v)| v));
        }
        let class = if !nested || is_mime_header(&name) {
            Class::Mime
        } else {
            Class::Nested
        };
        let o = self
            .checks
            .header(class, &text, self.ctx, self.v, self.trail);
        if let Some(p) = o.prepend {
            self.out.extend_from_slice(p.as_bytes());
            self.out.push(b'\n');
        }
        match o.edit {
            Edit::Keep => self.out.extend_from_slice(&raw),
            Edit::Drop => {}
            Edit::Replace(t) => {
                self.out.extend_from_slice(t.as_bytes());
                self.out.push(b'\n');
            }
        }
    }

    fn body_line(&mut self, line: &[u8], offset: usize) {
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end_matches(['\n', '\r']);
        let o = self
            .checks
            .body_line(text, offset, self.ctx, self.v, self.trail);
        if let Some(p) = o.prepend {
            self.out.extend_from_slice(p.as_bytes());
            self.out.push(b'\n');
        }
        match o.edit {
            Edit::Keep => self.out.extend_from_slice(line),
            Edit::Drop => {}
            Edit::Replace(t) => {
                self.out.extend_from_slice(t.as_bytes());
                self.out.push(b'\n');
            }
        }
    }

    /// After a header block: what the next part of the body is.
    fn after_headers(&mut self, (kind, boundary): (String, Option<String>)) -> Mode {
        if kind.starts_with("multipart/")
            && let Some(b) = boundary
            && self.stack.len() < MAX_DEPTH
        {
            self.stack.push(b);
            return Mode::Body;
        }
        if kind == "message/rfc822" || kind == "message/global" {
            return Mode::Headers { nested: true };
        }
        Mode::Body
    }

    /// A boundary line: `Some(true)` opens a part, `Some(false)` closes a multipart.
    fn boundary(&mut self, line: &[u8]) -> Option<bool> {
        let text = line.strip_prefix(b"--")?;
        let text = text.strip_suffix(b"\n").unwrap_or(text);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        for i in (0..self.stack.len()).rev() {
            let b = self.stack[i].as_bytes();
            if let Some(rest) = text.strip_prefix(b) {
                if rest.starts_with(b"--") {
                    self.stack.truncate(i);
                    return Some(false);
                }
                if rest.iter().all(|c| *c == b' ' || *c == b'\t') {
                    self.stack.truncate(i + 1);
                    return Some(true);
                }
            }
        }
        None
    }
}

/// Runs the body pass. `primary_type` is the message's Content-Type value.
pub fn walk_body(
    primary_type: Option<&str>,
    body: &[u8],
    checks: &Checks,
    ctx: &LogCtx,
    v: &mut Verdict,
    trail: &mut Trail,
) -> Vec<u8> {
    let mut w = Walk {
        checks,
        ctx,
        v,
        trail,
        out: Vec::with_capacity(body.len() + 64),
        stack: Vec::new(),
        header: None,
        part_type: (String::new(), None),
    };
    let mut mode = w.after_headers(content_type(primary_type.unwrap_or("text/plain")));
    let mut offset = 0usize;
    for line in body.split_inclusive(|&b| b == b'\n') {
        if let Mode::Headers { nested } = mode {
            if matches!(line.first(), Some(b' ' | b'\t'))
                && let Some((h, _)) = w.header.as_mut()
            {
                h.extend_from_slice(line);
                continue;
            }
            w.flush_header();
            if line == b"\n" || line == b"\r\n" {
                w.out.extend_from_slice(line);
                let t = std::mem::take(&mut w.part_type);
                mode = w.after_headers(t);
                offset = 0;
                continue;
            }
            if postern_mail::header::header_name_len(line).is_some() {
                w.header = Some((line.to_vec(), nested));
                continue;
            }
            w.part_type = (String::new(), None);
            mode = Mode::Body;
            offset = 0;
        }
        if !w.stack.is_empty()
            && line.starts_with(b"--")
            && let Some(open) = w.boundary(line)
        {
            w.body_line(line, offset);
            offset = 0;
            if open {
                mode = Mode::Headers { nested: false };
                w.part_type = (String::new(), None);
            }
            continue;
        }
        w.body_line(line, offset);
        offset = offset.saturating_add(line.len());
    }
    w.flush_header();
    w.out
}

/// Fuzz entry point: the body pass over `data` as a multipart body, as an
/// attached message and as plain text, with checks that edit every kind of line.
pub fn fuzz(data: &[u8]) {
    use std::sync::OnceLock;
    static CHECKS: OnceLock<Checks> = OnceLock::new();
    let checks = CHECKS.get_or_init(|| {
        let m = |title: &str, spec: &str| {
            crate::maps::MapList::from_maps(
                title,
                postern_table::open(spec, &Default::default())
                    .map(|m| vec![m])
                    .unwrap_or_default(),
            )
        };
        let spec =
            "regexp:{ {/^a/ IGNORE}, {/^b/ REPLACE x: y}, {/^c/ PREPEND p: q}, {/^d/ HOLD} }";
        Checks {
            header: m("header_checks", spec),
            mime: m("mime_header_checks", spec),
            nested: m("nested_header_checks", spec),
            body: m("body_checks", spec),
            body_limit: 4096,
        }
    });
    let ctx = LogCtx::default();
    for t in [
        Some("multipart/mixed; boundary=b"),
        Some("message/rfc822"),
        None,
    ] {
        let (mut v, mut trail) = (Verdict::default(), Trail::default());
        let _ = walk_body(t, data, checks, &ctx, &mut v, &mut trail);
    }
    let _ = content_type(&String::from_utf8_lossy(data));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maps::MapList;

    fn checks() -> Checks {
        let m = |title: &str, spec: &str| {
            MapList::from_maps(
                title,
                vec![postern_table::open(spec, &Default::default()).unwrap()],
            )
        };
        Checks {
            header: m("header_checks", "regexp:{ {/^X-Primary:/ IGNORE} }"),
            mime: m(
                "mime_header_checks",
                "regexp:{ {/^Content-Disposition:.*evil/ REPLACE Content-Disposition: attachment; filename=\"safe.txt\"} }",
            ),
            nested: m(
                "nested_header_checks",
                "regexp:{ {/^Subject: inner/ PREPEND X-Inner: seen} }",
            ),
            body: m(
                "body_checks",
                "regexp:{ {/^drop me$/ IGNORE}, {/^fix me$/ REPLACE fixed} }",
            ),
            body_limit: 1000,
        }
    }

    #[test]
    fn multipart_and_nested() {
        let body = "preamble\n--B1\nContent-Type: text/plain\nContent-Disposition: attachment;\n filename=\"evil.exe\"\n\ndrop me\nfix me\nkeep me\n--B1\nContent-Type: message/rfc822\n\nSubject: inner\nX-Primary: stays\n\ndrop me\n--B1--\nepilogue\n";
        let (mut v, mut t) = (Verdict::default(), Trail::default());
        let out = walk_body(
            Some("multipart/mixed; boundary=\"B1\""),
            body.as_bytes(),
            &checks(),
            &LogCtx::default(),
            &mut v,
            &mut t,
        );
        let out = String::from_utf8(out).unwrap();
        assert_eq!(
            out,
            "preamble\n--B1\nContent-Type: text/plain\nContent-Disposition: attachment; filename=\"safe.txt\"\n\nfixed\nkeep me\n--B1\nContent-Type: message/rfc822\n\nX-Inner: seen\nSubject: inner\nX-Primary: stays\n\n--B1--\nepilogue\n"
        );
    }

    #[test]
    fn plain_and_garbage() {
        let (mut v, mut t) = (Verdict::default(), Trail::default());
        let c = checks();
        let out = walk_body(
            None,
            b"a\ndrop me\nb",
            &c,
            &LogCtx::default(),
            &mut v,
            &mut t,
        );
        assert_eq!(out, b"a\nb");
        for junk in [&b"--\n--\n"[..], b"\n\n\n", b"--B1--", b"\r\n--x"] {
            walk_body(
                Some("multipart/x; boundary=B1"),
                junk,
                &c,
                &LogCtx::default(),
                &mut v,
                &mut t,
            );
            walk_body(
                Some("message/rfc822"),
                junk,
                &c,
                &LogCtx::default(),
                &mut v,
                &mut t,
            );
        }
    }
}
