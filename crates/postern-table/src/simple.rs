//! `inline:{…}`, `static:…` and `fail:…`: tables that live entirely in their spec.

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
        let need = "need \"inline:{name=value...}\"";
        let body = braced(spec, name)?.ok_or_else(|| TableError::spec(spec, need))?;
        let items = tokens(spec, &body)?;
        if items.is_empty() {
            return Err(TableError::spec(spec, need));
        }
        let mut entries = HashMap::new();
        for item in items {
            let text = unbrace(item).unwrap_or(item);
            let (key, value) = split_nameval(text).ok_or_else(|| {
                TableError::spec(spec, format!("missing '=' after attribute name; {need}"))
            })?;
            entries.insert(fold(key, opts.fold_case).into_owned(), value.to_string());
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

/// `static:value` or `static:{value with spaces}`: every key finds the value.
#[derive(Debug)]
pub(crate) struct Static {
    spec: String,
    value: String,
}

impl Static {
    pub(crate) fn open(spec: &str, name: &str) -> Result<Self, TableError> {
        let value = braced(spec, name)?.unwrap_or_else(|| name.to_string());
        Ok(Static {
            spec: spec.to_string(),
            value,
        })
    }
}

impl Map for Static {
    fn lookup(&self, _key: &str) -> Result<Option<String>, TableError> {
        Ok(Some(self.value.clone()))
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
