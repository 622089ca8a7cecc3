//! AppArmor exec transitions: each daemon master starts enters its own profile.
//!
//! Postern is one executable, so AppArmor cannot tell its daemons apart by
//! path: master starts every daemon by exec'ing `/usr/sbin/postern` with
//! `argv[0]` set to the program name. Instead, master asks the kernel for the
//! profile of each child: in the forked child, just before `exec`, it writes
//! `exec postern-PROGRAM` to `/proc/thread-self/attr/apparmor/exec` (older
//! kernels: `attr/exec`), and the exec then enters that profile
//! (`aa_change_onexec`). The profiles live in `dist/apparmor/`; the
//! `postern-master` profile permits exactly these transitions.
//!
//! The request is made only when the calling process is confined by a Postern
//! profile: a profile named `postern` or `postern-NAME` (a family prefix that
//! starts with `postern`, so a test can load a private family `posternt1-…`).
//! The target is `FAMILY-PROGRAM`. Unconfined, confined by another profile,
//! or no AppArmor at all: nothing is requested and nothing changes.
//!
//! # Security
//! Fail closed: when the caller is confined by a Postern profile and the
//! request cannot be made (no such profile loaded, transition not permitted,
//! the attribute file missing), the hook's error makes the spawn fail, and
//! the child never runs under the parent's (broader) profile. The write
//! happens in the child after `fork`, so the parent's own exec attribute is
//! never set and nothing needs resetting; the child hook only calls
//! `open`/`write`/`close` (async-signal-safe) on buffers prepared before the
//! fork.
//!
//! # Configuration
//! None: the profile family follows from the caller's own confinement.

use crate::{Result, SysError};
use std::ffi::CString;
use std::os::unix::process::CommandExt;
use std::process::Command;

/// The LSM-specific attribute directory (Linux ≥ 5.8), then the shared one.
const ATTR_DIRS: [&str; 2] = ["/proc/thread-self/attr/apparmor", "/proc/thread-self/attr"];

/// The profile name in a confinement label as the kernel reports it
/// (`postern-master (enforce)`), or `None` when unconfined or not AppArmor's.
pub fn profile_name(label: &str) -> Option<&str> {
    let label = label.trim_end_matches(['\n', '\0']).trim();
    if label.is_empty() || label == "unconfined" {
        return None;
    }
    // A mode follows the name (` (enforce)`, ` (complain)`); `unconfined`
    // labels carry none. Stacked labels (`a//&b`) are not Postern's.
    let name = match label.rsplit_once(" (") {
        Some((name, mode)) if mode.ends_with(')') => name,
        _ => label,
    };
    if name.is_empty() || name.contains("//&") || name.contains(char::is_whitespace) {
        return None;
    }
    Some(name)
}

/// The Postern profile family of a profile name (`postern` for `postern` or
/// `postern-master`, `posternt1` for `posternt1-master`), or `None` when the
/// profile is not a Postern one.
pub fn family(profile: &str) -> Option<&str> {
    // A child profile or hat (`postern-local//cmd`) belongs to its parent's family.
    let top = profile.split("//").next().unwrap_or(profile);
    let fam = top.split('-').next().unwrap_or(top);
    fam.starts_with("postern").then_some(fam)
}

/// The profile a child running `program` must enter when the caller is
/// confined by `label`: `FAMILY-PROGRAM`, or `None` (no request to make).
pub fn target_for(label: &str, program: &str) -> Option<String> {
    let fam = family(profile_name(label)?)?;
    Some(format!("{fam}-{program}"))
}

/// The calling thread's AppArmor label, or `None` without AppArmor.
pub fn current_label() -> Option<String> {
    // Without the LSM-specific directory, `attr/current` may belong to
    // another LSM (SELinux contexts do not parse as Postern profiles).
    ATTR_DIRS
        .iter()
        .find_map(|d| std::fs::read_to_string(format!("{d}/current")).ok())
}

