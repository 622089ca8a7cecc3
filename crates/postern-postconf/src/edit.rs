//! `postconf -e` / `-X`: edit main.cf text in place, keeping comments and layout.
//!
//! Every logical line (a line plus its whitespace-led continuation lines) that sets an edited
//! name is replaced by one `name = value` line (`-e`) or removed (`-X`); names not found are
//! appended (`-e`). Comment and blank lines are kept, including those between a line and its
//! continuations. The pure text transformation is [`edit_text`]; [`write_atomically`] puts the
//! result in place through a temporary file in the same directory, fsync and rename, so a crash
//! leaves either the old or the new file.

use std::fs;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

/// Applies edits to main.cf text. `set`: (name, value) pairs for `-e`; `remove`: names for `-X`.
pub fn edit_text(text: &str, set: &[(String, String)], remove: &[String]) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    let mut found = vec![false; set.len()];
    let mut skipping = false;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            out.push_str(line);
            out.push('\n');
            continue;
        }
        if line.starts_with(|c: char| c.is_whitespace()) {
            if !skipping {
                out.push_str(line);
                out.push('\n');
            }
            continue;
        }
        skipping = false;
        let name = trimmed
            .split(|c: char| c == '=' || c.is_whitespace())
            .next()
            .unwrap_or("");
        if let Some(i) = set.iter().position(|(n, _)| n == name) {
            found[i] = true;
            out.push_str(&format!("{} = {}\n", set[i].0, set[i].1));
            skipping = true;
        } else if remove.iter().any(|n| n == name) {
            skipping = true;
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    for ((name, value), done) in set.iter().zip(found) {
        if !done {
            out.push_str(&format!("{name} = {value}\n"));
        }
    }
    out
}

/// Replaces `path` with `contents`: temp file in the same directory, fsync, rename, then fsync
/// of the directory. The original file's permissions are kept.
pub fn write_atomically(path: &Path, contents: &str) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.postconf.{}", std::process::id()));
    let result = (|| -> Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .with_context(|| format!("create {}", tmp.display()))?;
        f.write_all(contents.as_bytes())
            .with_context(|| format!("write {}", tmp.display()))?;
        if let Ok(meta) = fs::metadata(path) {
            f.set_permissions(meta.permissions())
                .with_context(|| format!("chmod {}", tmp.display()))?;
        }
        f.sync_all()
            .with_context(|| format!("fsync {}", tmp.display()))?;
        fs::rename(&tmp, path)
            .with_context(|| format!("rename {} to {}", tmp.display(), path.display()))?;
        let d = fs::File::open(dir).with_context(|| format!("open {}", dir.display()))?;
        d.sync_all()
            .with_context(|| format!("fsync {}", dir.display()))
    })();
    if result.is_err() {
        // Best effort: the temp file may not exist (create failed) or may already be renamed.
        let _removed = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_every_occurrence_and_appends() {
        let t = "# c1\nfoo = 1\n  cont\n# c2\nbar = 2\nfoo = 3\n";
        let set = [
            ("foo".to_string(), "new  val".to_string()),
            ("baz".to_string(), "7".to_string()),
        ];
        assert_eq!(
            edit_text(t, &set, &[]),
            "# c1\nfoo = new  val\n# c2\nbar = 2\nfoo = new  val\nbaz = 7\n"
        );
        assert_eq!(
            edit_text(t, &[], &["foo".to_string()]),
            "# c1\n# c2\nbar = 2\n"
        );
        assert_eq!(edit_text("", &set[1..], &[]), "baz = 7\n");
        assert_eq!(edit_text("a=1\nfoo\n", &[], &["foo".to_string()]), "a=1\n");
    }
}
