//! The page source format and its parser: text in, a [`Page`] out.
//!
//! A page source is a small line-oriented text file (one per manual page, under `pages/`):
//!
//! ```text
//! name: postern-sendmail          <- header lines, up to the first blank line
//! section: 1
//! summary: submit mail, list the queue, rebuild the aliases database
//! commands: sendmail mailq newaliases   <- names `--help` and `postern help NAME` accept
//! crates: postern-sendmail              <- crates whose parameter reads the page lists
//!
//! # SYNOPSIS                      <- a section
//! | **sendmail** [__option__ ...]   <- a verbatim line (no filling)
//!
//! Text lines are filled into paragraphs; a blank line ends a paragraph.
//!
//! - **-bi**                       <- a tagged item: the term ...
//!   Rebuild the aliases.          <- ... and its body, indented by two spaces
//!
//! @params alias_database mail_owner   <- items generated from the parameter table
//! @all-params                         <- every parameter of the table (the main.cf page)
//! ```
//!
//! Inline markup: `**bold**` and `__italic__`; `\*`, `\_` and `\\` stand for the character
//! itself. Text generated from the parameter table is
//! never parsed for markup, so a default value cannot turn into formatting.
//!
//! # Security
//!
//! Pure: parses compiled-in text; errors name the page and line, and nothing panics.
//!
//! # Configuration
//!
//! None; `@params` reads [`postern_config::PARAMS`] and
//! [`postern_config::unimplemented::UNIMPLEMENTED`].

use postern_config::unimplemented::{Effect, UNIMPLEMENTED};
use postern_config::{PARAMS, Param};

/// A piece of inline text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Span {
    /// Plain text.
    Text(String),
    /// Bold (commands, flags, parameter names: what is typed literally).
    Bold(String),
    /// Italic (arguments the reader replaces).
    Italic(String),
}

impl Span {
    /// The text without formatting.
    pub fn text(&self) -> &str {
        match self {
            Span::Text(s) | Span::Bold(s) | Span::Italic(s) => s,
        }
    }
}

/// A line or paragraph of inline text.
pub type Inline = Vec<Span>;

/// The text of inline spans without formatting.
pub fn plain_text(spans: &[Span]) -> String {
    spans.iter().map(Span::text).collect()
}

/// One block of a section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Block {
    /// A filled paragraph.
    Para(Inline),
    /// Lines kept as written (a synopsis, an example).
    Verbatim(Vec<Inline>),
    /// A tagged item: a term and its body paragraphs.
    Item {
        /// The term (a flag, a verb, a parameter).
        term: Inline,
        /// The body, one entry per paragraph.
        body: Vec<Inline>,
    },
}

/// A titled section (`NAME` is generated from the header and is not stored here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// The title, in capitals (`SYNOPSIS`, `OPTIONS`…).
    pub title: String,
    /// The blocks in order.
    pub blocks: Vec<Block>,
}

/// One manual page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Page name (`postern-sendmail`).
    pub name: String,
    /// Manual section: 1, 5 or 8.
    pub section: u8,
    /// One-line summary for the NAME section.
    pub summary: String,
    /// Command or daemon names this page documents (`sendmail`, `mailq`…).
    pub commands: Vec<String>,
    /// Crates whose parameter reads the CONFIGURATION PARAMETERS section lists.
    pub crates: Vec<String>,
    /// The sections in order.
    pub sections: Vec<Section>,
}

impl Page {
    /// The section titled `title`, if any.
    pub fn section(&self, title: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.title == title)
    }

    /// The parameter names listed by `@params`/`@all-params` anywhere on the page.
    pub fn params(&self) -> Vec<String> {
        let mut out = Vec::new();
        for s in &self.sections {
            for b in &s.blocks {
                if let Block::Item { term, .. } = b
                    && let Some(Span::Bold(n)) = term.first()
                    && postern_config::param(n).is_some()
                    && term
                        .get(1)
                        .is_some_and(|t| t.text().starts_with(" (default"))
                {
                    out.push(n.clone());
                }
            }
        }
        out
    }
}

