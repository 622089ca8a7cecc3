//! The modification applier (pure): a milter's end-of-message edits applied to
//! the headers and body, with Postfix's index semantics.
//!
//! - add: after the last header;
//! - insert at `index`: before the header at 0-based position `index` among all
//!   headers (0 = top); past the end appends;
//! - change `index`/`name`: the `index`th (1-based, 0 taken as 1) header with
//!   that name, compared case-insensitively; an empty value deletes it; when
//!   there is no such header a change appends it and a delete does nothing;
//! - replace body: the new body as a whole.
//!
//! Envelope edits (recipients, sender) and quarantine are left to the caller,
//! which finds them in [`crate::Outcome::modifications`].

use crate::Modification;

/// Applies one modification to the headers and body.
pub fn apply(headers: &mut Vec<(String, String)>, body: &mut Vec<u8>, m: &Modification) {
    apply_hidden(headers, 0, body, m);
}

/// [`apply`] when the first `hidden` headers were not shown to the milter (the
/// MTA's own Received: header): a change or delete does not count them, an
/// insert does (Postfix's semantics).
pub fn apply_hidden(
    headers: &mut Vec<(String, String)>,
    hidden: usize,
    body: &mut Vec<u8>,
    m: &Modification,
) {
    match m {
        Modification::AddHeader { name, value } => headers.push((name.clone(), value.clone())),
        Modification::InsertHeader { index, name, value } => {
            let pos = usize::try_from(*index).unwrap_or(usize::MAX);
            let entry = (name.clone(), value.clone());
            if pos >= headers.len() {
                headers.push(entry);
            } else {
                headers.insert(pos, entry);
            }
        }
        Modification::ChangeHeader { index, name, value } => {
            change_header(headers, hidden, *index, name, value);
        }
        Modification::ReplaceBody(new) => body.clone_from(new),
        Modification::AddRcpt { .. }
        | Modification::DelRcpt { .. }
        | Modification::ChangeFrom { .. }
        | Modification::Quarantine { .. } => {}
    }
}

/// Replaces, deletes or appends the `index`th header named `name`.
fn change_header(
    headers: &mut Vec<(String, String)>,
    hidden: usize,
    index: u32,
    name: &str,
    value: &str,
) {
    let nth = usize::try_from(index.max(1)).unwrap_or(usize::MAX);
    let found = headers
        .iter()
        .enumerate()
        .skip(hidden)
        .filter(|(_, (n, _))| n.eq_ignore_ascii_case(name))
        .nth(nth - 1)
        .map(|(i, _)| i);
    match (found, value.is_empty()) {
        (Some(i), true) => {
            headers.remove(i);
        }
        (Some(i), false) => headers[i].1 = value.to_string(),
        (None, true) => {}
        (None, false) => headers.push((name.to_string(), value.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdrs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    fn run(start: &[(&str, &str)], m: Modification) -> Vec<(String, String)> {
        let mut h = hdrs(start);
        let mut b = Vec::new();
        apply(&mut h, &mut b, &m);
        h
    }

    const BASE: &[(&str, &str)] = &[("A", " 1"), ("X", " x1"), ("B", " 2"), ("x", " x2")];

    fn chg(index: u32, name: &str, value: &str) -> Modification {
        Modification::ChangeHeader {
            index,
            name: name.into(),
            value: value.into(),
        }
    }

    fn ins(index: u32) -> Modification {
        Modification::InsertHeader {
            index,
            name: "N".into(),
            value: " n".into(),
        }
    }

    #[test]
    fn add_appends() {
        let m = Modification::AddHeader {
            name: "N".into(),
            value: " n".into(),
        };
        assert_eq!(run(BASE, m).last(), Some(&("N".into(), " n".into())));
    }

    #[test]
    fn insert_positions() {
        assert_eq!(run(BASE, ins(0))[0].0, "N");
        assert_eq!(run(BASE, ins(2))[2].0, "N");
        assert_eq!(run(BASE, ins(2))[3].0, "B");
        assert_eq!(run(BASE, ins(4))[4].0, "N");
        assert_eq!(run(BASE, ins(u32::MAX))[4].0, "N");
        assert_eq!(run(&[], ins(3)), hdrs(&[("N", " n")]));
    }

    #[test]
    fn change_nth_case_insensitive() {
        let h = run(BASE, chg(2, "X", " new"));
        assert_eq!(h[3], ("x".into(), " new".into()));
        assert_eq!(h[1].1, " x1");
        // index 0 is index 1 (Sendmail compatibility).
        assert_eq!(run(BASE, chg(0, "x", " new"))[1].1, " new");
        // missing: appended.
        let h = run(BASE, chg(3, "X", " x3"));
        assert_eq!(h.len(), 5);
        assert_eq!(h[4], ("X".into(), " x3".into()));
    }

    #[test]
    fn delete_nth() {
        let h = run(BASE, chg(1, "x", ""));
        assert_eq!(h, hdrs(&[("A", " 1"), ("B", " 2"), ("x", " x2")]));
        let h = run(BASE, chg(2, "X", ""));
        assert_eq!(h, hdrs(&[("A", " 1"), ("X", " x1"), ("B", " 2")]));
        // missing: nothing.
        assert_eq!(run(BASE, chg(3, "X", "")), hdrs(BASE));
        assert_eq!(run(BASE, chg(1, "Nope", "")), hdrs(BASE));
    }

    #[test]
    fn hidden_header_counts_for_insert_only() {
        let start = [("Received", " r"), ("Received", " r2"), ("X", " x")];
        let mut h = hdrs(&start);
        let mut b = Vec::new();
        apply_hidden(&mut h, 1, &mut b, &chg(1, "Received", " new"));
        assert_eq!(h[0].1, " r");
        assert_eq!(h[1].1, " new");
        apply_hidden(&mut h, 1, &mut b, &chg(5, "received", ""));
        assert_eq!(h.len(), 3);
        apply_hidden(&mut h, 1, &mut b, &ins(0));
        assert_eq!(h[0].0, "N");
    }

    #[test]
    fn body_and_envelope() {
        let mut h = hdrs(BASE);
        let mut b = b"old\n".to_vec();
        apply(
            &mut h,
            &mut b,
            &Modification::ReplaceBody(b"new\n".to_vec()),
        );
        assert_eq!(b, b"new\n");
        let env = Modification::AddRcpt {
            rcpt: "<a@b>".into(),
            args: None,
        };
        apply(&mut h, &mut b, &env);
        assert_eq!(h, hdrs(BASE));
        assert_eq!(b, b"new\n");
    }
}
