//! 8BITMIME → 7bit conversion for a peer that does not announce 8BITMIME
//! (Postfix's MIME output conversion, off with
//! `disable_mime_output_conversion = yes`).
//!
//! Walks the MIME structure (multipart/* by boundary, message/rfc822 as a
//! nested message); every leaf body with 8-bit octets is re-encoded as
//! quoted-printable and its Content-Transfer-Encoding replaced. Headers are
//! left alone, as Postfix does. Input and output use LF line endings.

/// Whether `content` has any 8-bit octet.
pub fn has_8bit(content: &[u8]) -> bool {
    content.iter().any(|&b| b >= 0x80)
}

/// Converts a whole message (headers, blank line, body).
pub fn convert(msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(msg.len() + msg.len() / 4);
    entity(msg, &mut out, false);
    out
}

/// Splits an entity into its header block (with the final LF of the last
/// header) and body; `None` when there is no blank line.
fn split(e: &[u8]) -> (&[u8], Option<&[u8]>) {
    if e.starts_with(b"\n") {
        return (&e[..0], Some(&e[1..]));
    }
    match e.windows(2).position(|w| w == b"\n\n") {
        Some(i) => (&e[..=i], Some(&e[i + 2..])),
        None => (e, None),
    }
}

/// Unfolded headers: (name lowercased, value, raw bytes of the header).
fn headers(h: &[u8]) -> Vec<(String, String, &[u8])> {
    let mut out: Vec<(String, String, &[u8])> = Vec::new();
    let lines: Vec<(usize, usize)> = {
        let mut v = Vec::new();
        let mut s = 0;
        for (i, &b) in h.iter().enumerate() {
            if b == b'\n' {
                v.push((s, i + 1));
                s = i + 1;
            }
        }
        if s < h.len() {
            v.push((s, h.len()));
        }
        v
    };
    let mut k = 0;
    while k < lines.len() {
        let (s, mut e) = lines[k];
        k += 1;
        while k < lines.len() && matches!(h.get(lines[k].0), Some(b' ' | b'\t')) {
            e = lines[k].1;
            k += 1;
        }
        let raw = &h[s..e];
        let text = String::from_utf8_lossy(raw).replace('\n', "");
        if let Some((n, v)) = text.split_once(':') {
            out.push((n.trim().to_ascii_lowercase(), v.trim().to_string(), raw));
        } else {
            out.push((String::new(), String::new(), raw));
        }
    }
    out
}

/// The `boundary` parameter of a Content-Type value.
fn boundary(ct: &str) -> Option<String> {
    for p in ct.split(';').skip(1) {
        let (k, v) = p.split_once('=')?;
        if k.trim().eq_ignore_ascii_case("boundary") {
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v);
            return Some(v.to_string());
        }
    }
    None
}

fn entity(e: &[u8], out: &mut Vec<u8>, digest: bool) {
    let (h, body) = split(e);
    let Some(body) = body else {
        out.extend_from_slice(e);
        return;
    };
    let hs = headers(h);
    let ct = hs
        .iter()
        .find(|(n, _, _)| n == "content-type")
        .map(|(_, v, _)| v.to_ascii_lowercase())
        .unwrap_or_else(|| {
            if digest {
                "message/rfc822".into()
            } else {
                "text/plain".into()
            }
        });
    let cte = hs
        .iter()
        .find(|(n, _, _)| n == "content-transfer-encoding")
        .map(|(_, v, _)| v.to_ascii_lowercase())
        .unwrap_or_default();
    let raw_ct = hs
        .iter()
        .find(|(n, _, _)| n == "content-type")
        .map(|(_, v, _)| v.clone())
        .unwrap_or_default();
    if ct.starts_with("multipart/")
        && let Some(b) = boundary(&raw_ct)
    {
        out.extend_from_slice(h);
        out.push(b'\n');
        multipart(body, &b, out, ct.starts_with("multipart/digest"));
        return;
    }
    if ct.starts_with("message/rfc822") && !has_8bit(h) {
        out.extend_from_slice(h);
        out.push(b'\n');
        entity(body, out, false);
        return;
    }
    if !has_8bit(body) || matches!(cte.as_str(), "base64" | "quoted-printable") {
        out.extend_from_slice(e);
        return;
    }
    for (n, _, raw) in &hs {
        if n != "content-transfer-encoding" {
            out.extend_from_slice(raw);
        }
    }
    if h.last().is_some_and(|&c| c != b'\n') {
        out.push(b'\n');
    }
    out.extend_from_slice(b"Content-Transfer-Encoding: quoted-printable\n\n");
    qp(body, out);
}

