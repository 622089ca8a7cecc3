//! ESMTP parameters of MAIL FROM (RFC 1870, 6152, 3030, 6531, 3461, 4954) and
//! RCPT TO (RFC 3461), and the XCLIENT/XFORWARD attribute lists.
//!
//! Rules observed against Postfix 3.7.11: keywords are case-insensitive; the token is
//! echoed in `555 5.5.4 Unsupported option: TOKEN` as sent; `SIZE`, `BODY` and
//! `SMTPUTF8` may repeat (last wins), `RET`, `ENVID`, `NOTIFY`, `ORCPT` may not;
//! a huge `SIZE` saturates (Postfix then says "exceeds file system imposed limit").

use crate::{CommandError, Leniency, xtext};

/// `BODY=` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Body {
    /// `7BIT`.
    SevenBit,
    /// `8BITMIME`.
    EightBitMime,
    /// `BINARYMIME` (only when [`Leniency::allow_binarymime`]).
    BinaryMime,
}

/// `RET=` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ret {
    /// `FULL`.
    Full,
    /// `HDRS`.
    Hdrs,
}

/// `NOTIFY=` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Notify {
    /// `NEVER`.
    Never,
    /// Any non-empty combination of SUCCESS, DELAY, FAILURE.
    On {
        /// `SUCCESS`.
        success: bool,
        /// `DELAY`.
        delay: bool,
        /// `FAILURE`.
        failure: bool,
    },
}

/// `ORCPT=addr-type;xtext`, decoded.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Orcpt {
    /// Address type as sent (`rfc822`, `utf-8`, …).
    pub addr_type: String,
    /// Decoded address.
    pub addr: String,
}

/// MAIL FROM parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct MailParams {
    /// `SIZE=` (saturating at `u64::MAX`).
    pub size: Option<u64>,
    /// `BODY=`.
    pub body: Option<Body>,
    /// `SMTPUTF8`.
    pub smtputf8: bool,
    /// `RET=`.
    pub ret: Option<Ret>,
    /// `ENVID=`, decoded.
    pub envid: Option<String>,
    /// `AUTH=`, decoded (`<>` stays `<>`); only kept when SASL is enabled.
    pub auth: Option<String>,
}

/// RCPT TO parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct RcptParams {
    /// `NOTIFY=`.
    pub notify: Option<Notify>,
    /// `ORCPT=`.
    pub orcpt: Option<Orcpt>,
}

fn kv(token: &str) -> (String, Option<&str>) {
    match token.split_once('=') {
        Some((k, v)) => (k.to_ascii_uppercase(), Some(v)),
        None => (token.to_ascii_uppercase(), None),
    }
}

/// Parse the blank-separated parameters after a MAIL FROM path.
pub(crate) fn parse_mail(rest: &str, len: &Leniency) -> Result<MailParams, CommandError> {
    let mut p = MailParams::default();
    let mut saw_auth = false;
    for token in rest.split([' ', '\t']).filter(|t| !t.is_empty()) {
        let unsupported = || CommandError::UnsupportedOption(token.to_owned());
        match kv(token) {
            (k, Some(v)) if k == "SIZE" => p.size = Some(parse_size(v)?),
            (k, Some(v)) if k == "BODY" => {
                p.body = Some(parse_body(v, len).ok_or_else(unsupported)?)
            }
            (k, None) if k == "SMTPUTF8" => p.smtputf8 = true,
            (k, Some(v)) if k == "RET" => {
                let ret = match v.to_ascii_uppercase().as_str() {
                    "FULL" => Ret::Full,
                    "HDRS" => Ret::Hdrs,
                    _ => return Err(CommandError::BadRet),
                };
                if p.ret.replace(ret).is_some() {
                    return Err(CommandError::BadRet);
                }
            }
            (k, Some(v)) if k == "ENVID" => {
                let id = xtext::decode(v)
                    .filter(|d| !d.is_empty() && xtext::is_printable_ascii(d))
                    .ok_or(CommandError::BadEnvid)?;
                if p.envid.replace(id).is_some() {
                    return Err(CommandError::BadEnvid);
                }
            }
            (k, Some(v)) if k == "AUTH" => {
                if std::mem::replace(&mut saw_auth, true) {
                    return Err(CommandError::MultipleAuth);
                }
                if len.sasl_enabled {
                    let id = xtext::decode(v)
                        .filter(|d| !d.is_empty() && xtext::has_no_controls(d))
                        .ok_or(CommandError::BadAuthParam)?;
                    p.auth = Some(id);
                }
            }
            _ => return Err(unsupported()),
        }
    }
    Ok(p)
}

fn parse_size(v: &str) -> Result<u64, CommandError> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CommandError::BadSize);
    }
    Ok(v.parse().unwrap_or(u64::MAX))
}

