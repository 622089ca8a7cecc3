//! The delivery switch for one (possibly expanded) recipient address.
//!
//! [`deliver_recipient`] checks nesting (over 100 levels: 5.4.6 "recipient
//! nesting limit exceeded"), duplicates, and forwarding loops (a
//! `Delivered-To:` header naming the address: 5.4.6 "mail forwarding loop
//! for ADDR"), splits the address into user and extension, then the switch
//! tries in order: a leading `\` (straight to the mailbox), `alias_maps`
//! (with, then without the extension), forwarding when an `owner-` alias or
//! an `:include:` file is in charge, the home directory check, `.forward`,
//! the mailbox, and unknown users (`fallback_transport_maps`,
//! `fallback_transport`, `luser_relay`, else 5.1.1 `unknown user: "NAME"`).
//!
//! [`State`] is passed by value, as in Postfix, so a step's changes (new
//! sender, owner, expansion type) apply only below it. [`UserAttr`] holds
//! whose rights `|command` and `/file` destinations get.
//!
//! # Security
//! Addresses from aliases and `.forward` files go through the same checks as
//! addresses from the queue file. A missing or inaccessible home directory
//! defers (it may be an unmounted file system), except Debian's
//! `/nonexistent`, which by policy never exists.
//!
//! # Configuration
//! `recipient_delimiter`, `myorigin`, `mydestination`, `propagate_unmatched_extensions`,
//! `fallback_transport(_maps)`, `luser_relay` (see [`crate::settings`]).

use crate::deliver::Ctx;
use crate::expand::{self, Vars};
use crate::settings::exp;
use crate::{expansion, mailbox};
use postern_ipc::proto::{DeliverRequest, Recipient, notify};
use postern_mail::address::split_extension;
use postern_sys::privs::{self, UserInfo};

/// Deepest nesting of the delivery steps before a loop is assumed.
pub const MAX_LEVEL: u32 = 100;

/// The attributes of one delivery step (Postfix's `DELIVER_ATTR`).
#[derive(Debug, Clone)]
pub(crate) struct State {
    pub level: u32,
    /// The current address (and the original recipient, ORCPT, NOTIFY).
    pub rcpt: Recipient,
    /// Envelope sender (an `owner-` alias replaces it).
    pub sender: String,
    pub envid: String,
    pub ret: String,
    /// The address for `Delivered-To:`.
    pub delivered: String,
    /// Set by `owner-` aliases, `.forward` and `:include:`: addresses below
    /// are forwarded as new mail rather than delivered here.
    pub owner: Option<String>,
    /// Where the current destinations came from ([`exp`] bit, 0 = the envelope).
    pub exp_type: u8,
    /// The alias or user being expanded (an alias naming itself means the user).
    pub exp_from: Option<String>,
    /// Lower-case local part, with extension.
    pub local: String,
    /// Local part without extension.
    pub user: String,
    pub domain: Option<String>,
    pub extension: Option<String>,
    /// Extension to carry over to expanded addresses.
    pub unmatched: Option<String>,
}

impl State {
    /// The state for a recipient of the request.
    pub fn top(req: &DeliverRequest, rcpt: &Recipient) -> State {
        State {
            level: 0,
            rcpt: rcpt.clone(),
            sender: req.sender.clone(),
            envid: req.envid.clone(),
            ret: req.ret.clone(),
            delivered: String::new(),
            owner: None,
            exp_type: 0,
            exp_from: None,
            local: String::new(),
            user: String::new(),
            domain: None,
            extension: None,
            unmatched: None,
        }
    }

    /// NOTIFY with SUCCESS removed (an expansion reports success itself).
    pub fn strip_success(&mut self) {
        let n = self.rcpt.notify;
        self.rcpt.notify = if n == notify::SUCCESS {
            notify::NEVER
        } else {
            n & !notify::SUCCESS
        };
    }

    /// Values for `$name` expansion.
    pub fn vars(&self, s: &crate::settings::LocalSettings, usr: &UserAttr) -> Vars {
        let delim = self
            .local
            .get(self.user.len()..)
            .unwrap_or("")
            .chars()
            .next()
            .or_else(|| s.recipient_delimiter.chars().next())
            .map(String::from);
        Vars {
            user: self.user.clone(),
            home: usr.pw.as_ref().map(|p| p.home.clone()),
            shell: usr.pw.as_ref().map(|p| p.shell.clone()),
            domain: self.domain.clone(),
            local: self.local.clone(),
            recipient: self.rcpt.address.clone(),
            extension: self.extension.clone(),
            recipient_delimiter: delim,
        }
    }
}

