//! The operations: build, query (`-q`), list (`-s`), delete (`-d`).

use crate::args::{Mode, Prog};
use crate::build::{build, fold_key};
use crate::{Ctx, Fatal, fail, table_fatal};
use base64::Engine;
use postern_table::indexed::{self, Contents, DbKind, WriteOptions};
use postern_table::{BoxMap, OpenOptions};
use std::io::Write;

fn write_err(e: std::io::Error) -> Fatal {
    fail(format!("write standard output: {e}"))
}

/// Runs the operation; returns the exit status.
pub(crate) fn run(ctx: &Ctx, out: &mut impl Write) -> Result<u8, Fatal> {
    match &ctx.args.mode {
        Mode::Build => {
            for map in &ctx.args.maps {
                build(ctx, map)?;
            }
            Ok(0)
        }
        Mode::Query(key) if key == "-" => {
            let keys = stdin_keys(ctx)?;
            queries(ctx, &keys, out)
        }
        Mode::Query(key) => query(ctx, key, out),
        Mode::Sequence => sequence(ctx, out),
        Mode::Delete(key) => {
            let keys = if key == "-" {
                stdin_keys(ctx)?
            } else {
                vec![key.clone()]
            };
            delete(ctx, &keys)
        }
    }
}

fn read_stdin() -> Result<String, Fatal> {
    let mut text = Vec::new();
    std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut text)
        .map_err(|e| fail(format!("read standard input: {e}")))?;
    Ok(String::from_utf8_lossy(&text).into_owned())
}

/// Keys from standard input: one per line, or with `-h`/`-b` the header and body lines of
/// a message (a folded header is one key with its newlines).
fn stdin_keys(ctx: &Ctx) -> Result<Vec<String>, Fatal> {
    let text = read_stdin()?;
    Ok(message_keys(&text, ctx.args.header, ctx.args.body))
}

pub(crate) fn message_keys(text: &str, header: bool, body: bool) -> Vec<String> {
    let lines: Vec<&str> = text
        .lines()
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    if !header && !body {
        return lines.iter().map(|l| l.to_string()).collect();
    }
    let split = lines
        .iter()
        .position(|l| l.is_empty())
        .unwrap_or(lines.len());
    let mut keys: Vec<String> = Vec::new();
    if header {
        for line in &lines[..split] {
            match keys.last_mut() {
                Some(last) if line.starts_with([' ', '\t']) => {
                    last.push('\n');
                    last.push_str(line);
                }
                _ => keys.push(line.to_string()),
            }
        }
    }
    if body {
        // The empty line that ends the headers is the first body line, as in Postfix.
        keys.extend(lines.iter().skip(split).map(|l| l.to_string()));
    }
    keys
}

fn open_map(ctx: &Ctx, map: &str) -> Result<BoxMap, Fatal> {
    let (kind, name) = ctx.split(map);
    let opts = OpenOptions {
        fold_case: ctx.args.fold,
        rhs_is_file: ctx.args.base64,
        ..OpenOptions::default()
    };
    let m = postern_table::open(&format!("{kind}:{name}"), &opts).map_err(table_fatal)?;
    for w in m.warnings() {
        ctx.warn(&postern_log::plain(&w.to_string()));
    }
    Ok(m)
}

/// A found value as printed: `-F` decodes base64. An empty value is printed (and found)
/// with Postfix's two warnings.
fn shown(ctx: &Ctx, map: &BoxMap, key: &str, value: String) -> Option<String> {
    if value.is_empty() {
        ctx.warn(&format!(
            "table {}: key {key}: empty string result is not allowed",
            map.name()
        ));
        ctx.warn(&format!(
            "table {} should return NO RESULT in case of NOT FOUND",
            map.name()
        ));
        return Some(value);
    }
    if !ctx.args.base64 {
        return Some(value);
    }
    match base64::engine::general_purpose::STANDARD.decode(value.as_bytes()) {
        Ok(bytes) => Some(String::from_utf8_lossy(&bytes).into_owned()),
        Err(e) => {
            ctx.warn(&format!(
                "table {}: key {key}: malformed BASE64 value: {e}",
                map.name()
            ));
            None
        }
    }
}

fn lookup(ctx: &Ctx, map: &BoxMap, key: &str) -> Result<Option<String>, Fatal> {
    let found = map.lookup(key).map_err(|e| match e {
        e @ postern_table::TableError::Lookup { .. } => table_fatal(e),
        e => fail(format!("table {}: query error: {e}", map.name())),
    })?;
    Ok(found.and_then(|v| shown(ctx, map, key, v)))
}

