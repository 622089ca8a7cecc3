//! Address canonicalization in a rewriting context (Postfix's trivial-rewrite
//! "rewrite" service, which cleanup calls for every envelope and header address).
//!
//! On an internal-form address (local part unquoted), in order:
//! 1. a lone `@` is the null address; an obsolete source route `@a,@b:user@c`
//!    is reduced to `user@c`;
//! 2. without `@`: `site!user` becomes `user@site` (`swap_bangpath`), else the
//!    rightmost `%` becomes `@` (`allow_percent_hack`), else `@origin` is
//!    appended (`append_at_myorigin`, origin = `$myorigin` in the local context,
//!    `$remote_header_rewrite_domain` in the remote one);
//! 3. a domain without a dot (and not an address literal) gets `.domain`
//!    (`append_dot_mydomain`; domain = `$mydomain`, or the remote domain);
//! 4. one trailing dot is removed from the domain.
//!
//! # Security
//! Pure string work on bounded input; never panics.
//!
//! # Configuration
//! `swap_bangpath`, `allow_percent_hack`, `append_at_myorigin`,
//! `append_dot_mydomain`, `myorigin`, `mydomain`, `remote_header_rewrite_domain`.

/// The switches of the rewriting rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// `swap_bangpath`.
    pub swap_bangpath: bool,
    /// `allow_percent_hack`.
    pub percent_hack: bool,
    /// `append_at_myorigin`.
    pub append_at_origin: bool,
    /// `append_dot_mydomain`.
    pub append_dot_domain: bool,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            swap_bangpath: true,
            percent_hack: true,
            append_at_origin: true,
            append_dot_domain: false,
        }
    }
}

/// A rewriting context: what to append (empty = nothing).
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// Appended as `@origin` to an address without a domain.
    pub origin: &'a str,
    /// Appended as `.domain` to a domain without a dot.
    pub domain: &'a str,
}

/// Rewrites one internal-form address (see the module docs).
pub fn rewrite(rules: &Rules, ctx: &Context<'_>, addr: &str) -> String {
    if addr.is_empty() || addr == "@" {
        return String::new();
    }
    let mut a = addr.to_string();
    if a.starts_with('@')
        && let Some(colon) = a.find(':')
        && colon + 1 < a.len()
    {
        a = a[colon + 1..].to_string();
    }
    if !a.contains('@') {
        if rules.swap_bangpath && a.contains('!') {
            if let Some((site, user)) = a.split_once('!') {
                a = format!("{user}@{site}");
            }
        } else if rules.percent_hack && a.contains('%') {
            if let Some(p) = a.rfind('%') {
                a.replace_range(p..=p, "@");
            }
        } else if rules.append_at_origin && !ctx.origin.is_empty() {
            a.push('@');
            a.push_str(ctx.origin);
        }
    }
    if rules.append_dot_domain
        && !ctx.domain.is_empty()
        && let Some(at) = a.rfind('@')
    {
        let dom = &a[at + 1..];
        if !dom.is_empty() && !dom.starts_with('[') && !dom.contains('.') {
            a.push('.');
            a.push_str(ctx.domain);
        }
    }
    if a.ends_with('.') && !a.ends_with("..") && !a.ends_with("@.") && a.len() > 1 {
        a.pop();
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCAL: Context<'static> = Context {
        origin: "example.org",
        domain: "example.org",
    };

    fn rw(rules: Rules, a: &str) -> String {
        rewrite(&rules, &LOCAL, a)
    }

    #[test]
    fn qualification() {
        let r = Rules::default();
        assert_eq!(rw(r, "joe"), "joe@example.org");
        assert_eq!(rw(r, "joe@host"), "joe@host");
        assert_eq!(rw(r, ""), "");
        assert_eq!(rw(r, "@"), "");
        assert_eq!(rw(r, "joe@host.example."), "joe@host.example");
        let dot = Rules {
            append_dot_domain: true,
            ..r
        };
        assert_eq!(rw(dot, "joe@host"), "joe@host.example.org");
        assert_eq!(rw(dot, "joe@[10.0.0.1]"), "joe@[10.0.0.1]");
        assert_eq!(rw(dot, "joe@a.b"), "joe@a.b");
        let none = Rules {
            append_at_origin: false,
            ..r
        };
        assert_eq!(rw(none, "joe"), "joe");
    }

    #[test]
    fn bangpath_percent_and_routes() {
        let r = Rules::default();
        assert_eq!(rw(r, "site!joe"), "joe@site");
        assert_eq!(rw(r, "a!b!joe"), "b!joe@a");
        assert_eq!(rw(r, "joe%relay.example"), "joe@relay.example");
        assert_eq!(rw(r, "a%b%c"), "a%b@c");
        assert_eq!(rw(r, "joe%x@y"), "joe%x@y");
        assert_eq!(rw(r, "@r1,@r2:joe@z.example"), "joe@z.example");
        let off = Rules {
            swap_bangpath: false,
            percent_hack: false,
            ..r
        };
        assert_eq!(rw(off, "site!joe"), "site!joe@example.org");
        assert_eq!(rw(off, "joe%x"), "joe%x@example.org");
    }
}
