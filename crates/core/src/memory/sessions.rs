//! The live sessions inside [`MemoryState`](super::MemoryState), kept compact.
//!
//! A million sessions must fit in well under a KiB each, so a session is not kept as a
//! [`SessionRecord`] (eight heap strings) but as a [`Slot`] of about 100 bytes with no heap
//! allocation of its own:
//! - the slots live in one `Vec`; two hash tables of `u32` slot numbers find them by the
//!   digest of the secret id and by the public key;
//! - the key is 16 bytes when it is a lowercase hyphenated UUID (every key vsess makes);
//!   any other key is kept as text;
//! - everything a user's sessions usually share (user, full and login names, role, locales,
//!   address, user agent) is one interned [`Profile`], and its strings are interned too;
//! - two ordered sets index the sessions by the second of their last activity and of their
//!   login, so that reaping visits only sessions that may have expired;
//! - a table from each user name (the interned `Arc<str>` of its profiles, found by its
//!   address) to the slot numbers of that user's sessions answers "the sessions of one
//!   user" without a walk over every session. Each slot knows its position in that list,
//!   so ending a session takes it out in constant time (a swap with the list's last
//!   entry), however many sessions the user has.
//!
//! Records are converted to and from [`SessionRecord`] at this module's boundary.
//!
//! The expiry index is updated lazily: a touch (the hot path) only writes the slot. Each
//! slot has exactly one entry in each index, at a second no later than its real activity
//! (or login) time; when an entry comes due, the slot's real times decide, and a session
//! that is still live is re-indexed at its current activity time. The indexes are built in
//! bulk at the first reap, so that replaying a log does not pay for them one at a time.
use crate::ids::{IdDigest, SessionKey};
use crate::privilege::Role;
use crate::session::{Expiry, SessionRecord};
use chrono::{DateTime, Duration, Utc};
use hashbrown::HashTable;
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::Arc;

/// A public session key: 16 bytes when the text is a canonical (lowercase, hyphenated)
/// UUID, so that converting back gives the same text; otherwise the text itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Uuid([u8; 16]),
    Text(Box<str>),
}

impl Key {
    fn new(s: &str) -> Self {
        match canonical_uuid(s) {
            Some(b) => Key::Uuid(b),
            None => Key::Text(s.into()),
        }
    }

    /// UUID keys are random bytes that vsess made, so folding them is a good hash; any
    /// other key gets the keyed one.
    fn table_hash(&self, keyed: &RandomState) -> u64 {
        match self {
            Key::Uuid(b) => {
                let (mut lo, mut hi) = ([0u8; 8], [0u8; 8]);
                lo.copy_from_slice(&b[..8]);
                hi.copy_from_slice(&b[8..]);
                (u64::from_le_bytes(lo) ^ u64::from_le_bytes(hi))
                    .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            }
            Key::Text(_) => keyed.hash_one(self),
        }
    }

    fn to_key(&self) -> SessionKey {
        SessionKey(match self {
            Key::Uuid(b) => {
                // `encode_lower` writes the text without the `fmt` machinery.
                let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
                String::from(
                    &*uuid::Uuid::from_bytes(*b)
                        .hyphenated()
                        .encode_lower(&mut buf),
                )
            }
            Key::Text(s) => s.to_string(),
        })
    }
}

/// The bytes of a UUID in the form `Uuid::hyphenated` writes (lowercase, with hyphens), the
/// only form that converts back to the same text.
fn canonical_uuid(s: &str) -> Option<[u8; 16]> {
    fn hex(c: Option<&u8>) -> Option<u8> {
        match *c? {
            c @ b'0'..=b'9' => Some(c - b'0'),
            c @ b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    let b = s.as_bytes();
    if b.len() != uuid::fmt::Hyphenated::LENGTH {
        return None;
    }
    let mut out = [0u8; 16];
    let mut i = 0;
    for o in &mut out {
        if matches!(i, 8 | 13 | 18 | 23) {
            if b.get(i) != Some(&b'-') {
                return None;
            }
            i += 1;
        }
        *o = (hex(b.get(i))? << 4) | hex(b.get(i + 1))?;
        i += 2;
    }
    Some(out)
}

/// What sessions of one user from one client share; interned.
#[derive(Debug, PartialEq, Eq)]
struct Profile {
    user_name: Arc<str>,
    full_name: Arc<str>,
    login_user: Arc<str>,
    locale: Arc<str>,
    message_locale: Arc<str>,
    ip_address: Arc<str>,
    user_agent: Arc<str>,
    user_id: Arc<str>,
    role: Role,
    extension_session: bool,
}

impl Profile {
    #[cfg(test)]
    fn strings(&self) -> [&Arc<str>; 8] {
        [
            &self.user_name,
            &self.full_name,
            &self.login_user,
            &self.locale,
            &self.message_locale,
            &self.ip_address,
            &self.user_agent,
            &self.user_id,
        ]
    }

    /// The fields that make a profile, from a profile or from a record: hashed alike.
    fn fields(&self) -> ProfileFields<'_> {
        (
            &self.user_name,
            &self.full_name,
            &self.login_user,
            &self.locale,
            &self.message_locale,
            &self.ip_address,
            &self.user_agent,
            &self.user_id,
            self.role,
            self.extension_session,
        )
    }

    fn matches(&self, r: &SessionRecord) -> bool {
        *self.user_name == *r.user_name
            && *self.full_name == *r.full_name
            && *self.login_user == *r.login_user
            && *self.locale == *r.locale
            && *self.message_locale == *r.message_locale
            && *self.ip_address == *r.ip_address
            && *self.user_agent == *r.user_agent
            && *self.user_id == *r.user_id
            && self.role == r.role
            && self.extension_session == r.extension_session
    }
}

type ProfileFields<'a> = (
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    Role,
    bool,
);

fn record_fields(r: &SessionRecord) -> ProfileFields<'_> {
    (
        &r.user_name,
        &r.full_name,
        &r.login_user,
        &r.locale,
        &r.message_locale,
        &r.ip_address,
        &r.user_agent,
        &r.user_id,
        r.role,
        r.extension_session,
    )
}

