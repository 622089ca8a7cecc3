//! The roff renderer: man(7) macros for `postern man DIR`.
//!
//! Only `.TH`, `.SH`, `.PP`, `.TP`, `.nf`, `.fi`, `.sp`, `.ad l` and `.nh` are emitted (the
//! last two: ragged right and no hyphenation, since parameter names are long words that
//! must stay whole), and every one of
//! them at the start of a line this module writes itself; text from a page never starts a
//! line with `.` or `'` (it gets a `\&` in front) and its `\` and `-` are escaped (`\e`,
//! `\-`), so a page cannot issue a request by accident. Each paragraph is one input line
//! (roff fills it), so wrapping never moves a `.` to the start of a line.
//!
//! # Security
//!
//! Pure string building; the output is data for man(1), which runs groff on it.
//!
//! # Configuration
//!
//! None. `.TH` carries no date, so the pages are reproducible.

use crate::page::{Block, Inline, Page, Span};

/// The requests this renderer emits (tests check no other line starts with `.`).
pub const REQUESTS: &[&str] = &[
    ".TH", ".SH", ".PP", ".TP", ".nf", ".fi", ".sp", ".ad", ".nh",
];

/// Escapes text for roff: backslash and hyphen, with break points (`\:`) after `,`, `?`, `;`
/// and `}`; a leading `.` or `'` is protected by the
/// caller through [`line`].
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\e"),
            '-' => out.push_str("\\-"),
            // A break point after list separators, so that a long default
            // value (`a,b,c,…`) can wrap instead of overflowing the line.
            ',' | '}' | '?' | ';' => {
                out.push(c);
                out.push_str("\\:");
            }
            _ => out.push(c),
        }
    }
    out
}

/// Inline spans as roff text (fonts with `\fB`, `\fI`, back to `\fR`).
fn inline(spans: &Inline) -> String {
    let mut out = String::new();
    for s in spans {
        match s {
            Span::Text(t) => out.push_str(&escape(t)),
            Span::Bold(t) => {
                out.push_str("\\fB");
                out.push_str(&escape(t));
                out.push_str("\\fR");
            }
            Span::Italic(t) => {
                out.push_str("\\fI");
                out.push_str(&escape(t));
                out.push_str("\\fR");
            }
        }
    }
    out
}

/// One text line: whitespace runs collapsed at the ends, a leading `.` or `'` protected.
fn line(out: &mut String, text: &str) {
    let text = text.trim_end();
    if text.starts_with('.') || text.starts_with('\'') {
        out.push_str("\\&");
    }
    out.push_str(text);
    out.push('\n');
}

/// Quotes a macro argument.
fn arg(s: &str) -> String {
    format!("\"{}\"", escape(s).replace('"', "\\(dq"))
}

/// The whole page.
pub fn page(p: &Page) -> String {
    let mut out = format!(
        ".TH {} {} \"\" {} {}\n",
        arg(&p.name.to_uppercase()),
        p.section,
        arg(&format!("Postern {}", crate::VERSION)),
        arg("Postern Manual"),
    );
    out.push_str(".ad l\n.nh\n.SH NAME\n");
    line(
        &mut out,
        &format!("{} \\- {}", escape(&p.name), escape(&p.summary)),
    );
    for s in &p.sections {
        out.push_str(&format!(".SH {}\n", arg(&s.title)));
        let mut first = true;
        for b in &s.blocks {
            match b {
                Block::Para(text) => {
                    if !first {
                        out.push_str(".PP\n");
                    }
                    line(&mut out, &inline(text));
                }
                Block::Verbatim(lines) => {
                    if !first {
                        out.push_str(".PP\n");
                    }
                    out.push_str(".nf\n");
                    for l in lines {
                        let t = inline(l);
                        if t.trim().is_empty() {
                            out.push_str(".sp\n");
                        } else {
                            line(&mut out, &t);
                        }
                    }
                    out.push_str(".fi\n");
                }
                Block::Item { term, body } => {
                    out.push_str(".TP\n");
                    line(&mut out, &inline(term));
                    for (i, para) in body.iter().enumerate() {
                        if i > 0 {
                            out.push_str(".sp\n");
                        }
                        line(&mut out, &inline(para));
                    }
                }
            }
            first = false;
        }
    }
    out
}
