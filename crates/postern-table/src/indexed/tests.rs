use super::*;
use crate::{OpenOptions, open};

fn opts(nul: bool) -> WriteOptions {
    WriteOptions { nul, mode: 0o644 }
}

fn sample() -> Contents {
    let mut c = Contents::new();
    for (k, v) in [("b", "2"), ("a", "1"), ("c", "3")] {
        assert_eq!(
            c.insert(k.as_bytes(), v.as_bytes(), Dup::Warn),
            Inserted::New
        );
    }
    c
}

#[test]
fn every_kind_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    for kind in [DbKind::Hash, DbKind::Btree, DbKind::Cdb, DbKind::Lmdb] {
        for nul in [false, true] {
            let name = format!("{}/t-{}-{nul}", dir.path().display(), kind.type_name());
            write(kind, &name, &sample(), &opts(nul)).unwrap();
            let spec = format!("{}:{name}", kind.type_name());
            let map = open(&spec, &OpenOptions::default()).unwrap();
            assert_eq!(map.lookup("A").unwrap().as_deref(), Some("1"), "{spec}");
            assert_eq!(map.lookup("c").unwrap().as_deref(), Some("3"));
            assert_eq!(map.lookup("zz").unwrap(), None);
            let back = Contents::load(kind, &name).unwrap();
            assert_eq!(back.len(), 3);
            assert_eq!(back.stored_nul, Some(nul));
            if kind == DbKind::Btree || kind == DbKind::Lmdb {
                let keys: Vec<&[u8]> = back.iter().map(|(k, _)| k).collect();
                assert_eq!(keys, vec![&b"a"[..], b"b", b"c"]);
            }
        }
    }
}

#[test]
fn duplicates_and_removal() {
    let mut c = sample();
    assert_eq!(c.insert(b"a", b"x", Dup::Warn), Inserted::Kept);
    assert_eq!(c.get(b"a"), Some(&b"1"[..]));
    assert_eq!(c.insert(b"a", b"x", Dup::Replace), Inserted::Replaced);
    assert_eq!(c.get(b"a"), Some(&b"x"[..]));
    assert!(c.remove(b"b"));
    assert!(!c.remove(b"b"));
    assert_eq!(c.get(b"c"), Some(&b"3"[..]));
    assert_eq!(c.len(), 2);
}

#[test]
fn update_keeps_convention_and_creates() {
    let dir = tempfile::tempdir().unwrap();
    let name = format!("{}/u", dir.path().display());
    let r = update(DbKind::Hash, &name, true, &opts(false), |c| {
        c.insert(b"k", b"v", Dup::Warn);
        Ok::<bool, ()>(true)
    })
    .unwrap();
    assert!(r.is_ok());
    let missing = format!("{}/missing", dir.path().display());
    let err = update(DbKind::Hash, &missing, false, &opts(false), |_| {
        Ok::<bool, ()>(true)
    });
    assert!(matches!(err, Err(TableError::Open { .. })));
    let map = open(&format!("hash:{name}"), &OpenOptions::default()).unwrap();
    assert_eq!(map.lookup("k").unwrap().as_deref(), Some("v"));
}

#[test]
fn foreign_db_file_is_refused_and_missing_is_open_error() {
    let dir = tempfile::tempdir().unwrap();
    let name = format!("{}/bdb", dir.path().display());
    // A cdb without the format record, as a Berkeley DB file would also lack it.
    write(DbKind::Cdb, &name, &sample(), &opts(false)).unwrap();
    std::fs::rename(format!("{name}.cdb"), format!("{name}.db")).unwrap();
    let err = open(&format!("hash:{name}"), &OpenOptions::default()).unwrap_err();
    assert!(err.to_string().contains("rebuild it"), "{err}");
    let err = open(&format!("cdb:{name}-none"), &OpenOptions::default()).unwrap_err();
    assert!(err.to_string().starts_with("open database "), "{err}");
    std::fs::write(format!("{name}.cdb"), b"short").unwrap();
    assert!(open(&format!("cdb:{name}"), &OpenOptions::default()).is_err());
}

#[test]
fn berkeley_db_files_are_recognised() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.db");
    let mut head = vec![0u8; 64];
    head[12..16].copy_from_slice(&0x0006_1561u32.to_le_bytes());
    std::fs::write(&path, &head).unwrap();
    assert!(is_berkeley_db(&path));
    head[12..16].copy_from_slice(&0x0005_3162u32.to_be_bytes());
    std::fs::write(&path, &head).unwrap();
    assert!(is_berkeley_db(&path));
    let name = dir.path().join("y").display().to_string();
    write(DbKind::Hash, &name, &sample(), &opts(false)).unwrap();
    assert!(!is_berkeley_db(&dir.path().join("y.db")));
    assert!(!is_berkeley_db(&dir.path().join("missing.db")));
}
