//! Generates `$OUT_DIR/param_consts.rs`: one typed constant per row of THE parameter table
//! (`src/params.rs`), included as `postern_config::p`.
//!
//! The table stays the single source of names, kinds and defaults: this script reads its rows
//! (`p("name", "default", Kind, "doc"),` / `h(…)`, one per line) and emits, for a row of kind
//! `Int`, `pub const MAX_USE: Int = Int("max_use");` (kinds Str, Bool, Int, Size, Time(unit)),
//! plus `ALL`, the (name, kind) list a unit test compares with the compiled table. A name that
//! starts with a digit gets a leading underscore (`_2BOUNCE_NOTICE_RECIPIENT`).
//!
//! # Security
//!
//! Build time only: reads one file of this crate, writes one file under `$OUT_DIR`.
//!
//! # Configuration
//!
//! None.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// One parsed row: name, kind token as written (`Int`, `Time('s')`), doc literal with quotes.
struct Row {
    name: String,
    kind: String,
    doc: String,
}

const KINDS: &[&str] = &[
    "Str",
    "Bool",
    "Int",
    "Size",
    "Time('s')",
    "Time('m')",
    "Time('h')",
    "Time('d')",
    "Time('w')",
];

fn parse_row(line: &str) -> Option<Row> {
    let t = line.trim_start();
    let rest = t.strip_prefix("p(\"").or_else(|| t.strip_prefix("h(\""))?;
    let name = &rest[..rest.find('"')?];
    // The kind is the first `, KIND, "` after the name (defaults hold no such text; the
    // generated ALL list is checked against the compiled table by a unit test).
    let (at, kind) = KINDS
        .iter()
        .filter_map(|k| rest.find(&format!(", {k}, \"")).map(|i| (i, *k)))
        .min()?;
    let doc_start = at + kind.len() + 4;
    let doc = rest[doc_start..].trim_end().strip_suffix("),")?;
    Some(Row {
        name: name.to_string(),
        kind: kind.to_string(),
        doc: doc.to_string(),
    })
}

fn ident(name: &str) -> String {
    let up = name.to_ascii_uppercase();
    if up.starts_with(|c: char| c.is_ascii_digit()) {
        format!("_{up}")
    } else {
        up
    }
}

fn main() {
    let src = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("manifest dir"))
        .join("src/params.rs");
    println!("cargo:rerun-if-changed={}", src.display());
    let text = std::fs::read_to_string(&src).expect("read src/params.rs");
    let rows: Vec<Row> = text.lines().filter_map(parse_row).collect();
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut out = String::new();
    let mut all = String::new();
    for r in &rows {
        let id = ident(&r.name);
        if let Some(other) = seen.insert(id.clone(), r.name.clone()) {
            panic!("parameters {other} and {} map to one constant {id}", r.name);
        }
        let (ty, value) = match r.kind.strip_prefix("Time(") {
            Some(unit) => ("Time", format!("Time(\"{}\", {}", r.name, unit)),
            None => (r.kind.as_str(), format!("{}(\"{}\")", r.kind, r.name)),
        };
        out.push_str(&format!(
            "#[doc = {}]\n#[doc = \"\"]\n#[doc = \"`{}`\"]\npub const {id}: {ty} = {value};\n",
            r.doc.replace('[', "\\\\[").replace(']', "\\\\]"),
            r.name
        ));
        all.push_str(&format!(
            "    (\"{}\", crate::ParamKind::{}),\n",
            r.name, r.kind
        ));
    }
    out.push_str(&format!(
        "/// Every generated constant's (name, kind), in table order (checked against the table).\n\
         #[cfg(test)]\npub(crate) static ALL: &[(&str, crate::ParamKind)] = &[\n{all}];\n"
    ));
    let dest = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR")).join("param_consts.rs");
    std::fs::write(&dest, out).expect("write param_consts.rs");
}
