//! Building and incrementally updating tables from source lines.

use crate::args::Prog;
use crate::{Ctx, Fatal, fail, table_fatal};
use postern_table::indexed::{self, Contents, DbKind, Dup, Inserted, WriteOptions};
use std::io::Read;
use std::os::unix::fs::MetadataExt;

/// The name Postfix uses for a table in its `duplicate entry` warnings.
fn dup_label(kind: DbKind, name: &str) -> String {
    match kind {
        DbKind::Hash | DbKind::Btree => format!("{name}.db"),
        DbKind::Cdb => name.to_string(),
        DbKind::Lmdb => format!("lmdb:{name}"),
    }
}

/// Folds a key as the table will on lookup.
pub(crate) fn fold_key(ctx: &Ctx, key: &str) -> String {
    postern_table::fold(key, ctx.args.fold).into_owned()
}

/// Adds the logical `lines` of source `label` to `contents`. A line that is not an entry,
/// or (`-F`) names a file that cannot be read, is fatal when building (the old table stays);
/// with `-i` it is skipped with Postfix's warning, as Postfix does (`stdin, line N: …`).
pub(crate) fn add_lines(
    ctx: &Ctx,
    kind: DbKind,
    name: &str,
    label: &str,
    lines: &[(usize, String)],
    contents: &mut Contents,
) -> Result<(), Fatal> {
    let dup = ctx.args.dup;
    let lenient = ctx.args.incremental;
    for (lineno, text) in lines {
        let (key, value) = match ctx.args.prog {
            Prog::Postmap => {
                let (k, v) = match postern_table::parse_entry(text) {
                    Ok(kv) => kv,
                    Err(e) if lenient => {
                        let tail = match e {
                            postern_table::EntryError::Unbalanced(_) => " -- ignoring this line",
                            _ => "",
                        };
                        ctx.warn(&format!("{label}, line {lineno}: {e}{tail}"));
                        continue;
                    }
                    Err(e) => return Err(fail(format!("{label}, line {lineno}: {e}"))),
                };
                let v = if ctx.args.base64 {
                    match postern_table::file_value(v) {
                        Ok(v) => v,
                        Err(e) if lenient => {
                            ctx.warn(&format!("{label}, line {lineno}: {e}: skipping this entry"));
                            continue;
                        }
                        Err(e) => return Err(fail(format!("{label}, line {lineno}: {e}"))),
                    }
                } else {
                    v.to_string()
                };
                (k.to_string(), v)
            }
            Prog::Postalias => match postern_table::parse_alias_line(text) {
                Ok(Some(kv)) => kv,
                Ok(None) => continue,
                Err(e) => return Err(fail(format!("{label}, line {lineno}: {e}"))),
            },
        };
        let key = fold_key(ctx, &key);
        if contents.insert(key.as_bytes(), value.as_bytes(), dup) == Inserted::Kept
            && dup == Dup::Warn
        {
            ctx.warn(&format!(
                "{}: duplicate entry: \"{key}\"",
                dup_label(kind, name)
            ));
        }
    }
    if ctx.args.prog == Prog::Postalias {
        sentinels(ctx, contents);
    }
    Ok(())
}

/// postalias's `@:@` and NIS records.
fn sentinels(ctx: &Ctx, contents: &mut Contents) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    contents.insert(b"@", b"@", Dup::Replace);
    contents.insert(
        b"YP_LAST_MODIFIED",
        format!("{now:010}").as_bytes(),
        Dup::Replace,
    );
    contents.insert(b"YP_MASTER_NAME", ctx.hostname.as_bytes(), Dup::Replace);
}

fn kind_of(kind: &str) -> Result<DbKind, Fatal> {
    DbKind::from_type(kind).ok_or_else(|| {
        fail(format!(
            "unsupported dictionary type: {kind} does not support bulk-mode creation."
        ))
    })
}

/// Builds (or with `-i` updates) one table.
pub(crate) fn build(ctx: &Ctx, map: &str) -> Result<(), Fatal> {
    let (kind, name) = ctx.split(map);
    let kind = kind_of(kind)?;
    let mut opts = WriteOptions {
        nul: ctx.args.nul.unwrap_or(kind.default_nul()),
        mode: 0o644,
    };
    if ctx.args.incremental {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| fail(format!("read standard input: {e}")))?;
        let lines = postern_table::source_lines("stdin", &text).map_err(table_fatal)?;
        let explicit_nul = ctx.args.nul;
        return indexed::update(kind, name, true, &opts, |c| {
            if let Some(n) = explicit_nul {
                c.stored_nul = Some(n);
            }
            add_lines(ctx, kind, name, "stdin", &lines, c).map(|()| true)
        })
        .map_err(table_fatal)?;
    }
    let meta = std::fs::metadata(name).map_err(|e| fail(format!("open {name}: {e}")))?;
    if ctx.args.save_perm {
        opts.mode = 0o600 | (meta.mode() & 0o044);
    }
    if ctx.args.as_owner && postern_sys::privs::is_root() && meta.uid() != 0 {
        postern_sys::privs::drop_to(meta.uid(), meta.gid()).map_err(|e| fail(e.to_string()))?;
    }
    let lines = postern_table::read_source(name).map_err(|e| match e {
        postern_table::TableError::Open { path, source, .. } => {
            fail(format!("open {path}: {source}"))
        }
        other => crate::table_fatal(other),
    })?;
    let mut contents = Contents::new();
    add_lines(ctx, kind, name, name, &lines, &mut contents)?;
    indexed::write(kind, name, &contents, &opts).map_err(table_fatal)?;
    Ok(())
}
