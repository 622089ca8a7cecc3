//! Alias tables and the address lists found in aliases, `.forward` and
//! `:include:` files.
//!
//! * [`MapList`] opens the tables of one parameter (`alias_maps`,
//!   `mailbox_command_maps`, …) once per process and searches them in order:
//!   the first table with an answer wins; a table that failed to open or
//!   cannot answer is an error (the caller defers: "alias database
//!   unavailable"), never a miss.
//! * [`MapOwner`]: whose rights `|command` and `/file` destinations of an
//!   alias get: a table file owned by root (or a table without a file) is
//!   trusted and such deliveries run as `default_privs`; a table file owned
//!   by someone else runs them as that owner (aliases(5)).
//! * [`tokens`] splits an address list (`a, "|cmd x", Name <b@c>, /file,
//!   :include:/path`) into destinations in internal form.
//!
//! # Security
//! Address lists come from files that users write (`.forward`, `:include:`):
//! [`tokens`] is pure, linear, bounded by [`MAX_TOKENS`], and never panics
//! (fuzzed via [`fuzz`]).
//!
//! # Configuration
//! Reads nothing itself; callers pass the parameter's table list.

use postern_table::BoxMap;
use std::os::unix::fs::MetadataExt;

/// Most destinations taken from one list (one alias value or one file line).
pub const MAX_TOKENS: usize = 10_000;

/// Whose rights `|command` and `/file` deliveries of a table's entries get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapOwner {
    /// Owned by root or not a file: `default_privs`.
    Trusted,
    /// Owned by this uid: that account's rights.
    Uid(u32),
    /// The table's file could not be examined: defer.
    Unknown,
}

/// The tables of one parameter, in order.
#[derive(Debug)]
pub struct MapList {
    param: String,
    maps: Vec<Result<(BoxMap, MapOwner), String>>,
}

/// The file that holds a table, for the ownership check.
fn table_file(spec: &str) -> Option<Vec<String>> {
    let (kind, name) = spec.split_once(':')?;
    if !name.starts_with('/') {
        return None;
    }
    let suffixes: &[&str] = match kind {
        "hash" | "btree" => &[".db", ""],
        "cdb" => &[".cdb", ""],
        "lmdb" => &[".lmdb", ""],
        "texthash" | "regexp" | "pcre" | "cidr" => &[""],
        _ => return None,
    };
    Some(suffixes.iter().map(|s| format!("{name}{s}")).collect())
}

fn owner_of(spec: &str) -> MapOwner {
    let Some(files) = table_file(spec) else {
        return MapOwner::Trusted;
    };
    for f in files {
        if let Ok(md) = std::fs::metadata(&f) {
            return match md.uid() {
                0 => MapOwner::Trusted,
                uid => MapOwner::Uid(uid),
            };
        }
    }
    MapOwner::Unknown
}

impl MapList {
    /// Opens every table of `specs`; failures are kept and reported at lookup.
    pub fn open(param: &str, specs: &[String]) -> MapList {
        let maps = specs
            .iter()
            .map(
                |spec| match postern_table::open(spec, &Default::default()) {
                    Ok(m) => {
                        for w in m.warnings() {
                            postern_log::warning!("{param}: {w}");
                        }
                        Ok((m, owner_of(spec)))
                    }
                    Err(e) => {
                        postern_log::warning!("{param}: {spec}: {e}");
                        Err(format!("{spec}: {e}"))
                    }
                },
            )
            .collect();
        MapList {
            param: param.to_string(),
            maps,
        }
    }

    /// A list with no tables (the parameter is empty).
    pub fn empty(param: &str) -> MapList {
        MapList {
            param: param.to_string(),
            maps: Vec::new(),
        }
    }

    /// Whether the parameter names no table.
    pub fn is_empty(&self) -> bool {
        self.maps.is_empty()
    }

    /// Looks `key` up in each table in turn. `Err` (logged) when a table
    /// could not be opened or could not answer before a match was found.
    pub fn find(&self, key: &str) -> Result<Option<(String, MapOwner)>, String> {
        for m in &self.maps {
            match m {
                Ok((map, owner)) => match map.lookup(key) {
                    Ok(Some(v)) => return Ok(Some((v, *owner))),
                    Ok(None) => {}
                    Err(e) => {
                        postern_log::warning!("{}: lookup of '{key}' failed: {e}", map.name());
                        return Err(e.to_string());
                    }
                },
                Err(e) => {
                    postern_log::warning!("{}: table unavailable: {e}", self.param);
                    return Err(e.clone());
                }
            }
        }
        Ok(None)
    }
}

