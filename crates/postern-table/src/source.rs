//! Reading table sources: bounded file reads, Postfix "logical lines", and the warning
//! collector shared by every file-based table.

use crate::{MAX_LINE_BYTES, MAX_SOURCE_BYTES, TableError};
use std::io::Read;

/// One logical line: its text (continuations joined, trailing whitespace removed) and the
/// number of the physical line that starts it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Line {
    pub(crate) number: usize,
    pub(crate) text: String,
}

/// Reads a whole table source, bounded by [`MAX_SOURCE_BYTES`].
pub(crate) fn read_file(path: &str) -> Result<String, TableError> {
    let open_err = |source| TableError::Open {
        what: "database ",
        path: path.to_string(),
        source,
    };
    let file = std::fs::File::open(path).map_err(open_err)?;
    let mut bytes = Vec::new();
    file.take(MAX_SOURCE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(open_err)?;
    if bytes.len() as u64 > MAX_SOURCE_BYTES {
        return Err(TableError::TooLarge {
            path: path.to_string(),
            message: format!("file is larger than {MAX_SOURCE_BYTES} bytes"),
        });
    }
    // XXX(bytes): Postfix tables are byte strings; non-UTF-8 bytes become U+FFFD here.
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Splits `text` into logical lines as Postfix reads table sources: blank lines and lines
/// whose first non-blank character is `#` are skipped (without ending a logical line), and a
/// line starting with whitespace continues the previous logical line.
pub(crate) fn logical_lines(path: &str, text: &str) -> Result<Vec<Line>, TableError> {
    let mut out: Vec<Line> = Vec::new();
    let mut current: Option<Line> = None;
    for (index, raw) in text.split('\n').enumerate() {
        let trimmed = raw.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let continues = raw.starts_with(|c: char| c.is_ascii_whitespace());
        match current.as_mut() {
            Some(line) if continues => {
                if line.text.len() + raw.len() > MAX_LINE_BYTES {
                    return Err(too_long(path, line.number));
                }
                line.text.push_str(raw);
            }
            _ => {
                if raw.len() > MAX_LINE_BYTES {
                    return Err(too_long(path, index + 1));
                }
                out.extend(current.take());
                current = Some(Line {
                    number: index + 1,
                    text: trimmed.to_string(),
                });
            }
        }
    }
    out.extend(current);
    for line in &mut out {
        line.text.truncate(line.text.trim_end().len());
    }
    Ok(out)
}

/// The logical lines of a table source, as `(first line number, text)`: what postmap(1)
/// and postalias(1) read. `path` names the source in errors.
///
/// # Errors
/// [`TableError::TooLarge`] for a logical line over [`MAX_LINE_BYTES`].
pub fn source_lines(path: &str, text: &str) -> Result<Vec<(usize, String)>, TableError> {
    Ok(logical_lines(path, text)?
        .into_iter()
        .map(|l| (l.number, l.text))
        .collect())
}

/// Reads a table source file (bounded by [`MAX_SOURCE_BYTES`]) into its logical lines.
///
/// # Errors
/// [`TableError::Open`] or [`TableError::TooLarge`].
pub fn read_source(path: &str) -> Result<Vec<(usize, String)>, TableError> {
    source_lines(path, &read_file(path)?)
}

/// The system error text as strerror gives it (without std's ` (os error N)`).
pub(crate) fn strerror(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// Postfix's `-F` values: the files named in `list` (separated by commas or blanks), their
/// contents joined by newlines, base64-encoded. Each file is bounded by
/// [`MAX_SOURCE_BYTES`].
///
/// # Errors
/// Postfix's text for a file that cannot be read (`open NAME: No such file or directory`),
/// or `empty pathname list: >>LIST<<'`.
pub fn file_value(list: &str) -> Result<String, String> {
    use base64::Engine;
    let mut data = Vec::new();
    let mut any = false;
    for path in list
        .split([',', ' ', '\t', '\r', '\n'])
        .filter(|p| !p.is_empty())
    {
        if any {
            data.push(b'\n');
        }
        any = true;
        let file =
            std::fs::File::open(path).map_err(|e| format!("open {path}: {}", strerror(&e)))?;
        file.take(MAX_SOURCE_BYTES + 1)
            .read_to_end(&mut data)
            .map_err(|e| format!("read {path}: {}", strerror(&e)))?;
        if data.len() as u64 > MAX_SOURCE_BYTES {
            return Err(format!(
                "read {path}: file is larger than {MAX_SOURCE_BYTES} bytes"
            ));
        }
    }
    if !any {
        return Err(format!("empty pathname list: >>{list}<<'"));
    }
    Ok(base64::engine::general_purpose::STANDARD.encode(data))
}

fn too_long(path: &str, line: usize) -> TableError {
    TableError::TooLarge {
        path: path.to_string(),
        message: format!("line {line}: logical line longer than {MAX_LINE_BYTES} bytes"),
    }
}

/// Collects the per-line problems of one source: warnings in Postfix mode, the first one
/// as an error in strict mode.
#[derive(Debug)]
pub(crate) struct Warnings {
    file: String,
    strict: bool,
    pub(crate) list: Vec<TableError>,
}

impl Warnings {
    pub(crate) fn new(file: &str, strict: bool) -> Self {
        Warnings {
            file: file.to_string(),
            strict,
            list: Vec::new(),
        }
    }

    /// Records a problem at `line`; in strict mode returns it as an error instead.
    pub(crate) fn warn(
        &mut self,
        line: usize,
        message: impl Into<String>,
    ) -> Result<(), TableError> {
        self.push(TableError::syntax(&self.file, line, message))
    }

    /// Records a problem that Postfix reports without the file and line.
    pub(crate) fn note(&mut self, message: impl Into<String>) -> Result<(), TableError> {
        self.push(TableError::Note(message.into()))
    }

    fn push(&mut self, err: TableError) -> Result<(), TableError> {
        if self.strict {
            return Err(err);
        }
        self.list.push(err);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<(usize, String)> {
        logical_lines("t", text)
            .unwrap()
            .into_iter()
            .map(|l| (l.number, l.text))
            .collect()
    }

    #[test]
    fn comments_blank_and_continuations() {
        let got = lines("a b\n  c\n# x\n\n   # y\n\td\ne f  \n");
        assert_eq!(
            got,
            vec![(1, "a b  c\td".to_string()), (7, "e f".to_string())]
        );
    }

    #[test]
    fn leading_whitespace_without_a_line_starts_one() {
        assert_eq!(lines("  a b\n"), vec![(1, "a b".to_string())]);
    }

    #[test]
    fn missing_file_is_open_error() {
        let err = read_file("/nonexistent/postern-table").unwrap_err();
        assert!(matches!(err, TableError::Open { .. }));
        assert!(
            err.to_string()
                .starts_with("open database /nonexistent/postern-table: ")
        );
    }

    #[test]
    fn strict_warnings_fail() {
        let mut w = Warnings::new("f", true);
        let err = w.warn(3, "bad").unwrap_err();
        assert_eq!(err.to_string(), "f, line 3: bad");
    }
}
