//! Per-recipient `$name` expansion of `forward_path`, `luser_relay`,
//! `mailbox_command` and `command_execution_directory` (Postfix's
//! `local_expand`): the names of [`Vars`] looked up by the one expander,
//! [`postern_config::mac_expand`], with values inserted as they are (not
//! expanded again) and censored by a filter.
//!
//! Names are `user`, `home`, `shell`, `domain`, `local`, `mailbox`,
//! `recipient`, `extension`, `recipient_delimiter` (see [`Vars`]); any other
//! name has no value.
//!
//! A plain reference to a name without value marks the result
//! [`Expanded::undefined`] (so `forward_path` skips that entry); bad syntax
//! or a result longer than 64 KiB marks it [`Expanded::error`]. Inserting
//! `extension` sets [`Expanded::extension_used`].
//!
//! # Security
//! Values come from the recipient address (network input). With a filter,
//! every character of an inserted value that is not in the filter becomes
//! `_`, so an address cannot smuggle shell or path syntax into a command or
//! file name. Nesting and output are bounded by the expander; nothing panics.
//!
//! # Configuration
//! The filters: `forward_expansion_filter`, `execution_directory_expansion_filter`.

use postern_config::mac_expand::{self, Mode, Options};

/// The values a pattern can refer to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vars {
    /// Local part without extension.
    pub user: String,
    /// Home directory (None: unknown).
    pub home: Option<String>,
    /// Login shell.
    pub shell: Option<String>,
    /// Recipient domain.
    pub domain: Option<String>,
    /// Local part with extension.
    pub local: String,
    /// Full recipient address.
    pub recipient: String,
    /// Address extension.
    pub extension: Option<String>,
    /// The delimiter that separated the extension (or the first configured one).
    pub recipient_delimiter: Option<String>,
}

impl Vars {
    fn get(&self, name: &str) -> Option<&str> {
        let v = match name {
            "user" => Some(&self.user),
            "home" => self.home.as_ref(),
            "shell" => self.shell.as_ref(),
            "domain" => self.domain.as_ref(),
            "local" | "mailbox" => Some(&self.local),
            "recipient" => Some(&self.recipient),
            "extension" => self.extension.as_ref(),
            "recipient_delimiter" => self.recipient_delimiter.as_ref(),
            _ => None,
        };
        v.map(String::as_str)
    }
}

/// The result of [`expand`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expanded {
    /// The expanded text.
    pub text: String,
    /// A plain reference named something without a value.
    pub undefined: bool,
    /// Bad syntax (an unclosed bracket, an empty name) or a result too long.
    pub error: bool,
    /// `$extension` was inserted.
    pub extension_used: bool,
}

/// Expands `pattern`; inserted values are censored with `filter` when given.
pub fn expand(pattern: &str, vars: &Vars, filter: Option<&str>) -> Expanded {
    let mut extension_used = false;
    let mut lookup = |name: &str, mode: Mode| {
        if name == "extension" && mode == Mode::Use {
            extension_used = true;
        }
        vars.get(name).map(str::to_string)
    };
    let r = mac_expand::mac_expand(pattern, &Options::local(filter), &mut lookup);
    Expanded {
        text: r.text,
        undefined: r.undefined,
        error: r.error || r.truncated,
        extension_used,
    }
}

/// Fuzz entry point: expands `data` (lossy UTF-8) against fixed values.
/// Properties: no panic; a filtered result keeps only filter characters in
/// inserted values (checked on a pattern that is one reference).
pub fn fuzz(data: &[u8]) {
    let s = String::from_utf8_lossy(data);
    let vars = Vars {
        user: "u".into(),
        home: Some("/h".into()),
        extension: Some(s.chars().take(32).collect()),
        ..Vars::default()
    };
    let _ = expand(&s, &vars, Some("abc"));
    let _ = expand(&s, &vars, None);
    let e = expand("$extension", &vars, Some("abc"));
    assert!(e.text.chars().all(|c| "abc_".contains(c)));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars {
        Vars {
            user: "bob".into(),
            home: Some("/home/bob".into()),
            shell: Some("/bin/sh".into()),
            domain: Some("example.org".into()),
            local: "bob+list".into(),
            recipient: "bob+list@example.org".into(),
            extension: Some("list".into()),
            recipient_delimiter: Some("+".into()),
        }
    }

    #[test]
    fn forward_path_default() {
        let p = "$home/.forward${recipient_delimiter}${extension}";
        let e = expand(
            p,
            &vars(),
            Some(
                crate::settings::LocalSettings::default()
                    .forward_expansion_filter
                    .as_str(),
            ),
        );
        assert_eq!(e.text, "/home/bob/.forward+list");
        assert!(e.extension_used && !e.undefined && !e.error);
        let mut v = vars();
        v.extension = None;
        let e = expand(p, &v, None);
        assert!(e.undefined, "{e:?}");
        assert_eq!(
            expand("$home/.forward", &v, None).text,
            "/home/bob/.forward"
        );
    }

    #[test]
    fn conditionals_and_literals() {
        let v = vars();
        assert_eq!(expand("a$$b", &v, None).text, "a$b");
        assert_eq!(expand("${extension?-$extension}", &v, None).text, "-list");
        assert_eq!(expand("${nothing?x}${nothing:y}", &v, None).text, "y");
        assert_eq!(expand("${extension?{A}:{B}}", &v, None).text, "A");
        assert_eq!(expand("${nothing?{A}:{B}}", &v, None).text, "B");
        assert_eq!(expand("$(user)@$domain", &v, None).text, "bob@example.org");
        assert!(expand("${user", &v, None).error);
        assert!(expand("${?x}", &v, None).error);
        assert_eq!(expand("50$", &v, None).text, "50$");
    }

    #[test]
    fn filter_censors_values_only() {
        let mut v = vars();
        v.extension = Some("x;rm -rf /".into());
        let e = expand(
            "|/bin/x $extension;",
            &v,
            Some("abcdefghijklmnopqrstuvwxyz/"),
        );
        assert_eq!(e.text, "|/bin/x x_rm__rf_/;");
    }
}