fn query(ctx: &Ctx, key: &str, out: &mut impl Write) -> Result<u8, Fatal> {
    for spec in &ctx.args.maps {
        let map = open_map(ctx, spec)?;
        if let Some(v) = lookup(ctx, &map, key)? {
            writeln!(out, "{v}").map_err(write_err)?;
            return Ok(0);
        }
    }
    Ok(1)
}

fn separator(ctx: &Ctx) -> &'static str {
    match ctx.args.prog {
        Prog::Postmap => "\t",
        Prog::Postalias => ":\t",
    }
}

fn queries(ctx: &Ctx, keys: &[String], out: &mut impl Write) -> Result<u8, Fatal> {
    // Every table is opened before the first lookup, as Postfix does.
    let maps = ctx
        .args
        .maps
        .iter()
        .map(|spec| open_map(ctx, spec))
        .collect::<Result<Vec<_>, _>>()?;
    let mut found = false;
    for key in keys {
        for map in &maps {
            if let Some(v) = lookup(ctx, map, key)? {
                writeln!(out, "{key}{}{v}", separator(ctx)).map_err(write_err)?;
                found = true;
                break;
            }
        }
    }
    Ok(if found { 0 } else { 1 })
}

fn indexed_kind(ctx: &Ctx, map: &str, op: &str) -> Result<(DbKind, String), Fatal> {
    let (kind, name) = ctx.split(map);
    if kind == "proxy" && op == "sequence" {
        return Err(fail("can't sequence maps via the proxy service"));
    }
    match DbKind::from_type(kind) {
        Some(k) => Ok((k, name.to_string())),
        None if op == "sequence" => Err(fail(format!(
            "table {kind}:{name}: sequence operation is not supported"
        ))),
        None => Err(fail(format!(
            "{kind}:{name} map requires O_RDONLY access mode"
        ))),
    }
}

/// `-s` of a table that is not an indexed file (texthash, inline, …): its own listing.
fn sequence_open(ctx: &Ctx, spec: &str, out: &mut impl Write) -> Result<u8, Fatal> {
    let map = open_map(ctx, spec)?;
    let records = match map.sequence() {
        Ok(Some(records)) => records,
        Ok(None) => {
            return Err(fail(format!(
                "table {}: sequence operation is not supported",
                map.name()
            )));
        }
        Err(postern_table::TableError::Lookup { table, message }) => {
            return Err(fail(format!("table {table}: sequence error: {message}")));
        }
        Err(e) => return Err(table_fatal(e)),
    };
    for (key, value) in records {
        let value = if ctx.args.base64 {
            match base64::engine::general_purpose::STANDARD.decode(value.as_bytes()) {
                Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                Err(_) => value,
            }
        } else {
            value
        };
        writeln!(out, "{key}{}{value}", separator(ctx)).map_err(write_err)?;
    }
    Ok(0)
}

fn sequence(ctx: &Ctx, out: &mut impl Write) -> Result<u8, Fatal> {
    let Some(map) = ctx.args.maps.first() else {
        return Ok(1);
    };
    let (kind, name) = ctx.split(map);
    if kind != "proxy" && DbKind::from_type(kind).is_none() {
        return sequence_open(ctx, &format!("{kind}:{name}"), out);
    }
    let (kind, name) = indexed_kind(ctx, map, "sequence")?;
    let contents = Contents::load(kind, &name).map_err(table_fatal)?;
    for (k, v) in contents.iter() {
        let key = String::from_utf8_lossy(k);
        let mut value = String::from_utf8_lossy(v).into_owned();
        if ctx.args.base64
            && let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(v)
        {
            value = String::from_utf8_lossy(&bytes).into_owned();
        }
        writeln!(out, "{key}{}{value}", separator(ctx)).map_err(write_err)?;
    }
    Ok(0)
}

fn delete(ctx: &Ctx, keys: &[String]) -> Result<u8, Fatal> {
    let mut found = false;
    for map in &ctx.args.maps {
        let (kind, name) = indexed_kind(ctx, map, "delete")?;
        let opts = WriteOptions {
            nul: ctx.args.nul.unwrap_or(kind.default_nul()),
            mode: 0o644,
        };
        indexed::update(kind, &name, false, &opts, |c| {
            let mut any = false;
            for key in keys {
                any |= c.remove(fold_key(ctx, key).as_bytes());
            }
            found |= any;
            Ok::<bool, Fatal>(any)
        })
        .map_err(table_fatal)??;
    }
    Ok(if found { 0 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::message_keys;

    #[test]
    fn message_key_modes() {
        let m = "Subject: hi\n there\nFrom: a\n\nbody1\nbody2\n";
        assert_eq!(
            message_keys(m, true, false),
            vec!["Subject: hi\n there", "From: a"]
        );
        assert_eq!(message_keys(m, false, true), vec!["", "body1", "body2"]);
        assert_eq!(message_keys("a\nb\n", false, false), vec!["a", "b"]);
    }
}
