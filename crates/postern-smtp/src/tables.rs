//! The lookup tables of the SMTP/LMTP client, opened fail-closed.
//!
//! A table named by `smtp_tls_policy_maps` or `smtp_sasl_password_maps` (`lmtp_` for LMTP)
//! that cannot be opened is logged once (`warning: SPEC is unavailable. REASON`, Postfix's
//! words) and kept in the list as a surrogate whose every lookup fails. A delivery that
//! needs the table is then deferred (`client TLS configuration problem` for the TLS policy,
//! `Temporary lookup error` for SASL passwords), never attempted without it.
//!
//! # Security
//! Fail closed: going on without a policy table would send in plaintext where TLS was
//! required, and without a password table would skip AUTH a relay requires.

use postern_config::Config;
use postern_table::BoxMap;

/// Opens every table parameter `param` names, in order; one that cannot be opened becomes
/// its surrogate (see the module doc), after a warning.
pub(crate) fn open_maps(cfg: &Config, param: &str) -> Vec<BoxMap> {
    cfg.get_list(param)
        .iter()
        .map(|spec| {
            let (map, err) = postern_table::open_or_surrogate(spec, &Default::default());
            if let Some(e) = err {
                postern_log::warning(format!("{spec} is unavailable. {e}"));
            }
            for w in map.warnings() {
                postern_log::warning(format!("{param}: {w}"));
            }
            map
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broken_table_stays_as_a_failing_entry() {
        let mut cfg = Config::default();
        cfg.set(
            "smtp_tls_policy_maps",
            "hash:/nonexistent/policy inline:{a=may}",
        );
        let maps = open_maps(&cfg, "smtp_tls_policy_maps");
        assert_eq!(maps.len(), 2);
        assert!(maps[0].lookup("example.com").unwrap_err().is_temporary());
        assert_eq!(maps[1].lookup("a").unwrap().as_deref(), Some("may"));
    }
}
