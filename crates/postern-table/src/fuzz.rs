//! Bodies of the fuzz targets `postmap_line`, `alias_line`, `table_source` and
//! `relay_address` (`fuzz/fuzz_targets/`): the table-source parsers and trivial-rewrite's address
//! resolution (which decides local versus relay for every RCPT an SMTP client sends) must
//! never panic and must keep their output properties on any input. Also run over the
//! seeds by `fuzz/tests/seeds.rs`.

/// `postmap_line`: logical lines, then `key whitespace value`.
pub fn postmap_line(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(lines) = crate::source_lines("fuzz", &text) else {
        return;
    };
    for (number, line) in lines {
        assert!(number >= 1);
        if let Ok((key, value)) = crate::parse_entry(&line) {
            assert!(!key.is_empty() && !value.is_empty());
            assert!(line.contains(key) && line.contains(value));
        }
    }
}

/// `alias_line`: aliases(5) lines; a stored value parses again (as local(8) will).
pub fn alias_line(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(lines) = crate::source_lines("fuzz", &text) else {
        return;
    };
    for (_, line) in lines {
        // A name or value may render empty (`"": x`, a lone trailing backslash), as in
        // Postfix; the property is only that parsing never panics.
        if let Ok(Some((_name, value))) = crate::parse_alias_line(&line) {
            // Not necessarily identical (Postfix's externalizing is not idempotent for
            // e.g. `[a\]b]`), but it must parse without panicking.
            let _reparsed = crate::parse_alias_line(&format!("x: {value}"));
        }
    }
}

/// `table_source`: the input as the source of a `regexp:`, `pcre:` and `cidr:` table (in
/// Postfix and strict mode), then as the text of `inline:{…}`, `static:{…}`, `randmap:{…}`
/// and `regexp:{…}` specs (tables that do no I/O); each line of the input is then looked up.
/// Properties: no panic; a result is bounded by [`crate::MAX_RESULT_BYTES`]; a warning names
/// a line of the source.
pub fn table_source(data: &[u8]) {
    use crate::pattern::{Dialect, PatternMap};
    use crate::{BoxMap, Map, OpenOptions};
    let text = String::from_utf8_lossy(data);
    let Ok(lines) = crate::source::logical_lines("fuzz", &text) else {
        return;
    };
    let last = lines.last().map_or(0, |l| l.number);
    let keys: Vec<&str> = text.lines().take(16).collect();
    // `max_line`: the last source line for a map read from the text (a spec's rules are
    // numbered by position instead).
    let check = |map: &dyn Map, max_line: usize| {
        for w in map.warnings() {
            if let crate::TableError::Syntax { line, .. } = w {
                assert!(*line >= 1 && *line <= max_line, "{w}");
            }
        }
        for key in &keys {
            if let Ok(Some(v)) = map.lookup(key) {
                assert!(v.len() <= crate::MAX_RESULT_BYTES + key.len());
            }
        }
    };
    for strict in [false, true] {
        let opts = OpenOptions {
            strict,
            ..OpenOptions::default()
        };
        let copy = || {
            lines
                .iter()
                .map(|l| crate::source::Line {
                    number: l.number,
                    text: l.text.clone(),
                })
                .collect::<Vec<_>>()
        };
        for dialect in [Dialect::Posix, Dialect::Pcre] {
            if let Ok(m) = PatternMap::from_lines("fuzz", "fuzz", copy(), &opts, dialect) {
                check(&m, last.max(1));
            }
        }
        if let Ok(m) = crate::cidr::Cidr::from_lines("fuzz", "fuzz", copy(), &opts) {
            check(&m, last.max(1));
        }
    }
    for kind in ["inline", "static", "randmap", "regexp", "cidr"] {
        let spec = format!("{kind}:{{{text}}}");
        if let Ok(m) = crate::open(&spec, &OpenOptions::default()) {
            let m: BoxMap = m;
            check(m.as_ref(), usize::MAX);
        }
    }
}

/// `relay_address`: each input line is a recipient address as an SMTP client may send
/// it (percent hack, bang paths, source routes, quoted local parts, literals), resolved
/// under permissive and strict routing settings. Properties: no panic, and resolution is
/// a function of its input (the same answer twice).
pub fn relay_address(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let settings = |strict: bool| {
        move |name: &str| -> String {
            match name {
                "mydestination" => "localhost, example.com, $myhostname".into(),
                "myhostname" => "mx.example.com".into(),
                "myorigin" => "example.com".into(),
                "relay_domains" => "relay.test, .sub.relay.test".into(),
                "virtual_alias_domains" => "alias.test".into(),
                "allow_percent_hack" | "swap_bangpath" | "resolve_dequoted_address" => {
                    if strict { "no" } else { "yes" }.into()
                }
                "resolve_null_domain" | "resolve_numeric_domain" => {
                    if strict { "yes" } else { "no" }.into()
                }
                _ => String::new(),
            }
        }
    };
    let own = vec![std::net::IpAddr::from([127, 0, 0, 1])];
    for strict in [false, true] {
        let r = crate::route::ClassResolver::new(&settings(strict), own.clone());
        for line in text.lines().take(64) {
            let a = format!("{:?}", r.resolve(line));
            let b = format!("{:?}", r.resolve(line));
            assert_eq!(a, b, "{line:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn seeds_like_inputs() {
        super::postmap_line(b"key value\n\"quoted key\" v\n  cont\nbad\n\"x v\n");
        super::table_source(b"/^a(.*)/!/^ab/ x $1\nif /b/\n/(c)/ ${1}\nendif x\n10.0.0.0/8 y\n");
        super::table_source(b"{a=1, {b = 2}}, x=\n/$/ $\n");
        super::alias_line(b"root: a, b\n\"q n\": x\n  , y\nu: |\"/bin/p -a\", (c) [1.2]\n");
    }
}