/// A malformed page source (a bug in a compiled-in page; unit tests catch every one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("manual page source {file}, line {line}: {message}")]
pub struct PageError {
    /// The source file name.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// Parses inline markup (`**bold**`, `__italic__`). An unclosed marker is an error.
pub fn parse_inline(text: &str) -> Result<Inline, String> {
    let mut out: Inline = Vec::new();
    let mut rest = text;
    let mut plain = String::new();
    while !rest.is_empty() {
        if let Some(escaped) = rest.strip_prefix('\\') {
            let mut chars = escaped.chars();
            match chars.next() {
                Some(c @ ('*' | '_' | '\\')) => plain.push(c),
                _ => {
                    return Err(format!(
                        "a backslash escapes only *, _ or itself in {text:?}"
                    ));
                }
            }
            rest = chars.as_str();
            continue;
        }
        let (marker, bold) = if rest.starts_with("**") {
            ("**", true)
        } else if rest.starts_with("__") {
            ("__", false)
        } else {
            let mut chars = rest.chars();
            if let Some(c) = chars.next() {
                plain.push(c);
            }
            rest = chars.as_str();
            continue;
        };
        let after = &rest[2..];
        let Some(end) = after.find(marker) else {
            return Err(format!("unclosed {marker} in {text:?}"));
        };
        if !plain.is_empty() {
            out.push(Span::Text(std::mem::take(&mut plain)));
        }
        let inner = after[..end].to_string();
        out.push(if bold {
            Span::Bold(inner)
        } else {
            Span::Italic(inner)
        });
        rest = &after[end + 2..];
    }
    if !plain.is_empty() {
        out.push(Span::Text(plain));
    }
    Ok(out)
}

/// What the table says about an unimplemented parameter, for its description.
fn implementation_note(name: &str) -> Option<&'static str> {
    UNIMPLEMENTED
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, effect)| match effect {
            Effect::Report => {
                "Not implemented: a value other than the default is reported by postern check \
                 and logged at start."
            }
            Effect::Refuse => {
                "Not implemented: a value other than the default makes postern check report an \
                 error and postern start refuse to run."
            }
        })
}

/// The item for one parameter of the table.
pub fn param_item(p: &Param) -> Block {
    let default = if p.default.is_empty() {
        " (default: empty)".to_string()
    } else if p.host_dependent {
        format!(" (default: {}, set for the host at start)", p.default)
    } else {
        format!(" (default: {})", p.default)
    };
    let mut body = vec![vec![Span::Text(p.doc.to_string())]];
    if let Some(note) = implementation_note(p.name) {
        body.push(vec![Span::Text(note.to_string())]);
    }
    Block::Item {
        term: vec![Span::Bold(p.name.to_string()), Span::Text(default)],
        body,
    }
}

/// Parser state: the block being built.
enum Open {
    None,
    Para(Vec<String>),
    Verbatim(Vec<Inline>),
    Item(Inline, Vec<Inline>, Vec<String>),
}

