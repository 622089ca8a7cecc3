//! The one error type of this crate.

use std::io;

/// Why a table could not be opened or could not answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TableError {
    /// A bad line in a table source; Display is Postfix's `FILE, line N: message`.
    #[error("{file}, line {line}: {message}")]
    Syntax {
        /// The source file (or the inline spec) the line came from.
        file: String,
        /// 1-based number of the line that starts the logical line.
        line: usize,
        /// What is wrong, in Postfix's words where Postfix has them.
        message: String,
    },
    /// A malformed `type:name` spec (bad braces, empty name, …). Display is the message
    /// alone: Postfix's text where Postfix has one, else `bad table spec "SPEC": …`.
    #[error("{message}")]
    Spec {
        /// The spec as given.
        spec: String,
        /// What is wrong.
        message: String,
    },
    /// A table type this build does not have.
    #[error("unsupported dictionary type: {0}")]
    UnsupportedType(String),
    /// A table file that could not be read. Display is Postfix's: `open database FILE: …`
    /// for indexed files and texthash, `open FILE: …` for pattern-table sources.
    #[error("open {what}{path}: {source}")]
    Open {
        /// `"database "` or `""`.
        what: &'static str,
        /// The file.
        path: String,
        /// The system error.
        #[source]
        source: io::Error,
    },
    /// A source file over [`crate::MAX_SOURCE_BYTES`] or a line over [`crate::MAX_LINE_BYTES`].
    #[error("{path}: {message}")]
    TooLarge {
        /// The file.
        path: String,
        /// Which limit.
        message: String,
    },
    /// A file that is not a table of the expected type (or a corrupt one).
    #[error("{path}: {message}")]
    Format {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// Writing a table file failed; Display names the operation and the file.
    #[error("{op} {path}: {source}")]
    Write {
        /// The file (or directory).
        path: String,
        /// The operation (`create`, `write`, `fsync`, `rename`, …).
        op: String,
        /// The system error.
        #[source]
        source: io::Error,
    },
    /// A warning that Postfix logs without a file and line (its `$name` parser's, e.g.
    /// `empty macro name: "TEXT"`); it is followed by a [`TableError::Syntax`] for the line.
    #[error("{0}")]
    Note(String),
    /// The lookup could not be answered now (e.g. `fail:`, a PCRE match limit): defer.
    #[error("table {table}: query error: {message}")]
    Lookup {
        /// The table spec.
        table: String,
        /// What failed.
        message: String,
    },
}

impl TableError {
    pub(crate) fn spec(spec: &str, message: impl Into<String>) -> Self {
        TableError::Spec {
            spec: spec.to_string(),
            message: format!("bad table spec \"{spec}\": {}", message.into()),
        }
    }

    /// A spec error whose whole text is `message` (Postfix's wording).
    pub(crate) fn bad_spec(spec: &str, message: impl Into<String>) -> Self {
        TableError::Spec {
            spec: spec.to_string(),
            message: message.into(),
        }
    }

    pub(crate) fn syntax(file: &str, line: usize, message: impl Into<String>) -> Self {
        TableError::Syntax {
            file: file.to_string(),
            line,
            message: message.into(),
        }
    }

    /// True for errors that mean "try again later" (lookup failures) rather than a
    /// configuration problem.
    pub fn is_temporary(&self) -> bool {
        matches!(self, TableError::Lookup { .. })
    }
}
