//! CURVE for a node and its clients, from settings:
//! - `CURVE_SECRET_KEY` (Z85, or `CURVE_SECRET_KEY_FILE` holding it, so it stays out of process
//!   lists): this process's long-term key. On `up`, `pipe` and `broker`, every listener speaks
//!   CURVE with it.
//! - `CURVE_CLIENT_KEYS`: a file of allowed client public keys, one 40-character Z85 key per
//!   line; blank lines, lines starting with `# ` (whatever their length) or with `#` and
//!   anything but a whole 40-character key (`#` is a Z85 character), and a trailing ` # note`
//!   are comments. Unset, any key that completes the handshake
//!   may connect. Reloaded on SIGHUP (`Security::reload`).
//! - `CURVE_PERMISSIONS`: a file of per-key permissions, lines `KEY call SERVICE...`,
//!   `KEY serve SERVICE...` (`*` for every service) and `KEY broker` (comments as in the
//!   allowlist). With it, a key completes a handshake only at the doors its rules name
//!   (`Permissions::may_enter`: `call` for the client door, `serve` for the worker doors,
//!   `broker` for the four broker-side ports); once in, a client may call only its services and
//!   a worker serve only its own (`pipe::Gate`). Keys it does not name may do nothing.
//! - `CURVE_SERVER_KEY` (Z85): the node's public key. With it (and a secret key) `call`,
//!   `worker`, `broker`'s connections and the Rust client and worker speak CURVE.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use zmtp::curve::{Authorizer, Curve, KeyPair, Provider};
use zmtp::z85;

use crate::config::{Config, ConfigError};
use crate::door::Door;
use crate::logging::Throttled;

/// Allowed client keys, shared with every listener's `Authorizer`.
type Allowlist = Arc<RwLock<HashSet<[u8; 32]>>>;

/// What each key may call and serve, and which keys are brokers (`CURVE_PERMISSIONS`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Permissions {
    call: HashMap<[u8; 32], Vec<Vec<u8>>>,
    serve: HashMap<[u8; 32], Vec<Vec<u8>>>,
    brokers: HashSet<[u8; 32]>,
}

impl Permissions {
    /// Parses the rules file's text (see the module doc).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut permissions = Self::default();
        for (number, line) in text.lines().enumerate() {
            let line = line.split(" #").next().unwrap_or_default().trim();
            if is_comment(line) {
                continue;
            }
            let bad = |what: &str| format!("line {}: {what}", number + 1);
            let mut words = line.split_whitespace();
            let key = words.next().ok_or_else(|| bad("no key"))?;
            let key = z85::decode_key(key).map_err(|e| bad(&format!("not a Z85 key ({e})")))?;
            let table = match words.next() {
                Some("call") => &mut permissions.call,
                Some("serve") => &mut permissions.serve,
                Some("broker") if words.next().is_none() => {
                    permissions.brokers.insert(key);
                    continue;
                }
                Some("broker") => return Err(bad("KEY broker takes no services")),
                _ => return Err(bad("expected KEY call SERVICE..., KEY serve SERVICE... or KEY broker")),
            };
            table.entry(key).or_default().extend(words.map(|w| w.as_bytes().to_vec()));
        }
        Ok(permissions)
    }

    fn grants(table: &HashMap<[u8; 32], Vec<Vec<u8>>>, key: &[u8; 32], service: &[u8]) -> bool {
        table.get(key).is_some_and(|services| services.iter().any(|s| s == b"*" || s == service))
    }

    /// Whether the client with `key` may call `service`.
    pub fn may_call(&self, key: &[u8; 32], service: &[u8]) -> bool {
        Self::grants(&self.call, key, service)
    }

    /// Whether the worker with `key` may serve `service`.
    pub fn may_serve(&self, key: &[u8; 32], service: &[u8]) -> bool {
        Self::grants(&self.serve, key, service)
    }

    /// Whether `key` is a broker's (`KEY broker`).
    pub fn is_broker(&self, key: &[u8; 32]) -> bool {
        self.brokers.contains(key)
    }

    /// Whether `key` may complete a handshake at `door`: it has a `call` rule (clients), a
    /// `serve` rule (workers) or the `broker` rule (brokers).
    pub fn may_enter(&self, key: &[u8; 32], door: Door) -> bool {
        match door {
            Door::Clients => self.call.contains_key(key),
            Door::Workers => self.serve.contains_key(key),
            Door::Brokers => self.is_broker(key),
        }
    }
}

