//! `texthash:` — the source text of a `hash:` table, read directly into memory.
//!
//! Each logical line is `key whitespace value` ([`crate::parse_entry`]: a key may be quoted
//! to contain whitespace). Keys are folded to lower case unless
//! [`OpenOptions::fold_case`] is off. A duplicate key keeps the first value, as Postfix does.

use crate::source::{Warnings, logical_lines, read_file};
use crate::{Map, MapFlags, OpenOptions, TableError, fold};
use std::collections::HashMap;

#[derive(Debug)]
pub(crate) struct TextHash {
    spec: String,
    fold_case: bool,
    entries: HashMap<String, String>,
    warnings: Vec<TableError>,
}

impl TextHash {
    pub(crate) fn open(spec: &str, path: &str, opts: &OpenOptions) -> Result<Self, TableError> {
        let text = read_file(path)?;
        let mut warnings = Warnings::new(path, opts.strict);
        let mut entries = HashMap::new();
        for line in logical_lines(path, &text)? {
            let (key, value) = match crate::parse_entry(&line.text) {
                Ok(kv) => kv,
                Err(e) => {
                    warnings.warn(line.number, format!("{e} -- ignoring this line"))?;
                    continue;
                }
            };
            let key = fold(key, opts.fold_case).into_owned();
            if entries.contains_key(&key) {
                warnings.warn(line.number, format!("duplicate entry: \"{key}\""))?;
                continue;
            }
            let value = value.trim_start();
            let value = if opts.rhs_is_file {
                match crate::source::file_value(value) {
                    Ok(v) => v,
                    Err(e) => {
                        warnings.warn(line.number, format!("{e}: skipping this entry"))?;
                        continue;
                    }
                }
            } else {
                value.to_string()
            };
            entries.insert(key, value);
        }
        Ok(TextHash {
            spec: spec.to_string(),
            fold_case: opts.fold_case,
            entries,
            warnings: warnings.list,
        })
    }
}

impl Map for TextHash {
    fn lookup(&self, key: &str) -> Result<Option<String>, TableError> {
        Ok(self
            .entries
            .get(fold(key, self.fold_case).as_ref())
            .cloned())
    }
    fn name(&self) -> &str {
        &self.spec
    }
    fn flags(&self) -> MapFlags {
        MapFlags {
            fold_case: self.fold_case,
            pattern: false,
        }
    }
    fn warnings(&self) -> &[TableError] {
        &self.warnings
    }
    fn sequence(&self) -> Result<Option<Vec<(String, String)>>, TableError> {
        Ok(Some(crate::sorted_records(&self.entries)))
    }
}

#[cfg(test)]
mod tests {
    use crate::{OpenOptions, open};
    use std::io::Write;

    fn table(text: &str, opts: &OpenOptions) -> (tempfile::NamedTempFile, crate::BoxMap) {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        let map = open(&format!("texthash:{}", f.path().display()), opts).unwrap();
        (f, map)
    }

    #[test]
    fn keys_values_comments_continuations() {
        let (_f, m) = table(
            "Foo  bar baz\n  more\n# c\nbad\nkey v1\nkey v2\n",
            &OpenOptions::default(),
        );
        assert_eq!(m.lookup("FOO").unwrap().as_deref(), Some("bar baz  more"));
        assert_eq!(m.lookup("key").unwrap().as_deref(), Some("v1"));
        assert_eq!(m.lookup("bad").unwrap(), None);
        assert_eq!(m.warnings().len(), 2);
        let first = m.warnings()[0].to_string();
        assert!(
            first
                .ends_with(", line 4: expected format: key whitespace value -- ignoring this line")
        );
    }

    #[test]
    fn no_fold() {
        let opts = OpenOptions {
            fold_case: false,
            ..OpenOptions::default()
        };
        let (_f, m) = table("Foo bar\n", &opts);
        assert_eq!(m.lookup("foo").unwrap(), None);
        assert_eq!(m.lookup("Foo").unwrap().as_deref(), Some("bar"));
    }

    #[test]
    fn strict_fails_on_bad_line() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(b"ok yes\nbad\n").unwrap();
        let opts = OpenOptions {
            strict: true,
            ..OpenOptions::default()
        };
        let err = open(&format!("texthash:{}", f.path().display()), &opts).unwrap_err();
        assert!(matches!(err, crate::TableError::Syntax { line: 2, .. }));
    }
}
