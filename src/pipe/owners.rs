//! Which CURVE key owns each worker identity: the key whose heartbeat first registered it,
//! for as long as that worker is live (a heartbeat within the lifetime). Another key's
//! heartbeat or reply under that identity is refused, and a dispatch is delivered only to a
//! connection holding the owner's key, so a key admitted to serve one thing cannot take over a
//! worker it is not.
//!
//! A plain table, bounded: at most `MAX_OWNERS` identities. An owner whose worker went silent
//! keeps its claim for one more lifetime (a broker elsewhere may hear its last heartbeat late
//! and still send to it for that long), then another key may claim the identity; lapsed claims
//! are swept out at most once per lifetime.

use std::time::{Duration, Instant};

use bytes::Bytes;
use hashbrown::HashMap;

use crate::time::after;

/// Most identities remembered at once; beyond it a new identity's heartbeat is refused until
/// some expire (about 100 bytes each: 10 MiB).
pub const MAX_OWNERS: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Owner {
    key: [u8; 32],
    /// Its claim holds against other keys until then: a lifetime past its worker's last
    /// heartbeat, and one more.
    expires: Instant,
}

/// What a heartbeat's claim came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The identity is this key's (new, renewed, or its old owner's claim had lapsed).
    Granted,
    /// Another key owns the identity.
    Taken,
    /// The table is full of live identities.
    Full,
}

/// Worker identities and their owners' keys.
#[derive(Debug)]
pub struct Owners {
    lifetime: Duration,
    owners: HashMap<Bytes, Owner>,
    /// When expired owners were last swept out.
    last_sweep: Option<Instant>,
}

impl Owners {
    /// An empty table; a claim lasts `lifetime` past each heartbeat (WORKER_LIFETIME_S).
    pub fn new(lifetime: Duration) -> Self {
        Self { lifetime, owners: HashMap::new(), last_sweep: None }
    }

    /// A heartbeat from `key` under `identity` at `now`.
    pub fn claim(&mut self, identity: &[u8], key: &[u8; 32], now: Instant) -> Claim {
        let expires = after(now, self.lifetime * 2);
        self.sweep(now);
        let full = self.owners.len() >= MAX_OWNERS;
        match self.owners.get_mut(identity) {
            Some(owner) if owner.key == *key || owner.expires <= now => {
                *owner = Owner { key: *key, expires };
                Claim::Granted
            }
            Some(_) => Claim::Taken,
            None if full => Claim::Full,
            None => {
                self.owners.insert(Bytes::copy_from_slice(identity), Owner { key: *key, expires });
                Claim::Granted
            }
        }
    }

    /// Whether `key` may speak for `identity` now (a reply): it owns it, or nobody holds a live
    /// claim to it.
    pub fn may_speak(&self, identity: &[u8], key: &[u8; 32], now: Instant) -> bool {
        self.owners.get(identity).is_none_or(|owner| owner.key == *key || owner.expires <= now)
    }

    /// Whether a dispatch for `identity` may go to a connection holding `key`: the identity is
    /// known and `key` is its last owner's.
    pub fn may_receive(&self, identity: &[u8], key: &[u8; 32]) -> bool {
        self.owners.get(identity).is_some_and(|owner| owner.key == *key)
    }

    /// Identities remembered now.
    pub fn len(&self) -> usize {
        self.owners.len()
    }

    /// Whether no identity is remembered.
    pub fn is_empty(&self) -> bool {
        self.owners.is_empty()
    }

    /// Forgets owners whose claim lapsed; at most once per lifetime (a full table refuses new
    /// identities until then, so no claim can make every heartbeat walk the table).
    fn sweep(&mut self, now: Instant) {
        if self.last_sweep.is_some_and(|at| now.saturating_duration_since(at) < self.lifetime) {
            return;
        }
        self.last_sweep = Some(now);
        self.owners.retain(|_, owner| owner.expires > now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identity_belongs_to_its_first_key_while_it_is_live() {
        let start = Instant::now();
        let (owner, thief) = ([1u8; 32], [2u8; 32]);
        let mut owners = Owners::new(Duration::from_secs(9));
        assert_eq!(owners.claim(b"w-1", &owner, start), Claim::Granted);
        assert_eq!(owners.claim(b"w-1", &thief, start + Duration::from_secs(1)), Claim::Taken);
        assert!(!owners.may_speak(b"w-1", &thief, start + Duration::from_secs(1)));
        assert!(owners.may_speak(b"w-1", &owner, start) && owners.may_speak(b"w-2", &thief, start));
        assert!(owners.may_receive(b"w-1", &owner) && !owners.may_receive(b"w-1", &thief));
        assert!(!owners.may_receive(b"w-2", &owner), "nobody registered w-2: no dispatch to it");
        // Renewed by its owner at 8 s, it holds a lifetime and one more (a broker elsewhere may
        // still send to it); then it may be claimed anew.
        assert_eq!(owners.claim(b"w-1", &owner, start + Duration::from_secs(8)), Claim::Granted);
        assert_eq!(owners.claim(b"w-1", &thief, start + Duration::from_secs(25)), Claim::Taken);
        assert!(!owners.may_speak(b"w-1", &thief, start + Duration::from_secs(25)));
        assert_eq!(owners.claim(b"w-1", &thief, start + Duration::from_secs(26)), Claim::Granted);
        assert!(owners.may_receive(b"w-1", &thief) && !owners.may_receive(b"w-1", &owner));
    }

    #[test]
    fn lapsed_owners_are_swept_and_the_table_is_bounded() {
        let start = Instant::now();
        let mut owners = Owners::new(Duration::from_secs(1));
        for i in 0..MAX_OWNERS as u32 {
            assert_eq!(owners.claim(&i.to_be_bytes(), &[0; 32], start), Claim::Granted);
        }
        assert_eq!(owners.claim(b"one more", &[0; 32], start), Claim::Full);
        assert_eq!(owners.len(), MAX_OWNERS);
        // Full, the table is not walked again within a lifetime: still full half a second on.
        let soon = start + Duration::from_millis(500);
        assert_eq!(owners.claim(b"one more", &[0; 32], soon), Claim::Full);
        // Two lifetimes after their last heartbeat every claim has lapsed: swept.
        assert_eq!(owners.claim(b"one more", &[0; 32], start + Duration::from_secs(2)), Claim::Granted);
        assert_eq!(owners.len(), 1);
    }
}
