//! Tests of the manifest: a tree built from it inspects clean; each kind of damage is
//! reported once, with the fault that names it.

use super::*;
use std::os::unix::fs::PermissionsExt;

fn ids(md: &std::fs::Metadata) -> Ids {
    Ids {
        root_uid: md.uid(),
        root_gid: md.gid(),
        mail_owner: "me".into(),
        mail_owner_uid: md.uid(),
        mail_owner_gid: md.gid(),
        setgid_group: "me".into(),
        setgid_gid: md.gid(),
    }
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A complete tree of `layout` (owned by the test's user).
fn build(layout: &Layout, exe: &Path) {
    for e in manifest(layout) {
        match e.kind {
            Kind::Dir => {
                std::fs::create_dir_all(&e.path).unwrap();
            }
            Kind::File => std::fs::write(&e.path, "x = y\n").unwrap(),
            Kind::SetgidCopy => {
                std::fs::copy(exe, &e.path).unwrap();
            }
        }
        let mode = match e.mode {
            Mode::Exact(m) => m,
            Mode::NotWritable => 0o755,
        };
        chmod(&e.path, mode);
    }
}

fn layout(root: &Path) -> Layout {
    Layout {
        config_dir: root.join("etc"),
        queue_dir: root.join("queue"),
        data_dir: root.join("data"),
        setgid_dir: Some(root.join("bin")),
    }
}

fn all_faults(l: &Layout, ids: &Ids, exe: &Path) -> Vec<(PathBuf, Fault)> {
    let mut out: Vec<_> = manifest(l)
        .iter()
        .flat_map(|e| {
            inspect(e, ids, Some(exe))
                .into_iter()
                .map(|f| (e.path.clone(), f))
        })
        .collect();
    out.extend(scan_queue(l, ids));
    out
}

#[test]
fn manifest_lists_the_tree() {
    let l = layout(Path::new("/x"));
    let m = manifest(&l);
    assert_eq!(m.len(), 3 + 1 + QUEUE_DIRS.len() + 1 + 1 + 2);
    let find = |p: &str| m.iter().find(|e| e.path == Path::new(p)).unwrap();
    assert_eq!(find("/x/queue/maildrop").mode, Mode::Exact(0o730));
    assert_eq!(find("/x/queue/maildrop").group, Group::SetgidGroup);
    assert_eq!(find("/x/queue/public").mode, Mode::Exact(0o2710));
    assert_eq!(find("/x/queue/pid").owner, Owner::Root);
    assert_eq!(find("/x/queue/pid").mode, Mode::Exact(0o755));
    assert_eq!(find("/x/data").owner, Owner::MailOwner);
    assert_eq!(find("/x/bin/postdrop").kind, Kind::SetgidCopy);
    assert_eq!(find("/x/bin/postqueue").mode, Mode::Exact(0o2755));
    assert_eq!(find("/x/etc/main.cf").mode, Mode::NotWritable);
    // Parents come before children.
    for (i, e) in m.iter().enumerate() {
        for later in &m[i + 1..] {
            assert!(!e.path.starts_with(&later.path) || e.path == later.path);
        }
    }
    let private = Layout {
        setgid_dir: None,
        ..l
    };
    assert!(
        manifest(&private)
            .iter()
            .all(|e| e.kind != Kind::SetgidCopy)
    );
}

#[test]
fn reports_each_kind_of_damage() {
    let d = tempfile::tempdir().unwrap();
    let exe = d.path().join("exe");
    std::fs::write(&exe, b"binary").unwrap();
    let l = layout(d.path());
    build(&l, &exe);
    let md = std::fs::metadata(d.path()).unwrap();
    let ids = ids(&md);
    assert!(all_faults(&l, &ids, &exe).is_empty());

    chmod(&l.queue_dir.join("maildrop"), 0o777);
    chmod(&l.config_dir.join("main.cf"), 0o666);
    std::fs::remove_file(l.setgid_dir.as_ref().unwrap().join("postdrop")).unwrap();
    std::fs::write(l.setgid_dir.as_ref().unwrap().join("postqueue"), b"other!").unwrap();
    std::fs::remove_dir(l.queue_dir.join("hold")).unwrap();
    std::fs::write(l.queue_dir.join("active/ABC"), b"q").unwrap();
    chmod(&l.queue_dir.join("active/ABC"), 0o666);
    std::os::unix::fs::symlink("/etc", l.queue_dir.join("saved.tmp")).unwrap();
    std::fs::remove_dir(l.queue_dir.join("flush")).unwrap();
    std::os::unix::fs::symlink("/tmp", l.queue_dir.join("flush")).unwrap();

    std::fs::write(l.config_dir.join("aliases"), b"a: b\n").unwrap();
    chmod(&l.config_dir.join("aliases"), 0o662);
    let got: Vec<String> = all_faults(&l, &ids, &exe)
        .iter()
        .map(|(p, f)| format!("{}: {f}", p.strip_prefix(d.path()).unwrap().display()))
        .collect();
    let want = [
        "etc/main.cf: writable by group or others (mode 0666)",
        "queue/maildrop: mode 0777, expected 0730",
        "queue/hold: missing",
        "queue/flush: not a directory",
        "bin/postdrop: missing",
        "bin/postqueue: differs from the running postern executable",
        "queue/active/ABC: writable by group or others (mode 0666)",
        "etc/aliases: writable by group or others (mode 0662)",
    ];
    assert_eq!(got, want);
}

#[test]
fn foreign_owner_in_queue_but_not_in_maildrop() {
    let d = tempfile::tempdir().unwrap();
    let exe = d.path().join("exe");
    std::fs::write(&exe, b"binary").unwrap();
    let l = layout(d.path());
    build(&l, &exe);
    let md = std::fs::metadata(d.path()).unwrap();
    let mut ids = ids(&md);
    std::fs::write(l.queue_dir.join("maildrop/F1"), b"q").unwrap();
    std::fs::write(l.queue_dir.join("deferred/F2"), b"q").unwrap();
    ids.mail_owner_uid += 1; // every file now looks foreign
    let found = scan_queue(&l, &ids);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, l.queue_dir.join("deferred/F2"));
    assert!(matches!(found[0].1, Fault::Foreign { .. }));
    let q = queue_faults(&l, &ids);
    // every mail_owner queue directory, none outside the queue
    assert_eq!(q.len(), QUEUE_DIRS.len() - 1, "{q:?}");
    assert!(q.iter().all(|(p, _)| p.starts_with(&l.queue_dir)));
}

#[test]
fn mode_rules() {
    assert!(Mode::NotWritable.accepts(0o644));
    assert!(!Mode::NotWritable.accepts(0o664));
    assert_eq!(Mode::NotWritable.repaired(0o666), 0o644);
    assert_eq!(Mode::Exact(0o2710).repaired(0o777), 0o2710);
    let d = tempfile::tempdir().unwrap();
    let (a, b) = (d.path().join("a"), d.path().join("b"));
    std::fs::write(&a, vec![7u8; 200_000]).unwrap();
    std::fs::write(&b, vec![7u8; 200_000]).unwrap();
    assert!(same_content(&a, &b));
    let mut v = vec![7u8; 200_000];
    v[150_000] = 8;
    std::fs::write(&b, v).unwrap();
    assert!(!same_content(&a, &b));
    assert!(!same_content(&a, &d.path().join("none")));
}

#[test]
fn repair_makes_a_clean_tree() {
    let d = tempfile::tempdir().unwrap();
    let exe = d.path().join("exe");
    std::fs::write(&exe, b"binary").unwrap();
    let l = layout(d.path());
    std::fs::create_dir(&l.config_dir).unwrap();
    std::fs::write(l.config_dir.join("main.cf"), "").unwrap();
    std::fs::write(l.config_dir.join("master.cf"), "").unwrap();
    chmod(&l.config_dir.join("main.cf"), 0o666);
    let md = std::fs::metadata(d.path()).unwrap();
    let ids = ids(&md);
    let mut lines = Vec::new();
    for e in manifest(&l) {
        lines.extend(repair(&e, &ids, &exe).unwrap());
    }
    assert!(lines.contains(&format!(
        "{}: writable by group or others (mode 0666): chmod done",
        l.config_dir.join("main.cf").display()
    )));
    assert!(lines.contains(&format!(
        "{}: missing: created",
        l.queue_dir.join("public").display()
    )));
    std::fs::write(l.queue_dir.join("deferred/X"), b"q").unwrap();
    chmod(&l.queue_dir.join("deferred/X"), 0o646);
    let outside = d.path().join("outside");
    std::fs::write(&outside, b"x").unwrap();
    chmod(&outside, 0o666);
    std::os::unix::fs::symlink(&outside, l.queue_dir.join("active/L")).unwrap();
    let fixed = repair_queue(&l, &ids).unwrap();
    assert_eq!(fixed.len(), 1, "{fixed:?}");
    assert!(
        all_faults(&l, &ids, &exe).is_empty(),
        "{:?}",
        all_faults(&l, &ids, &exe)
    );
    // The link was not followed.
    assert_eq!(std::fs::metadata(&outside).unwrap().mode() & 0o777, 0o666);
    // The second set-gid command is a hard link to the first.
    let bin = l.setgid_dir.clone().unwrap();
    let (a, b) = (
        std::fs::metadata(bin.join("postdrop")).unwrap(),
        std::fs::metadata(bin.join("postqueue")).unwrap(),
    );
    assert_eq!(a.ino(), b.ino());
    assert_eq!(a.mode() & 0o7777, 0o2755);
    // A symbolic link where a queue directory belongs is left for the administrator.
    std::fs::remove_dir(l.queue_dir.join("hold")).unwrap();
    std::os::unix::fs::symlink("/tmp", l.queue_dir.join("hold")).unwrap();
    let hold = manifest(&l)
        .into_iter()
        .find(|e| e.path.ends_with("hold"))
        .unwrap();
    let err = repair(&hold, &ids, &exe).unwrap_err().to_string();
    assert!(err.contains("not a directory: move it away"), "{err}");
    // Nothing left to do.
    std::fs::remove_file(l.queue_dir.join("hold")).unwrap();
    let again: Vec<String> = manifest(&l)
        .iter()
        .flat_map(|e| repair(e, &ids, &exe).unwrap())
        .collect();
    assert_eq!(
        again,
        [format!(
            "{}: missing: created",
            l.queue_dir.join("hold").display()
        )]
    );
}
