//! `cidr:` — ordered first-match tables of IPv4/IPv6 networks (cidr_table(5)).
//!
//! A rule is `[!]pattern result`; `if [!]pattern` … `endif` blocks nest. A pattern is an
//! address (exact match) or `address/prefix` with no host bits set, optionally written in
//! `[]`. Keys are converted to binary before comparison, so `2001:0db8::1` matches
//! `2001:db8::/32`; a key that is not an address (including one in `[]`) is simply not found.
//! A rule or `if` of the other address family never applies, not even when negated.

use crate::program::Program;
use crate::source::{Line, Warnings, logical_lines, read_file};
use crate::spec::{braced, tokens, unbrace};
use crate::{Map, MapFlags, OpenOptions, TableError};
use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[derive(Debug)]
pub(crate) struct Cidr {
    spec: String,
    program: Program<Net, String>,
    warnings: Vec<TableError>,
}

impl Cidr {
    pub(crate) fn open(spec: &str, name: &str, opts: &OpenOptions) -> Result<Self, TableError> {
        let (file, lines) = source_lines("cidr", spec, name)?;
        Self::from_lines(spec, &file, lines, opts)
    }

    /// The table from its logical lines; `file` names it in warnings.
    pub(crate) fn from_lines(
        spec: &str,
        file: &str,
        lines: Vec<Line>,
        opts: &OpenOptions,
    ) -> Result<Self, TableError> {
        let mut w = Warnings::new(file, opts.strict);
        let mut program = Program::new();
        for line in lines {
            parse_line(&line, opts, &mut program, &mut w)?;
        }
        let program = program.finish(&mut w)?;
        Ok(Cidr {
            spec: spec.to_string(),
            program,
            warnings: w.list,
        })
    }
}

/// The logical lines of a file, or of an inline `{ {rule}, {rule} }` spec, with the name
/// used in warnings (Postfix's `KIND map NAME`). Shared with the regexp/pcre tables.
pub(crate) fn source_lines(
    kind: &str,
    spec: &str,
    name: &str,
) -> Result<(String, Vec<Line>), TableError> {
    let label = format!("{kind} map {name}");
    let missing = |_| TableError::bad_spec(spec, format!("{kind} map: missing '}}' in \"{name}\""));
    let Some(body) = braced(spec, name).map_err(missing)? else {
        // Postfix names a pattern table's source without "database".
        let text = read_file(name).map_err(|e| match e {
            TableError::Open { path, source, .. } => TableError::Open {
                what: "",
                path,
                source,
            },
            other => other,
        })?;
        return Ok((label, logical_lines(name, &text)?));
    };
    let mut lines = Vec::new();
    for (i, token) in tokens(spec, &body)
        .map_err(missing)?
        .into_iter()
        .enumerate()
    {
        let rule = unbrace(token).ok_or_else(|| {
            TableError::bad_spec(
                spec,
                format!("{kind} map: no '{{' at start of text in \"{token}\""),
            )
        })?;
        lines.push(Line {
            number: i + 1,
            text: rule.to_string(),
        });
    }
    Ok((label, lines))
}

/// Splits `if`/`endif` keywords off a rule line (case-insensitive, as Postfix).
pub(crate) enum Keyword<'a> {
    If(&'a str),
    Endif(&'a str),
    None,
}

pub(crate) fn keyword(text: &str) -> Keyword<'_> {
    let word_end = text
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap_or(text.len());
    let (word, rest) = text.split_at(word_end);
    if word.eq_ignore_ascii_case("if") {
        Keyword::If(rest.trim_start())
    } else if word.eq_ignore_ascii_case("endif") {
        Keyword::Endif(rest.trim())
    } else {
        Keyword::None
    }
}

/// Strips leading `!`s (each toggles negation), with optional blanks after each.
pub(crate) fn negation(mut text: &str) -> (bool, &str) {
    let mut negate = false;
    while let Some(rest) = text.strip_prefix('!') {
        negate = !negate;
        text = rest.trim_start();
    }
    (negate, text)
}

