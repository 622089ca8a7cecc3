//! postern-help — the manual: one source per page, rendered as man pages and as `--help`.
//!
//! Every manual page is a text file under `pages/` compiled in with `include_str!` (format:
//! [`page`]). Two renderers read the same parsed [`Page`]: [`roff`] writes the man(7) pages
//! that `postern man DIR` installs, and [`plain`] prints `postern help NAME` and the
//! `--help` of every command and verb, so the two cannot drift. The main.cf page lists the
//! parameter table of `postern-config` itself (`@all-params`), and the daemon pages name
//! their parameters with `@params`, whose defaults and descriptions come from that table; a
//! test checks each daemon page lists exactly what its crate reads.
//!
//! Layer 0, pure: no file, process or environment access (the binary writes the files).
//!
//! # Security
//!
//! Renders compiled-in text only. Roff output never lets page text start a request line.
//!
//! # Configuration
//!
//! None.
#![forbid(unsafe_code)]

pub mod page;
pub mod plain;
pub mod roff;

pub use page::{Block, Page, PageError, Section, Span};

/// Postern's version, shown in the page footer.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The page sources: (file name, text).
static SOURCES: &[(&str, &str)] = &[
    ("postern.1", include_str!("../pages/postern.1")),
    (
        "postern-sendmail.1",
        include_str!("../pages/postern-sendmail.1"),
    ),
    (
        "postern-postdrop.1",
        include_str!("../pages/postern-postdrop.1"),
    ),
    (
        "postern-postqueue.1",
        include_str!("../pages/postern-postqueue.1"),
    ),
    (
        "postern-postsuper.1",
        include_str!("../pages/postern-postsuper.1"),
    ),
    (
        "postern-postconf.1",
        include_str!("../pages/postern-postconf.1"),
    ),
    (
        "postern-postcat.1",
        include_str!("../pages/postern-postcat.1"),
    ),
    (
        "postern-postmap.1",
        include_str!("../pages/postern-postmap.1"),
    ),
    (
        "postern-postalias.1",
        include_str!("../pages/postern-postalias.1"),
    ),
    ("postern-auth.1", include_str!("../pages/postern-auth.1")),
    (
        "postern-main.cf.5",
        include_str!("../pages/postern-main.cf.5"),
    ),
    (
        "postern-master.cf.5",
        include_str!("../pages/postern-master.cf.5"),
    ),
    (
        "postern-master.8",
        include_str!("../pages/postern-master.8"),
    ),
    (
        "postern-pickup.8",
        include_str!("../pages/postern-pickup.8"),
    ),
    (
        "postern-cleanup.8",
        include_str!("../pages/postern-cleanup.8"),
    ),
    ("postern-qmgr.8", include_str!("../pages/postern-qmgr.8")),
    ("postern-local.8", include_str!("../pages/postern-local.8")),
    (
        "postern-virtual.8",
        include_str!("../pages/postern-virtual.8"),
    ),
    ("postern-pipe.8", include_str!("../pages/postern-pipe.8")),
    ("postern-smtp.8", include_str!("../pages/postern-smtp.8")),
    ("postern-smtpd.8", include_str!("../pages/postern-smtpd.8")),
    ("postern-qmqpd.8", include_str!("../pages/postern-qmqpd.8")),
    (
        "postern-bounce.8",
        include_str!("../pages/postern-bounce.8"),
    ),
    ("postern-flush.8", include_str!("../pages/postern-flush.8")),
    ("postern-showq.8", include_str!("../pages/postern-showq.8")),
    ("postern-anvil.8", include_str!("../pages/postern-anvil.8")),
    (
        "postern-proxymap.8",
        include_str!("../pages/postern-proxymap.8"),
    ),
    (
        "postern-discard.8",
        include_str!("../pages/postern-discard.8"),
    ),
    ("postern-error.8", include_str!("../pages/postern-error.8")),
    ("postern-spawn.8", include_str!("../pages/postern-spawn.8")),
];

/// Every page, parsed, in manual order (section 1, 5, 8).
pub fn pages() -> Result<Vec<Page>, PageError> {
    SOURCES.iter().map(|(f, s)| page::parse(f, s)).collect()
}

