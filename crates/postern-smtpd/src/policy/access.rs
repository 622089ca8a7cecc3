//! `check_*_access` and access(5) actions (also used for policy-service answers).

use super::MessageAction;
use super::compile::{AccessKind, Table, compile};
use super::eval::{Eval, Step, Subject};
use postern_table::{AccessAction, Map, lookup_address, lookup_client, lookup_domain};

impl Eval<'_> {
    /// Looks the fact for `kind` up in `table` and applies the action found.
    pub(crate) async fn access(&mut self, kind: AccessKind, table: &Table) -> Step {
        let Some((key, subject)) = self.access_key(kind) else {
            return Step::Dunno;
        };
        // As Postfix: `451 4.3.5 <x>: ... rejected: Server configuration error`.
        let failed = |e: &Self| {
            Step::Reject(e.rejected(451, (4, 3, 5), subject, "Server configuration error"))
        };
        let map = match table {
            Table::Open(m) => m,
            Table::Broken { name, error } => {
                postern_log::warning(format!("{name} lookup error for \"{key}\": {error}"));
                return failed(self);
            }
        };
        match self.lookup(&**map, kind, &key) {
            Ok(Some(value)) => self.action(&value, subject, map.name(), &key).await,
            Ok(None) => Step::Dunno,
            Err(e) => {
                postern_log::warning(format!(
                    "{}: table lookup problem for \"{key}\": {e}",
                    map.name()
                ));
                failed(self)
            }
        }
    }

    fn access_key(&self, kind: AccessKind) -> Option<(String, Subject)> {
        let f = self.f;
        Some(match kind {
            AccessKind::Client => (f.client_name.clone(), Subject::Client),
            AccessKind::ReverseClient => (f.reverse_client_name.clone(), Subject::ReverseClient),
            AccessKind::Helo => (f.helo.clone()?, Subject::Helo),
            AccessKind::Sender => (f.sender.clone()?, Subject::Sender),
            AccessKind::Recipient => (f.recipient.clone()?, Subject::Recipient),
            AccessKind::Etrn => (
                f.etrn_domain.clone()?.trim_start_matches('@').to_string(),
                Subject::Etrn,
            ),
        })
    }

    fn lookup(
        &self,
        map: &dyn Map,
        kind: AccessKind,
        key: &str,
    ) -> Result<Option<String>, postern_table::TableError> {
        let pm = self.p.params.access_parent_matches;
        let found = match kind {
            AccessKind::Client | AccessKind::ReverseClient => {
                let name = if key.is_empty() { "unknown" } else { key };
                lookup_client(map, name, &self.client_addr(), pm)?
            }
            AccessKind::Helo | AccessKind::Etrn => lookup_domain(map, key, pm)?,
            AccessKind::Sender | AccessKind::Recipient if key.is_empty() => {
                let null = &self.p.params.null_key;
                map.lookup(null)?.map(|v| (v, null.clone()))
            }
            AccessKind::Sender | AccessKind::Recipient => {
                lookup_address(map, key, &self.p.params.delimiter, pm)?
            }
        };
        Ok(found.map(|(value, _key)| value))
    }

    /// Applies one access(5) action; `table` and `key` name the source in warnings.
    pub(crate) async fn action(&mut self, value: &str, s: Subject, table: &str, key: &str) -> Step {
        let pr = &self.p.params;
        let (reject_code, defer_code) = (pr.access_reject_code, pr.access_defer_code);
        let text = |t: &Option<String>, d: &str| t.clone().unwrap_or_else(|| d.to_string());
        match postern_table::parse_access_result(value) {
            AccessAction::Ok => Step::Permit,
            AccessAction::Dunno => Step::Dunno,
            AccessAction::Reject(t) => {
                let r = self.rejected(reject_code, (5, 7, 1), s, &text(&t, "Access denied"));
                self.refuse(r)
            }
            AccessAction::Defer(t) => {
                let r = self.rejected(defer_code, (4, 7, 1), s, &text(&t, "Access denied"));
                self.refuse(r)
            }
            AccessAction::DeferIfReject(t) => {
                let r = self.rejected(defer_code, (4, 7, 1), s, &text(&t, "Service unavailable"));
                self.set_defer_if_reject(r);
                Step::Dunno
            }
            AccessAction::DeferIfPermit(t) => {
                let r = self.rejected(defer_code, (4, 7, 1), s, &text(&t, "Service unavailable"));
                self.set_defer_if_permit(r);
                Step::Dunno
            }
            AccessAction::Reply { code, text } => {
                let (dsn, rest) = split_dsn(&text, code);
                let r = self.rejected(code, dsn, s, rest);
                self.refuse(r)
            }
            AccessAction::Hold(t) => {
                let why = self.triggers(s, "HOLD action", &t);
                self.out.actions.push(MessageAction::Hold(why.clone()));
                self.out.log.push(self.event("hold", &why));
                Step::Dunno
            }
            AccessAction::Discard(t) => {
                let why = self.triggers(s, "DISCARD action", &t);
                self.out.actions.push(MessageAction::Discard(why.clone()));
                self.out.log.push(self.event("discard", &why));
                Step::Discard
            }
            AccessAction::Redirect(to) => {
                self.note(s, "redirect", &format!("REDIRECT {to}"));
                self.out.actions.push(MessageAction::Redirect(to));
                Step::Dunno
            }
            AccessAction::Filter(to) => {
                self.note(s, "filter", &format!("FILTER {to}"));
                self.out.actions.push(MessageAction::Filter(to));
                Step::Dunno
            }
            AccessAction::Bcc(to) => {
                self.note(s, "bcc", &format!("BCC {to}"));
                self.out.actions.push(MessageAction::Bcc(to));
                Step::Dunno
            }
            AccessAction::Prepend(h) => {
                self.out.actions.push(MessageAction::Prepend(h));
                Step::Dunno
            }
            AccessAction::Warn(t) => {
                self.out
                    .log
                    .push(self.event("warn", t.as_deref().unwrap_or("")));
                Step::Dunno
            }
            AccessAction::Info(t) => {
                self.out
                    .log
                    .push(self.event("info", t.as_deref().unwrap_or("")));
                Step::Dunno
            }
            AccessAction::Restrictions(words) => {
                let list = compile(
                    &words,
                    &self.class_names(),
                    &postern_config::Config::default(),
                );
                self.list(&list, s).await
            }
            AccessAction::Invalid { action, reason } => {
                let why = match action.to_ascii_uppercase().as_str() {
                    "FILTER" => "requires transport:destination",
                    "REDIRECT" | "BCC" => "requires user@domain target",
                    _ => reason,
                };
                postern_log::warning(format!("access table {table} entry \"{key}\" {why}"));
                Step::Dunno
            }
            _ => {
                postern_log::warning(format!(
                    "access table {table}: unsupported action \"{value}\""
                ));
                Step::Dunno
            }
        }
    }

    fn class_names(&self) -> Vec<String> {
        self.p.classes.keys().cloned().collect()
    }

    /// `<who>: What triggers X` (or the table's own text).
    fn triggers(&self, s: Subject, what: &str, text: &Option<String>) -> String {
        match text {
            Some(t) => t.clone(),
            None => {
                let (who, subj) = self.who(s);
                format!("{who}: {subj} triggers {what}")
            }
        }
    }

    fn note(&mut self, s: Subject, kind: &str, what: &str) {
        let why = self.triggers(s, what, &None);
        let line = self.event(kind, &why);
        self.out.log.push(line);
    }
}

/// Splits a leading enhanced status code off an access-table reply text; without one,
/// the default is `X.7.1` with X the reply's class.
pub(crate) fn split_dsn(text: &str, code: u16) -> ((u8, u16, u16), &str) {
    let class = u8::try_from(code / 100).unwrap_or(5);
    let (first, rest) = match text.split_once(' ') {
        Some((a, b)) => (a, b.trim_start()),
        None => (text, ""),
    };
    let parts: Vec<&str> = first.split('.').collect();
    let parsed = (parts.len() == 3)
        .then(|| {
            let c = parts[0].parse::<u8>().ok().filter(|c| *c == 4 || *c == 5)?;
            let s = parts[1].parse::<u16>().ok().filter(|s| *s < 1000)?;
            let d = parts[2].parse::<u16>().ok().filter(|d| *d < 1000)?;
            Some((c, s, d))
        })
        .flatten();
    match parsed {
        Some(dsn) => (dsn, rest),
        None => ((class, 7, 1), text),
    }
}