/// A rule's result: the text, or with [`OpenOptions::rhs_is_file`] the base64 of the files
/// it names (`None` after a warning: the rule is skipped).
pub(crate) fn rhs(
    value: &str,
    line: usize,
    opts: &OpenOptions,
    w: &mut Warnings,
) -> Result<Option<String>, TableError> {
    if !opts.rhs_is_file {
        return Ok(Some(value.to_string()));
    }
    match crate::source::file_value(value) {
        Ok(v) => Ok(Some(v)),
        Err(message) => w
            .warn(line, format!("{message}: skipping this rule"))
            .map(|()| None),
    }
}

fn parse_line(
    line: &Line,
    opts: &OpenOptions,
    program: &mut Program<Net, String>,
    w: &mut Warnings,
) -> Result<(), TableError> {
    match keyword(&line.text) {
        Keyword::Endif(extra) => {
            if !extra.is_empty() {
                return w.warn(line.number, "garbage after ENDIF: skipping this rule");
            }
            program.endif(line.number, w, "ENDIF without IF: skipping this rule")
        }
        Keyword::If(rest) => {
            let (negate, rest) = negation(rest);
            // The whole rest is the pattern, as in Postfix (extra text makes it bad).
            match parse_pattern(rest.trim()) {
                Ok(net) => program.open_if(line.number, Net::new(net), negate, w),
                Err(message) => w.warn(line.number, message),
            }
        }
        Keyword::None => {
            let (negate, rest) = negation(&line.text);
            let (pattern, value) = rest
                .split_once(|c: char| c.is_ascii_whitespace())
                .unwrap_or((rest, ""));
            let net = match parse_pattern(pattern) {
                Ok(net) => net,
                Err(message) => return w.warn(line.number, message),
            };
            let value = value.trim();
            if value.is_empty() {
                return w.warn(line.number, "no lookup result: skipping this rule");
            }
            if let Some(value) = rhs(value, line.number, opts, w)? {
                program.rule(Net::new(net), negate, value);
            }
            Ok(())
        }
    }
}

/// Parses `addr`, `addr/len`, `[addr]` or `[addr]/len`.
/// A network as a masked compare: the address family, the network bits and the mask
/// (IPv4 in the low 32 bits), so that a lookup is one AND and one compare per rule.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Net {
    v6: bool,
    addr: u128,
    mask: u128,
}

impl Net {
    fn new(net: IpNet) -> Net {
        match net {
            IpNet::V4(n) => Net {
                v6: false,
                addr: u128::from(u32::from(n.network())),
                mask: u128::from(u32::from(n.netmask())),
            },
            IpNet::V6(n) => Net {
                v6: true,
                addr: u128::from(n.network()),
                mask: u128::from(n.netmask()),
            },
        }
    }

    /// `None` for an address of the other family; else whether it is inside.
    fn test(&self, (v6, ip): (bool, u128)) -> Option<bool> {
        (self.v6 == v6).then_some(ip & self.mask == self.addr)
    }
}

fn parse_pattern(pattern: &str) -> Result<IpNet, String> {
    let bad = || format!("bad address pattern: \"{pattern}\": skipping this rule");
    let (addr, len) = match pattern.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (pattern, None),
    };
    let addr = addr
        .strip_prefix('[')
        .and_then(|a| a.strip_suffix(']'))
        .unwrap_or(addr);
    let ip = parse_addr(addr).ok_or_else(bad)?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = match len {
        None => max,
        Some(l) if !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()) => {
            match l.parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => {
                    return Err(format!(
                        "bad mask length in \"{pattern}\": skipping this rule"
                    ));
                }
            }
        }
        Some(_) => {
            return Err(format!(
                "bad mask value in \"{pattern}\": skipping this rule"
            ));
        }
    };
    let net = IpNet::new(ip, len)
        .map_err(|_| format!("bad mask length in \"{pattern}\": skipping this rule"))?;
    if net.trunc() != net {
        return Err(format!(
            "non-null host address bits in \"{pattern}\", perhaps you should use \"{}/{len}\" instead: skipping this rule",
            net.network()
        ));
    }
    Ok(net)
}

/// An address as Postfix's cidr code reads it: a `:` means IPv6, else dotted-quad IPv4.
pub(crate) fn parse_addr(text: &str) -> Option<IpAddr> {
    if text.contains(':') {
        text.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
    } else {
        text.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
    }
}