fn parse_body(v: &str, len: &Leniency) -> Option<Body> {
    match v.to_ascii_uppercase().as_str() {
        "7BIT" => Some(Body::SevenBit),
        "8BITMIME" => Some(Body::EightBitMime),
        "BINARYMIME" if len.allow_binarymime => Some(Body::BinaryMime),
        _ => None,
    }
}

/// Parse the blank-separated parameters after a RCPT TO path.
pub(crate) fn parse_rcpt(rest: &str) -> Result<RcptParams, CommandError> {
    let mut p = RcptParams::default();
    for token in rest.split([' ', '\t']).filter(|t| !t.is_empty()) {
        match kv(token) {
            (k, Some(v)) if k == "NOTIFY" => {
                let n = parse_notify(v).ok_or(CommandError::BadNotify)?;
                if p.notify.replace(n).is_some() {
                    return Err(CommandError::BadNotify);
                }
            }
            (k, Some(v)) if k == "ORCPT" => {
                let o = parse_orcpt(v).ok_or(CommandError::BadOrcpt)?;
                if p.orcpt.replace(o).is_some() {
                    return Err(CommandError::BadOrcpt);
                }
            }
            _ => return Err(CommandError::UnsupportedOption(token.to_owned())),
        }
    }
    Ok(p)
}

fn parse_notify(v: &str) -> Option<Notify> {
    if v.eq_ignore_ascii_case("NEVER") {
        return Some(Notify::Never);
    }
    let (mut success, mut delay, mut failure) = (false, false, false);
    for word in v.split(',') {
        match word.to_ascii_uppercase().as_str() {
            "SUCCESS" => success = true,
            "DELAY" => delay = true,
            "FAILURE" => failure = true,
            _ => return None,
        }
    }
    Some(Notify::On {
        success,
        delay,
        failure,
    })
}

fn parse_orcpt(v: &str) -> Option<Orcpt> {
    let (addr_type, x) = v.split_once(';')?;
    let atom_ok = addr_type
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if addr_type.is_empty() || !atom_ok {
        return None;
    }
    let addr = xtext::decode(x).filter(|a| xtext::has_no_controls(a))?;
    Some(Orcpt {
        addr_type: addr_type.to_owned(),
        addr,
    })
}

/// Wire form of MAIL parameters, leading space included.
pub(crate) fn encode_mail(p: &MailParams) -> String {
    let mut s = String::new();
    if let Some(n) = p.size {
        s.push_str(&format!(" SIZE={n}"));
    }
    if let Some(b) = p.body {
        s.push_str(match b {
            Body::SevenBit => " BODY=7BIT",
            Body::EightBitMime => " BODY=8BITMIME",
            Body::BinaryMime => " BODY=BINARYMIME",
        });
    }
    if p.smtputf8 {
        s.push_str(" SMTPUTF8");
    }
    if let Some(r) = p.ret {
        s.push_str(if r == Ret::Full {
            " RET=FULL"
        } else {
            " RET=HDRS"
        });
    }
    if let Some(e) = &p.envid {
        s.push_str(&format!(" ENVID={}", xtext::encode(e)));
    }
    if let Some(a) = &p.auth {
        s.push_str(&format!(" AUTH={}", xtext::encode(a)));
    }
    s
}