/// Interned profiles and strings. Each entry lives as long as some slot refers to it.
#[derive(Default)]
struct Interner {
    /// Each string with the number of profile fields that hold it. Counted rather than
    /// read off `Arc::strong_count`: the records a lookup returns share these strings too.
    strings: HashMap<Arc<str>, u32>,
    /// By the hash of [`Profile::fields`], so that a record finds its profile in one probe.
    profiles: HashTable<Arc<Profile>>,
    hasher: RandomState,
}

impl fmt::Debug for Interner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Interner")
            .field("strings", &self.strings.len())
            .field("profiles", &self.profiles.len())
            .finish()
    }
}

impl Interner {
    fn string(&mut self, s: &str) -> Arc<str> {
        if let Some((a, _)) = self.strings.get_key_value(s) {
            let a = a.clone();
            if let Some(n) = self.strings.get_mut(s) {
                *n += 1;
            }
            return a;
        }
        let a: Arc<str> = Arc::from(s);
        self.strings.insert(a.clone(), 1);
        a
    }

    fn profile(&mut self, r: &SessionRecord) -> Arc<Profile> {
        let h = self.hasher.hash_one(record_fields(r));
        if let Some(p) = self.profiles.find(h, |p| p.matches(r)) {
            return p.clone();
        }
        let p = Arc::new(Profile {
            user_name: self.string(&r.user_name),
            full_name: self.string(&r.full_name),
            login_user: self.string(&r.login_user),
            locale: self.string(&r.locale),
            message_locale: self.string(&r.message_locale),
            ip_address: self.string(&r.ip_address),
            user_agent: self.string(&r.user_agent),
            user_id: self.string(&r.user_id),
            role: r.role,
            extension_session: r.extension_session,
        });
        let hasher = &self.hasher;
        self.profiles
            .insert_unique(h, p.clone(), |q| hasher.hash_one(q.fields()));
        p
    }

    /// Drops one slot's reference; forgets the profile (and its strings) if it was the last.
    /// The interner's table holds the only other reference to a profile: none leave this
    /// module (records share its strings, not the profile).
    fn release(&mut self, p: Arc<Profile>) {
        if Arc::strong_count(&p) > 2 {
            return;
        }
        let h = self.hasher.hash_one(p.fields());
        if let Ok(e) = self.profiles.find_entry(h, |q| Arc::ptr_eq(q, &p)) {
            e.remove();
        }
        let Ok(p) = Arc::try_unwrap(p) else {
            return;
        };
        let fields = [
            p.user_name,
            p.full_name,
            p.login_user,
            p.locale,
            p.message_locale,
            p.ip_address,
            p.user_agent,
            p.user_id,
        ];
        for f in fields {
            if let Some(n) = self.strings.get_mut(&*f) {
                *n -= 1;
                if *n == 0 {
                    self.strings.remove(&*f);
                }
            }
        }
    }
}

/// One live session.
#[derive(Debug)]
struct Slot {
    digest: IdDigest,
    key: Key,
    login_time: DateTime<Utc>,
    last_active_time: DateTime<Utc>,
    call_count: u64,
    profile: Arc<Profile>,
    /// The second under which the idle index holds this slot.
    idle_at: u32,
    /// Where this slot is in its user's list (`Sessions::by_user`).
    user_pos: u32,
}

impl Slot {
    fn record(&self) -> SessionRecord {
        let p = &*self.profile;
        SessionRecord {
            digest: self.digest,
            key: self.key.to_key(),
            user_name: p.user_name.clone(),
            full_name: p.full_name.clone(),
            role: p.role,
            login_user: p.login_user.clone(),
            login_time: self.login_time,
            last_active_time: self.last_active_time,
            locale: p.locale.clone(),
            message_locale: p.message_locale.clone(),
            extension_session: p.extension_session,
            ip_address: p.ip_address.clone(),
            user_agent: p.user_agent.clone(),
            call_count: self.call_count,
            user_id: p.user_id.clone(),
        }
    }

    /// Exactly [`SessionRecord::expired`].
    fn expired(&self, now: DateTime<Utc>, idle: Duration, lifetime: Option<Duration>) -> bool {
        now - self.last_active_time >= idle || lifetime.is_some_and(|l| now - self.login_time >= l)
    }
}

/// The sessions of one user: the slots whose profile's `user_name` is `name`.
#[derive(Debug)]
struct UserList {
    /// The interner's own `Arc` for the name. Equal names share one `Arc` while any profile
    /// holds the name, and this clone keeps the address in use, so the address identifies
    /// the name for as long as the list exists.
    name: Arc<str>,
    /// In no order; `Slot::user_pos` is each slot's place here.
    slots: Vec<u32>,
}

/// A hash of an interned name's address (see [`UserList::name`]): no hashing of the text
/// while a log is replayed.
fn name_hash(name: &Arc<str>) -> u64 {
    let h = (Arc::as_ptr(name).cast::<u8>() as usize as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    h ^ (h >> 32)
}

/// Bytes of one slot in the slab.
pub(super) const SLOT_BYTES: usize = std::mem::size_of::<Option<Slot>>();
/// Bytes of one session's entries in the two hash tables (a `u32` and a control byte each),
/// in the two expiry indexes (a `u64` each) and in its user's list (a `u32`), before table
/// slack, B-tree nodes and list capacity.
pub(super) const INDEX_BYTES: usize =
    2 * (std::mem::size_of::<u32>() + 1) + 2 * 8 + std::mem::size_of::<u32>();

/// The index second of a time: whole seconds since 1970, clamped to `u32`. Never later
/// than the time itself, and ordered like it.
fn stamp(t: DateTime<Utc>) -> u32 {
    u32::try_from(t.timestamp().clamp(0, i64::from(u32::MAX))).unwrap_or(u32::MAX)
}

/// An index entry: the second, then the slot.
fn entry(at: u32, slot: u32) -> u64 {
    (u64::from(at) << 32) | u64::from(slot)
}

fn entry_slot(e: u64) -> u32 {
    // The low half is the slot number.
    (e & u64::from(u32::MAX)) as u32
}

/// Removes and returns the entries of `index` at or before the second `at`.
fn take_due(index: &mut BTreeSet<u64>, at: u32) -> BTreeSet<u64> {
    match at.checked_add(1) {
        Some(next) => {
            let bound = entry(next, 0);
            if index.first().is_none_or(|f| *f >= bound) {
                return BTreeSet::new();
            }
            let later = index.split_off(&bound);
            std::mem::replace(index, later)
        }
        None => std::mem::take(index),
    }
}

/// SHA-256 outputs are uniform already: their first eight bytes are a good hash.
fn digest_hash(d: &IdDigest) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&d.0[..8]);
    u64::from_le_bytes(b)
}