/// Whose rights `|command` and `/file` deliveries get (None: not chosen yet,
/// which means `default_privs`).
#[derive(Debug, Clone, Default)]
pub(crate) struct UserAttr {
    pub pw: Option<UserInfo>,
}

/// Appends `@$myorigin` to an address without domain.
pub(crate) fn qualify(s: &crate::settings::LocalSettings, addr: &str) -> String {
    if addr.contains('@') || s.myorigin.is_empty() {
        addr.to_string()
    } else {
        format!("{addr}@{}", s.myorigin)
    }
}

/// Delivers to `st.rcpt.address` (Postfix's `deliver_recipient`).
pub(crate) fn deliver_recipient(ctx: &mut Ctx<'_>, mut st: State, usr: UserAttr) {
    st.level += 1;
    if st.level > MAX_LEVEL {
        postern_log::warning!("recipient nesting limit exceeded for {}", st.rcpt.address);
        return ctx.bounce(&st, "5.4.6", "recipient nesting limit exceeded");
    }
    if ctx.been_here(format!("recipient {} {}", st.level, st.rcpt.address)) {
        return;
    }
    if ctx.is_loop(&st.rcpt.address) {
        let text = format!("mail forwarding loop for {}", st.rcpt.address);
        return ctx.bounce(&st, "5.4.6", text);
    }
    if st.delivered.is_empty() {
        st.delivered = st.rcpt.address.clone();
    }
    let folded = st.rcpt.address.to_lowercase();
    let (local, domain) = match folded.rfind('@') {
        Some(i) => (folded[..i].to_string(), Some(folded[i + 1..].to_string())),
        None => {
            postern_log::warning!("no @ in recipient address: {folded}");
            (folded.clone(), None)
        }
    };
    let (user, ext) = split_extension(&local, &ctx.s.recipient_delimiter);
    let (user, mut ext) = (user.to_string(), ext.map(str::to_string));
    let mut local = local.clone();
    if ext.as_deref().is_some_and(|e| e.contains('/')) {
        postern_log::warning!(
            "{}: address with illegal extension: {local}",
            ctx.req.queue_id
        );
        ext = None;
        local = user.clone();
    }
    if user.is_empty() {
        let text = format!("null username in \"{}\"", st.rcpt.address);
        return ctx.bounce(&st, "5.1.3", text);
    }
    st.local = local;
    st.user = user;
    st.domain = domain;
    st.unmatched = ext.clone();
    st.extension = ext;
    deliver_switch(ctx, st, usr);
}

fn deliver_switch(ctx: &mut Ctx<'_>, mut st: State, usr: UserAttr) {
    st.level += 1;
    if let Some(rest) = st.rcpt.address.strip_prefix('\\') {
        st.rcpt.address = rest.to_string();
        st.local = st.local.trim_start_matches('\\').to_string();
        st.user = st.user.trim_start_matches('\\').to_string();
        if !mailbox::deliver_mailbox(ctx, &st, &usr) {
            unknown(ctx, st, usr);
        }
        return;
    }
    st.unmatched = None;
    let local = st.local.clone();
    if expansion::alias(ctx, &st, &usr, &local) {
        return;
    }
    if let Some(ext) = st.extension.clone() {
        if ctx.s.propagate_extensions & exp::ALIAS != 0 {
            st.unmatched = Some(ext.clone());
        }
        let user = st.user.clone();
        if expansion::alias(ctx, &st, &usr, &user) {
            return;
        }
        st.unmatched = Some(ext);
    }
    if st
        .owner
        .as_ref()
        .is_some_and(|o| !o.eq_ignore_ascii_case(&st.user))
        || st.exp_type == exp::INCLUDE
    {
        return indirect(ctx, &st);
    }
    if ctx.s.as_root {
        match privs::lookup_user(&st.user) {
            Err(e) => {
                postern_log::warning!("error looking up passwd info for {}: {e}", st.user);
                return ctx.defer(&st, "4.0.0", "user lookup error");
            }
            Ok(Some(pw)) if pw.home != "/nonexistent" => {
                let home = pw.home.clone();
                let probe = UserAttr { pw: Some(pw) };
                match expansion::as_user(ctx.s, &probe, || std::fs::metadata(&home)) {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => {
                        let text = format!(
                            "cannot access home directory {home}: {}",
                            crate::command::os_text(&e)
                        );
                        return ctx.defer(&st, "4.3.0", text);
                    }
                    Err(e) => return ctx.fail(&st, e),
                }
            }
            Ok(_) => {}
        }
    }
    if expansion::dotforward(ctx, &st, &usr) {
        return;
    }
    if mailbox::deliver_mailbox(ctx, &st, &usr) {
        return;
    }
    unknown(ctx, st, usr);
}