/// CURVE handshakes refused, by reason; shared with every listener's `Authorizer`.
#[derive(Debug, Default)]
pub struct HandshakeRefusals {
    /// The key is not in `CURVE_CLIENT_KEYS`.
    pub not_allowed: AtomicU64,
    /// The key is allowed, but `CURVE_PERMISSIONS` gives it no rule for this door, per door
    /// (`Door::index`).
    pub wrong_door: [AtomicU64; 3],
}

impl HandshakeRefusals {
    /// Keys refused at `door` for want of its rule.
    pub fn at(&self, door: Door) -> u64 {
        self.wrong_door[door.index()].load(Ordering::Relaxed)
    }

    /// Keys refused because they are not in the allowlist.
    pub fn not_allowed(&self) -> u64 {
        self.not_allowed.load(Ordering::Relaxed)
    }
}

/// CURVE as the settings ask for it.
#[derive(Clone, Default)]
pub struct Security {
    keys: Option<KeyPair>,
    /// libsodium, when CURVE is on.
    provider: Option<Provider>,
    server_key: Option<[u8; 32]>,
    /// The allowlist file and its keys, when `CURVE_CLIENT_KEYS` is set.
    allowlist: Option<(String, Allowlist)>,
    /// Per-key permissions, when `CURVE_PERMISSIONS` is set.
    permissions: Option<Arc<Permissions>>,
    /// Handshakes refused, by reason.
    refusals: Arc<HandshakeRefusals>,
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Security").field("keys", &self.keys).finish_non_exhaustive()
    }
}

impl Security {
    /// The CURVE primitives (libsodium), when CURVE is on.
    pub fn provider(&self) -> Option<&Provider> {
        self.provider.as_ref()
    }