#[derive(Default)]
pub(super) struct Sessions {
    slots: Vec<Option<Slot>>,
    /// Empty slots, reused first.
    free: Vec<u32>,
    len: usize,
    by_digest: HashTable<u32>,
    by_key: HashTable<u32>,
    /// For keys that are not UUIDs (see [`Key::table_hash`]).
    key_hasher: RandomState,
    /// Whether `idle` and `login` are kept; they are built at the first reap.
    indexed: bool,
    /// `entry(idle_at, slot)` for every slot.
    idle: BTreeSet<u64>,
    /// `entry(stamp(login_time), slot)` for every slot.
    login: BTreeSet<u64>,
    /// One list for each user with a live session, by [`name_hash`]. A user with no
    /// session has no list.
    by_user: HashTable<UserList>,
    interner: Interner,
}

impl fmt::Debug for Sessions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sessions")
            .field("len", &self.len)
            .field("slots", &self.slots.len())
            .field("profiles", &self.interner.profiles.len())
            .field("users", &self.by_user.len())
            .finish()
    }
}

impl Sessions {
    pub(super) fn with_capacity(n: usize) -> Self {
        Self {
            slots: Vec::with_capacity(n),
            by_digest: HashTable::with_capacity(n),
            by_key: HashTable::with_capacity(n),
            ..Self::default()
        }
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    fn slot(&self, s: u32) -> Option<&Slot> {
        self.slots.get(s as usize).and_then(Option::as_ref)
    }

    fn slot_mut(&mut self, s: u32) -> Option<&mut Slot> {
        self.slots.get_mut(s as usize).and_then(Option::as_mut)
    }

    fn find_digest(&self, d: &IdDigest) -> Option<u32> {
        let slots = &self.slots;
        self.by_digest
            .find(digest_hash(d), |&s| {
                slots
                    .get(s as usize)
                    .and_then(Option::as_ref)
                    .is_some_and(|x| x.digest == *d)
            })
            .copied()
    }

    fn find_key(&self, k: &Key) -> Option<u32> {
        let slots = &self.slots;
        self.by_key
            .find(k.table_hash(&self.key_hasher), |&s| {
                slots
                    .get(s as usize)
                    .and_then(Option::as_ref)
                    .is_some_and(|x| x.key == *k)
            })
            .copied()
    }

    /// Points the digest at slot `s` (replacing whatever it pointed at).
    fn link_digest(&mut self, d: &IdDigest, s: u32) {
        let slots = &self.slots;
        let rehash = |&x: &u32| {
            slots
                .get(x as usize)
                .and_then(Option::as_ref)
                .map_or(0, |x| digest_hash(&x.digest))
        };
        let h = digest_hash(d);
        match self.by_digest.find_mut(h, |&x| {
            slots
                .get(x as usize)
                .and_then(Option::as_ref)
                .is_some_and(|x| x.digest == *d)
        }) {
            Some(x) => *x = s,
            None => {
                self.by_digest.insert_unique(h, s, rehash);
            }
        }
    }

    /// Removes the digest's entry if it points at slot `s`.
    fn unlink_digest(&mut self, d: &IdDigest, s: u32) {
        if let Ok(e) = self.by_digest.find_entry(digest_hash(d), |&x| x == s) {
            e.remove();
        }
    }

    /// Appends slot `s` to the list of its profile's user.
    fn link_user(&mut self, s: u32) {
        let Some(x) = self.slots.get_mut(s as usize).and_then(Option::as_mut) else {
            return;
        };
        let name = &x.profile.user_name;
        let list = match self.by_user.entry(
            name_hash(name),
            |l| Arc::ptr_eq(&l.name, name),
            |l| name_hash(&l.name),
        ) {
            hashbrown::hash_table::Entry::Occupied(e) => e.into_mut(),
            hashbrown::hash_table::Entry::Vacant(e) => e
                .insert(UserList {
                    name: name.clone(),
                    slots: Vec::new(),
                })
                .into_mut(),
        };
        // A list never holds more entries than there are slots, which are `u32`s.
        x.user_pos = u32::try_from(list.slots.len()).unwrap_or(u32::MAX);
        list.slots.push(s);
    }

    /// Takes slot `s` out of the list of `name` (its profile's user, interned), where it is
    /// at `pos`: the list's last entry takes its place. Drops the list once it is empty.
    fn unlink_user(&mut self, s: u32, name: &Arc<str>, pos: u32) {
        let Ok(mut e) = self
            .by_user
            .find_entry(name_hash(name), |l| Arc::ptr_eq(&l.name, name))
        else {
            return;
        };
        let list = &mut e.get_mut().slots;
        let pos = pos as usize;
        if list.get(pos) != Some(&s) {
            return;
        }
        list.swap_remove(pos);
        if let Some(&moved) = list.get(pos) {
            if let Some(x) = self.slots.get_mut(moved as usize).and_then(Option::as_mut) {
                // `pos` came from a `u32`.
                x.user_pos = pos as u32;
            }
        }
        if list.is_empty() {
            e.remove();
        } else if list.capacity() > 64 && list.len() < list.capacity() / 4 {
            // A user whose sessions mostly ended gives the room back.
            list.shrink_to(list.len() * 2);
        }
    }

    /// The list of the user named `user`, if that user has a session.
    fn user_list(&self, user: &str) -> Option<&UserList> {
        let (name, _) = self.interner.strings.get_key_value(user)?;
        self.by_user
            .find(name_hash(name), |l| Arc::ptr_eq(&l.name, name))
    }

    /// Stores a session, replacing the one with the same key (`PutSession`).
    pub(super) fn put(&mut self, rec: &SessionRecord) {
        let key = Key::new(rec.key.as_str());
        let profile = self.interner.profile(rec);
        match self.find_key(&key) {
            Some(s) => self.replace(s, rec, profile),
            None => self.insert_new(key, rec, profile),
        }
    }

    fn replace(&mut self, s: u32, rec: &SessionRecord, profile: Arc<Profile>) {
        let Some(slot) = self.slot_mut(s) else {
            return;
        };
        let old_digest = std::mem::replace(&mut slot.digest, rec.digest);
        let old_login = std::mem::replace(&mut slot.login_time, rec.login_time);
        let user_moves = !Arc::ptr_eq(&profile.user_name, &slot.profile.user_name);
        let user_pos = slot.user_pos;
        let old_profile = std::mem::replace(&mut slot.profile, profile);
        slot.last_active_time = rec.last_active_time;
        slot.call_count = rec.call_count;
        let old_idle = slot.idle_at;
        let new_idle = stamp(rec.last_active_time);
        // Activity may only move back here; the index must not be later than it.
        if new_idle < old_idle {
            slot.idle_at = new_idle;
            if self.indexed {
                self.idle.remove(&entry(old_idle, s));
                self.idle.insert(entry(new_idle, s));
            }
        }
        if self.indexed && stamp(old_login) != stamp(rec.login_time) {
            self.login.remove(&entry(stamp(old_login), s));
            self.login.insert(entry(stamp(rec.login_time), s));
        }
        if old_digest != rec.digest {
            self.unlink_digest(&old_digest, s);
            self.link_digest(&rec.digest, s);
        }
        // ImpersonateUser (and a replayed `PutSession`) may change the user.
        if user_moves {
            self.unlink_user(s, &old_profile.user_name, user_pos);
            self.link_user(s);
        }
        self.interner.release(old_profile);
    }

    fn insert_new(&mut self, key: Key, rec: &SessionRecord, profile: Arc<Profile>) {
        let s = match self.free.pop() {
            Some(s) => s,
            // More than 2^32 sessions would need terabytes; such a session is not kept.
            None => match u32::try_from(self.slots.len()) {
                Ok(s) => {
                    self.slots.push(None);
                    s
                }
                Err(_) => {
                    self.interner.release(profile);
                    return;
                }
            },
        };
        let idle_at = stamp(rec.last_active_time);
        let kh = key.table_hash(&self.key_hasher);
        if let Some(x) = self.slots.get_mut(s as usize) {
            *x = Some(Slot {
                digest: rec.digest,
                key,
                login_time: rec.login_time,
                last_active_time: rec.last_active_time,
                call_count: rec.call_count,
                profile,
                idle_at,
                user_pos: 0,
            });
        }
        self.len += 1;
        self.link_user(s);
        let (slots, hasher) = (&self.slots, &self.key_hasher);
        self.by_key.insert_unique(kh, s, |&x| {
            slots
                .get(x as usize)
                .and_then(Option::as_ref)
                .map_or(0, |x| x.key.table_hash(hasher))
        });
        self.link_digest(&rec.digest, s);
        if self.indexed {
            self.idle.insert(entry(idle_at, s));
            self.login.insert(entry(stamp(rec.login_time), s));
        }
    }

    /// Removes slot `s`; returns what `out` makes of it.
    fn remove_slot<T>(&mut self, s: u32, out: impl FnOnce(&Slot) -> T) -> Option<T> {
        let slot = self.slots.get_mut(s as usize)?.take()?;
        let rec = out(&slot);
        self.unlink_digest(&slot.digest, s);
        let kh = slot.key.table_hash(&self.key_hasher);
        if let Ok(e) = self.by_key.find_entry(kh, |&x| x == s) {
            e.remove();
        }
        if self.indexed {
            self.idle.remove(&entry(slot.idle_at, s));
            self.login.remove(&entry(stamp(slot.login_time), s));
        }
        self.unlink_user(s, &slot.profile.user_name, slot.user_pos);
        self.interner.release(slot.profile);
        self.len -= 1;
        if self.len == 0 {
            // Nothing live: start numbering again (keeps the capacity).
            self.slots.clear();
            self.free.clear();
        } else {
            self.free.push(s);
        }
        Some(rec)
    }

    /// Ends the session with this key (`EndSession`); returns it.
    pub(super) fn remove(&mut self, key: &str) -> Option<SessionRecord> {
        let s = self.find_key(&Key::new(key))?;
        self.remove_slot(s, Slot::record)
    }

    pub(super) fn get(&self, key: &str) -> Option<SessionRecord> {
        self.slot(self.find_key(&Key::new(key))?).map(Slot::record)
    }

    /// The activity figures and digest of a session: what `update_session` keeps.
    pub(super) fn activity(&self, key: &str) -> Option<(DateTime<Utc>, u64, IdDigest)> {
        self.slot(self.find_key(&Key::new(key))?)
            .map(|x| (x.last_active_time, x.call_count, x.digest))
    }

    /// Applies a `Touch`: activity only moves forward.
    pub(super) fn touch_key(&mut self, key: &str, at: DateTime<Utc>, calls: u64) {
        let Some(s) = self.find_key(&Key::new(key)) else {
            return;
        };
        if let Some(x) = self.slot_mut(s) {
            if at > x.last_active_time {
                x.last_active_time = at;
            }
            x.call_count = x.call_count.max(calls);
        }
    }

    /// Records one call at `now` on the session with this digest; returns the record as it
    /// was before and the `Touch` that describes the change. The index is left alone. A
    /// session already expired under `expiry` is not touched (the `Touch` changes nothing):
    /// until it is ended, it must keep looking expired.
    pub(super) fn touch(
        &mut self,
        digest: &IdDigest,
        now: DateTime<Utc>,
        expiry: Expiry,
    ) -> Option<(SessionRecord, SessionKey, DateTime<Utc>, u64)> {
        let s = self.find_digest(digest)?;
        let x = self.slot_mut(s)?;
        let before = x.record();
        if before.expired_by(now, expiry) {
            let key = before.key.clone();
            let (at, calls) = (before.last_active_time, before.call_count);
            return Some((before, key, at, calls));
        }
        if now > x.last_active_time {
            x.last_active_time = now;
        }
        x.call_count += 1;
        let key = before.key.clone();
        Some((before, key, x.last_active_time, x.call_count))
    }

    /// Every session's record, in slot order.
    pub(super) fn records(&self) -> impl Iterator<Item = SessionRecord> + '_ {
        self.slots.iter().flatten().map(Slot::record)
    }

