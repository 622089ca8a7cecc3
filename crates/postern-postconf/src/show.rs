//! Showing parameters (`postconf [-dhnx] [name…]`) and services (`postconf -M`).
//!
//! Which names exist: every row of the parameter table, plus names set in main.cf that
//! something uses (a `$name` reference, a master.cf `-o`, a restriction class, or a
//! per-transport name of a master.cf service). Names set in main.cf but unused are reported as
//! unused parameters and, asked for by name, as unknown — as Postfix does.

use std::collections::BTreeSet;
use std::io::Write;

use anyhow::{Result, bail};
use postern_config::{
    Config, MasterCf, PARAMS, apply_host_defaults, format_service, param, parse_main_cf,
    parse_master_cf, service_type_name,
};

use crate::{Options, read_optional, shown};

/// Loads main.cf (missing = empty) into a [`Config`] with host defaults; fatal on syntax errors.
fn load_main(opts: &Options, hostname: &str, err: &mut dyn Write) -> Result<Config> {
    let path = opts.config_dir.join("main.cf");
    let text = read_optional(&path)?.unwrap_or_default();
    let main = match parse_main_cf(&text) {
        Ok(m) => m,
        Err(errors) => bail!(syntax_message(&shown(&path), &errors)),
    };
    for name in crate::duplicates(&main) {
        writeln!(
            err,
            "postconf: warning: {}: multiple entries for {name:?}",
            shown(&path)
        )?;
    }
    let mut cfg = Config::new(main);
    if opts.dir_given && !cfg.is_set("config_directory") {
        cfg.set("config_directory", &opts.config_dir.display().to_string());
    }
    apply_host_defaults(&mut cfg, hostname);
    crate::host::apply_mynetworks_default(&mut cfg);
    Ok(cfg)
}

/// One line per syntax error (the first carries the `fatal:` prefix added by the caller).
fn syntax_message(path: &str, errors: &[postern_config::ParseError]) -> String {
    errors
        .iter()
        .map(|e| format!("{path}: {e}"))
        .collect::<Vec<_>>()
        .join("\npostconf: fatal: ")
}

/// Loads master.cf: `Ok(None)` when it does not exist; fatal on syntax errors.
fn load_master(opts: &Options) -> Result<Option<MasterCf>> {
    let path = opts.config_dir.join("master.cf");
    let Some(text) = read_optional(&path)? else {
        return Ok(None);
    };
    match parse_master_cf(&text) {
        Ok(m) => Ok(Some(m)),
        Err(errors) => bail!(syntax_message(&shown(&path), &errors)),
    }
}

/// `postconf [-dhnx] [name…]`.
pub(crate) fn params(
    opts: &Options,
    names: &[String],
    hostname: &str,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<()> {
    let cfg = load_main(opts, hostname, err)?;
    let master = load_master(opts)?;
    if master.is_none() {
        let path = shown(&opts.config_dir.join("master.cf"));
        writeln!(
            err,
            "postconf: warning: open {path}: No such file or directory"
        )?;
    }
    let unused = cfg.unused_main_params(master.as_ref());
    let mut defaults = Config::default();
    apply_host_defaults(&mut defaults, hostname);
    crate::host::apply_mynetworks_default(&mut defaults);
    let is_unused = |n: &str| unused.iter().any(|u| u.0 == n);
    // name -> whether it exists in this view
    let exists = |n: &str| param(n).is_some() || (!opts.defaults && cfg.is_set(n) && !is_unused(n));
    let list: Vec<String> = if names.is_empty() {
        let mut all: BTreeSet<String> = PARAMS.iter().map(|p| p.name.to_string()).collect();
        all.extend(
            cfg.main_entries()
                .into_iter()
                .map(|e| e.0)
                .filter(|n| exists(n)),
        );
        all.into_iter()
            .filter(|n| !opts.only_set || cfg.is_set(n))
            .collect()
    } else {
        names.to_vec()
    };
    for name in &list {
        if !exists(name) {
            writeln!(err, "postconf: warning: {name}: unknown parameter")?;
            continue;
        }
        if opts.only_set && !cfg.is_set(name) {
            continue;
        }
        let view = if opts.defaults { &defaults } else { &cfg };
        let value = if opts.expand {
            view.get(name)
        } else {
            view.raw(name).unwrap_or_default()
        };
        print_param(out, name, &value, opts.value_only)?;
    }
    if !opts.defaults {
        let main_path = shown(&opts.config_dir.join("main.cf"));
        for (n, v, _) in &unused {
            writeln!(
                err,
                "postconf: warning: {main_path}: unused parameter: {n}={v}"
            )?;
        }
        if let Some(m) = &master {
            let master_path = shown(&opts.config_dir.join("master.cf"));
            for (n, v, _) in cfg.unused_master_params(m) {
                writeln!(
                    err,
                    "postconf: warning: {master_path}: unused parameter: {n}={v}"
                )?;
            }
        }
    }
    Ok(())
}

fn print_param(out: &mut dyn Write, name: &str, value: &str, value_only: bool) -> Result<()> {
    if value_only {
        writeln!(out, "{value}")?;
    } else if value.is_empty() {
        writeln!(out, "{name} =")?;
    } else {
        writeln!(out, "{name} = {value}")?;
    }
    Ok(())
}

/// `postconf -M [name[/type]…]`.
pub(crate) fn master(
    opts: &Options,
    specs: &[String],
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<()> {
    let path = opts.config_dir.join("master.cf");
    let Some(master) = load_master(opts)? else {
        bail!("open {}: No such file or directory", shown(&path))
    };
    for svc in &master.services {
        let wanted = specs.is_empty()
            || specs.iter().any(|s| match s.split_once('/') {
                Some((n, t)) => n == svc.name && t == service_type_name(svc.kind),
                None => *s == svc.name,
            });
        if wanted {
            writeln!(out, "{}", format_service(svc))?;
        }
    }
    for s in specs {
        let found = master.services.iter().any(|svc| match s.split_once('/') {
            Some((n, t)) => n == svc.name && t == service_type_name(svc.kind),
            None => *s == svc.name,
        });
        if !found {
            writeln!(err, "postconf: warning: unmatched request: {s:?}")?;
        }
    }
    Ok(())
}
