//! `inline:{…}`, `static:…`, `randmap:{…}` and `fail:…`: tables that live entirely in
//! their spec. With [`OpenOptions::rhs_is_file`] (postmap's `-F`) the values of `inline:`
//! and `static:` name files whose contents (base64) are the values, read at open time; a
//! file that cannot be read fails the open, as in Postfix.

use crate::spec::{braced, tokens, unbrace};
use crate::{Map, MapFlags, OpenOptions, TableError, fold};
use std::collections::HashMap;

/// `inline:{ key=value, { key = value with spaces }, … }`. Later duplicates win.
#[derive(Debug)]
pub(crate) struct Inline {
    spec: String,
    fold_case: bool,
    entries: HashMap<String, String>,
}

impl Inline {
    pub(crate) fn open(spec: &str, name: &str, opts: &OpenOptions) -> Result<Self, TableError> {
        let what = if opts.rhs_is_file {
            "filename"
        } else {
            "value"
        };
        let need = |why: &str| {
            TableError::bad_spec(
                spec,
                format!("{why}: \"{spec}\"; need \"inline:{{name={what}...}}\""),
            )
        };
        let body = braced(spec, name)
            .ok()
            .flatten()
            .ok_or_else(|| need("bad syntax"))?;
        let items = tokens(spec, &body).map_err(|_| need("bad syntax"))?;
        if items.is_empty() {
            return Err(need("bad syntax"));
        }
        let mut entries = HashMap::new();
        for item in items {
            let text = unbrace(item).unwrap_or(item);
            let (key, value) =
                split_nameval(text).ok_or_else(|| need("missing '=' after attribute name"))?;
            let value = if opts.rhs_is_file {
                crate::source::file_value(value).map_err(|e| need(&e))?
            } else {
                value.to_string()
            };
            entries.insert(fold(key, opts.fold_case).into_owned(), value);
        }
        Ok(Inline {
            spec: spec.to_string(),
            fold_case: opts.fold_case,
            entries,
        })
    }
}

/// `name = value`: the name is one word; blanks around `=` and the value are dropped.
fn split_nameval(text: &str) -> Option<(&str, &str)> {
    let end = text.find(|c: char| c == '=' || c.is_ascii_whitespace())?;
    let (name, rest) = text.split_at(end);
    let value = rest.trim_start().strip_prefix('=')?;
    (!name.is_empty()).then(|| (name, value.trim()))
}

impl Map for Inline {
    fn lookup(&self, key: &str) -> Result<Option<String>, TableError> {
        Ok(self
            .entries
            .get(fold(key, self.fold_case).as_ref())
            .cloned())
    }
    fn sequence(&self) -> Result<Option<Vec<(String, String)>>, TableError> {
        Ok(Some(crate::sorted_records(&self.entries)))
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
}

/// `static:value` or `static:{value with spaces}`: every key finds the value; and
/// `randmap:{value, …}` (Postfix's randmap(5), for spreading mail over transports): every
/// key finds one of the values, chosen at random per lookup, taken as written (braces
/// included).
#[derive(Debug)]
pub(crate) struct Static {
    spec: String,
    values: Vec<String>,
}

impl Static {
    pub(crate) fn open(spec: &str, name: &str, opts: &OpenOptions) -> Result<Self, TableError> {
        let value = braced(spec, name)
            .map_err(|_| {
                let why = if crate::spec::tokens(spec, name).is_err() {
                    "missing '}'"
                } else {
                    "syntax error after '}'"
                };
                TableError::bad_spec(spec, format!("bad static:name syntax: {why} in \"{name}\""))
            })?
            .unwrap_or_else(|| name.to_string());
        let value = if opts.rhs_is_file {
            crate::source::file_value(&value).map_err(|e| TableError::bad_spec(spec, e))?
        } else {
            value
        };
        Ok(Static {
            spec: spec.to_string(),
            values: vec![value],
        })
    }

    /// `randmap:{value, …}`.
    pub(crate) fn random(spec: &str, name: &str) -> Result<Self, TableError> {
        let need = || {
            TableError::bad_spec(
                spec,
                format!("bad syntax: \"{spec}\"; need \"randmap:{{value...}}\""),
            )
        };
        let body = braced(spec, name).ok().flatten().ok_or_else(need)?;
        let values: Vec<String> = tokens(spec, &body)
            .map_err(|_| need())?
            .into_iter()
            .map(str::to_string)
            .collect();
        if values.is_empty() {
            return Err(need());
        }
        Ok(Static {
            spec: spec.to_string(),
            values,
        })
    }
}

impl Map for Static {
    fn lookup(&self, _key: &str) -> Result<Option<String>, TableError> {
        let index = match self.values.len() {
            0 | 1 => 0,
            n => {
                use std::hash::{BuildHasher, Hasher};
                // Each RandomState has fresh random keys: its hash of nothing is random.
                let r = std::collections::hash_map::RandomState::new()
                    .build_hasher()
                    .finish();
                usize::try_from(r % n as u64).unwrap_or(0)
            }
        };
        Ok(self.values.get(index).cloned())
    }
    fn name(&self) -> &str {
        &self.spec
    }
    fn flags(&self) -> MapFlags {
        MapFlags {
            fold_case: false,
            pattern: false,
        }
    }
}

/// `fail:name`: every lookup is a temporary failure (for tests and for disabling a path).
#[derive(Debug)]
pub(crate) struct Fail {
    spec: String,
    message: String,
}

impl Fail {
    pub(crate) fn new(spec: &str) -> Self {
        Fail {
            spec: spec.to_string(),
            message: "Application error".to_string(),
        }
    }

