//! `unionmap:{t1, t2, …}` (every table is queried; the results found are joined with
//! commas) and `pipemap:{t1, t2, …}` (the result of each table is the key for the next).
//! An error from any member is the error of the whole lookup: a partial answer would hide
//! a temporary failure.

use crate::spec::{braced, tokens};
use crate::{BoxMap, Map, MapFlags, OpenOptions, TableError, open_nested};

#[derive(Debug)]
pub(crate) struct Composite {
    spec: String,
    pipe: bool,
    members: Vec<BoxMap>,
}

impl Composite {
    pub(crate) fn open(
        spec: &str,
        kind: &str,
        name: &str,
        opts: &OpenOptions,
        depth: usize,
    ) -> Result<Self, TableError> {
        let need = || {
            TableError::bad_spec(
                spec,
                format!("bad syntax: \"{spec}\"; need \"{kind}:{{type:name...}}\""),
            )
        };
        let body = braced(spec, name).ok().flatten().ok_or_else(need)?;
        let specs = tokens(spec, &body).map_err(|_| need())?;
        if specs.is_empty() {
            return Err(need());
        }
        let members = specs
            .into_iter()
            .map(|s| open_nested(s, opts, depth + 1))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Composite {
            spec: spec.to_string(),
            pipe: kind == "pipemap",
            members,
        })
    }
}

impl Map for Composite {
    fn lookup(&self, key: &str) -> Result<Option<String>, TableError> {
        if self.pipe {
            let mut current = key.to_string();
            for member in &self.members {
                match member.lookup(&current)? {
                    Some(next) => current = next,
                    None => return Ok(None),
                }
            }
            return Ok(Some(current));
        }
        let mut found: Vec<String> = Vec::new();
        for member in &self.members {
            found.extend(member.lookup(key)?);
        }
        Ok((!found.is_empty()).then(|| found.join(",")))
    }
    fn name(&self) -> &str {
        &self.spec
    }
    /// Partial (access(5)) keys are tried when any member is a fixed-string table, as
    /// they would be if that member were used alone.
    fn flags(&self) -> MapFlags {
        MapFlags {
            fold_case: self.members.iter().any(|m| m.flags().fold_case),
            pattern: self.members.iter().all(|m| m.flags().pattern),
        }
    }
    fn warnings(&self) -> &[TableError] {
        // Members keep their own warnings; report the first member that has any.
        self.members
            .iter()
            .map(|m| m.warnings())
            .find(|w| !w.is_empty())
            .unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use crate::{OpenOptions, open};

    fn get(spec: &str, key: &str) -> Result<Option<String>, crate::TableError> {
        open(spec, &OpenOptions::default()).unwrap().lookup(key)
    }

    #[test]
    fn union_and_pipe() {
        let u = "unionmap:{inline:{a=1}, static:2, inline:{b=3}}";
        assert_eq!(get(u, "a").unwrap().as_deref(), Some("1,2"));
        assert_eq!(
            get("unionmap:{inline:{a=1}, inline:{a=4}}", "b").unwrap(),
            None
        );
        assert_eq!(
            get("pipemap:{inline:{a=b}, inline:{b=c}}", "a")
                .unwrap()
                .as_deref(),
            Some("c")
        );
        assert_eq!(
            get("pipemap:{inline:{a=b}, inline:{x=c}}", "a").unwrap(),
            None
        );
        assert!(
            get("unionmap:{inline:{a=1}, fail:x}", "a")
                .unwrap_err()
                .is_temporary()
        );
        assert!(open("unionmap:{}", &OpenOptions::default()).is_err());
        assert!(open("unionmap:{nosuch:x}", &OpenOptions::default()).is_err());
    }

    #[test]
    fn flags() {
        let m = open(
            "unionmap:{cidr:{ {::/0 x} }, regexp:{ {/a/ b} }}",
            &OpenOptions::default(),
        )
        .unwrap();
        assert!(m.flags().pattern);
        let m = open(
            "unionmap:{cidr:{ {::/0 x} }, inline:{a=b}}",
            &OpenOptions::default(),
        )
        .unwrap();
        assert!(!m.flags().pattern);
    }
}
