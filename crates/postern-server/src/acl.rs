//! Local-user access lists: `authorized_submit_users`,
//! `authorized_mailq_users`, `authorized_flush_users` (Postfix's
//! `check_user_acl_byuid`).
//!
//! A list is matched against the login name of the real uid (`unknown` for a
//! uid without a password entry, so that `!unknown` can block such uids). The
//! syntax is a match list: names, `/file/name`, `type:table` (any lookup
//! result matches), `!` to negate; the first match decides, no match denies.
//! Any `static:` table permits everyone without a password lookup, as in
//! Postfix (the default is `static:anyone`).
//!
//! # Security
//! Used by the programs ordinary users run (sendmail, postdrop, postqueue).
//! Fails closed: a table that cannot be opened or queried is an error
//! ([`AclError::Table`]), never a permit.
//!
//! # Configuration
//! The three parameters above; the caller passes the value.

use postern_table::{DomainList, TableError};
use thiserror::Error;

/// Why a user is not let through.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum AclError {
    /// The list does not admit the user.
    #[error("User {name}({uid}) is not allowed")]
    Denied {
        /// Login name (`unknown` without a password entry).
        name: String,
        /// Real uid.
        uid: u32,
    },
    /// The list could not be evaluated (temporary).
    #[error("{0}")]
    Table(#[from] TableError),
}

/// Checks `uid` against the access list `acl` (a parameter value).
pub fn check_user(acl: &str, uid: u32) -> Result<(), AclError> {
    if acl.trim_start().starts_with("static:") {
        return Ok(());
    }
    let name = match postern_sys::privs::lookup_uid(uid) {
        Ok(Some(u)) => u.name,
        _ => "unknown".to_string(),
    };
    let list = DomainList::new(acl, false, &Default::default())?;
    if list.matches(&name)? {
        Ok(())
    } else {
        Err(AclError::Denied { name, uid })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists() {
        let me = postern_sys::privs::real_uid();
        let name = postern_sys::privs::lookup_uid(me)
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_else(|| "unknown".into());
        assert!(check_user("static:anyone", me).is_ok());
        assert!(check_user(&format!("other, {name}"), me).is_ok());
        assert!(check_user(&format!("!{name}, static:anyone"), me).is_err());
        match check_user("", me) {
            Err(AclError::Denied { uid, .. }) => assert_eq!(uid, me),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            check_user("nosuchtype:x", me),
            Err(AclError::Table(_))
        ));
    }
}