/// Wire form of RCPT parameters, leading space included.
pub(crate) fn encode_rcpt(p: &RcptParams) -> String {
    let mut s = String::new();
    match p.notify {
        Some(Notify::Never) => s.push_str(" NOTIFY=NEVER"),
        Some(Notify::On {
            success,
            delay,
            failure,
        }) => {
            let words: Vec<&str> = [(success, "SUCCESS"), (delay, "DELAY"), (failure, "FAILURE")]
                .into_iter()
                .filter_map(|(on, w)| on.then_some(w))
                .collect();
            s.push_str(&format!(" NOTIFY={}", words.join(",")));
        }
        None => {}
    }
    if let Some(o) = &p.orcpt {
        s.push_str(&format!(
            " ORCPT={};{}",
            o.addr_type,
            xtext::encode(&o.addr)
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use CommandError as E;

    fn mail(s: &str) -> Result<MailParams, CommandError> {
        parse_mail(s, &Leniency::default())
    }

    #[test]
    fn mail_params_observed() {
        let p = mail(" size=10 body=8bitmime ret=hdrs envid=x smtputf8").unwrap();
        assert_eq!(p.size, Some(10));
        assert_eq!(p.body, Some(Body::EightBitMime));
        assert_eq!(p.ret, Some(Ret::Hdrs));
        assert_eq!(p.envid.as_deref(), Some("x"));
        assert!(p.smtputf8);
        assert_eq!(mail("SIZE=abc"), Err(E::BadSize));
        assert_eq!(mail("SIZE="), Err(E::BadSize));
        assert_eq!(mail("SIZE=-1"), Err(E::BadSize));
        assert_eq!(mail("SIZE=+1"), Err(E::BadSize));
        assert_eq!(
            mail("SIZE=999999999999999999999999").unwrap().size,
            Some(u64::MAX)
        );
        assert_eq!(mail("SIZE=1 SIZE=2").unwrap().size, Some(2));
        assert_eq!(
            mail("BODY=foo"),
            Err(E::UnsupportedOption("BODY=foo".into()))
        );
        assert_eq!(
            mail("BODY=BINARYMIME"),
            Err(E::UnsupportedOption("BODY=BINARYMIME".into()))
        );
        assert_eq!(
            mail("BODY=8BITMIME BODY=7BIT").unwrap().body,
            Some(Body::SevenBit)
        );
        assert_eq!(mail("RET=x"), Err(E::BadRet));
        assert_eq!(mail("RET=FULL RET=HDRS"), Err(E::BadRet));
        assert_eq!(mail("ENVID=a+zz"), Err(E::BadEnvid));
        assert_eq!(mail("ENVID=a+2"), Err(E::BadEnvid));
        assert_eq!(mail("ENVID="), Err(E::BadEnvid));
        assert_eq!(mail("ENVID=+0A"), Err(E::BadEnvid));
        assert_eq!(mail("ENVID=a ENVID=b"), Err(E::BadEnvid));
        assert_eq!(mail("ENVID=+4a").unwrap().envid.as_deref(), Some("J"));
        assert_eq!(mail("ENVID=a=b").unwrap().envid.as_deref(), Some("a=b"));
        assert_eq!(mail("AUTH=<>").unwrap().auth, None);
        assert_eq!(mail("AUTH=a+zz").unwrap().auth, None);
        assert_eq!(mail("AUTH=a AUTH=b"), Err(E::MultipleAuth));
        for t in [
            "FOO=bar",
            "foo",
            "SMTPUTF8=x",
            "=x",
            "SIZE",
            "BODY",
            "RET",
            "ENVID",
            "<v@e>",
        ] {
            assert_eq!(mail(t), Err(E::UnsupportedOption(t.into())), "{t}");
        }
    }

    #[test]
    fn auth_param_with_sasl() {
        let len = Leniency {
            sasl_enabled: true,
            ..Leniency::default()
        };
        assert_eq!(
            parse_mail("AUTH=<>", &len).unwrap().auth.as_deref(),
            Some("<>")
        );
        assert_eq!(
            parse_mail("AUTH=u+2Bx@d", &len).unwrap().auth.as_deref(),
            Some("u+x@d")
        );
        assert_eq!(parse_mail("AUTH=a+zz", &len), Err(E::BadAuthParam));
        let bin = Leniency {
            allow_binarymime: true,
            ..Leniency::default()
        };
        assert_eq!(
            parse_mail("BODY=binarymime", &bin).unwrap().body,
            Some(Body::BinaryMime)
        );
    }

    #[test]
    fn rcpt_params_observed() {
        let on = |s, d, f| {
            Some(Notify::On {
                success: s,
                delay: d,
                failure: f,
            })
        };
        assert_eq!(
            parse_rcpt("NOTIFY=NEVER").unwrap().notify,
            Some(Notify::Never)
        );
        assert_eq!(
            parse_rcpt("NOTIFY=SUCCESS,DELAY,FAILURE").unwrap().notify,
            on(true, true, true)
        );
        assert_eq!(
            parse_rcpt("notify=success,success").unwrap().notify,
            on(true, false, false)
        );
        for bad in [
            "NOTIFY=NEVER,SUCCESS",
            "NOTIFY=",
            "NOTIFY=foo",
            "NOTIFY=SUCCESS NOTIFY=DELAY",
        ] {
            assert_eq!(parse_rcpt(bad), Err(E::BadNotify), "{bad}");
        }
        let o = parse_rcpt("ORCPT=rfc822;x+2By@z").unwrap().orcpt.unwrap();
        assert_eq!((o.addr_type.as_str(), o.addr.as_str()), ("rfc822", "x+y@z"));
        assert!(parse_rcpt("ORCPT=foo;x").is_ok());
        assert_eq!(parse_rcpt("ORCPT=rfc822;").unwrap().orcpt.unwrap().addr, "");
        for bad in [
            "ORCPT=rfc822;x+zz",
            "ORCPT=x@y",
            "ORCPT=;x@y",
            "ORCPT=rfc822;a ORCPT=rfc822;b",
        ] {
            assert_eq!(parse_rcpt(bad), Err(E::BadOrcpt), "{bad}");
        }
        for t in ["FOO=1", "SIZE=1", "NOTIFY", "ORCPT"] {
            assert_eq!(parse_rcpt(t), Err(E::UnsupportedOption(t.into())), "{t}");
        }
    }
}