    /// The records of the sessions whose `user_name` is `user`, in slot order (the order of
    /// [`Sessions::records`]), found through the user's list.
    pub(super) fn of_user(&self, user: &str, limit: usize) -> Vec<SessionRecord> {
        let Some(list) = self.user_list(user) else {
            return Vec::new();
        };
        let mut slots = list.slots.clone();
        if limit < slots.len() {
            // The `limit` lowest slots, without sorting all of them.
            slots.select_nth_unstable(limit);
            slots.truncate(limit);
        }
        slots.sort_unstable();
        slots
            .into_iter()
            .filter_map(|s| self.slot(s))
            .map(Slot::record)
            .collect()
    }

    /// Builds the expiry indexes, if they are not yet: in bulk, which is several times faster
    /// than one insert per session while a log is replayed, and packs the B-tree nodes.
    fn build_index(&mut self) {
        if self.indexed {
            return;
        }
        let mut idle = Vec::with_capacity(self.len);
        let mut login = Vec::with_capacity(self.len);
        for (s, x) in self.slots.iter_mut().enumerate() {
            let (Some(x), Ok(s)) = (x, u32::try_from(s)) else {
                continue;
            };
            x.idle_at = stamp(x.last_active_time);
            idle.push(entry(x.idle_at, s));
            login.push(entry(stamp(x.login_time), s));
        }
        idle.sort_unstable();
        login.sort_unstable();
        self.idle = idle.into_iter().collect();
        self.login = login.into_iter().collect();
        self.indexed = true;
    }

