//! Any bytes as a tool path (`r:` + input, and as a whole path): the
//! parser never panics, and nothing the resolver opens lies outside the
//! root of a trap-filled fixture (`tailops::host::files::invariant`).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tailops::host::files::invariant;
use tailops::host::files::root::Root;

struct Fixture {
    root: Root,
    real: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tmp");
        let root = invariant::fixture(dir.path()).expect("fixture");
        let real = std::fs::canonicalize(dir.path().join("root")).expect("real");
        Fixture { root, real, _dir: dir }
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let f = fixture();
    for input in [s.to_string(), format!("r:{s}")] {
        if let Err(broken) = invariant::check(&f.root, &f.real, &input) {
            panic!("{broken}");
        }
    }
});
