//! Bodies of the fuzz targets `postmap_line` and `alias_line` (`fuzz/fuzz_targets/`):
//! the table-source parsers must never panic and must keep their output properties on
//! any input. Also run over the seeds by `fuzz/tests/seeds.rs`.

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

#[cfg(test)]
mod tests {
    #[test]
    fn seeds_like_inputs() {
        super::postmap_line(b"key value\n\"quoted key\" v\n  cont\nbad\n\"x v\n");
        super::alias_line(b"root: a, b\n\"q n\": x\n  , y\nu: |\"/bin/p -a\", (c) [1.2]\n");
    }
}
