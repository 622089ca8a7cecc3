//! The plain-text renderer: what `--help` and `postern help NAME` print.
//!
//! Layout of a page: a title line `NAME(SECTION)`, then each section as its title in
//! capitals followed by its blocks indented by four columns, paragraphs filled to
//! [`WIDTH`] columns, item bodies indented by eight. `--help` prints some sections of a
//! page through [`section`], the very function the full page uses, so the two agree.
//!
//! # Security
//!
//! Pure string building.
//!
//! # Configuration
//!
//! None.

use crate::page::{Block, Inline, Page, Section, plain_text};

/// Line width text is filled to.
pub const WIDTH: usize = 79;
/// Indent of section text.
const INDENT: usize = 4;
/// Indent of an item's body.
const BODY_INDENT: usize = 8;

/// Fills `text` at `indent` into `out`, one line per output line.
fn fill(out: &mut String, text: &str, indent: usize) {
    let pad = " ".repeat(indent);
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && indent + line.len() + 1 + word.len() > WIDTH {
            out.push_str(&pad);
            out.push_str(&line);
            out.push('\n');
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        out.push_str(&pad);
        out.push_str(&line);
        out.push('\n');
    }
}

/// One block, followed by a blank line.
pub fn block(out: &mut String, b: &Block) {
    match b {
        Block::Para(text) => fill(out, &plain_text(text), INDENT),
        Block::Verbatim(lines) => {
            for l in lines {
                let t = plain_text(l);
                if !t.is_empty() {
                    out.push_str(&" ".repeat(INDENT));
                    out.push_str(&t);
                }
                out.push('\n');
            }
        }
        Block::Item { term, body } => {
            fill(out, &plain_text(term), INDENT);
            for (i, p) in body.iter().enumerate() {
                if i > 0 {
                    out.push('\n');
                }
                fill(out, &plain_text(p), BODY_INDENT);
            }
        }
    }
    out.push('\n');
}

/// A section: its title, then its blocks.
pub fn section(s: &Section) -> String {
    let mut out = format!("{}\n", s.title);
    for b in &s.blocks {
        block(&mut out, b);
    }
    out
}

/// A section holding only the given blocks (the item of one verb, for `postern VERB --help`).
pub fn section_with(title: &str, blocks: &[&Block]) -> String {
    let mut out = format!("{title}\n");
    for b in blocks {
        block(&mut out, b);
    }
    out
}

/// The NAME section generated from the page header.
pub fn name_section(page: &Page) -> String {
    let mut out = "NAME\n".to_string();
    fill(
        &mut out,
        &format!("{} - {}", page.name, page.summary),
        INDENT,
    );
    out.push('\n');
    out
}

/// The whole page.
pub fn page(p: &Page) -> String {
    let mut out = format!("{}({})\n\n", p.name.to_uppercase(), p.section);
    out.push_str(&name_section(p));
    for s in &p.sections {
        out.push_str(&section(s));
    }
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}

/// The words of an item's term without formatting (for matching a verb).
pub fn term_words(term: &Inline) -> String {
    plain_text(term)
}