    /// A stand-in for a table that could not be opened: every lookup fails with `message`.
    pub(crate) fn surrogate(spec: &str, message: String) -> Self {
        Fail {
            spec: spec.to_string(),
            message,
        }
    }
}

impl Map for Fail {
    fn lookup(&self, _key: &str) -> Result<Option<String>, TableError> {
        Err(TableError::Lookup {
            table: self.spec.clone(),
            message: self.message.clone(),
        })
    }
    fn sequence(&self) -> Result<Option<Vec<(String, String)>>, TableError> {
        Err(TableError::Lookup {
            table: self.spec.clone(),
            message: self.message.clone(),
        })
    }
    fn name(&self) -> &str {
        &self.spec
    }
    fn flags(&self) -> MapFlags {
        MapFlags {
            fold_case: false,
            pattern: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{OpenOptions, TableError, open};

    fn get(spec: &str, key: &str) -> Option<String> {
        open(spec, &OpenOptions::default())
            .unwrap()
            .lookup(key)
            .unwrap()
    }

    #[test]
    fn inline_forms() {
        let spec = "inline:{ Foo=Bar, { k = val with spaces }, x=1,x=2 a=b=c }";
        assert_eq!(get(spec, "FOO").as_deref(), Some("Bar"));
        assert_eq!(get(spec, "k").as_deref(), Some("val with spaces"));
        assert_eq!(get(spec, "x").as_deref(), Some("2"));
        assert_eq!(get(spec, "a").as_deref(), Some("b=c"));
        assert_eq!(get(spec, "zz"), None);
        assert_eq!(get("inline:{a=}", "a").as_deref(), Some(""));
    }

    #[test]
    fn inline_errors() {
        for bad in [
            "inline:{}",
            "inline:{a=1}junk",
            "inline:{a=1",
            "inline:{ {Key Two = v} }",
            "inline:{foo}",
            "inline:x",
        ] {
            assert!(
                matches!(
                    open(bad, &OpenOptions::default()),
                    Err(TableError::Spec { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn inline_error_texts_are_postfix() {
        let e = |spec: &str| open(spec, &OpenOptions::default()).unwrap_err().to_string();
        assert_eq!(
            e("inline:{a=1, {b=2}"),
            "bad syntax: \"inline:{a=1, {b=2}\"; need \"inline:{name=value...}\""
        );
        assert_eq!(
            e("unionmap:{inline:{a=1, b}}"),
            "missing '=' after attribute name: \"inline:{a=1, b}\"; need \"inline:{name=value...}\""
        );
        assert_eq!(
            e("static:{a}b"),
            "bad static:name syntax: syntax error after '}' in \"{a}b\""
        );
    }

    #[test]
    fn randmap_picks_one_value() {
        let m = open("randmap:{a, b, {c}}", &OpenOptions::default()).unwrap();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            seen.insert(m.lookup("k").unwrap().unwrap());
        }
        let want: std::collections::HashSet<String> =
            ["a", "b", "{c}"].iter().map(|s| s.to_string()).collect();
        assert_eq!(seen, want);
        for bad in ["randmap:x", "randmap:{}", "randmap:{a"] {
            let e = open(bad, &OpenOptions::default()).unwrap_err().to_string();
            assert!(e.starts_with("bad syntax: "), "{e}");
        }
    }

    #[test]
    fn static_and_fail() {
        assert_eq!(get("static:hello", "x").as_deref(), Some("hello"));
        assert_eq!(
            get("static:{ hello world }", "x").as_deref(),
            Some("hello world")
        );
        let err = open("fail:x", &OpenOptions::default())
            .unwrap()
            .lookup("a")
            .unwrap_err();
        assert!(err.is_temporary());
        assert_eq!(
            err.to_string(),
            "table fail:x: query error: Application error"
        );
    }

    #[test]
    fn surrogate_fails_every_lookup() {
        let e = open("hash:/nonexistent/x", &OpenOptions::default()).unwrap_err();
        let (m, err) = crate::open_or_surrogate("hash:/nonexistent/x", &OpenOptions::default());
        assert!(err.is_some());
        let got = m.lookup("k").unwrap_err();
        assert!(got.is_temporary());
        assert_eq!(
            got.to_string(),
            format!(
                "table hash:/nonexistent/x: query error: hash:/nonexistent/x is unavailable. {e}"
            )
        );
        assert_eq!(m.name(), "hash:/nonexistent/x");
    }
}