    /// Ends every session expired at `now`, exactly as [`SessionRecord::expired`] decides;
    /// returns their keys and (effective) users.
    pub(super) fn reap(
        &mut self,
        now: DateTime<Utc>,
        idle: Duration,
        lifetime: Option<Duration>,
    ) -> Vec<(SessionKey, Arc<str>)> {
        self.build_index();
        let idle_before = now.checked_sub_signed(idle);
        let life_before = lifetime.map(|l| now.checked_sub_signed(l));
        let mut dead: Vec<u32> = Vec::new();
        match (idle_before, life_before) {
            (Some(idle_before), None | Some(Some(_))) => {
                // `now - t >= idle` exactly when `t <= now - idle`.
                for e in take_due(&mut self.idle, stamp(idle_before)) {
                    let s = entry_slot(e);
                    let Some(x) = self.slots.get_mut(s as usize).and_then(Option::as_mut) else {
                        continue;
                    };
                    if x.last_active_time <= idle_before {
                        dead.push(s);
                    } else {
                        x.idle_at = stamp(x.last_active_time);
                        self.idle.insert(entry(x.idle_at, s));
                    }
                }
                if let Some(Some(life_before)) = life_before {
                    for e in take_due(&mut self.login, stamp(life_before)) {
                        let s = entry_slot(e);
                        let Some(x) = self.slot(s) else {
                            continue;
                        };
                        if x.login_time <= life_before {
                            dead.push(s);
                        } else {
                            // The same second as the limit, but not yet past it.
                            self.login.insert(e);
                        }
                    }
                }
                dead.sort_unstable();
                dead.dedup();
            }
            // A limit so large (or so negative) that `now` minus it is not a time: too
            // rare to index for, so look at every session.
            _ => {
                dead = self
                    .slots
                    .iter()
                    .enumerate()
                    .filter(|(_, x)| x.as_ref().is_some_and(|x| x.expired(now, idle, lifetime)))
                    .filter_map(|(s, _)| u32::try_from(s).ok())
                    .collect();
            }
        }
        dead.into_iter()
            .filter_map(|s| self.remove_slot(s, |x| (x.key.to_key(), x.profile.user_name.clone())))
            .collect()
    }