    /// Reads the keys the settings name. A key that is not Z85, a file that cannot be read, or a
    /// line of the allowlist that is not a key is an error naming the setting.
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        let secret = match (config.get("CURVE_SECRET_KEY"), config.get("CURVE_SECRET_KEY_FILE")) {
            ("", "") => None,
            (key, "") => Some(decode("CURVE_SECRET_KEY", key)?),
            ("", path) => {
                let text = read("CURVE_SECRET_KEY_FILE", path)?;
                Some(decode("CURVE_SECRET_KEY_FILE", text.trim())?)
            }
            _ => return Err(ConfigError("set CURVE_SECRET_KEY or CURVE_SECRET_KEY_FILE, not both".into())),
        };
        let server_key = match config.get("CURVE_SERVER_KEY") {
            "" => None,
            key => Some(decode("CURVE_SERVER_KEY", key)?),
        };
        let allowlist = match config.get("CURVE_CLIENT_KEYS") {
            "" => None,
            path => {
                let keys = read_allowlist(path)?;
                Some((path.to_string(), Arc::new(RwLock::new(keys))))
            }
        };
        if allowlist.is_some() && secret.is_none() {
            return Err(ConfigError(
                "CURVE_CLIENT_KEYS needs CURVE_SECRET_KEY (or _FILE): CURVE is off".into(),
            ));
        }
        if server_key.is_some() && secret.is_none() {
            // Connecting with NULL to a node we expect to speak CURVE would be a silent downgrade.
            return Err(ConfigError(
                "CURVE_SERVER_KEY needs this side's own CURVE_SECRET_KEY (or _FILE; ezarch keygen)".into(),
            ));
        }
        let permissions = match config.get("CURVE_PERMISSIONS") {
            "" => None,
            path => {
                let text = read("CURVE_PERMISSIONS", path)?;
                let rules = Permissions::parse(&text)
                    .map_err(|e| ConfigError(format!("CURVE_PERMISSIONS {path}: {e}")))?;
                Some(Arc::new(rules))
            }
        };
        if permissions.is_some() && secret.is_none() {
            return Err(ConfigError(
                "CURVE_PERMISSIONS needs CURVE_SECRET_KEY (or _FILE): CURVE is off".into(),
            ));
        }
        let secret = secret.map(zeroize::Zeroizing::new);
        let provider = match secret {
            Some(_) => Some(crate::sodium::provider().ok_or_else(|| {
                ConfigError(
                    "CURVE needs libsodium, which could not be initialised (sodium_init failed)".into(),
                )
            })?),
            None => None,
        };
        let keys =
            secret.as_ref().zip(provider.as_ref()).map(|(secret, p)| KeyPair::from_secret(&**p, **secret));
        Ok(Self { keys, provider, server_key, allowlist, permissions, refusals: Arc::default() })
    }

    /// CURVE for the listeners of `door`: this process's keys, and who may complete a handshake
    /// there: a key in the allowlist (any key without one) that, with `CURVE_PERMISSIONS`, has
    /// the door's rule (`Permissions::may_enter`). `None` when CURVE is off. A refused key gets
    /// an ERROR, is counted (`refusals`) and logged.
    pub fn server(&self, door: Door) -> Option<Curve> {
        let keys = self.keys.clone()?;
        let provider = self.provider.clone()?;
        let allowlist = self.allowlist.as_ref().map(|(_, allowed)| allowed.clone());
        let permissions = self.permissions.clone();
        let refusals = self.refusals.clone();
        let log = Mutex::new(Throttled::default());
        let authorizer = Authorizer::new(move |key| {
            if allowlist.as_ref().is_some_and(|set| !set.read().is_ok_and(|set| set.contains(key))) {
                refusals.not_allowed.fetch_add(1, Ordering::Relaxed);
                return false;
            }
            if permissions.as_ref().is_some_and(|rules| !rules.may_enter(key, door)) {
                refusals.wrong_door[door.index()].fetch_add(1, Ordering::Relaxed);
                let due = log.lock().ok().and_then(|mut log| log.note(std::time::Instant::now()));
                if let Some(count) = due {
                    log::info!(
                        "CURVE key {} refused at the {door}: CURVE_PERMISSIONS gives it no '{}' rule \
                         ({count} refusal(s) there since the last such line)",
                        z85::encode(key).unwrap_or_default(),
                        door.rule()
                    );
                }
                return false;
            }
            true
        });
        Some(Curve::Server { keys, authorizer, provider })
    }

    /// Handshakes refused so far, by reason.
    pub fn refusals(&self) -> &HandshakeRefusals {
        &self.refusals
    }

    /// CURVE for connections to a node; `None` unless both our secret key and the node's public
    /// key are set.
    pub fn client(&self) -> Option<Curve> {
        Some(Curve::Client {
            keys: self.keys.clone()?,
            server: self.server_key?,
            provider: self.provider.clone()?,
        })
    }

    /// Whether listeners speak CURVE.
    pub fn is_on(&self) -> bool {
        self.keys.is_some()
    }

    /// The per-key permissions, if `CURVE_PERMISSIONS` is set.
    pub fn permissions(&self) -> Option<Arc<Permissions>> {
        self.permissions.clone()
    }

    /// Whether only listed client keys may connect.
    pub fn has_allowlist(&self) -> bool {
        self.allowlist.is_some()
    }

    /// One phrase for the start-up log: the mechanism, the public key, how many clients may
    /// connect.
    pub fn describe(&self) -> String {
        let Some(keys) = &self.keys else { return "NULL (no authentication, no encryption)".into() };
        let public = z85::encode(keys.public()).unwrap_or_default();
        match &self.allowlist {
            None => format!("CURVE, public key {public}, any client key"),
            Some((path, allowed)) => {
                let n = allowed.read().map_or(0, |set| set.len());
                format!("CURVE, public key {public}, {n} client key(s) allowed from {path}")
            }
        }
    }

    /// Reads the allowlist file again (SIGHUP). Returns how many keys are allowed now; on an
    /// error the old list stays.
    pub fn reload(&self) -> Result<usize, ConfigError> {
        let Some((path, allowed)) = &self.allowlist else { return Ok(0) };
        let keys = read_allowlist(path)?;
        let count = keys.len();
        if let Ok(mut set) = allowed.write() {
            *set = keys;
        }
        Ok(count)
    }

    /// Whether a client with this key may be connected now (always, without an allowlist).
    pub fn allows(&self, key: &[u8; 32]) -> bool {
        match &self.allowlist {
            None => true,
            Some((_, allowed)) => allowed.read().is_ok_and(|set| set.contains(key)),
        }
    }
}

fn decode(setting: &str, key: &str) -> Result<[u8; 32], ConfigError> {
    z85::decode_key(key.trim())
        .map_err(|e| ConfigError(format!("{setting}: not a 40-character Z85 key ({e})")))
}

fn read(setting: &str, path: &str) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| ConfigError(format!("{setting} {path}: {e}")))
}