fn multipart(body: &[u8], b: &str, out: &mut Vec<u8>, digest: bool) {
    let delim = format!("--{b}");
    let mut part_start: Option<usize> = None;
    let mut pos = 0;
    while pos < body.len() {
        let end = body[pos..]
            .iter()
            .position(|&c| c == b'\n')
            .map(|i| pos + i + 1)
            .unwrap_or(body.len());
        let line = &body[pos..end];
        let bare = line.strip_suffix(b"\n").unwrap_or(line);
        let bare = bare.strip_suffix(b"\r").unwrap_or(bare);
        let is_delim = bare.starts_with(delim.as_bytes())
            && bare[delim.len()..]
                .iter()
                .all(|&c| c == b'-' || c == b' ' || c == b'\t');
        if is_delim {
            if let Some(s) = part_start {
                // The LF before the delimiter belongs to the delimiter.
                let part = &body[s..pos];
                let part = part.strip_suffix(b"\n").unwrap_or(part);
                entity(part, out, digest);
                out.push(b'\n');
            }
            out.extend_from_slice(line);
            let closing = bare[delim.len()..].starts_with(b"--");
            if closing {
                out.extend_from_slice(&body[end..]);
                return;
            }
            part_start = Some(end);
        } else if part_start.is_none() {
            out.extend_from_slice(line);
        }
        pos = end;
    }
    if let Some(s) = part_start {
        entity(&body[s..], out, digest);
    }
}

/// Quoted-printable (RFC 2045 §6.7) of LF-terminated text, lines ≤ 76.
pub fn qp(body: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let trailing_lf = body.ends_with(b"\n");
    let body = body.strip_suffix(b"\n").unwrap_or(body);
    let lines: Vec<&[u8]> = body.split(|&c| c == b'\n').collect();
    for (i, line) in lines.iter().enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let mut col = 0;
        for (j, &c) in line.iter().enumerate() {
            let last = j + 1 == line.len();
            let plain = (c == b' ' || c == b'\t') && !last
                || (33..=126).contains(&c) && c != b'=' && !(col == 0 && c == b'.');
            let w = if plain { 1 } else { 3 };
            if col + w > 75 {
                out.extend_from_slice(b"=\n");
                col = 0;
            }
            if plain {
                out.push(c);
            } else {
                out.extend_from_slice(&[b'=', HEX[usize::from(c >> 4)], HEX[usize::from(c & 15)]]);
            }
            col += w;
        }
        if i + 1 < lines.len() || trailing_lf {
            out.push(b'\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_text_becomes_qp() {
        let m = "Subject: x\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\nGrüße = ok\n";
        let o = String::from_utf8(convert(m.as_bytes())).unwrap();
        assert_eq!(
            o,
            "Subject: x\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\nGr=C3=BC=C3=9Fe =3D ok\n"
        );
        assert!(!has_8bit(o.as_bytes()));
    }

    #[test]
    fn seven_bit_untouched_and_long_lines_wrap() {
        let m = b"Subject: x\n\nplain\n";
        assert_eq!(convert(m), m);
        let long = format!("Subject: x\n\n{}\u{e9}\n", "a".repeat(200));
        let o = convert(long.as_bytes());
        let s = String::from_utf8(o).unwrap();
        assert!(s.lines().all(|l| l.len() <= 76), "{s}");
        assert!(s.ends_with("=C3=A9\n"), "{s}");
    }

    #[test]
    fn multipart_parts_each_converted() {
        let m = "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"BB\"\n\npreamble\n--BB\nContent-Type: text/plain\n\nä\n--BB\nContent-Type: text/plain\n\nascii\n--BB--\nepilogue\n";
        let o = String::from_utf8(convert(m.as_bytes())).unwrap();
        assert_eq!(
            o,
            "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"BB\"\n\npreamble\n--BB\nContent-Type: text/plain\nContent-Transfer-Encoding: quoted-printable\n\n=C3=A4\n--BB\nContent-Type: text/plain\n\nascii\n--BB--\nepilogue\n"
        );
    }
}
