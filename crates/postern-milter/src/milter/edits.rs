//! The modification requests of one milter at end-of-message, collected and
//! checked before any is applied (pure).
//!
//! Header values are converted to the crate's convention (CRLF → LF, the
//! leading space Sendmail ate put back unless `SMFIP_HDR_LEADSPC`); body chunks
//! are joined and converted from CRLF lines to LF lines.
//!
//! # Security
//! A request that would break the message or the queue file is refused (the
//! milter then gets its default action): a header name that is empty or not
//! printable ASCII without `:`, a header value whose continuation lines do not
//! start with white space (that would inject headers or end the header block),
//! a bare CR, control characters in envelope addresses or ESMTP arguments, a
//! replacement body over [`MAX_BODY`], and body chunks mixed with other
//! requests (as Postfix).

use crate::Modification;
use crate::codec::Response;

/// Largest replacement body accepted from one milter (1 GiB).
pub(crate) const MAX_BODY: usize = 1 << 30;

/// One milter's requests in arrival order.
#[derive(Debug, Default)]
pub(crate) struct Edits {
    mods: Vec<Modification>,
    body: Option<Vec<u8>>,
    body_done: bool,
}

impl Edits {
    pub(crate) fn new() -> Edits {
        Edits::default()
    }

    /// Records a request that needs no checking (quarantine).
    pub(crate) fn push(&mut self, m: Modification) {
        self.mods.push(m);
    }

    /// Ends a run of SMFIR_REPLBODY chunks.
    pub(crate) fn end_body(&mut self) {
        if let Some(b) = self.body.take() {
            self.mods
                .push(Modification::ReplaceBody(crlf_lines_to_lf(&b)));
            self.body_done = true;
        }
    }

    /// The requests, in order.
    pub(crate) fn finish(mut self) -> Vec<Modification> {
        self.end_body();
        self.mods
    }

    /// Checks and records one request; the error is the warning text.
    pub(crate) fn request(&mut self, resp: Response, leadspc: bool) -> Result<(), String> {
        let m = match resp {
            Response::ReplBody(chunk) => return self.body_chunk(&chunk),
            Response::AddHeader { name, value } => Modification::AddHeader {
                value: header_value(&name, &value, leadspc)?,
                name,
            },
            Response::InsHeader { index, name, value } => Modification::InsertHeader {
                index,
                value: header_value(&name, &value, leadspc)?,
                name,
            },
            Response::ChgHeader { index, name, value } => {
                if name.is_empty() {
                    return Err("null change header name".into());
                }
                let value = if value.is_empty() {
                    value
                } else {
                    header_value(&name, &value, leadspc)?
                };
                Modification::ChangeHeader { index, name, value }
            }
            Response::AddRcpt(rcpt) => Modification::AddRcpt {
                rcpt: address(rcpt, false)?,
                args: None,
            },
            Response::AddRcptPar { rcpt, args } => Modification::AddRcpt {
                rcpt: address(rcpt, false)?,
                args: args.map(esmtp_args).transpose()?,
            },
            Response::DelRcpt(rcpt) => Modification::DelRcpt {
                rcpt: address(rcpt, false)?,
            },
            Response::ChgFrom { sender, args } => Modification::ChangeFrom {
                sender: address(sender, true)?,
                args: args.map(esmtp_args).transpose()?,
            },
            other => return Err(format!("not an edit request: {other:?}")),
        };
        self.mods.push(m);
        Ok(())
    }

    fn body_chunk(&mut self, chunk: &[u8]) -> Result<(), String> {
        if self.body_done {
            return Err(
                "body replacement requests can't currently be mixed with other requests".into(),
            );
        }
        let body = self.body.get_or_insert_with(Vec::new);
        if body.len() + chunk.len() > MAX_BODY {
            return Err(format!("replacement body larger than {MAX_BODY} bytes"));
        }
        body.extend_from_slice(chunk);
        Ok(())
    }
}

/// Checks a header and puts it in the crate's convention.
fn header_value(name: &str, value: &str, leadspc: bool) -> Result<String, String> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
        return Err(format!("bad header name: {}", name.escape_debug()));
    }
    let v = value.replace("\r\n", "\n");
    let bad_fold = v
        .split('\n')
        .skip(1)
        .any(|line| !line.starts_with([' ', '\t']));
    if v.contains('\r') || bad_fold || v.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(format!("bad header value for {name}: {}", v.escape_debug()));
    }
    Ok(if leadspc { v } else { format!(" {v}") })
}