/// Whether a line of the allowlist or the rules file (a trailing ` # note` already cut off) says
/// nothing: blank, or starting with a word that begins with `#` and is not a 40-character key:
/// `# ` and anything after it whatever its length, and `#KEY` (41 characters), so a key commented out as `#KEY` is not allowed (rather than failing the
/// whole file and leaving the old list in force). A 40-character key may itself start with `#`
/// (a Z85 digit); `# ` cannot start one (space is not a Z85 digit).
fn is_comment(line: &str) -> bool {
    let first = line.split_whitespace().next().unwrap_or_default();
    line.is_empty() || first.starts_with('#') && first.len() != 40
}

/// The keys of an allowlist file (see the module doc).
pub fn parse_allowlist(text: &str) -> Result<HashSet<[u8; 32]>, String> {
    let mut keys = HashSet::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.split(" #").next().unwrap_or_default().trim();
        if is_comment(line) {
            continue;
        }
        let key = z85::decode_key(line).map_err(|e| format!("line {}: not a Z85 key ({e})", number + 1))?;
        keys.insert(key);
    }
    Ok(keys)
}

fn read_allowlist(path: &str) -> Result<HashSet<[u8; 32]>, ConfigError> {
    let text = read("CURVE_CLIENT_KEYS", path)?;
    parse_allowlist(&text).map_err(|e| ConfigError(format!("CURVE_CLIENT_KEYS {path}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> KeyPair {
        crate::sodium::generate_keys().unwrap()
    }

    #[test]
    fn the_allowlist_takes_keys_starting_with_hash_and_skips_comments() {
        let a = keys();
        let key_a = z85::encode(a.public()).unwrap();
        // A key with '#' in it (a Z85 digit; only "# " starts a comment).
        let hashy = (0u8..=255).map(|b| [b; 32]).find(|k| z85::encode(k).unwrap().contains('#')).unwrap();
        let key_hash = z85::encode(&hashy).unwrap();
        let revoked = z85::encode(keys().public()).unwrap();
        // A comment of exactly 40 characters, and one of 41 (the length of `#KEY`).
        let forty = format!("# {}", "x".repeat(38));
        let forty_one = format!("# {}", "y".repeat(39));
        let text = format!(
            "# allowed clients\n\n{key_a} # alice\n  {key_hash}  \n#\n#{revoked}\n{forty}\n{forty_one}\n"
        );
        let keys = parse_allowlist(&text).unwrap();
        assert!(keys.contains(a.public()) && keys.contains(&hashy));
        assert_eq!(keys.len(), 2, "a key commented out with '#' is not allowed");
        let err = parse_allowlist("not a key\n").unwrap_err();
        assert!(err.starts_with("line 1"), "{err}");
    }

    #[test]
    fn permissions_name_what_each_key_may_call_and_serve() {
        let (a, b, c) = (keys(), keys(), keys());
        let z = |k: &KeyPair| z85::encode(k.public()).unwrap();
        let text = format!(
            "# rules\n{} call echo time\n{} serve echo # the echo worker\n{} call *\n",
            z(&a),
            z(&b),
            z(&c)
        );
        let rules = Permissions::parse(&text).unwrap();
        assert!(rules.may_call(a.public(), b"echo") && rules.may_call(a.public(), b"time"));
        assert!(!rules.may_call(a.public(), b"other") && !rules.may_serve(a.public(), b"echo"));
        assert!(rules.may_serve(b.public(), b"echo") && !rules.may_call(b.public(), b"echo"));
        assert!(rules.may_call(c.public(), b"anything"));
        assert!(!rules.may_call(keys().public(), b"echo"), "an unnamed key may do nothing");
        assert!(Permissions::parse(&format!("{} read echo", z(&a))).unwrap_err().starts_with("line 1"));
        assert!(Permissions::parse(&format!("{} broker echo", z(&a))).unwrap_err().contains("no services"));
    }

    #[test]
    fn each_door_admits_only_keys_with_its_rule() {
        let (client, worker, broker) = (keys(), keys(), keys());
        let z = |k: &KeyPair| z85::encode(k.public()).unwrap();
        let text = format!("{} call echo\n{} serve echo\n{} broker\n", z(&client), z(&worker), z(&broker));
        let rules = Permissions::parse(&text).unwrap();
        let doors = |k: &KeyPair| Door::ALL.map(|door| rules.may_enter(k.public(), door));
        assert_eq!(doors(&client), [true, false, false]);
        assert_eq!(doors(&worker), [false, true, false]);
        assert_eq!(doors(&broker), [false, false, true]);
        assert_eq!(doors(&keys()), [false; 3], "an unnamed key enters nowhere");
        assert!(rules.is_broker(broker.public()) && !rules.may_call(broker.public(), b"echo"));
    }
}
