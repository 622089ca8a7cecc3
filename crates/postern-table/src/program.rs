//! The ordered rule list shared by `cidr:`, `regexp:` and `pcre:` tables: first match
//! wins, `!` negates a rule, and `if`/`endif` blocks (which nest) guard groups of rules.

use crate::source::Warnings;
use crate::{MAX_NESTING, TableError};

#[derive(Debug)]
pub(crate) enum Op<M, V> {
    /// Applies when `matcher` matches (or, if `negate`, does not match); yields `value`.
    Rule { matcher: M, negate: bool, value: V },
    /// Enter the block when the test holds, else jump to `end`.
    If {
        matcher: M,
        negate: bool,
        end: usize,
    },
}

#[derive(Debug)]
pub(crate) struct Program<M, V> {
    ops: Vec<Op<M, V>>,
    open_ifs: Vec<(usize, usize)>,
}

impl<M, V> Program<M, V> {
    pub(crate) fn new() -> Self {
        Program {
            ops: Vec::new(),
            open_ifs: Vec::new(),
        }
    }

    pub(crate) fn rule(&mut self, matcher: M, negate: bool, value: V) {
        self.ops.push(Op::Rule {
            matcher,
            negate,
            value,
        });
    }

    pub(crate) fn open_if(
        &mut self,
        line: usize,
        matcher: M,
        negate: bool,
        w: &mut Warnings,
    ) -> Result<(), TableError> {
        if self.open_ifs.len() >= MAX_NESTING {
            return w.warn(
                line,
                format!("IF nesting deeper than {MAX_NESTING}: skipping this rule"),
            );
        }
        self.open_ifs.push((self.ops.len(), line));
        self.ops.push(Op::If {
            matcher,
            negate,
            end: 0,
        });
        Ok(())
    }

    /// Closes the innermost `if`; an `endif` without one is skipped with warning `stray`
    /// (the table type's own wording, as in Postfix).
    pub(crate) fn endif(
        &mut self,
        line: usize,
        w: &mut Warnings,
        stray: &str,
    ) -> Result<(), TableError> {
        match self.open_ifs.pop() {
            Some((index, _)) => {
                self.close(index);
                Ok(())
            }
            None => w.warn(line, stray),
        }
    }

    fn close(&mut self, index: usize) {
        let here = self.ops.len();
        if let Some(Op::If { end, .. }) = self.ops.get_mut(index) {
            *end = here;
        }
    }

    /// Closes any `if` left open at the end of the source (with a warning each).
    pub(crate) fn finish(mut self, w: &mut Warnings) -> Result<Self, TableError> {
        while let Some((index, line)) = self.open_ifs.pop() {
            self.close(index);
            w.warn(line, "IF has no matching ENDIF")?;
        }
        Ok(self)
    }

    /// The first rule that applies. `test` says whether a matcher matches the key, or
    /// `None` when it cannot be compared at all (a cidr rule of the other address family):
    /// such a rule does not apply and such an `if` block is skipped, negated or not.
    pub(crate) fn first<E>(
        &self,
        mut test: impl FnMut(&M) -> Result<Option<bool>, E>,
    ) -> Result<Option<(&M, &V)>, E> {
        let mut i = 0;
        while let Some(op) = self.ops.get(i) {
            match op {
                Op::Rule {
                    matcher,
                    negate,
                    value,
                } => {
                    if test(matcher)?.is_some_and(|hit| hit != *negate) {
                        return Ok(Some((matcher, value)));
                    }
                    i += 1;
                }
                Op::If {
                    matcher,
                    negate,
                    end,
                } => {
                    i = if test(matcher)?.is_some_and(|hit| hit != *negate) {
                        i + 1
                    } else {
                        *end
                    };
                }
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_and_negation() {
        let mut w = Warnings::new("t", false);
        let mut p: Program<char, &str> = Program::new();
        p.open_if(1, 'a', false, &mut w).unwrap();
        p.open_if(2, 'b', true, &mut w).unwrap();
        p.rule('c', false, "in-not-b");
        p.endif(4, &mut w, "stray").unwrap();
        p.rule('a', false, "a");
        p.endif(6, &mut w, "stray").unwrap();
        p.endif(7, &mut w, "stray").unwrap();
        p.rule('z', true, "not-z");
        let p = p.finish(&mut w).unwrap();
        assert_eq!(w.list.len(), 1);
        let run = |key: &str| {
            p.first(|m| Ok::<_, ()>(Some(key.contains(*m))))
                .unwrap()
                .map(|(_, v)| *v)
        };
        assert_eq!(run("ac"), Some("in-not-b"));
        assert_eq!(run("abc"), Some("a"));
        assert_eq!(run("c"), Some("not-z"));
        assert_eq!(run("cz"), None);
    }

    #[test]
    fn unclosed_if_warns() {
        let mut w = Warnings::new("t", false);
        let mut p: Program<char, ()> = Program::new();
        p.open_if(3, 'a', false, &mut w).unwrap();
        let _p = p.finish(&mut w).unwrap();
        assert_eq!(w.list[0].to_string(), "t, line 3: IF has no matching ENDIF");
    }
}
