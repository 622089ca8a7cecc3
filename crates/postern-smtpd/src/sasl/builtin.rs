//! The built-in SASL backend (`smtpd_sasl_type = builtin`): PLAIN and LOGIN
//! checked against a Dovecot passwd-file named by `smtpd_sasl_path`.
//!
//! File format (Dovecot's passwd-file): one user a line,
//! `user:{SCHEME}hash:uid:gid:gecos:home:shell:extra`; only the first two
//! fields are used, `#` starts a comment line, blank lines are skipped. Login
//! names are compared lower-cased (Dovecot's default `auth_username_format =
//! %Lu`). The file is re-read when its inode, size or modification time
//! changes, so edits need no reload. A login without `@` gets
//! `@$smtpd_sasl_local_domain` appended when that is set.
//!
//! # Security
//! The file holds password hashes: it should be readable by `mail_owner` and
//! nobody else. Hash checks run on a blocking thread. Failures name the login
//! (as Postfix's log does) but never the password. A file that cannot be read
//! gives a temporary failure (454), not a wrong-password answer.
//!
//! # Configuration
//! `smtpd_sasl_path`, `smtpd_sasl_local_domain`.

use super::schemes;
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Users and their stored passwords.
pub type Users = HashMap<String, String>;

/// Parses a passwd-file; returns the users and one warning per bad line.
pub fn parse(text: &str) -> (Users, Vec<String>) {
    let mut users = HashMap::new();
    let mut warnings = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let mut f = line.splitn(3, ':');
        match (f.next(), f.next()) {
            (Some(user), Some(pass)) if !user.is_empty() => {
                users
                    .entry(user.to_ascii_lowercase())
                    .or_insert_with(|| pass.to_string());
            }
            _ => warnings.push(format!("line {}: no user:password fields", n + 1)),
        }
    }
    (users, warnings)
}

/// The result of a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Authenticated as this (normalized) user.
    Ok(String),
    /// Wrong user or password: the normalized login.
    Fail(String),
    /// The file could not be used.
    Temp(String),
}

type Stamp = (u64, u64, i64, i64);

/// The backend: the file and its parsed contents.
#[derive(Debug)]
pub struct Builtin {
    path: PathBuf,
    local_domain: String,
    cache: Mutex<Option<(Stamp, Arc<Users>)>>,
}

impl Builtin {
    /// A backend for `path` (not read yet).
    pub fn new(path: PathBuf, local_domain: String) -> Builtin {
        Builtin {
            path,
            local_domain,
            cache: Mutex::new(None),
        }
    }

    /// The file's users, re-read when it changed.
    fn users(&self) -> Result<Arc<Users>, String> {
        let shown = self.path.display();
        let md = std::fs::metadata(&self.path).map_err(|e| format!("{shown}: {e}"))?;
        let stamp = (md.ino(), md.size(), md.mtime(), md.mtime_nsec());
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((s, users)) = cache.as_ref()
            && *s == stamp
        {
            return Ok(users.clone());
        }
        let text = std::fs::read_to_string(&self.path).map_err(|e| format!("{shown}: {e}"))?;
        let (users, warnings) = parse(&text);
        for w in warnings {
            postern_log::warning(format!("{shown}: {w}"));
        }
        let users = Arc::new(users);
        *cache = Some((stamp, users.clone()));
        Ok(users)
    }

    /// The name a login is looked up under.
    pub fn normalize(&self, login: &str) -> String {
        let mut user = login.to_ascii_lowercase();
        if !self.local_domain.is_empty() && !user.contains('@') {
            user.push('@');
            user.push_str(&self.local_domain.to_ascii_lowercase());
        }
        user
    }

    /// Checks a login and password (blocking: file I/O and hashing).
    pub fn check(&self, login: &str, password: &[u8]) -> Verdict {
        let user = self.normalize(login);
        let users = match self.users() {
            Ok(u) => u,
            Err(e) => {
                postern_log::warning(format!("SASL builtin: {e}"));
                return Verdict::Temp("Authentication backend error".into());
            }
        };
        let Some(stored) = users.get(&user) else {
            return Verdict::Fail(user);
        };
        match schemes::verify(stored, password) {
            Ok(true) => Verdict::Ok(user),
            Ok(false) => Verdict::Fail(user),
            Err(e) => {
                postern_log::warning(format!(
                    "SASL builtin: {}: user {user}: {e}",
                    self.path.display()
                ));
                Verdict::Fail(user)
            }
        }
    }
}

/// [`Builtin::check`] on a blocking thread.
pub async fn check(b: Arc<Builtin>, login: String, password: Vec<u8>) -> Verdict {
    match tokio::task::spawn_blocking(move || b.check(&login, &password)).await {
        Ok(v) => v,
        Err(e) => {
            postern_log::warning(format!("SASL builtin: check task failed: {e}"));
            Verdict::Temp("Authentication backend error".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_file_lines() {
        let (u, w) = parse(
            "# users\njoe@example.org:{PLAIN}secret:1000:1000::/home/joe::\n\nAnn:{PLAIN}x\nbad line\n:nouser\njoe@example.org:{PLAIN}second\n",
        );
        assert_eq!(
            u.get("joe@example.org").map(String::as_str),
            Some("{PLAIN}secret")
        );
        assert_eq!(u.get("ann").map(String::as_str), Some("{PLAIN}x"));
        assert_eq!(u.len(), 2);
        assert_eq!(w.len(), 2);
    }

    #[test]
    fn checks_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("passwd");
        std::fs::write(&path, "joe@example.org:{PLAIN}secret\n").unwrap();
        let b = Builtin::new(path.clone(), "example.org".into());
        assert_eq!(
            b.check("JOE", b"secret"),
            Verdict::Ok("joe@example.org".into())
        );
        assert_eq!(
            b.check("joe@example.org", b"x"),
            Verdict::Fail("joe@example.org".into())
        );
        assert_eq!(
            b.check("nobody", b"x"),
            Verdict::Fail("nobody@example.org".into())
        );
        std::fs::write(&path, "joe@example.org:{PLAIN}changed-and-longer\n").unwrap();
        assert_eq!(
            b.check("joe", b"changed-and-longer"),
            Verdict::Ok("joe@example.org".into())
        );
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(b.check("joe", b"x"), Verdict::Temp(_)));
    }
}
