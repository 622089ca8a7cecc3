//! Raw arguments → [`LowArgs`]: Sendmail's flag soup, validated without I/O.
//!
//! Parsing follows glibc `getopt` as Postfix's sendmail gets it: flags may be
//! clustered (`-ti`), an option's value may be attached (`-fuser`) or the next
//! argument (`-f user`), options and recipients may be mixed (operands are
//! permuted to the end), and `--` ends the options. Flags that Sendmail has
//! and Postfix ignores are accepted and ignored, so that no existing caller
//! (cron, mutt, s-nail, git send-email, PHP `mail()`) breaks.

use postern_ipc::proto::notify;
use std::ffi::OsString;
use std::path::PathBuf;

/// What the invocation asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// `-bm` (default): read a message on stdin and queue it.
    Submit,
    /// `-bp`, or invoked as `mailq`: list the queue (postqueue -p).
    ListQueue,
    /// `-bi`, `-I`, or invoked as `newaliases`.
    NewAliases,
    /// `-q`: flush the queue (postqueue -f).
    Flush,
    /// `-qIid`: flush one message (postqueue -i id).
    FlushId(String),
    /// Accepted and ignored (`-qinterval`, `-bh`, `-bH`): do nothing, exit 0.
    Nothing,
    /// `-bs`: an SMTP session on standard input and output (smtpd, stand-alone).
    SmtpStdio,
    /// Recognised but not supported by this build; the text names the mode.
    Unsupported(String),
}

/// `-R`: how much of the message a bounce returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ret {
    /// `-R full`.
    Full,
    /// `-R hdrs`.
    Hdrs,
}

impl Ret {
    /// The value of the `ret` attribute.
    pub fn as_attr(self) -> &'static str {
        match self {
            Ret::Full => "FULL",
            Ret::Hdrs => "HDRS",
        }
    }
}

/// Validated command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LowArgs {
    /// The program name used in messages (`sendmail`, `mailq`, `newaliases`).
    pub prog: String,
    /// Mode; the last `-b` wins.
    pub mode: Mode,
    /// `-t`: cleanup extracts recipients from the headers (added to the command line's).
    pub extract: bool,
    /// Without `-i`/`-oi`: a line with a single `.` ends the message.
    pub dot_ends: bool,
    /// `-f`/`-r`, already in internal form (`""` = null sender).
    pub sender: Option<String>,
    /// `-F`.
    pub fullname: Option<String>,
    /// `-N`: DSN NOTIFY bits.
    pub notify: Option<u8>,
    /// `-R`.
    pub ret: Option<Ret>,
    /// `-V`.
    pub envid: Option<String>,
    /// `-C`: main.cf's directory or main.cf itself (resolved by HiArgs).
    pub config: Option<PathBuf>,
    /// `-oA`: alias database for newaliases.
    pub alias_database: Option<String>,
    /// `-O smtputf8` was given.
    pub smtputf8: bool,
    /// `-v` count.
    pub verbose: u32,
    /// Command-line recipients in internal form.
    pub recipients: Vec<String>,
}

/// A command-line error (exit status `EX_USAGE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "usage error: {}", self.0)
    }
}

fn err<T>(s: impl Into<String>) -> Result<T, UsageError> {
    Err(UsageError(s.into()))
}

/// The base name of `args[0]`, which selects the default mode.
pub fn program_name(arg0: Option<&OsString>) -> String {
    let name = arg0
        .map(|a| a.to_string_lossy().into_owned())
        .unwrap_or_default();
    let base = name.rsplit('/').next().unwrap_or("").to_string();
    match base.as_str() {
        "mailq" | "newaliases" => base,
        _ => "sendmail".to_string(),
    }
}

/// Rejects control characters, which would forge log lines or headers.
fn clean(what: &str, v: &str) -> Result<String, UsageError> {
    if v.chars().any(char::is_control) {
        return err(format!("{what} contains control characters"));
    }
    Ok(v.to_string())
}