/// The page a name refers to: a page name (`postern-postqueue`, with or without a `.N`
/// section suffix), a page name without the `postern-` prefix (`postqueue`, `main.cf`), or a
/// command the page documents (`mailq`, `lmtp`).
pub fn find(name: &str) -> Result<Option<Page>, PageError> {
    let all = pages()?;
    let (base, section) = match name.rsplit_once('.') {
        Some((b, s @ ("1" | "5" | "8"))) => (b, Some(s.as_bytes()[0] - b'0')),
        _ => (name, None),
    };
    let fits = |p: &Page| section.is_none_or(|s| s == p.section);
    let prefixed = format!("postern-{base}");
    let found = all
        .iter()
        .find(|p| fits(p) && p.name == base)
        .or_else(|| all.iter().find(|p| fits(p) && p.name == prefixed))
        .or_else(|| {
            all.iter()
                .find(|p| fits(p) && p.commands.iter().any(|c| c == base))
        });
    Ok(found.cloned())
}

/// Where `postern man DIR` puts a page, relative to DIR: `man1/postern.1`.
pub fn file_name(p: &Page) -> String {
    format!("man{}/{}.{}", p.section, p.name, p.section)
}

/// The page as roff.
pub fn roff(p: &Page) -> String {
    roff::page(p)
}

/// The page as plain text.
pub fn plain(p: &Page) -> String {
    plain::page(p)
}

/// The closing line of `--help`: where the whole page is.
fn pointer(p: &Page) -> String {
    format!(
        "The whole manual page: man {} {} (or: postern help {})\n",
        p.section, p.name, p.name
    )
}

/// `COMMAND --help`: the SYNOPSIS and OPTIONS sections of the command's page, exactly as
/// the whole page shows them, and where the page is. `None` for an unknown command.
pub fn command_help(command: &str) -> Result<Option<String>, PageError> {
    let Some(p) = find(command)? else {
        return Ok(None);
    };
    let mut out = String::new();
    for title in ["SYNOPSIS", "OPTIONS"] {
        if let Some(s) = p.section(title) {
            out.push_str(&plain::section(s));
        }
    }
    out.push_str(&pointer(&p));
    Ok(Some(out))
}

/// `postern VERB --help` for a control verb (`start`, `check`…): the synopsis of
/// postern(1) and the verb's entry of its COMMANDS section. `None` when postern(1) has no
/// entry for the verb.
pub fn verb_help(verb: &str) -> Result<Option<String>, PageError> {
    let p = page::parse(SOURCES[0].0, SOURCES[0].1)?;
    let entries: Vec<&Block> = p
        .section("COMMANDS")
        .map(|s| {
            s.blocks
                .iter()
                .filter(|b| matches!(b, Block::Item { term, .. } if page::plain_text(term).split_whitespace().next() == Some(verb)))
                .collect()
        })
        .unwrap_or_default();
    if entries.is_empty() {
        return Ok(None);
    }
    let mut out = String::new();
    if let Some(s) = p.section("SYNOPSIS") {
        out.push_str(&plain::section(s));
    }
    out.push_str(&plain::section_with("COMMANDS", &entries));
    out.push_str(&pointer(&p));
    Ok(Some(out))
}

/// The usage message of `postern` (its synopsis, as `usage: …` lines).
pub fn usage() -> Result<String, PageError> {
    let p = page::parse(SOURCES[0].0, SOURCES[0].1)?;
    let mut out = String::new();
    for b in p
        .section("SYNOPSIS")
        .map(|s| s.blocks.as_slice())
        .unwrap_or_default()
    {
        if let Block::Verbatim(lines) = b {
            for l in lines {
                out.push_str(if out.is_empty() { "usage: " } else { "       " });
                out.push_str(&page::plain_text(l));
                out.push('\n');
            }
        }
    }
    Ok(out)
}

/// `postern help`: one line per page, name(section) and summary, with the commands it covers.
pub fn index() -> Result<String, PageError> {
    let mut out = String::from("Manual pages (postern help NAME; man SECTION NAME):\n");
    for p in pages()? {
        let head = format!("{}({})", p.name, p.section);
        out.push_str(&format!("  {head:<26} {}\n", p.summary));
    }
    Ok(out)
}
