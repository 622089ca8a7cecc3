//! Virtual alias expansion (`virtual_alias_maps`), as Postfix's cleanup does it:
//! one recipient becomes a list, each element is looked up again until it no
//! longer matches, in breadth order.
//!
//! * An address that maps to a list containing itself is kept (expanded into
//!   itself once) and not looked up again.
//! * More than `virtual_alias_expansion_limit` addresses, more than
//!   `virtual_alias_recursion_limit` nested lookups of one element, or a result
//!   longer than `virtual_alias_address_length_limit` stop the expansion: the
//!   message is not accepted (`4.6.0 Alias expansion error`, the client retries),
//!   exactly as Postfix 3.7 does — it defers, it does not bounce.
//! * A table failure defers the message.
//!
//! # Security
//! Every loop is bounded by the limits above.
//!
//! # Configuration
//! `virtual_alias_maps`, `virtual_alias_expansion_limit`,
//! `virtual_alias_recursion_limit`, `virtual_alias_address_length_limit`,
//! `propagate_unmatched_extensions` (`virtual`).

use crate::maps::{AddrEnv, MapList, Trail, map_address};
use postern_ipc::proto::CleanupStatus;
use std::collections::HashSet;

/// The expansion limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `virtual_alias_expansion_limit`.
    pub expansion: usize,
    /// `virtual_alias_recursion_limit`.
    pub recursion: usize,
    /// `virtual_alias_address_length_limit`.
    pub address_length: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            expansion: 1000,
            recursion: 1000,
            address_length: 1000,
        }
    }
}

const REASON: &str = "4.6.0 Alias expansion error";

/// Expands one recipient. On a failure the trail records it and the result is
/// the recipient itself.
pub fn expand(
    maps: &MapList,
    addr: &str,
    propagate: bool,
    env: &AddrEnv,
    limits: &Limits,
    qid: &str,
    trail: &mut Trail,
) -> Vec<String> {
    let mut list = vec![addr.to_string()];
    let mut selfref: HashSet<String> = HashSet::new();
    let fail = |trail: &mut Trail, what: String| {
        trail.warn(format!(
            "{qid}: {what} -- message not accepted, try again later"
        ));
        trail.fail(CleanupStatus::Defer, REASON);
        vec![addr.to_string()]
    };
    let mut i = 0;
    while i < list.len() {
        if list.len() > limits.expansion {
            return fail(
                trail,
                format!("unreasonable {} map expansion size for {addr}", maps.title),
            );
        }
        let mut count = 0;
        loop {
            if selfref.contains(&list[i].to_lowercase()) {
                break;
            }
            if count >= limits.recursion {
                return fail(
                    trail,
                    format!("unreasonable {} map nesting for {addr}", maps.title),
                );
            }
            count += 1;
            let lhs = list[i].clone();
            match map_address(maps, &lhs, propagate, env) {
                Ok(Some(result)) => {
                    for (n, r) in result.into_iter().enumerate() {
                        if r.len() > limits.address_length {
                            let shown: String = r.chars().take(300).collect();
                            return fail(
                                trail,
                                format!("unreasonable {} result {shown}...", maps.title),
                            );
                        }
                        if r.eq_ignore_ascii_case(&lhs) {
                            selfref.insert(lhs.to_lowercase());
                        }
                        if n == 0 {
                            list[i] = r;
                        } else {
                            list.push(r);
                        }
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    trail.table_error(format!(
                        "{qid}: {} map lookup problem for {addr} ({e})",
                        maps.title
                    ));
                    return vec![addr.to_string()];
                }
            }
        }
        i += 1;
    }
    list
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maps::tests::env;

    fn maps(spec: &str) -> MapList {
        MapList::from_maps(
            "virtual_alias_maps",
            vec![postern_table::open(spec, &Default::default()).unwrap()],
        )
    }

    fn ex(m: &MapList, a: &str, l: Limits) -> (Vec<String>, Option<String>) {
        let mut t = Trail::default();
        let out = expand(m, a, true, &env(), &l, "Q", &mut t);
        (out, t.fail.map(|f| f.reason))
    }

    #[test]
    fn recursive_lists_and_self_reference() {
        let m = maps(
            "inline:{ {list@v.example=a@v.example, b@v.example, keep@v.example}, a@v.example=x@real.example, keep@v.example=keep@v.example, {b@v.example=b@v.example, c@real.example}, @catch.example=sink@real.example }",
        );
        let (out, fail) = ex(&m, "list@v.example", Limits::default());
        assert_eq!(fail, None);
        assert_eq!(
            out,
            [
                "x@real.example",
                "b@v.example",
                "keep@v.example",
                "c@real.example"
            ]
        );
        let (out, _) = ex(&m, "anyone@catch.example", Limits::default());
        assert_eq!(out, ["sink@real.example"]);
        let (out, _) = ex(&m, "nobody@else.example", Limits::default());
        assert_eq!(out, ["nobody@else.example"]);
    }

    #[test]
    fn limits_defer() {
        let loop_ = maps("inline:{ a@x=b@x, b@x=a@x }");
        let (out, fail) = ex(&loop_, "a@x", Limits::default());
        assert_eq!(out, ["a@x"]);
        assert_eq!(fail.as_deref(), Some(REASON));
        let wide = maps("inline:{ {big@x=1@y, 2@y, 3@y, 4@y} }");
        let small = Limits {
            expansion: 3,
            ..Limits::default()
        };
        assert_eq!(ex(&wide, "big@x", small).1.as_deref(), Some(REASON));
        assert_eq!(ex(&wide, "big@x", Limits::default()).0.len(), 4);
        let fail = maps("fail:x");
        assert!(
            ex(&fail, "a@x", Limits::default())
                .1
                .unwrap()
                .starts_with("4.3.0")
        );
    }
}