/// `-f`/`-r` value → internal form; `<>` and `""` are the null sender.
pub fn parse_sender(v: &str) -> Result<String, UsageError> {
    let v = clean("sender address", v)?;
    Ok(postern_mail::address::parse_address_list(&v)
        .into_iter()
        .next()
        .unwrap_or_default())
}

/// `-N` value: `never` or a list of `success`, `delay`, `failure`.
pub fn parse_notify(v: &str) -> Result<u8, UsageError> {
    let mut bits = 0u8;
    for word in v.split([',', ' ', '\t']).filter(|w| !w.is_empty()) {
        bits |= match word.to_ascii_lowercase().as_str() {
            "never" => notify::NEVER,
            "success" => notify::SUCCESS,
            "delay" => notify::DELAY,
            "failure" => notify::FAILURE,
            _ => return err(format!("bad -N option value: {v}")),
        };
    }
    if bits == 0 || (bits & notify::NEVER != 0 && bits != notify::NEVER) {
        return err(format!("bad -N option value: {v}"));
    }
    Ok(bits)
}

fn parse_mode(v: &str) -> Result<Mode, UsageError> {
    Ok(match v {
        "m" => Mode::Submit,
        "p" => Mode::ListQueue,
        "i" => Mode::NewAliases,
        "h" | "H" => Mode::Nothing,
        "s" => Mode::SmtpStdio,
        "d" | "D" | "l" | "v" => Mode::Unsupported(format!("-b{v}")),
        _ => return err(format!("unsupported option -b{v}")),
    })
}

fn parse_queue_run(v: &str) -> Result<Mode, UsageError> {
    match v.chars().next() {
        None => Ok(Mode::Flush),
        Some('I') if postern_queue::valid_id(&v[1..]) => Ok(Mode::FlushId(v[1..].to_string())),
        Some('I') => err(format!("bad queue ID in -q{v}")),
        Some('R') | Some('S') => Ok(Mode::Unsupported(format!("-q{}", &v[..1]))),
        Some(c) if c.is_ascii_digit() => Ok(Mode::Nothing), // -q1h: an interval, ignored
        Some(_) => err(format!("unsupported option -q{v}")),
    }
}

/// Options that take a value (attached or the next argument).
const WITH_VALUE: &str = "ABCFLNORVXbfhopqr";

impl LowArgs {
    fn new(prog: String) -> LowArgs {
        let mode = match prog.as_str() {
            "mailq" => Mode::ListQueue,
            "newaliases" => Mode::NewAliases,
            _ => Mode::Submit,
        };
        LowArgs {
            prog,
            mode,
            extract: false,
            dot_ends: true,
            sender: None,
            fullname: None,
            notify: None,
            ret: None,
            envid: None,
            config: None,
            alias_database: None,
            smtputf8: false,
            verbose: 0,
            recipients: Vec::new(),
        }
    }

    /// Parses `args` (`args[0]` is the program name).
    pub fn parse(args: &[OsString]) -> Result<LowArgs, UsageError> {
        let mut low = LowArgs::new(program_name(args.first()));
        let mut strs = Vec::with_capacity(args.len());
        for a in args.iter().skip(1) {
            match a.to_str() {
                Some(s) => strs.push(s),
                None => return err(format!("argument is not UTF-8: {}", a.to_string_lossy())),
            }
        }
        let mut operands = Vec::new();
        let mut it = strs.into_iter();
        while let Some(arg) = it.next() {
            if arg == "--" {
                operands.extend(it.by_ref());
                break;
            }
            let Some(flags) = arg.strip_prefix('-').filter(|f| !f.is_empty()) else {
                operands.push(arg);
                continue;
            };
            low.cluster(flags, &mut it)?;
        }
        for op in operands {
            let op = clean("recipient address", op)?;
            low.recipients
                .extend(postern_mail::address::parse_address_list(&op));
        }
        Ok(low)
    }