/// Forwards the current address as new mail (Postfix's `deliver_indirect`).
pub(crate) fn indirect(ctx: &mut Ctx<'_>, st: &State) {
    if ctx.been_here(format!("indirect {}", st.rcpt.address)) {
        return;
    }
    crate::forward::append(ctx, st);
}

/// Delivers to an address from an expansion: local addresses here, others
/// forwarded (Postfix's `deliver_resolve_addr`).
pub(crate) fn resolve_addr(ctx: &mut Ctx<'_>, mut st: State, usr: UserAttr, addr: &str) {
    st.level += 1;
    let addr = addr.trim();
    if addr.is_empty() || addr.chars().any(|c| c.is_control()) || addr.ends_with('@') {
        let text = format!("bad recipient address syntax: {addr}");
        return ctx.bounce(&st, "5.1.3", text);
    }
    let mut full = qualify(ctx.s, addr);
    if let Some(ext) = &st.unmatched {
        let delim = st
            .local
            .get(st.user.len()..)
            .unwrap_or("")
            .chars()
            .next()
            .or_else(|| ctx.s.recipient_delimiter.chars().next());
        if let (Some(d), Some(at)) = (delim, full.rfind('@')) {
            full.insert_str(at, &format!("{d}{ext}"));
        }
    }
    let domain = full.rsplit_once('@').map_or("", |(_, d)| d).to_string();
    st.rcpt.address = full;
    if ctx.s.is_local_domain(&domain) {
        deliver_recipient(ctx, st, usr);
    } else {
        indirect(ctx, &st);
    }
}

/// Delivers to one destination of an alias, `.forward` or `:include:` list.
pub(crate) fn deliver_token(ctx: &mut Ctx<'_>, st: &State, usr: &UserAttr, tok: &str) {
    if tok.starts_with('/') {
        crate::file::deliver_file(ctx, st, usr, tok);
    } else if let Some(rest) = tok.strip_prefix('~') {
        match (&usr.pw, rest.starts_with('/')) {
            (Some(pw), true) => {
                let path = format!("{}{rest}", pw.home.trim_end_matches('/'));
                crate::file::deliver_file(ctx, st, usr, &path);
            }
            (None, true) => {
                postern_log::warning!("unknown home directory for: {tok}");
                ctx.bounce(st, "5.3.5", "mail system configuration error");
            }
            _ => {
                postern_log::warning!("bad home directory syntax for: {tok}");
                ctx.bounce(st, "5.3.5", "mail system configuration error");
            }
        }
    } else if let Some(cmd) = tok.strip_prefix('|') {
        if ctx.s.allow_commands & st.exp_type == 0 {
            ctx.bounce(st, "5.7.1", "mail to command is restricted");
        } else {
            crate::command::deliver_command(ctx, st, usr, cmd);
        }
    } else if let Some(path) = tok
        .get(..9)
        .filter(|p| p.eq_ignore_ascii_case(":include:"))
        .and_then(|_| tok.get(9..))
    {
        expansion::include(ctx, st, usr, path);
    } else {
        resolve_addr(ctx, st.clone(), usr.clone(), tok);
    }
}

/// Users that are neither aliases nor accounts (Postfix's `deliver_unknown`).
fn unknown(ctx: &mut Ctx<'_>, mut st: State, usr: UserAttr) {
    st.level += 1;
    if ctx.been_here(format!("deliver_unknown {}", st.local)) {
        return;
    }
    match ctx.t.fallback_transport.find(&st.user) {
        Ok(Some((transport, _))) => return mailbox::pass(ctx, &st, &transport),
        Ok(None) => {}
        Err(_) => return ctx.defer(&st, "4.3.0", "table lookup failure"),
    }
    if !ctx.s.fallback_transport.is_empty() {
        let t = ctx.s.fallback_transport.clone();
        return mailbox::pass(ctx, &st, &t);
    }
    if !ctx.s.luser_relay.is_empty() {
        st.unmatched = None;
        let relay = expand::expand(&ctx.s.luser_relay, &st.vars(ctx.s, &usr), None).text;
        if qualify(ctx.s, relay.trim()).eq_ignore_ascii_case(&st.rcpt.address) {
            let text = format!("unknown user: \"{}\"", st.user);
            return ctx.bounce(&st, "5.1.1", text);
        }
        return resolve_addr(ctx, st, usr, &relay);
    }
    if st.user == "postmaster" {
        postern_log::warning!("required alias not found: {}", st.user);
        return ctx.sent(&st, "discarded");
    }
    let text = format!("unknown user: \"{}\"", st.user);
    ctx.bounce(&st, "5.1.1", text);
}
