//! The fuzz targets as a plain test: every file under `fuzz/seeds/<target>/` (and
//! `fuzz/corpus/<target>/`, when a libFuzzer run left one) goes through the target
//! unchanged, then through deterministic mutations (bit flips, truncations, byte
//! insertions and splices between seeds), `POSTERN_FUZZ_MUTATIONS` per seed (default
//! 2000). This is the fallback when cargo-fuzz cannot be used; it needs neither
//! nightly flags nor a sanitizer, and it is reproducible.
//!
//!     cargo test --release --no-default-features --manifest-path fuzz/Cargo.toml
use std::path::{Path, PathBuf};

fn inputs(target: &str) -> Vec<Vec<u8>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    for dir in [
        root.join("seeds").join(target),
        root.join("corpus").join(target),
    ] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for p in paths.iter().filter(|p| p.is_file()) {
            out.push(std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())));
        }
    }
    assert!(
        !out.is_empty(),
        "no seeds for {target} under fuzz/seeds/{target}/"
    );
    out
}

/// xorshift64*: a fixed, dependency-free PRNG, so every run mutates the same way.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const INTERESTING: &[u8] = &[
    0, 1, 0x7f, 0x80, 0xff, b'\n', b'=', b'$', b'{', b'}', b'\\', b'.', b' ', b'\0',
];

fn mutate(rng: &mut Rng, seed: &[u8], all: &[Vec<u8>]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = v.len();
        match rng.below(7) {
            0 if len > 0 => {
                let i = rng.below(len);
                v[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                v[i] = INTERESTING[rng.below(INTERESTING.len())];
            }
            2 => {
                let i = rng.below(len + 1);
                v.truncate(i);
            }
            3 => {
                let i = rng.below(len + 1);
                v.insert(i, INTERESTING[rng.below(INTERESTING.len())]);
            }
            4 if len > 0 => {
                let i = rng.below(len);
                v.remove(i);
            }
            5 => {
                let other = &all[rng.below(all.len())];
                let (a, b) = (rng.below(len + 1), rng.below(other.len() + 1));
                v.truncate(a);
                v.extend_from_slice(&other[b..]);
            }
            _ if len > 0 => {
                // Duplicate a chunk (repeats records, attributes, lines).
                let a = rng.below(len);
                let b = (a + 1 + rng.below(64)).min(len);
                let chunk = v[a..b].to_vec();
                let at = rng.below(len + 1);
                v.splice(at..at, chunk);
            }
            _ => v.push(INTERESTING[rng.below(INTERESTING.len())]),
        }
    }
    v
}

fn run(target: &str, f: fn(&[u8])) {
    let n: usize = std::env::var("POSTERN_FUZZ_MUTATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    let seeds = inputs(target);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ target.len() as u64);
    for (i, seed) in seeds.iter().enumerate() {
        f(seed);
        for m in 0..n {
            let input = mutate(&mut rng, seed, &seeds);
            let r = std::panic::catch_unwind(|| f(&input));
            if r.is_err() {
                let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("artifacts")
                    .join(target);
                let _ = std::fs::create_dir_all(&dir); // best effort: the panic below is the report
                let path = dir.join(format!("crash-seed{i}-mut{m}"));
                let _ = std::fs::write(&path, &input); // best effort, as above
                panic!(
                    "{target}: input {} panicked (seed {i}, mutation {m})",
                    path.display()
                );
            }
        }
    }
}

#[test]
fn ipc_frame() {
    run("ipc_frame", postern_fuzz::ipc_frame)
}

#[test]
fn qfile_parse() {
    run("qfile_parse", postern_fuzz::qfile_parse)
}

#[test]
fn main_cf() {
    run("main_cf", postern_fuzz::main_cf)
}

#[test]
fn master_cf() {
    run("master_cf", postern_fuzz::master_cf)
}

#[test]
fn local_lists() {
    run("local_lists", |d| {
        postern_local::alias::fuzz(d);
        postern_local::expand::fuzz(d);
    })
}

#[test]
fn mac_expand() {
    run("mac_expand", postern_config::mac_expand::fuzz)
}

#[test]
fn smtp_tls_policy() {
    run("smtp_tls_policy", postern_smtp::policy::fuzz)
}

#[test]
fn cleanup_checks() {
    run("cleanup_checks", postern_cleanup::fuzz)
}

#[test]
fn postmap_line() {
    run("postmap_line", postern_table::fuzz::postmap_line);
}

#[test]
fn table_source() {
    run("table_source", postern_table::fuzz::table_source);
}

#[test]
fn alias_line() {
    run("alias_line", postern_table::fuzz::alias_line);
}

#[test]
fn pipe_argv() {
    run("pipe_argv", |d| {
        postern_config::pipe::fuzz(d);
        postern_mail::dsn::fuzz(d);
    })
}

#[test]
fn relay_address() {
    run("relay_address", postern_table::fuzz::relay_address);
}

#[test]
fn milter_packet() {
    run("milter_packet", postern_milter::fuzz::packet);
}

#[test]
fn milter_reply() {
    run("milter_reply", postern_milter::fuzz::reply);
}

#[test]
fn spf_record() {
    run("spf_record", postern_auth::fuzz::spf_record);
}

#[test]
fn dkim_keytable() {
    run("dkim_keytable", postern_auth::fuzz::keytable);
}

#[test]
fn auth_headers() {
    run("auth_headers", postern_fuzz::auth_headers);
}