/// Parses one page source; `file` names it in errors.
pub fn parse(file: &str, src: &str) -> Result<Page, PageError> {
    let err = |line: usize, message: String| PageError {
        file: file.to_string(),
        line,
        message,
    };
    let mut lines = src.lines().enumerate().map(|(i, l)| (i + 1, l));
    let (mut name, mut section, mut summary) = (String::new(), 0u8, String::new());
    let (mut commands, mut crates) = (Vec::new(), Vec::new());
    for (n, line) in lines.by_ref() {
        if line.trim().is_empty() {
            break;
        }
        let Some((key, value)) = line.split_once(':') else {
            return Err(err(n, format!("header line without ':': {line:?}")));
        };
        let value = value.trim();
        let words = || value.split_whitespace().map(str::to_string).collect();
        match key.trim() {
            "name" => name = value.to_string(),
            "section" => match value {
                "1" | "5" | "8" => section = value.as_bytes()[0] - b'0',
                _ => return Err(err(n, format!("section must be 1, 5 or 8: {value:?}"))),
            },
            "summary" => summary = value.to_string(),
            "commands" => commands = words(),
            "crates" => crates = words(),
            other => return Err(err(n, format!("unknown header {other:?}"))),
        }
    }
    if name.is_empty() || section == 0 || summary.is_empty() {
        return Err(err(1, "name, section and summary are required".into()));
    }
    let mut sections: Vec<Section> = Vec::new();
    let mut open = Open::None;
    for (n, line) in lines {
        let inline = |t: &str| parse_inline(t).map_err(|m| err(n, m));
        if let Some(title) = line.strip_prefix("# ") {
            close(&mut open, &mut sections).map_err(|m| err(n, m))?;
            sections.push(Section {
                title: title.trim().to_string(),
                blocks: Vec::new(),
            });
            continue;
        }
        if sections.is_empty() {
            if line.trim().is_empty() {
                continue;
            }
            return Err(err(n, "text before the first section".into()));
        }
        if line.trim().is_empty() {
            close(&mut open, &mut sections).map_err(|m| err(n, m))?;
        } else if let Some(v) =
            line.strip_prefix("| ")
                .or(if line == "|" { Some("") } else { None })
        {
            let v = inline(v)?;
            match &mut open {
                Open::Verbatim(vl) => vl.push(v),
                _ => {
                    close(&mut open, &mut sections).map_err(|m| err(n, m))?;
                    open = Open::Verbatim(vec![v]);
                }
            }
        } else if let Some(term) = line.strip_prefix("- ") {
            close(&mut open, &mut sections).map_err(|m| err(n, m))?;
            open = Open::Item(inline(term.trim())?, Vec::new(), Vec::new());
        } else if let Some(names) = line.strip_prefix("@params ") {
            close(&mut open, &mut sections).map_err(|m| err(n, m))?;
            for p in names.split_whitespace() {
                let Some(p) = postern_config::param(p) else {
                    return Err(err(n, format!("{p:?} is not in the parameter table")));
                };
                push(&mut sections, param_item(p));
            }
        } else if line.trim() == "@all-params" {
            close(&mut open, &mut sections).map_err(|m| err(n, m))?;
            for p in PARAMS {
                push(&mut sections, param_item(p));
            }
        } else if let Some(body) = line.strip_prefix("  ") {
            match &mut open {
                Open::Item(_, _, words) => words.push(body.trim().to_string()),
                Open::Para(words) => words.push(body.trim().to_string()),
                _ => return Err(err(n, "indented line outside an item".into())),
            }
        } else {
            match &mut open {
                Open::Para(words) => words.push(line.trim().to_string()),
                Open::Item(..) => {
                    return Err(err(
                        n,
                        "item body lines must be indented by two spaces".into(),
                    ));
                }
                _ => {
                    close(&mut open, &mut sections).map_err(|m| err(n, m))?;
                    open = Open::Para(vec![line.trim().to_string()]);
                }
            }
        }
    }
    close(&mut open, &mut sections).map_err(|m| err(0, m))?;
    Ok(Page {
        name,
        section,
        summary,
        commands,
        crates,
        sections,
    })
}

/// Appends a block to the last section (there is one: checked before any block opens).
fn push(sections: &mut [Section], block: Block) {
    if let Some(s) = sections.last_mut() {
        s.blocks.push(block);
    }
}

/// Ends the open block, if any (an item's body is one paragraph; a blank line ends it).
fn close(open: &mut Open, sections: &mut [Section]) -> Result<(), String> {
    match std::mem::replace(open, Open::None) {
        Open::None => {}
        Open::Para(words) => push(sections, Block::Para(parse_inline(&words.join(" "))?)),
        Open::Verbatim(lines) => push(sections, Block::Verbatim(lines)),
        Open::Item(term, mut body, words) => {
            if !words.is_empty() {
                body.push(parse_inline(&words.join(" "))?);
            }
            push(sections, Block::Item { term, body });
        }
    }
    Ok(())
}