impl Map for Cidr {
    fn lookup(&self, key: &str) -> Result<Option<String>, TableError> {
        let Some(ip) = parse_addr(key) else {
            return Ok(None);
        };
        // A rule of the other address family never applies, even negated (as in Postfix).
        let key = match ip {
            IpAddr::V4(a) => (false, u128::from(u32::from(a))),
            IpAddr::V6(a) => (true, u128::from(a)),
        };
        let found = self
            .program
            .first(|net| Ok::<_, TableError>(net.test(key)))?;
        Ok(found.map(|(_, value)| value.clone()))
    }
    fn name(&self) -> &str {
        &self.spec
    }
    fn flags(&self) -> MapFlags {
        MapFlags {
            fold_case: false,
            pattern: true,
        }
    }
    fn warnings(&self) -> &[TableError] {
        &self.warnings
    }
}

#[cfg(test)]
mod tests {
    use crate::{OpenOptions, open};

    const TABLE: &str = "cidr:{ {1.2.3.4 exact}, {10.1.0.0/15 badbits}, {10.0.0.0/8 ten}, \
        {if 172.16.0.0/12}, {172.16.1.0/24 inner}, {!172.16.1.0/25 upper-half}, {endif}, \
        {2001:DB8::/32 v6}, {::ffff:1.2.3.0/120 mapped}, {[::1] lo6}, {[127.0.0.1]/32 lo4}, \
        {junk x}, {192.0.2.0/24}, {0.0.0.0/0 any4} }";

    fn get(key: &str) -> Option<String> {
        open(TABLE, &OpenOptions::default())
            .unwrap()
            .lookup(key)
            .unwrap()
    }

    #[test]
    fn first_match_and_forms() {
        assert_eq!(get("1.2.3.4").as_deref(), Some("exact"));
        assert_eq!(get("10.9.9.9").as_deref(), Some("ten"));
        assert_eq!(get("172.16.1.5").as_deref(), Some("inner"));
        assert_eq!(get("172.16.2.200").as_deref(), Some("upper-half"));
        assert_eq!(get("172.20.0.1").as_deref(), Some("upper-half"));
        assert_eq!(get("2001:0db8:0:0::1").as_deref(), Some("v6"));
        assert_eq!(get("::ffff:1.2.3.7").as_deref(), Some("mapped"));
        assert_eq!(get("::1").as_deref(), Some("lo6"));
        assert_eq!(get("127.0.0.1").as_deref(), Some("lo4"));
        assert_eq!(get("192.0.2.1").as_deref(), Some("any4"));
        assert_eq!(get("::2"), None);
    }

    #[test]
    fn other_family_never_applies_even_negated() {
        let map = open(
            "cidr:{ {!10.0.0.0/8 not-ten}, {if !::/0}, {0.0.0.0/0 v4-in-if}, {endif} }",
            &OpenOptions::default(),
        )
        .unwrap();
        assert_eq!(map.lookup("::1").unwrap(), None);
        assert_eq!(map.lookup("11.0.0.1").unwrap().as_deref(), Some("not-ten"));
        assert_eq!(map.lookup("10.0.0.1").unwrap(), None);
    }

    #[test]
    fn non_addresses_are_not_found() {
        for key in [
            "",
            "foo",
            "01.2.3.4",
            "1.2.3",
            "[1.2.3.4]",
            "[::1]",
            "1.2.3.4.5",
        ] {
            assert_eq!(get(key), None, "{key}");
        }
    }

    #[test]
    fn warnings_name_the_line() {
        let map = open(TABLE, &OpenOptions::default()).unwrap();
        let w: Vec<String> = map.warnings().iter().map(|e| e.to_string()).collect();
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(w[0].ends_with("line 2: non-null host address bits in \"10.1.0.0/15\", perhaps you should use \"10.0.0.0/15\" instead: skipping this rule"));
        assert!(w[1].ends_with("line 12: bad address pattern: \"junk\": skipping this rule"));
        assert!(w[2].ends_with("line 13: no lookup result: skipping this rule"));
    }
}