    /// One `-xyz` argument: flags, then possibly one option with a value.
    fn cluster<'a>(
        &mut self,
        flags: &'a str,
        rest: &mut impl Iterator<Item = &'a str>,
    ) -> Result<(), UsageError> {
        for (i, c) in flags.char_indices() {
            if c == 'q' {
                // -q takes only an attached value: "-q" alone is a flush.
                self.mode = parse_queue_run(&flags[i + 1..])?;
                return Ok(());
            }
            if c == 'd' {
                return Ok(()); // -d<debug spec>: ignored with its attached value
            }
            if WITH_VALUE.contains(c) {
                let attached = &flags[i + c.len_utf8()..];
                let value = if attached.is_empty() {
                    match rest.next() {
                        Some(v) => v,
                        None => return err(format!("option requires an argument -- '{c}'")),
                    }
                } else {
                    attached
                };
                return self.option(c, value);
            }
            self.flag(c)?;
        }
        Ok(())
    }

    fn flag(&mut self, c: char) -> Result<(), UsageError> {
        match c {
            't' => self.extract = true,
            'i' => self.dot_ends = false,
            'I' => self.mode = Mode::NewAliases,
            'v' => self.verbose += 1,
            'G' | 'U' | 'n' | 'm' | 'x' => {} // accepted, ignored (as Postfix)
            _ => return err(format!("invalid option -- '{c}'")),
        }
        Ok(())
    }

    fn option(&mut self, c: char, v: &str) -> Result<(), UsageError> {
        match c {
            'f' | 'r' => self.sender = Some(parse_sender(v)?),
            'F' => self.fullname = Some(clean("full name", v)?),
            'N' => self.notify = Some(parse_notify(v)?),
            'R' => {
                self.ret = Some(match v.to_ascii_lowercase().as_str() {
                    "full" => Ret::Full,
                    "hdrs" => Ret::Hdrs,
                    _ => return err(format!("bad -R option value: {v}")),
                })
            }
            'V' => self.envid = Some(clean("envelope ID", v)?),
            'B' => {
                if !v.eq_ignore_ascii_case("7bit") && !v.eq_ignore_ascii_case("8bitmime") {
                    return err(format!("-B option needs 8BITMIME or 7BIT, not {v}"));
                }
            }
            'C' => self.config = Some(PathBuf::from(v)),
            'b' => self.mode = parse_mode(v)?,
            'o' => self.sendmail_option(v)?,
            'O' => {
                if v.eq_ignore_ascii_case("smtputf8")
                    || v.to_ascii_lowercase().starts_with("smtputf8=")
                {
                    self.smtputf8 = true;
                }
            }
            'A' | 'L' | 'X' => {} // -Am/-Ac, -L label, -X logfile: ignored
            'h' => {
                if v.parse::<u32>().is_err() {
                    return err(format!("bad hop count: -h {v}"));
                }
            }
            'p' => {} // -p protocol: ignored
            _ => return err(format!("invalid option -- '{c}'")),
        }
        Ok(())
    }

    /// `-oX...`: `-oi` matters, `-oAfile` names the alias database, the rest is ignored.
    fn sendmail_option(&mut self, v: &str) -> Result<(), UsageError> {
        if v == "i" {
            self.dot_ends = false;
        } else if let Some(db) = v.strip_prefix('A') {
            self.alias_database = Some(clean("alias database", db)?);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(argv: &[&str]) -> Result<LowArgs, UsageError> {
        let v: Vec<OsString> = argv.iter().map(OsString::from).collect();
        LowArgs::parse(&v)
    }

    fn ok(argv: &[&str]) -> LowArgs {
        parse(argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"))
    }

    #[test]
    fn s_nail() {
        let a = ok(&["sendmail", "-i", "-f", "a@test.example", "--", "b@x", "c@x"]);
        assert!(!a.dot_ends && !a.extract);
        assert_eq!(a.sender.as_deref(), Some("a@test.example"));
        assert_eq!(a.recipients, ["b@x", "c@x"]);
        assert_eq!(a.mode, Mode::Submit);
    }

    #[test]
    fn mutt() {
        let a = ok(&["/usr/sbin/sendmail", "-oem", "-oi", "--", "b@x"]);
        assert!(!a.dot_ends);
        assert_eq!(a.recipients, ["b@x"]);
        assert_eq!(a.prog, "sendmail");
    }

    #[test]
    fn git_send_email() {
        let a = ok(&[
            "sendmail",
            "-i",
            "-f",
            "x",
            "u@example.org",
            "v@example.org",
        ]);
        assert_eq!(a.sender.as_deref(), Some("x"));
        assert_eq!(a.recipients.len(), 2);
    }

    #[test]
    fn php_mail() {
        let a = ok(&["sendmail", "-t", "-i"]);
        assert!(a.extract && !a.dot_ends && a.recipients.is_empty());
        let b = ok(&["sendmail", "-ti"]);
        assert_eq!(a, b);
    }

    #[test]
    fn cron() {
        let a = ok(&[
            "sendmail",
            "-FCronDaemon",
            "-i",
            "-B8BITMIME",
            "-oem",
            "user",
        ]);
        assert_eq!(a.fullname.as_deref(), Some("CronDaemon"));
        assert_eq!(a.recipients, ["user"]);
    }

    #[test]
    fn sender_forms() {
        assert_eq!(ok(&["s", "-f", "<>", "u"]).sender.as_deref(), Some(""));
        assert_eq!(ok(&["s", "-f", "", "u"]).sender.as_deref(), Some(""));
        assert_eq!(ok(&["s", "-f<a@b>", "u"]).sender.as_deref(), Some("a@b"));
        assert_eq!(ok(&["s", "-r", "x@y", "u"]).sender.as_deref(), Some("x@y"));
        assert_eq!(ok(&["s", "-rx@y", "u"]).sender.as_deref(), Some("x@y"));
        assert_eq!(
            ok(&["s", "-f", "Joe <j@x>", "u"]).sender.as_deref(),
            Some("j@x")
        );
        assert!(parse(&["s", "-f", "a\n@b", "u"]).is_err());
        assert!(parse(&["s", "-f"]).is_err());
    }

    #[test]
    fn options_after_operands_are_permuted() {
        let a = ok(&["s", "u@x", "-f", "me@x", "v@x"]);
        assert_eq!(a.sender.as_deref(), Some("me@x"));
        assert_eq!(a.recipients, ["u@x", "v@x"]);
        let b = ok(&["s", "--", "-notanoption@x"]);
        assert_eq!(b.recipients, ["-notanoption@x"]);
    }

    #[test]
    fn recipient_lists_are_split() {
        let a = ok(&["s", "a@x, b@x", "Name <c@x>"]);
        assert_eq!(a.recipients, ["a@x", "b@x", "c@x"]);
    }

    #[test]
    fn dsn_options() {
        let a = ok(&["s", "-N", "success,delay", "-R", "hdrs", "-V", "E1", "u"]);
        assert_eq!(a.notify, Some(notify::SUCCESS | notify::DELAY));
        assert_eq!(a.ret, Some(Ret::Hdrs));
        assert_eq!(a.envid.as_deref(), Some("E1"));
        assert_eq!(ok(&["s", "-Nnever", "u"]).notify, Some(notify::NEVER));
        assert_eq!(
            ok(&["s", "-N", "FAILURE, delay", "u"]).notify,
            Some(notify::FAILURE | notify::DELAY)
        );
        assert_eq!(ok(&["s", "-RFULL", "u"]).ret, Some(Ret::Full));
        assert!(parse(&["s", "-N", "never,success", "u"]).is_err());
        assert!(parse(&["s", "-N", "sometimes", "u"]).is_err());
        assert!(parse(&["s", "-N", "", "u"]).is_err());
        assert!(parse(&["s", "-R", "body", "u"]).is_err());
    }

    #[test]
    fn body_type() {
        ok(&["s", "-B", "7bit", "u"]);
        ok(&["s", "-B8BITMIME", "u"]);
        assert!(parse(&["s", "-B", "binarymime", "u"]).is_err());
    }

    #[test]
    fn modes() {
        assert_eq!(ok(&["s", "-bm", "u"]).mode, Mode::Submit);
        assert_eq!(ok(&["s", "-bp"]).mode, Mode::ListQueue);
        assert_eq!(ok(&["s", "-bi"]).mode, Mode::NewAliases);
        assert_eq!(ok(&["s", "-I"]).mode, Mode::NewAliases);
        assert_eq!(ok(&["s", "-b", "p"]).mode, Mode::ListQueue);
        assert_eq!(ok(&["s", "-bh"]).mode, Mode::Nothing);
        assert_eq!(ok(&["s", "-bs"]).mode, Mode::SmtpStdio);
        for m in ["-bd", "-bD", "-bv", "-bl"] {
            assert_eq!(ok(&["s", m]).mode, Mode::Unsupported(m.to_string()));
        }
        assert!(parse(&["s", "-bz"]).is_err());
        assert_eq!(ok(&["s", "-q"]).mode, Mode::Flush);
        assert_eq!(ok(&["s", "-q1h"]).mode, Mode::Nothing);
        assert_eq!(ok(&["s", "-qIABC123"]).mode, Mode::FlushId("ABC123".into()));
        assert!(parse(&["s", "-qI../x"]).is_err());
        assert_eq!(
            ok(&["s", "-qRexample.com"]).mode,
            Mode::Unsupported("-qR".into())
        );
        assert_eq!(
            ok(&["s", "-qSexample.com"]).mode,
            Mode::Unsupported("-qS".into())
        );
        assert!(parse(&["s", "-qZ"]).is_err());
    }

    #[test]
    fn argv0_selects_mode() {
        assert_eq!(ok(&["/usr/bin/mailq"]).mode, Mode::ListQueue);
        assert_eq!(ok(&["/usr/bin/mailq"]).prog, "mailq");
        assert_eq!(ok(&["newaliases"]).mode, Mode::NewAliases);
        assert_eq!(ok(&["postern-sendmail"]).prog, "sendmail");
    }

    #[test]
    fn ignored_flags_are_accepted() {
        let a = ok(&[
            "s",
            "-oem",
            "-oee",
            "-oep",
            "-oeq",
            "-oew",
            "-om",
            "-o7",
            "-oQ/tmp",
            "-v",
            "-v",
            "-h",
            "3",
            "-L",
            "lbl",
            "-G",
            "-U",
            "-n",
            "-m",
            "-x",
            "-X",
            "/tmp/log",
            "-d0.1",
            "-Am",
            "-Ac",
            "-O",
            "DeliveryMode=b",
            "-O",
            "smtputf8",
            "u",
        ]);
        assert_eq!(a.recipients, ["u"]);
        assert!(a.dot_ends && a.smtputf8);
        assert_eq!(a.verbose, 2);
        assert!(parse(&["s", "-h", "many"]).is_err());
    }

    #[test]
    fn config_and_aliases() {
        let a = ok(&["s", "-C", "/etc/x/main.cf", "-oA/etc/aliases2", "-bi"]);
        assert_eq!(a.config, Some(PathBuf::from("/etc/x/main.cf")));
        assert_eq!(a.alias_database.as_deref(), Some("/etc/aliases2"));
        assert_eq!(
            ok(&["s", "-C/etc/x", "u"]).config,
            Some(PathBuf::from("/etc/x"))
        );
    }

    #[test]
    fn bad_options() {
        assert_eq!(
            parse(&["s", "-c", "/etc/x", "u"]).unwrap_err().to_string(),
            "usage error: invalid option -- 'c'"
        );
        assert!(parse(&["s", "-Z"]).is_err());
        assert!(parse(&["s", "-tZ"]).is_err());
        assert!(parse(&["s", "-F"]).is_err());
        assert!(parse(&["s", "bad\nrcpt"]).is_err());
    }

    #[test]
    fn dash_alone_is_an_operand() {
        assert_eq!(ok(&["s", "-"]).recipients, ["-"]);
    }
}