/// Whether `program` is a name that can form a profile name (no path
/// separators, spaces or control characters: it comes from master.cf).
fn valid_program(program: &str) -> bool {
    !program.is_empty()
        && program
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// Arranges for `cmd`'s exec to enter the profile of `program` when this
/// process is confined by a Postern profile (see the module doc). Returns the
/// requested profile, or `None` when nothing was requested.
///
/// Errors: a program name that cannot name a profile while confined. A failed
/// request in the child surfaces as `cmd.spawn()`'s error.
pub fn exec_into(cmd: &mut Command, program: &str) -> Result<Option<String>> {
    let Some(label) = current_label() else {
        return Ok(None);
    };
    exec_into_from(cmd, program, &label)
}

fn exec_into_from(cmd: &mut Command, program: &str, label: &str) -> Result<Option<String>> {
    let Some(target) = target_for(label, program) else {
        return Ok(None);
    };
    let invalid = |what: &str| {
        SysError::new(
            "apparmor exec",
            what,
            std::io::ErrorKind::InvalidInput.into(),
        )
    };
    if !valid_program(program) {
        return Err(invalid(program));
    }
    let payload = format!("exec {target}").into_bytes();
    let mut paths = Vec::with_capacity(ATTR_DIRS.len());
    for d in ATTR_DIRS {
        paths.push(CString::new(format!("{d}/exec")).map_err(|_| invalid(d))?);
    }
    // SAFETY: the closure runs in the forked child before exec and calls only
    // async-signal-safe functions (open, write, close) on a path and a payload
    // allocated in the parent; it allocates nothing.
    unsafe {
        cmd.pre_exec(move || request_onexec(&paths, &payload));
    }
    Ok(Some(target))
}

/// In the child: writes the request to the first attribute file that exists.
fn request_onexec(paths: &[CString], payload: &[u8]) -> std::io::Result<()> {
    let mut last = std::io::Error::from_raw_os_error(libc::ENOENT);
    for p in paths {
        // SAFETY: `p` is a NUL-terminated path owned by the caller; open is
        // async-signal-safe.
        let fd = unsafe { libc::open(p.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
        if fd < 0 {
            last = std::io::Error::last_os_error();
            if last.raw_os_error() == Some(libc::ENOENT) {
                continue;
            }
            return Err(last);
        }
        // SAFETY: `payload` is a live byte slice and `fd` was just opened;
        // write is async-signal-safe.
        let n = unsafe { libc::write(fd, payload.as_ptr().cast(), payload.len()) };
        let err = std::io::Error::last_os_error();
        // SAFETY: `fd` is ours and closed exactly once.
        unsafe { libc::close(fd) };
        return match usize::try_from(n) {
            Ok(n) if n == payload.len() => Ok(()),
            Ok(_) => Err(std::io::Error::from_raw_os_error(libc::EIO)),
            Err(_) => Err(err),
        };
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_parse() {
        assert_eq!(
            profile_name("postern-master (enforce)\n"),
            Some("postern-master")
        );
        assert_eq!(profile_name("postern (complain)"), Some("postern"));
        assert_eq!(profile_name("unconfined\n"), None);
        assert_eq!(profile_name(""), None);
        assert_eq!(
            profile_name("/usr/sbin/foo (enforce)"),
            Some("/usr/sbin/foo")
        );
        assert_eq!(profile_name("a//&b (enforce)"), None);
        // An SELinux context read from attr/current is not a Postern profile.
        let se = profile_name("system_u:system_r:init_t:s0\0");
        assert_eq!(se.and_then(family), None);
    }

    #[test]
    fn families_and_targets() {
        assert_eq!(family("postern"), Some("postern"));
        assert_eq!(family("postern-master"), Some("postern"));
        assert_eq!(family("posternt42-master"), Some("posternt42"));
        assert_eq!(family("postern-local//null-/bin/sh"), Some("postern"));
        assert_eq!(family("postfix-master"), None);
        assert_eq!(family("/usr/sbin/postern"), None);
        assert_eq!(
            target_for("postern-master (enforce)", "smtpd").as_deref(),
            Some("postern-smtpd")
        );
        assert_eq!(
            target_for("postern (complain)\n", "qmgr").as_deref(),
            Some("postern-qmgr")
        );
        assert_eq!(target_for("unconfined", "smtpd"), None);
        assert_eq!(target_for("sshd (enforce)", "smtpd"), None);
    }

    #[test]
    fn nothing_requested_unconfined_or_foreign() {
        let mut cmd = Command::new("/bin/true");
        assert_eq!(
            exec_into_from(&mut cmd, "smtpd", "unconfined").unwrap(),
            None
        );
        assert_eq!(
            exec_into_from(&mut cmd, "smtpd", "sshd (enforce)").unwrap(),
            None
        );
        assert!(cmd.status().unwrap().success());
    }

    #[test]
    fn bad_program_names_refused_when_confined() {
        let mut cmd = Command::new("/bin/true");
        for bad in ["", "a b", "../x", "x\ny"] {
            assert!(exec_into_from(&mut cmd, bad, "postern-master (enforce)").is_err());
        }
    }

    #[test]
    fn request_goes_to_the_first_attribute_file_that_exists() {
        let d = tempfile::tempdir().unwrap();
        let missing = CString::new(d.path().join("apparmor/exec").to_str().unwrap()).unwrap();
        let file = d.path().join("exec");
        std::fs::write(&file, b"").unwrap();
        let present = CString::new(file.to_str().unwrap()).unwrap();
        request_onexec(&[missing.clone(), present], b"exec postern-smtpd").unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), b"exec postern-smtpd");
        let err = request_onexec(&[missing], b"exec postern-smtpd").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
    }

    #[test]
    fn failed_request_fails_the_spawn() {
        // Without AppArmor (or unconfined in a test run), the kernel refuses the
        // write or the file is missing: the spawn must fail, not run the child.
        if std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
            .is_ok_and(|s| s.trim() == "Y")
        {
            // With AppArmor the outcome depends on the profiles loaded here.
            return;
        }
        let mut cmd = Command::new("/bin/true");
        let t = exec_into_from(&mut cmd, "smtpd", "postern-master (enforce)").unwrap();
        assert_eq!(t.as_deref(), Some("postern-smtpd"));
        assert!(cmd.status().is_err());
    }
}
