//! A list of lookup tables named by one parameter (`virtual_mailbox_maps`,
//! `virtual_uid_maps`, `virtual_gid_maps`), searched in Postfix's
//! `mail_addr_find()` order.
//!
//! For a recipient `user+ext@domain` (already folded to lower case) the keys
//! are `user+ext@domain`, then `user@domain` (when `recipient_delimiter`
//! splits off an extension), then `@domain`; each key is offered to every
//! table in the list before the next key is tried. Pattern tables (`regexp:`,
//! `pcre:`, `cidr:`) see only the full address, as in Postfix.
//!
//! # Errors
//! A table that cannot be opened, or a lookup that fails, is an error (the
//! caller defers), never a "not found": a broken table must not bounce mail.
//! Messages name the parameter, as Postfix's do (`virtual_uid_maps`).

use postern_mail::address::split_extension;
use postern_table::BoxMap;

/// The tables of one parameter.
#[derive(Debug)]
pub struct Maps {
    /// The parameter name, used in messages.
    pub title: String,
    maps: Vec<BoxMap>,
    broken: Option<String>,
}

impl Maps {
    /// Opens every table in `specs`; a table that fails to open is logged and
    /// makes every later lookup fail (defer).
    pub fn open(title: &str, specs: &[String]) -> Maps {
        let mut m = Maps {
            title: title.to_string(),
            maps: Vec::new(),
            broken: None,
        };
        for spec in specs {
            match postern_table::open(spec, &Default::default()) {
                Ok(map) => m.maps.push(map),
                Err(e) => {
                    postern_log::warning(format!("{title}: {spec}: {e}"));
                    m.broken = Some(format!("{spec}: {e}"));
                }
            }
        }
        m
    }

    fn find_key(&self, key: &str, full: bool) -> Result<Option<String>, String> {
        for map in &self.maps {
            if !full && map.flags().pattern {
                continue;
            }
            if let Some(v) = map.lookup(key).map_err(|e| e.to_string())? {
                return Ok(Some(v));
            }
        }
        Ok(None)
    }

    /// The value for `addr` (see the module docs), `Ok(None)` when no table has it.
    pub fn find(&self, addr: &str, delimiter: &str) -> Result<Option<String>, String> {
        if let Some(e) = &self.broken {
            return Err(e.clone());
        }
        if let Some(v) = self.find_key(addr, true)? {
            return Ok(Some(v));
        }
        let Some(at) = addr.rfind('@') else {
            return Ok(None);
        };
        let (local, domain) = (&addr[..at], &addr[at..]);
        if let (user, Some(_)) = split_extension(local, delimiter)
            && let Some(v) = self.find_key(&format!("{user}{domain}"), false)?
        {
            return Ok(Some(v));
        }
        self.find_key(domain, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specs(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn lookup_order() {
        let m = Maps::open(
            "virtual_mailbox_maps",
            &specs(&[
                "inline:{joe+ext@ex.org=full, joe@ex.org=bare}",
                "inline:{@ex.org=catchall, ann@ex.org=ann/}",
            ]),
        );
        let f = |a: &str| m.find(a, "+").unwrap();
        assert_eq!(f("joe+ext@ex.org").as_deref(), Some("full"));
        assert_eq!(f("joe+other@ex.org").as_deref(), Some("bare"));
        assert_eq!(f("ann@ex.org").as_deref(), Some("ann/"));
        assert_eq!(f("zed@ex.org").as_deref(), Some("catchall"));
        assert_eq!(f("zed@other.org"), None);
        assert_eq!(
            m.find("joe+x@ex.org", "").unwrap().as_deref(),
            Some("catchall")
        );
    }

    #[test]
    fn patterns_see_only_the_full_address() {
        let m = Maps::open("m", &specs(&["regexp:{{/^@ex\\.org$/ no}}", "static:5000"]));
        assert_eq!(m.find("a@ex.org", "+").unwrap().as_deref(), Some("5000"));
        let broken = Maps::open("virtual_uid_maps", &specs(&["texthash:/nonexistent/x"]));
        assert!(broken.find("a@ex.org", "+").is_err());
        assert_eq!(Maps::open("m", &[]).find("a@b", "+").unwrap(), None);
    }
}