    /// Checks every internal invariant; for tests.
    #[cfg(test)]
    pub(super) fn check(&self) {
        let live: Vec<(u32, &Slot)> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(s, x)| Some((u32::try_from(s).ok()?, x.as_ref()?)))
            .collect();
        assert_eq!(live.len(), self.len);
        assert_eq!(self.by_key.len(), self.len);
        let indexed = usize::from(self.indexed);
        assert_eq!(self.idle.len(), self.len * indexed);
        assert_eq!(self.login.len(), self.len * indexed);
        assert_eq!(self.free.len() + self.len, self.slots.len());
        for &(s, x) in &live {
            assert_eq!(self.find_key(&x.key), Some(s));
            assert_eq!(self.find_digest(&x.digest), Some(s));
            assert!(x.idle_at <= stamp(x.last_active_time));
            if self.indexed {
                assert!(self.idle.contains(&entry(x.idle_at, s)));
                assert!(self.login.contains(&entry(stamp(x.login_time), s)));
            }
        }
        // The user lists: each live slot exactly once, under its own user, at its
        // `user_pos`; no empty list; each key is the interner's own string.
        let mut listed = 0;
        for l in &self.by_user {
            assert!(!l.slots.is_empty(), "an empty list for {}", l.name);
            assert!(self
                .interner
                .strings
                .get_key_value(&*l.name)
                .is_some_and(|(k, _)| Arc::ptr_eq(k, &l.name)));
            assert!(self.user_list(&l.name).is_some_and(|m| std::ptr::eq(m, l)));
            for (pos, &s) in l.slots.iter().enumerate() {
                let x = self.slot(s).expect("a listed slot is live");
                assert!(Arc::ptr_eq(&x.profile.user_name, &l.name));
                assert_eq!(x.user_pos as usize, pos);
            }
            listed += l.slots.len();
        }
        assert_eq!(listed, self.len);
        let profiles: std::collections::HashSet<*const Profile> =
            live.iter().map(|(_, x)| Arc::as_ptr(&x.profile)).collect();
        assert_eq!(profiles.len(), self.interner.profiles.len());
        for p in &self.interner.profiles {
            assert!(profiles.contains(&Arc::as_ptr(p)));
            let h = self.interner.hasher.hash_one(p.fields());
            assert!(self
                .interner
                .profiles
                .find(h, |q| Arc::ptr_eq(q, p))
                .is_some());
        }
        let mut uses: HashMap<&str, u32> = HashMap::new();
        for p in &self.interner.profiles {
            for f in p.strings() {
                *uses.entry(&**f).or_default() += 1;
            }
        }
        let counted: HashMap<&str, u32> = self
            .interner
            .strings
            .iter()
            .map(|(k, n)| (&**k, *n))
            .collect();
        assert_eq!(uses, counted);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use std::collections::HashMap;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
    }

    fn rec(key: &str, user: &str, at: DateTime<Utc>) -> SessionRecord {
        SessionRecord {
            digest: IdDigest::of(key),
            key: SessionKey(key.to_owned()),
            user_name: user.into(),
            full_name: user.into(),
            role: Role::Admin,
            login_user: user.into(),
            login_time: at,
            last_active_time: at,
            locale: "en".into(),
            message_locale: "en".into(),
            extension_session: false,
            ip_address: "127.0.0.1".into(),
            user_agent: "pyvmomi".into(),
            call_count: 0,
            user_id: format!("id-of-{user}").into(),
        }
    }

    #[test]
    fn records_round_trip_exactly() {
        let mut s = Sessions::default();
        let mut odd = rec("not a uuid", "", t0());
        odd.ip_address = "somewhere, not an address".into();
        odd.extension_session = true;
        odd.role = Role::ReadOnly;
        odd.locale = "de".into();
        odd.full_name = "Full Name".into();
        odd.login_time = t0() - Duration::nanoseconds(1);
        odd.call_count = u64::MAX;
        let keys = [
            SessionKey::generate().0,
            "52A1B2C3-0000-4000-8000-000000000000".to_owned(),
            "{52a1b2c3-0000-4000-8000-000000000001}".to_owned(),
            "52a1b2c300004000800000000000000a".to_owned(),
            String::new(),
        ];
        let mut all = vec![odd];
        for k in &keys {
            all.push(rec(k, "administrator@vsphere.local", t0()));
        }
        for r in &all {
            s.put(r);
        }
        assert!(matches!(
            s.slot(s.find_key(&Key::new(&keys[0])).unwrap())
                .unwrap()
                .key,
            Key::Uuid(_)
        ));
        assert!(matches!(Key::new(&keys[1]), Key::Text(_)));
        for r in &all {
            assert_eq!(s.get(r.key.as_str()).as_ref(), Some(r));
        }
        let mut listed: Vec<SessionRecord> = s.records().collect();
        listed.sort_by(|a, b| a.key.cmp(&b.key));
        all.sort_by(|a, b| a.key.cmp(&b.key));
        assert_eq!(listed, all);
        assert_eq!(s.get(&keys[1].to_lowercase()), None);
        s.check();
    }

    #[test]
    fn uuid_keys_are_recognised_exactly_when_they_convert_back() {
        let mut rng = StdRng::seed_from_u64(7);
        for _ in 0..1000 {
            let u = uuid::Uuid::from_bytes(rng.gen());
            let text = u.hyphenated().to_string();
            assert_eq!(canonical_uuid(&text), Some(u.into_bytes()));
            // Any one character changed: recognised only if still canonical, and then exact.
            let mut b = text.clone().into_bytes();
            let i = rng.gen_range(0..b.len());
            b[i] = *b"0123456789abcdefABCDEF-g{ "
                .get(rng.gen_range(0..26))
                .unwrap();
            let changed = String::from_utf8(b).unwrap();
            match canonical_uuid(&changed) {
                Some(bytes) => {
                    assert_eq!(
                        uuid::Uuid::from_bytes(bytes).hyphenated().to_string(),
                        changed
                    )
                }
                None => assert!(uuid::Uuid::try_parse(&changed)
                    .map_or(true, |p| p.hyphenated().to_string() != changed)),
            }
        }
        for odd in [
            "",
            "52",
            &"a".repeat(36),
            "52a1b2c3-0000-4000-8000-00000000000é",
        ] {
            assert_eq!(canonical_uuid(odd), None);
        }
    }

    #[test]
    fn records_that_outlive_their_session_do_not_pin_interned_strings() {
        let mut s = Sessions::default();
        s.put(&rec("a", "alice@vsphere.local", t0()));
        // Records share the profile's strings; holding them must not keep the interner's
        // entries once no session uses them.
        let held = s.get("a").unwrap();
        let removed = s.remove("a").unwrap();
        assert!(s.interner.strings.is_empty() && s.interner.profiles.is_empty());
        s.check();
        // A new session of the same user interns afresh while the old records live.
        s.put(&rec("b", "alice@vsphere.local", t0()));
        // The name, the user id, "en", the address and the agent.
        assert_eq!(s.interner.strings.len(), 5);
        s.check();
        assert_eq!(held.user_name, removed.user_name);
    }

    #[test]
    fn a_users_sessions_share_one_profile_until_the_last_ends() {
        let mut s = Sessions::default();
        for i in 0..100 {
            s.put(&rec(&format!("k{i}"), "alice@vsphere.local", t0()));
        }
        s.put(&rec("b", "bob@vsphere.local", t0()));
        // alice's and bob's profiles; strings: two names, two user ids, "en", address,
        // agent.
        assert_eq!(s.interner.profiles.len(), 2);
        assert_eq!(s.interner.strings.len(), 7);
        let p0 = &s
            .slot(s.find_key(&Key::new("k0")).unwrap())
            .unwrap()
            .profile;
        let p9 = &s
            .slot(s.find_key(&Key::new("k99")).unwrap())
            .unwrap()
            .profile;
        assert!(Arc::ptr_eq(p0, p9));
        // A locale change gives that session a profile of its own.
        let mut changed = rec("k5", "alice@vsphere.local", t0());
        changed.locale = "fr".into();
        s.put(&changed);
        assert_eq!(s.interner.profiles.len(), 3);
        s.check();
        for i in 0..100 {
            assert!(s.remove(&format!("k{i}")).is_some());
        }
        assert_eq!(s.interner.profiles.len(), 1);
        assert_eq!(s.interner.strings.len(), 5);
        s.check();
        s.remove("b");
        assert!(s.interner.profiles.is_empty() && s.interner.strings.is_empty());
        assert_eq!(s.len(), 0);
        s.check();
    }

    #[test]
    fn touches_leave_the_index_alone_and_still_count() {
        let mut s = Sessions::default();
        let r = rec("k", "u", t0());
        s.put(&r);
        assert!(s.reap(t0(), Duration::seconds(30), None).is_empty());
        let index = s.idle.clone();
        assert_eq!(index.len(), 1);
        let (before, key, at, calls) = s
            .touch(&r.digest, t0() + Duration::seconds(50), Expiry::NEVER)
            .unwrap();
        assert_eq!(before, r);
        assert_eq!(key, r.key);
        assert_eq!((at, calls), (t0() + Duration::seconds(50), 1));
        assert_eq!(s.idle, index);
        // Due by its indexed second, but active since: re-indexed, not ended.
        let idle = Duration::seconds(30);
        assert!(s.reap(t0() + Duration::seconds(60), idle, None).is_empty());
        assert_ne!(s.idle, index);
        s.check();
        assert_eq!(
            s.reap(t0() + Duration::seconds(80), idle, None),
            vec![(r.key, "u".into())]
        );
        s.check();
    }

    #[test]
    fn reap_is_exact_within_a_second() {
        let mut s = Sessions::default();
        let at = t0() + Duration::milliseconds(500);
        s.put(&rec("k", "u", at));
        let idle = Duration::seconds(10);
        let limit = at + idle;
        assert!(s
            .reap(limit - Duration::nanoseconds(1), idle, None)
            .is_empty());
        s.check();
        assert_eq!(s.reap(limit, idle, None).len(), 1);
        s.put(&rec("k", "u", at));
        let life = Some(Duration::seconds(20));
        let day = Duration::days(1);
        s.touch(
            &IdDigest::of("k"),
            at + Duration::seconds(19),
            Expiry::NEVER,
        );
        assert!(s
            .reap(
                at + Duration::seconds(20) - Duration::nanoseconds(1),
                day,
                life
            )
            .is_empty());
        s.check();
        assert_eq!(s.reap(at + Duration::seconds(20), day, life).len(), 1);
    }

    fn keys_of(s: &Sessions, user: &str) -> Vec<String> {
        s.of_user(user, usize::MAX)
            .into_iter()
            .map(|r| r.key.0)
            .collect()
    }

    #[test]
    fn user_lists_follow_inserts_ends_reaps_and_user_changes() {
        let mut s = Sessions::default();
        for k in ["a1", "a2", "a3", "a4"] {
            s.put(&rec(k, "alice", t0()));
        }
        s.put(&rec("b1", "bob", t0() + Duration::seconds(100)));
        assert_eq!(keys_of(&s, "alice"), ["a1", "a2", "a3", "a4"]);
        assert_eq!(keys_of(&s, "bob"), ["b1"]);
        assert!(keys_of(&s, "carol").is_empty());
        // Ending one in the middle of the list moves the list's last entry into its place.
        s.remove("a2");
        s.check();
        assert_eq!(keys_of(&s, "alice"), ["a1", "a3", "a4"]);
        // Its slot is reused by the next session, which lists in slot order.
        s.put(&rec("a5", "alice", t0()));
        assert_eq!(keys_of(&s, "alice"), ["a1", "a5", "a3", "a4"]);
        // ImpersonateUser: the same session (key) now belongs to bob, and only to bob.
        let mut b = rec("a3", "bob", t0());
        b.login_user = "alice".into();
        s.put(&b);
        s.check();
        assert_eq!(keys_of(&s, "alice"), ["a1", "a5", "a4"]);
        assert_eq!(keys_of(&s, "bob"), ["a3", "b1"]);
        // A replace that keeps the user (a locale change) keeps the lists.
        let mut fr = rec("a1", "alice", t0());
        fr.locale = "fr".into();
        s.put(&fr);
        s.check();
        assert_eq!(keys_of(&s, "alice"), ["a1", "a5", "a4"]);
        // Reaping ends alice's (idle since t0) and keeps bob's younger one.
        let mut reaped = s.reap(t0() + Duration::seconds(60), Duration::seconds(60), None);
        reaped.sort();
        let keys: Vec<(&str, &str)> = reaped.iter().map(|(k, u)| (k.as_str(), &**u)).collect();
        assert_eq!(
            keys,
            [
                ("a1", "alice"),
                ("a3", "bob"),
                ("a4", "alice"),
                ("a5", "alice")
            ]
        );
        s.check();
        assert!(keys_of(&s, "alice").is_empty());
        assert!(s.user_list("alice").is_none(), "no entry without a session");
        assert_eq!(keys_of(&s, "bob"), ["b1"]);
        s.remove("b1");
        assert!(s.by_user.is_empty());
        s.check();
    }

    #[test]
    fn a_user_with_many_sessions_ends_them_in_any_order_and_gives_room_back() {
        let mut s = Sessions::default();
        let mut rng = StdRng::seed_from_u64(11);
        let mut keys: Vec<String> = (0..2000).map(|i| format!("k{i}")).collect();
        for k in &keys {
            s.put(&rec(k, "bench", t0()));
        }
        s.put(&rec("other", "alice", t0()));
        for i in (1..keys.len()).rev() {
            keys.swap(i, rng.gen_range(0..=i));
        }
        let cap = s.user_list("bench").map(|l| l.slots.capacity()).unwrap();
        let (gone, left) = keys.split_at(1990);
        for k in gone {
            assert!(s.remove(k).is_some());
        }
        s.check();
        assert!(s.user_list("bench").map(|l| l.slots.capacity()).unwrap() < cap / 4);
        let mut got = keys_of(&s, "bench");
        got.sort();
        let mut want = left.to_vec();
        want.sort();
        assert_eq!(got, want);
        assert_eq!(keys_of(&s, "alice"), ["other"]);
    }

    /// The user index lives in a slot's padding: a slot is no larger than before it.
    #[cfg(target_pointer_width = "64")]
    #[test]
    fn the_user_index_costs_a_slot_nothing() {
        assert_eq!(SLOT_BYTES, 104);
    }

    /// Random operations against a plain map of records: after each reap the sessions
    /// ended are exactly those `SessionRecord::expired` picks, and everything else agrees.
    #[test]
    fn reap_matches_expired_under_random_operations() {
        for seed in 0..40 {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut s = Sessions::default();
            if seed % 2 == 0 {
                s.build_index();
            }
            let mut model: HashMap<SessionKey, SessionRecord> = HashMap::new();
            let mut now = t0();
            let jitter = |rng: &mut StdRng| {
                Duration::milliseconds(rng.gen_range(-3_000..3_000))
                    + Duration::nanoseconds(rng.gen_range(0..1_000_000))
            };
            let users = ["a", "b", "c"];
            for step in 0..400 {
                now += Duration::milliseconds(rng.gen_range(0..700));
                let keys: Vec<SessionKey> = model.keys().cloned().collect();
                let pick =
                    |rng: &mut StdRng| keys.get(rng.gen_range(0..keys.len().max(1))).cloned();
                match rng.gen_range(0..10) {
                    0..=2 => {
                        let key = if rng.gen_bool(0.8) {
                            SessionKey::generate()
                        } else {
                            SessionKey(format!("text-{seed}-{step}"))
                        };
                        let mut r = rec(
                            key.as_str(),
                            users[rng.gen_range(0..3)],
                            now + jitter(&mut rng),
                        );
                        r.last_active_time = r.login_time + jitter(&mut rng);
                        s.put(&r);
                        model.insert(key, r);
                    }
                    3 | 4 => {
                        if let Some(k) = pick(&mut rng) {
                            let m = model.get_mut(&k).unwrap();
                            let at = now + jitter(&mut rng);
                            let (before, ..) = s.touch(&m.digest, at, Expiry::NEVER).unwrap();
                            assert_eq!(&before, m);
                            m.last_active_time = m.last_active_time.max(at);
                            m.call_count += 1;
                        }
                    }
                    5 => {
                        if let Some(k) = pick(&mut rng) {
                            let m = model.get_mut(&k).unwrap();
                            let at = now + jitter(&mut rng);
                            let calls = rng.gen_range(0..5);
                            s.touch_key(k.as_str(), at, calls);
                            m.last_active_time = m.last_active_time.max(at);
                            m.call_count = m.call_count.max(calls);
                        }
                    }
                    6 => {
                        // A raw PutSession may move either time anywhere, and the digest.
                        if let Some(k) = pick(&mut rng) {
                            let m = model.get_mut(&k).unwrap();
                            m.last_active_time = now + jitter(&mut rng) - Duration::seconds(5);
                            m.login_time = now + jitter(&mut rng) - Duration::seconds(5);
                            m.user_name = users[rng.gen_range(0..3)].into();
                            if rng.gen_bool(0.3) {
                                m.digest = IdDigest::of(&format!("{seed}-{step}"));
                            }
                            s.put(m);
                        }
                    }
                    7 => {
                        if let Some(k) = pick(&mut rng) {
                            assert_eq!(s.remove(k.as_str()), model.remove(&k));
                        }
                    }
                    _ => {
                        let idle = match rng.gen_range(0..20) {
                            0 => Duration::MAX,
                            1 => Duration::MIN,
                            2 => Duration::seconds(-2),
                            _ => Duration::milliseconds(rng.gen_range(0..8_000)),
                        };
                        let lifetime = match rng.gen_range(0..4) {
                            0 => None,
                            1 if rng.gen_bool(0.1) => Some(Duration::MAX),
                            _ => Some(Duration::milliseconds(rng.gen_range(0..20_000))),
                        };
                        let at = now + jitter(&mut rng);
                        let mut want: Vec<(SessionKey, Arc<str>)> = model
                            .values()
                            .filter(|r| r.expired(at, idle, lifetime))
                            .map(|r| (r.key.clone(), r.user_name.clone()))
                            .collect();
                        let mut got = s.reap(at, idle, lifetime);
                        want.sort();
                        got.sort();
                        assert_eq!(got, want, "seed {seed} step {step}");
                        for (k, _) in &want {
                            model.remove(k);
                        }
                    }
                }
                s.check();
                assert_eq!(s.len(), model.len());
                for u in users.iter().chain(&["nobody"]) {
                    let mut want: Vec<&SessionRecord> =
                        model.values().filter(|r| &*r.user_name == *u).collect();
                    want.sort_by(|a, b| a.key.cmp(&b.key));
                    let mut got = s.of_user(u, usize::MAX);
                    let in_slot_order: Vec<SessionRecord> =
                        s.records().filter(|r| &*r.user_name == *u).collect();
                    assert_eq!(got, in_slot_order, "seed {seed} step {step} user {u}");
                    // A limit takes the first ones in that order.
                    let k = step % 4;
                    let first = &in_slot_order[..k.min(in_slot_order.len())];
                    assert_eq!(s.of_user(u, k), first, "seed {seed} step {step} user {u}");
                    got.sort_by(|a, b| a.key.cmp(&b.key));
                    assert_eq!(got.iter().collect::<Vec<_>>(), want);
                }
            }
            for (k, r) in &model {
                assert_eq!(s.get(k.as_str()).as_ref(), Some(r));
                assert_eq!(
                    s.activity(k.as_str()),
                    Some((r.last_active_time, r.call_count, r.digest))
                );
            }
        }
    }
}