/// An envelope address: no control characters; only the sender may be empty.
fn address(a: String, may_be_empty: bool) -> Result<String, String> {
    if (a.is_empty() && !may_be_empty) || a.chars().any(char::is_control) {
        return Err(format!("bad address: {}", a.escape_debug()));
    }
    Ok(a)
}

fn esmtp_args(a: String) -> Result<String, String> {
    if a.chars().any(char::is_control) {
        return Err(format!("bad ESMTP arguments: {}", a.escape_debug()));
    }
    Ok(a)
}

/// CRLF (or LF) lines → LF lines; a last line without terminator is kept as a
/// line, as Postfix does.
pub(crate) fn crlf_lines_to_lf(b: &[u8]) -> Vec<u8> {
    relines(b, b"\n")
}

/// LF (or CRLF) lines → CRLF lines, the wire form; a last line without LF gets
/// one, as Postfix.
pub(crate) fn lf_lines_to_crlf(b: &[u8]) -> Vec<u8> {
    relines(b, b"\r\n")
}

/// Every line of `b` (split after LF, one CR before it dropped) ended by `eol`.
fn relines(b: &[u8], eol: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len() + b.len() / 32 + 2);
    for line in b.split_inclusive(|&c| c == b'\n') {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        out.extend_from_slice(line);
        out.extend_from_slice(eol);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values() {
        assert_eq!(header_value("X", "v", false).unwrap(), " v");
        assert_eq!(header_value("X", " v", true).unwrap(), " v");
        assert_eq!(header_value("X", "a\r\n\tb", false).unwrap(), " a\n\tb");
        assert!(header_value("X", "a\nInjected: 1", false).is_err());
        assert!(header_value("X", "a\n\nbody", false).is_err());
        assert!(header_value("X", "a\n", false).is_err());
        assert!(header_value("X", "a\rb", false).is_err());
        assert!(header_value("X", "a\x1bb", false).is_err());
        assert!(header_value("", "v", false).is_err());
        assert!(header_value("X Y", "v", false).is_err());
        assert!(header_value("X:Y", "v", false).is_err());
    }

    #[test]
    fn body_lines() {
        assert_eq!(crlf_lines_to_lf(b"a\r\nb\r\n"), b"a\nb\n");
        assert_eq!(crlf_lines_to_lf(b"a\r\nlast"), b"a\nlast\n");
        assert_eq!(crlf_lines_to_lf(b"a\rb\n"), b"a\rb\n");
        assert_eq!(crlf_lines_to_lf(b""), b"");
        assert_eq!(lf_lines_to_crlf(b"a\nb"), b"a\r\nb\r\n");
        assert_eq!(lf_lines_to_crlf(b"a\r\n\n"), b"a\r\n\r\n");
    }

    #[test]
    fn body_mixed_with_other_requests_is_refused() {
        let mut e = Edits::new();
        e.request(Response::ReplBody(b"x\r\n".to_vec()), false)
            .unwrap();
        e.request(Response::ReplBody(b"y\r\n".to_vec()), false)
            .unwrap();
        e.end_body();
        assert!(e.request(Response::ReplBody(b"z".to_vec()), false).is_err());
        let mods = e.finish();
        assert_eq!(mods, [Modification::ReplaceBody(b"x\ny\n".to_vec())]);
    }

    #[test]
    fn envelope_requests() {
        let mut e = Edits::new();
        let par = Response::AddRcptPar {
            rcpt: "<n@x>".into(),
            args: Some("NOTIFY=NEVER".into()),
        };
        e.request(par, false).unwrap();
        e.request(
            Response::ChgFrom {
                sender: "<>".into(),
                args: None,
            },
            false,
        )
        .unwrap();
        assert!(e.request(Response::AddRcpt(String::new()), false).is_err());
        assert!(
            e.request(Response::DelRcpt("a\r\nb".into()), false)
                .is_err()
        );
        assert!(
            e.request(
                Response::ChgHeader {
                    index: 1,
                    name: String::new(),
                    value: String::new()
                },
                false
            )
            .is_err()
        );
        assert_eq!(
            e.finish(),
            [
                Modification::AddRcpt {
                    rcpt: "<n@x>".into(),
                    args: Some("NOTIFY=NEVER".into())
                },
                Modification::ChangeFrom {
                    sender: "<>".into(),
                    args: None
                },
            ]
        );
    }
}
