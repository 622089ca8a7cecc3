//! `unix:` tables: the system's account databases, as Postfix's `dict_unix`.
//!
//! * `unix:passwd.byname`: the key is a login name; the value is the account's
//!   passwd(5) line, `name:passwd:uid:gid:gecos:dir:shell`.
//! * `unix:group.byname`: the key is a group name; the value is the group(5) line,
//!   `name:passwd:gid:member1,member2`.
//!
//! Keys are folded to lower case, as Postfix does. These tables answer lookups only (no
//! `postmap -s`). Postfix's default `local_recipient_maps = proxy:unix:passwd.byname
//! $alias_maps` reads `passwd.byname` through proxymap.
//!
//! # Errors
//! Another map name is an open error (`unknown table: unix:NAME`); a failed getpwnam/
//! getgrnam (e.g. an NSS back end down) is a temporary lookup error, never "not found".
//!
//! # Security
//! Read-only queries of the system databases through the C library (nix); the key is
//! passed as one C string (a key with a NUL byte is simply not found).

use crate::{Map, MapFlags, TableError};

/// Which database a `unix:` table reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Db {
    Passwd,
    Group,
}

/// An open `unix:` table.
#[derive(Debug)]
pub(crate) struct Unix {
    spec: String,
    db: Db,
}

impl Unix {
    pub(crate) fn open(spec: &str, name: &str) -> Result<Unix, TableError> {
        let db = match name {
            "passwd.byname" => Db::Passwd,
            "group.byname" => Db::Group,
            _ => {
                return Err(TableError::spec(
                    spec,
                    format!("unknown table: unix:{name}"),
                ));
            }
        };
        Ok(Unix {
            spec: spec.to_string(),
            db,
        })
    }

    fn error(&self, call: &str, e: nix::Error) -> TableError {
        TableError::Lookup {
            table: self.spec.clone(),
            message: format!("{call}: {e}"),
        }
    }
}

impl Map for Unix {
    fn lookup(&self, key: &str) -> Result<Option<String>, TableError> {
        let key = crate::fold(key, true);
        if key.is_empty() || key.contains('\0') {
            return Ok(None);
        }
        match self.db {
            Db::Passwd => {
                let Some(u) =
                    nix::unistd::User::from_name(&key).map_err(|e| self.error("getpwnam", e))?
                else {
                    return Ok(None);
                };
                Ok(Some(format!(
                    "{}:{}:{}:{}:{}:{}:{}",
                    u.name,
                    u.passwd.to_string_lossy(),
                    u.uid,
                    u.gid,
                    u.gecos.to_string_lossy(),
                    u.dir.display(),
                    u.shell.display()
                )))
            }
            Db::Group => {
                let Some(g) =
                    nix::unistd::Group::from_name(&key).map_err(|e| self.error("getgrnam", e))?
                else {
                    return Ok(None);
                };
                Ok(Some(format!(
                    "{}:{}:{}:{}",
                    g.name,
                    g.passwd.to_string_lossy(),
                    g.gid,
                    g.mem.join(",")
                )))
            }
        }
    }

    fn name(&self) -> &str {
        &self.spec
    }

    fn flags(&self) -> MapFlags {
        MapFlags {
            fold_case: true,
            pattern: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{OpenOptions, open};

    #[test]
    fn passwd_and_group() {
        let m = open("unix:passwd.byname", &OpenOptions::default()).unwrap();
        let root = m.lookup("ROOT").unwrap().unwrap();
        assert!(root.starts_with("root:"), "{root}");
        assert_eq!(root.split(':').nth(2), Some("0"));
        assert_eq!(root.split(':').count(), 7);
        assert_eq!(m.lookup("no-such-user-here").unwrap(), None);
        let g = open("unix:group.byname", &OpenOptions::default()).unwrap();
        let root = g.lookup("root").unwrap().unwrap();
        assert!(
            root.starts_with("root:") && root.split(':').nth(2) == Some("0"),
            "{root}"
        );
        let err = open("unix:foo", &OpenOptions::default()).unwrap_err();
        assert!(err.to_string().contains("unknown table: unix:foo"), "{err}");
    }
}