/// Splits an address list into destinations (see the module docs).
pub fn tokens(list: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut piece = String::new();
    let (mut quoted, mut escaped, mut angle, mut paren) = (false, false, 0usize, 0usize);
    for c in list.chars() {
        if out.len() >= MAX_TOKENS {
            return out;
        }
        if escaped {
            escaped = false;
            piece.push(c);
            continue;
        }
        match c {
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            '(' if !quoted => paren += 1,
            ')' if !quoted && paren > 0 => paren -= 1,
            '<' if !quoted && paren == 0 => angle += 1,
            '>' if !quoted && paren == 0 && angle > 0 => angle -= 1,
            ',' if !quoted && paren == 0 && angle == 0 => {
                push_token(&mut out, &std::mem::take(&mut piece));
                continue;
            }
            _ => {}
        }
        piece.push(c);
    }
    push_token(&mut out, &piece);
    out
}

/// One list element → its destination in internal form.
fn push_token(out: &mut Vec<String>, piece: &str) {
    let t = piece.trim();
    if t.is_empty() {
        return;
    }
    // An unquoted |command or /file: the text as written.
    if t.starts_with('|') || t.starts_with('/') {
        out.push(t.to_string());
        return;
    }
    let mut text = String::new();
    let (mut quoted, mut escaped, mut paren) = (false, false, 0usize);
    let mut angle: Option<String> = None;
    let mut in_angle = false;
    for c in t.chars() {
        let target = if in_angle {
            angle.get_or_insert_with(String::new)
        } else {
            &mut text
        };
        if escaped {
            escaped = false;
            if !quoted {
                target.push('\\');
            }
            target.push(c);
            continue;
        }
        match c {
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            '(' if !quoted => paren += 1,
            ')' if !quoted && paren > 0 => paren -= 1,
            _ if paren > 0 => {}
            '<' if !quoted && !in_angle => {
                in_angle = true;
                angle = Some(String::new());
            }
            '>' if !quoted && in_angle => in_angle = false,
            c if !quoted && c.is_whitespace() => {
                if !target.is_empty() && !target.ends_with(' ') {
                    target.push(' ');
                }
            }
            c => target.push(c),
        }
    }
    let addr = angle.unwrap_or(text);
    let addr = addr.trim();
    if !addr.is_empty() {
        out.push(addr.to_string());
    }
}

/// Fuzz entry point: tokenizes `data` (lossy UTF-8).
pub fn fuzz(data: &[u8]) {
    let s = String::from_utf8_lossy(data);
    let t = tokens(&s);
    assert!(t.len() <= MAX_TOKENS);
    assert!(t.iter().all(|x| !x.is_empty()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_lists() {
        assert_eq!(
            tokens(
                r#"alice, "|/usr/bin/vacation -a x", /var/log/mail.copy, :include:/etc/list, Bob Smith <bob@example.org>, \carol"#
            ),
            [
                "alice",
                "|/usr/bin/vacation -a x",
                "/var/log/mail.copy",
                ":include:/etc/list",
                "bob@example.org",
                "\\carol"
            ]
        );
        assert_eq!(tokens(" , ,"), Vec::<String>::new());
        assert_eq!(tokens("a (comment, with comma), b"), ["a", "b"]);
        assert_eq!(
            tokens(r#""a, b"@x, "/tmp/with space""#),
            ["a, b@x", "/tmp/with space"]
        );
        assert_eq!(tokens("|/bin/cat >> /tmp/x"), ["|/bin/cat >> /tmp/x"]);
    }

    #[test]
    fn map_list_order_and_errors() {
        let l = MapList::open(
            "alias_maps",
            &[
                "inline:{ a=first }".into(),
                "inline:{ a=second, b=two }".into(),
            ],
        );
        assert_eq!(l.find("a").unwrap().unwrap().0, "first");
        assert_eq!(
            l.find("b").unwrap().unwrap(),
            ("two".into(), MapOwner::Trusted)
        );
        assert_eq!(l.find("c").unwrap(), None);
        let broken = MapList::open("alias_maps", &["nosuchtype:/x".into()]);
        assert!(broken.find("a").is_err());
        assert!(MapList::empty("x").find("a").unwrap().is_none());
    }

    #[test]
    fn table_owner() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("aliases");
        std::fs::write(&f, "a b\n").unwrap();
        let spec = format!("texthash:{}", f.display());
        let uid = std::fs::metadata(&f).unwrap().uid();
        let want = if uid == 0 {
            MapOwner::Trusted
        } else {
            MapOwner::Uid(uid)
        };
        assert_eq!(owner_of(&spec), want);
        assert_eq!(owner_of("texthash:/no/such/file"), MapOwner::Unknown);
        assert_eq!(owner_of("inline:{a=b}"), MapOwner::Trusted);
    }
}
