//! Re-captures the golden vectors from the pyzmq installed now and checks they equal the committed
//! ones, so the vectors cannot drift from what real libzmq sends. Fails (does not skip) when
//! python3 or pyzmq is missing: `.ci/run` installs pyzmq.

mod interop;

use std::path::Path;
use std::process::Command;

#[test]
fn committed_vectors_equal_a_fresh_capture_from_pyzmq() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = std::env::temp_dir().join(format!("ezarch-vectors-{}", std::process::id()));
    let status = Command::new(interop::python())
        .arg(Path::new(root).join("tests/capture_vectors.py"))
        .arg("--out")
        .arg(&out)
        .status()
        .expect("python3 must be installed to run the interop tests");
    assert!(status.success(), "capture_vectors.py failed: is pyzmq installed? (pip install pyzmq)");
    let committed = Path::new(root).join("tests/vectors");
    let mut compared = 0;
    for entry in std::fs::read_dir(&committed).unwrap() {
        let name = entry.unwrap().file_name();
        if !name.to_string_lossy().ends_with(".bin") {
            continue;
        }
        let fresh = std::fs::read(out.join(&name)).unwrap_or_else(|e| panic!("{name:?}: {e}"));
        let golden = std::fs::read(committed.join(&name)).unwrap();
        assert_eq!(fresh, golden, "{name:?} differs from what pyzmq sends now");
        compared += 1;
    }
    assert!(compared >= 20, "only {compared} vectors compared");
    let _ = std::fs::remove_dir_all(&out);
}
