//! Raw arguments → [`Args`] (pure).

use std::ffi::OsString;
use std::path::PathBuf;

/// A queue operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    /// `-d`: delete.
    Delete,
    /// `-h`: put on hold.
    Hold,
    /// `-H`: release from hold.
    Release,
    /// `-r`: requeue (back through pickup and cleanup).
    Requeue,
}

impl Action {
    /// The queues searched when no queue name is given (as Postfix).
    pub fn default_queues(self) -> &'static [&'static str] {
        match self {
            Action::Delete | Action::Requeue => &["hold", "incoming", "active", "deferred"],
            Action::Hold => &["incoming", "active", "deferred"],
            Action::Release => &["hold"],
        }
    }

    /// Per-message log text.
    pub fn done_text(self) -> &'static str {
        match self {
            Action::Delete => "removed",
            Action::Hold => "placed on hold",
            Action::Release => "released from hold",
            Action::Requeue => "requeued",
        }
    }

    /// Summary text (`Deleted: 3 messages`).
    pub fn summary(self, n: usize) -> String {
        let what = match self {
            Action::Delete => "Deleted",
            Action::Hold => "Placed on hold",
            Action::Release => "Released from hold",
            Action::Requeue => "Requeued",
        };
        format!("{what}: {n} message{}", if n == 1 { "" } else { "s" })
    }
}

/// Which messages an operation applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// One queue ID (validated later, with a warning, as Postfix does).
    Id(String),
    /// `ALL` (upper case only).
    All,
    /// `-`: queue IDs from standard input, one per line.
    Stdin,
}

/// Validated command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Args {
    /// Operations in command-line order.
    pub ops: Vec<(Action, Target)>,
    /// `-p`: purge temporary files.
    pub purge: bool,
    /// Queue names restricting the operations.
    pub queues: Vec<String>,
    /// `-c DIR`.
    pub config: Option<PathBuf>,
    /// `-v` count.
    pub verbose: u32,
}

/// Queue names an operation may be restricted to.
pub const QUEUE_NAMES: [&str; 5] = ["maildrop", "incoming", "active", "deferred", "hold"];

/// A usage error (exit status 64).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

fn target(v: &str) -> Target {
    match v {
        "ALL" => Target::All,
        "-" => Target::Stdin,
        id => Target::Id(id.to_string()),
    }
}

/// Parses `args` (`args[0]` is the program name). Values may be attached
/// (`-dABC`) or the next argument; queue names follow the options.
pub fn parse(args: &[OsString]) -> Result<Args, UsageError> {
    let mut out = Args::default();
    let mut it = args.iter().skip(1);
    let mut stdin_used = false;
    while let Some(a) = it.next() {
        let a = a
            .to_str()
            .ok_or_else(|| UsageError("argument is not UTF-8".into()))?;
        let Some(rest) = a.strip_prefix('-').filter(|r| !r.is_empty()) else {
            if !QUEUE_NAMES.contains(&a) {
                return Err(UsageError(format!("invalid directory name: {a}")));
            }
            out.queues.push(a.to_string());
            continue;
        };
        for (i, c) in rest.char_indices() {
            let action = match c {
                'd' => Action::Delete,
                'h' => Action::Hold,
                'H' => Action::Release,
                'r' => Action::Requeue,
                'c' => {
                    let v = value(&rest[i + 1..], &mut it, c)?;
                    out.config = Some(PathBuf::from(v));
                    break;
                }
                'p' => {
                    out.purge = true;
                    continue;
                }
                'v' => {
                    out.verbose += 1;
                    continue;
                }
                's' | 'S' => continue, // structure check: nothing to repair in this layout
                'e' | 'f' => return Err(UsageError(format!("-{c} is not supported yet"))),
                _ => return Err(UsageError(format!("invalid option -- '{c}'"))),
            };
            let t = target(&value(&rest[i + 1..], &mut it, c)?);
            if t == Target::Stdin {
                if stdin_used {
                    return Err(UsageError(
                        "only one option may read queue IDs from standard input".into(),
                    ));
                }
                stdin_used = true;
            }
            out.ops.push((action, t));
            break;
        }
    }
    Ok(out)
}

fn value<'a>(
    attached: &str,
    it: &mut impl Iterator<Item = &'a OsString>,
    c: char,
) -> Result<String, UsageError> {
    if !attached.is_empty() {
        return Ok(attached.to_string());
    }
    it.next()
        .and_then(|v| v.to_str())
        .map(str::to_string)
        .ok_or_else(|| UsageError(format!("option requires an argument -- '{c}'")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: &[&str]) -> Result<Args, UsageError> {
        let v: Vec<OsString> = v.iter().map(OsString::from).collect();
        parse(&v)
    }

    #[test]
    fn operations() {
        let a = p(&[
            "postsuper",
            "-d",
            "ABC",
            "-dDEF",
            "-h",
            "ALL",
            "-H",
            "-",
            "deferred",
        ])
        .unwrap();
        assert_eq!(
            a.ops,
            vec![
                (Action::Delete, Target::Id("ABC".into())),
                (Action::Delete, Target::Id("DEF".into())),
                (Action::Hold, Target::All),
                (Action::Release, Target::Stdin),
            ]
        );
        assert_eq!(a.queues, ["deferred"]);
        let b = p(&["postsuper", "-c", "/x", "-vp", "-r", "ALL"]).unwrap();
        assert!(b.purge);
        assert_eq!(b.verbose, 1);
        assert_eq!(b.config, Some(PathBuf::from("/x")));
        assert_eq!(
            p(&["postsuper", "-d", "all"]).unwrap().ops[0].1,
            Target::Id("all".into())
        );
        assert_eq!(p(&["postsuper"]).unwrap(), Args::default());
    }

    #[test]
    fn errors() {
        assert!(p(&["postsuper", "-d"]).is_err());
        assert!(
            p(&["postsuper", "-d", "ALL", "bogus"])
                .unwrap_err()
                .0
                .contains("invalid directory name: bogus")
        );
        assert!(p(&["postsuper", "-x"]).is_err());
        assert!(p(&["postsuper", "-e", "ABC"]).is_err());
        assert!(p(&["postsuper", "-d", "-", "-h", "-"]).is_err());
    }

    #[test]
    fn texts() {
        assert_eq!(Action::Delete.summary(1), "Deleted: 1 message");
        assert_eq!(Action::Hold.summary(0), "Placed on hold: 0 messages");
        assert_eq!(Action::Release.summary(4), "Released from hold: 4 messages");
        assert_eq!(Action::Requeue.summary(2), "Requeued: 2 messages");
        assert_eq!(
            Action::Hold.default_queues(),
            ["incoming", "active", "deferred"]
        );
    }
}
