//! The pyzmq worker and client that `spec.org` shows Python users, run as they are written
//! there (extracted from its `#+NAME:` blocks) against `ezarch up`.

mod interop;

use std::process::{Command, Stdio};

use interop::node::{Settings, LOG_WAIT};
use interop::python;

/// The source block named `name` in spec.org.
fn example(name: &str) -> String {
    let spec = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/spec.org")).unwrap();
    let start = spec.find(&format!("#+NAME: {name}\n#+begin_src python\n")).expect(name);
    let body = &spec[start..];
    let body = &body[body.find('\n').unwrap() + 1..];
    let body = &body[body.find('\n').unwrap() + 1..];
    body[..body.find("#+end_src").expect("end of block")].to_string()
}

#[test]
fn the_python_worker_and_client_in_spec_org_work_as_written() {
    let s = Settings::new(&[]);
    let node = s.start(&["up"]);
    let dir = std::env::temp_dir().join(format!("ezarch-examples-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (worker_py, client_py) = (dir.join("worker.py"), dir.join("client.py"));
    std::fs::write(&worker_py, example("example-worker")).unwrap();
    std::fs::write(&client_py, example("example-client")).unwrap();
    let mut worker = Command::new(python())
        .arg(&worker_py)
        .arg(s.endpoint("WORKER_PIPE_PORT_A"))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    node.wait_log("joined service echo", 1, LOG_WAIT);
    let out = Command::new(python()).arg(&client_py).arg(s.endpoint("IN_PIPE_PORT_A")).output().unwrap();
    let _ = worker.kill();
    let _ = worker.wait();
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout.lines().collect::<Vec<_>>(), ["[b'OK', b'hello']", "[b'200']"]);
}

#[test]
fn links_in_the_readme_and_spec_point_inside_the_repository() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for doc in ["README.md", "spec.org", "benches/README.md"] {
        let text = std::fs::read_to_string(root.join(doc)).unwrap();
        // Markdown `[text](target)` and Org `[[file:target]]` / `[[target]]`.
        let is_markdown = doc.ends_with(".md");
        let markdown =
            text.split("](").skip(1).filter(|_| is_markdown).filter_map(|rest| rest.split(')').next());
        let org = text.split("[[").skip(1).filter_map(|rest| rest.split(']').next());
        for target in markdown.chain(org) {
            let target = target.trim_start_matches("file:").split('#').next().unwrap_or_default();
            if target.is_empty() || target.starts_with("http") {
                continue;
            }
            let path = root.join(doc).parent().unwrap().join(target);
            let inside = path.canonicalize().is_ok_and(|p| p.starts_with(root.canonicalize().unwrap()));
            assert!(inside, "{doc} links to {target}, which is not a file in the repository");
        }
    }
}
