//! The Public Suffix List (publicsuffix.org) and the organizational domain of RFC 7489
//! §3.2: the public suffix of a name plus one label.
//!
//! mail-auth 0.13.3 finds the DMARC record by DMARCbis's DNS tree walk and ships no list;
//! this list names the organizational domain where Postern needs one without a DNS
//! answer: the policy domain of a DMARC aggregate-report record when the From domain
//! publishes no record of its own.
//!
//! The file format is the list's own: one rule per line, `//` comments, `*.` wildcards,
//! `!` exceptions; a name no rule matches has its last label as public suffix (the
//! implicit `*` rule). Debian ships it (package `publicsuffix`), updated with the package.
//!
//! # Security
//!
//! The file is the administrator's; it is read once, bounded to [`MAX_FILE`] bytes.
//! Names looked up come from the network: they are only compared.
//!
//! # Configuration
//!
//! `dmarc_public_suffix_list` (the caller's: the path given to [`PublicSuffixList::load`]).

use std::collections::HashSet;
use std::path::Path;

/// Largest list file read (bytes; the real list is about 250 KB).
pub const MAX_FILE: u64 = 16 * 1024 * 1024;

/// A loaded list.
#[derive(Debug, Clone, Default)]
pub struct PublicSuffixList {
    rules: HashSet<String>,
    wildcards: HashSet<String>,
    exceptions: HashSet<String>,
}

impl PublicSuffixList {
    /// Reads the list at `path`.
    ///
    /// # Errors
    ///
    /// The file cannot be read, is larger than [`MAX_FILE`] or holds no rule.
    pub fn load(path: &Path) -> std::io::Result<PublicSuffixList> {
        use std::io::Read;
        let mut text = String::new();
        std::fs::File::open(path)?
            .take(MAX_FILE + 1)
            .read_to_string(&mut text)?;
        if text.len() as u64 > MAX_FILE {
            return Err(std::io::Error::other(format!(
                "{}: larger than {MAX_FILE} bytes",
                path.display()
            )));
        }
        let list = PublicSuffixList::parse(&text);
        if list.rules.is_empty() && list.wildcards.is_empty() {
            return Err(std::io::Error::other(format!(
                "{}: no public suffix rule",
                path.display()
            )));
        }
        Ok(list)
    }

    /// The list in `text` (the file format).
    pub fn parse(text: &str) -> PublicSuffixList {
        let mut l = PublicSuffixList::default();
        for line in text.lines() {
            let Some(rule) = line.split_whitespace().next() else {
                continue;
            };
            if rule.starts_with("//") {
                continue;
            }
            let rule = rule.trim_end_matches('.').to_lowercase();
            if let Some(r) = rule.strip_prefix('!') {
                l.exceptions.insert(r.to_string());
            } else if let Some(r) = rule.strip_prefix("*.") {
                l.wildcards.insert(r.to_string());
            } else if !rule.is_empty() {
                l.rules.insert(rule);
            }
        }
        l
    }

    /// The number of labels of `domain`'s public suffix (`labels` is `domain` split).
    fn suffix_labels(&self, labels: &[&str]) -> usize {
        let n = labels.len();
        for i in 0..n {
            let candidate = labels[i..].join(".");
            if self.exceptions.contains(&candidate) {
                return n - i - 1;
            }
            if self.rules.contains(&candidate) {
                return n - i;
            }
            if i + 1 < n && self.wildcards.contains(&labels[i + 1..].join(".")) {
                return n - i;
            }
        }
        1
    }

    /// The public suffix of `domain` (lowercased, without a trailing dot).
    pub fn public_suffix(&self, domain: &str) -> String {
        let d = domain.trim_end_matches('.').to_lowercase();
        let labels: Vec<&str> = d.split('.').collect();
        let k = self.suffix_labels(&labels).min(labels.len());
        labels[labels.len() - k..].join(".")
    }

    /// The organizational domain of `domain`: its public suffix plus one label; the
    /// name itself when it is a public suffix (or has a single label).
    pub fn organizational_domain(&self, domain: &str) -> String {
        let d = domain.trim_end_matches('.').to_lowercase();
        let labels: Vec<&str> = d.split('.').collect();
        let k = self.suffix_labels(&labels);
        if k >= labels.len() {
            return d;
        }
        labels[labels.len() - k - 1..].join(".")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &str = "// comment\ncom\nuk\nco.uk\n*.ck\n!www.ck\n\n// ===END===\n";

    #[test]
    fn organizational() {
        let l = PublicSuffixList::parse(LIST);
        assert_eq!(l.organizational_domain("mail.example.com"), "example.com");
        assert_eq!(
            l.organizational_domain("A.B.Example.CO.UK."),
            "example.co.uk"
        );
        assert_eq!(l.organizational_domain("co.uk"), "co.uk");
        assert_eq!(l.organizational_domain("x.y.foo.ck"), "y.foo.ck");
        assert_eq!(l.organizational_domain("a.www.ck"), "www.ck");
        assert_eq!(l.organizational_domain("a.b.test"), "b.test");
        assert_eq!(l.organizational_domain("localhost"), "localhost");
        assert_eq!(l.public_suffix("x.foo.ck"), "foo.ck");
        assert_eq!(l.public_suffix("www.ck"), "ck");
    }

    #[test]
    fn debian_list_when_installed() {
        let p = Path::new("/usr/share/publicsuffix/public_suffix_list.dat");
        if !p.exists() {
            return;
        }
        let Ok(l) = PublicSuffixList::load(p) else {
            panic!("cannot load {}", p.display());
        };
        assert_eq!(
            l.organizational_domain("mail.example.co.uk"),
            "example.co.uk"
        );
        assert_eq!(l.organizational_domain("a.b.github.io"), "b.github.io");
    }

    #[test]
    fn empty_file_refused() {
        let d = std::env::temp_dir().join(format!("psl-{}", std::process::id()));
        std::fs::write(&d, "// nothing\n").ok();
        assert!(PublicSuffixList::load(&d).is_err());
        std::fs::remove_file(&d).ok();
    }
}
