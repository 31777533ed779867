//! A CURVE node's keys for tests: the node's key pair and its allowlist in a directory of their
//! own, the settings that point `ezarch` at them, and pyzmq CURVE peers (tests/interop/curve.py)
//! holding keys of their own.

use ezarch::zmtp::curve::KeyPair;
use ezarch::zmtp::z85;

use super::node::Settings;
use super::{spawn_script, Peer};

pub fn z(key: &[u8; 32]) -> String {
    z85::encode(key).unwrap()
}

pub struct CurveNode {
    pub server: KeyPair,
    pub dir: std::path::PathBuf,
}

impl CurveNode {
    /// Keys in a directory of their own; the allowlist file holds `allowed`.
    pub fn new(allowed: &[&KeyPair]) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "ezarch-curve-{}-{}",
            std::process::id(),
            ezarch::random::next_u64()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let node = Self { server: ezarch::sodium::generate_keys().unwrap(), dir };
        node.allow(allowed);
        node
    }

    pub fn allow(&self, keys: &[&KeyPair]) {
        let mut text = "# allowed clients and workers\n".to_string();
        for key in keys {
            text.push_str(&z(key.public()));
            text.push('\n');
        }
        std::fs::write(self.dir.join("clients"), text).unwrap();
    }

    pub fn settings(&self) -> Settings {
        let secret_file = self.dir.join("secret");
        std::fs::write(&secret_file, z(&self.server.secret_bytes())).unwrap();
        let secret = format!("CURVE_SECRET_KEY_FILE={}", secret_file.display());
        let clients = format!("CURVE_CLIENT_KEYS={}", self.dir.join("clients").display());
        Settings::new(&[&secret, &clients])
    }

    /// Runs `ezarch ARGS` as a client holding `keys` that connects to this node with CURVE (the
    /// node's own key settings, shared through `s`, cleared).
    pub fn ezarch_as(&self, s: &Settings, keys: &KeyPair, args: &[&str]) -> std::process::Output {
        let mut command = s.ezarch(args);
        command
            .env("CURVE_SERVER_KEY", z(self.server.public()))
            .env("CURVE_SECRET_KEY", z(&keys.secret_bytes()));
        command.args(["--set", "CURVE_SECRET_KEY_FILE=", "--set", "CURVE_CLIENT_KEYS="]).output().unwrap()
    }

    pub fn peer(&self, role: &str, endpoint: &str, keys: &KeyPair, rest: &[&str]) -> Peer {
        let (server, public, secret) = (z(self.server.public()), z(keys.public()), z(&keys.secret_bytes()));
        let mut args = vec![role, endpoint, &server, &public, &secret];
        args.extend_from_slice(rest);
        spawn_script("curve.py", &args)
    }
}

impl Drop for CurveNode {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl CurveNode {
    /// Runs `curve.py ROLE SERVER_KEY PUBLIC SECRET REST...` holding `keys`: a peer that
    /// connects to several endpoints, named in `rest`.
    pub fn peer_with(&self, keys: &KeyPair, role: &str, rest: &[&str]) -> Peer {
        let (server, public, secret) = (z(self.server.public()), z(keys.public()), z(&keys.secret_bytes()));
        let mut args = vec![role, &server, &public, &secret];
        args.extend_from_slice(rest);
        spawn_script("curve.py", &args)
    }

    /// A node whose allowlist holds every key of `rules`, each with its rule (`call svc`,
    /// `serve svc`, `broker`) in `CURVE_PERMISSIONS`; returns it and that setting.
    pub fn with_rules(rules: &[(&KeyPair, &str)]) -> (Self, String) {
        let keys: Vec<&KeyPair> = rules.iter().map(|(k, _)| *k).collect();
        let node = Self::new(&keys);
        let text: String = rules.iter().map(|(k, rule)| format!("{} {rule}\n", z(k.public()))).collect();
        let setting = node.rules(&text);
        (node, setting)
    }

    /// Writes `rules` as the node's `CURVE_PERMISSIONS` file; returns the setting naming it.
    pub fn rules(&self, rules: &str) -> String {
        let path = self.dir.join("rules");
        std::fs::write(&path, rules).unwrap();
        format!("CURVE_PERMISSIONS={}", path.display())
    }

    /// `ezarch stats --json` as a client holding `keys`, parsed.
    pub fn stats(&self, s: &Settings, keys: &KeyPair) -> serde_json::Value {
        let out = self.ezarch_as(s, keys, &["stats", "--json"]);
        assert!(out.status.success(), "ezarch stats: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }
}
