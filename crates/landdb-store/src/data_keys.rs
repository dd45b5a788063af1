//! The keys that protect right holders' identities at rest (Decree 13/2023/NĐ-CP; issue 21).
//!
//! A right holder's name, citizen ID, birth year and address are stored only sealed
//! (XChaCha20-Poly1305, bound to the row they belong to), and the citizen ID also as a blind
//! index (HMAC-SHA256) so that "which parcels does citizen X hold" is one index lookup without
//! the ID ever being in the database. The keys live outside the database, in a keyring file:
//! a dump of the database alone reveals no citizen's identity.
//!
//! The keyring holds every key ever made, newest last. The database records which keys its
//! rows are sealed under (`data_key`): one `active` (what new rows are sealed with), at most one
//! `retiring` while `landdb keys rotate-data-key` reseals rows online, and `retired` ones that
//! no row uses any more. Retired keys stay in the keyring: the audit log names citizens by
//! their blind index under the key of the day, and `landdb audit subject` finds them under
//! every key. A process reads the keyring again when it meets a key it does not hold (another
//! process rotated) or when the file changed, at most once a second.
//!
//! Where the keyring is: `--data-keys FILE` (or `LANDDB_DATA_KEYS`), else the user's
//! `$XDG_DATA_HOME/landdb/data.keys` (`~/.local/share/landdb/data.keys`), created with one key
//! on first use (mode 0600) so that a newcomer's embedded store works at once.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::{Result, StoreError};

/// The environment variable that names the keyring file.
pub const ENV: &str = "LANDDB_DATA_KEYS";

/// How often a process looks whether the keyring file changed.
const RECHECK: Duration = Duration::from_secs(1);

/// One data key. Its secret never leaves this module: what callers get is sealing, opening and
/// blind indexes.
#[derive(Clone)]
pub struct DataKey {
    id: u32,
    secret: [u8; 32],
    /// The keys derived from the secret for sealing and for the blind index, made once.
    seal: [u8; 32],
    index: [u8; 32],
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DataKey({})", self.name())
    }
}

/// A `right_holder` row's protected content (what [`DataKey::seal_holder`] makes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedHolder {
    pub key_id: i64,
    pub sealed: Vec<u8>,
    /// The blind index of the holder's citizen ID, when they have one.
    pub citizen_index: Option<Vec<u8>>,
}

impl DataKey {
    fn fresh() -> DataKey {
        let mut secret = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut secret);
        let mut id = [0u8; 4];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut id);
        DataKey::new(u32::from_be_bytes(id).max(1), secret)
    }

    fn new(id: u32, secret: [u8; 32]) -> DataKey {
        let seal = derive(&secret, "seal");
        let index = derive(&secret, "citizen index");
        DataKey { id, secret, seal, index }
    }

    pub fn id(&self) -> i64 {
        i64::from(self.id)
    }

    /// The key as operators see it: eight hex digits.
    pub fn name(&self) -> String {
        format!("{:08x}", self.id)
    }

    /// What the database records to tell this key from another with the same id: a keyring
    /// that does not match is refused before anything is sealed under the wrong key.
    pub fn check_value(&self) -> String {
        derive(&self.secret, "check")[..8].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// `plain` sealed and bound to `context` (the row it belongs to: moved to another row, it no
    /// longer opens): a fresh 24-byte nonce, then the ciphertext and its tag.
    pub fn seal(&self, context: &[u8], plain: &[u8]) -> Vec<u8> {
        let cipher = XChaCha20Poly1305::new(&self.seal.into());
        // 192 random bits (the thread's ChaCha generator, seeded from the system's): no two
        // seals under one key share a nonce in any number of rows a country has.
        let mut nonce = [0u8; 24];
        rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut nonce);
        let sealed = cipher
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: plain, aad: context })
            .expect("XChaCha20-Poly1305 seals any length a row has");
        let mut out = Vec::with_capacity(24 + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// Opens what [`DataKey::seal`] sealed for `context`; `what` names it in the error.
    pub fn open(&self, context: &[u8], sealed: &[u8], what: &str) -> Result<Vec<u8>> {
        let refused = || {
            StoreError::Corrupt(format!(
                "{what} does not open under data key {}: it was changed, moved from another row, or sealed under another key with the same id",
                self.name()
            ))
        };
        if sealed.len() < 24 + 16 {
            return Err(refused());
        }
        let cipher = XChaCha20Poly1305::new(&self.seal.into());
        cipher
            .decrypt(XNonce::from_slice(&sealed[..24]), Payload { msg: &sealed[24..], aad: context })
            .map_err(|_| refused())
    }

    /// The blind index of a citizen ID: equal IDs give equal indexes under one key, and nothing
    /// about the ID can be learnt from it without the key.
    pub fn citizen_index(&self, citizen_id: &str) -> Vec<u8> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.index).expect("HMAC takes any key length");
        mac.update(citizen_id.trim().as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    /// A citizen as an audit entry names them: this key and the blind index, in hex.
    pub fn subject_mark(&self, citizen_id: &str) -> String {
        let index: String = self.citizen_index(citizen_id).iter().map(|b| format!("{b:02x}")).collect();
        format!("{}.{index}", self.name())
    }

    /// A right holder sealed for row (`version`, `ordinal`).
    pub fn seal_holder(&self, version: i64, ordinal: i16, holder: &landdb_model::RightHolder) -> SealedHolder {
        let plain = serde_json::to_vec(holder).expect("a right holder serialises");
        SealedHolder {
            key_id: self.id(),
            sealed: self.seal(&holder_context(version, ordinal), &plain),
            citizen_index: holder.citizen_id.as_deref().map(|id| self.citizen_index(id)),
        }
    }

    pub fn open_holder(&self, version: i64, ordinal: i16, sealed: &[u8]) -> Result<landdb_model::RightHolder> {
        let what = format!("right holder {ordinal} of parcel version {version}");
        let plain = self.open(&holder_context(version, ordinal), sealed, &what)?;
        serde_json::from_slice(&plain).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
    }

    /// A quarantined record's source (attributes as read: they may hold anyone's name or ID),
    /// sealed for quarantine row `id`.
    pub fn seal_source(&self, id: i64, source: &serde_json::Value) -> Vec<u8> {
        let plain = serde_json::to_vec(source).expect("JSON serialises");
        self.seal(&source_context(id), &plain)
    }

    pub fn open_source(&self, id: i64, sealed: &[u8]) -> Result<serde_json::Value> {
        let what = format!("quarantined record {id}");
        let plain = self.open(&source_context(id), sealed, &what)?;
        serde_json::from_slice(&plain).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
    }
}

/// A key of its own for each use, derived from the secret.
fn derive(secret: &[u8; 32], purpose: &str) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(b"landdb data key/");
    mac.update(purpose.as_bytes());
    mac.finalize().into_bytes().into()
}

fn holder_context(version: i64, ordinal: i16) -> Vec<u8> {
    format!("right_holder/{version}/{ordinal}").into_bytes()
}

fn source_context(id: i64) -> Vec<u8> {
    format!("quarantine/{id}").into_bytes()
}

/// The keyring file, as this process last read it.
#[derive(Debug)]
pub struct Keyring {
    path: PathBuf,
    loaded: Mutex<Loaded>,
}

#[derive(Debug)]
struct Loaded {
    keys: Vec<DataKey>,
    /// The file's modification time and length when read.
    stamp: Option<Stamp>,
    checked: Instant,
}

static CHOSEN: OnceLock<PathBuf> = OnceLock::new();
static OPEN: OnceLock<Mutex<HashMap<PathBuf, Arc<Keyring>>>> = OnceLock::new();

/// Names the keyring this process uses (`--data-keys`); the first call wins.
pub fn use_keyring(path: PathBuf) {
    let _ = CHOSEN.set(std::path::absolute(&path).unwrap_or(path));
}

/// The keyring this process uses: the one [`use_keyring`] named, else `LANDDB_DATA_KEYS`, else
/// the user's default.
pub fn keyring_path() -> PathBuf {
    if let Some(p) = CHOSEN.get() {
        return p.clone();
    }
    if let Some(p) = std::env::var_os(ENV).filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return std::path::absolute(&p).unwrap_or(p);
    }
    let data = std::env::var_os("XDG_DATA_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")));
    data.map_or_else(|| PathBuf::from("landdb-data.keys"), |d| d.join("landdb").join("data.keys"))
}

impl Keyring {
    /// The keyring of this process ([`keyring_path`]), read once and shared by every store.
    pub fn located() -> Result<Arc<Keyring>> {
        Keyring::at(&keyring_path())
    }

    /// The keyring at `path`, created with one fresh key when there is none.
    pub fn at(path: &Path) -> Result<Arc<Keyring>> {
        let open = OPEN.get_or_init(|| Mutex::new(HashMap::new()));
        let mut open = open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(k) = open.get(path) {
            return Ok(Arc::clone(k));
        }
        if !path.exists() {
            create(path)?;
        }
        let (keys, stamp) = read(path)?;
        let ring = Arc::new(Keyring {
            path: path.to_owned(),
            loaded: Mutex::new(Loaded { keys, stamp, checked: Instant::now() }),
        });
        open.insert(path.to_owned(), Arc::clone(&ring));
        Ok(ring)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Loaded> {
        self.loaded.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Reads the file again if it changed since (looked at no more than once a second unless
    /// `now` is asked).
    fn refresh(&self, now: bool) -> Result<()> {
        let mut loaded = self.lock();
        if !now && loaded.checked.elapsed() < RECHECK {
            return Ok(());
        }
        loaded.checked = Instant::now();
        let stamp = stamp_of(&self.path);
        if stamp.is_some() && stamp == loaded.stamp {
            return Ok(());
        }
        let (keys, stamp) = read(&self.path)?;
        if !keys.is_empty() {
            tracing::info!(keyring = %self.path.display(), keys = keys.len(), "data keyring read again");
            *loaded = Loaded { keys, stamp, checked: Instant::now() };
        }
        Ok(())
    }

    /// Every key, oldest first (the file read again if it changed).
    pub fn keys(&self) -> Result<Vec<DataKey>> {
        self.refresh(false)?;
        Ok(self.lock().keys.clone())
    }

    /// The key with this id, reading the file again at once if this process does not hold it
    /// (another process may just have added it).
    pub fn key(&self, id: i64) -> Result<DataKey> {
        let find = |loaded: &Loaded| loaded.keys.iter().find(|k| k.id() == id).cloned();
        if let Some(k) = find(&self.lock()) {
            return Ok(k);
        }
        self.refresh(true)?;
        find(&self.lock()).ok_or_else(|| StoreError::DataKeyMissing {
            key: format!("{id:08x}"),
            keyring: self.path.display().to_string(),
        })
    }

    /// The newest key.
    pub fn newest(&self) -> Result<DataKey> {
        self.keys()?
            .last()
            .cloned()
            .ok_or_else(|| StoreError::DataKeyMissing { key: "any".into(), keyring: self.path.display().to_string() })
    }

    /// Adds a fresh key (the file is written anew beside and renamed over, so that a reader
    /// never sees half of it). Returns it.
    pub fn add(&self) -> Result<DataKey> {
        self.refresh(true)?;
        let mut loaded = self.lock();
        let key = DataKey::fresh();
        let mut keys = loaded.keys.clone();
        keys.push(key.clone());
        write(&self.path, &keys)?;
        *loaded = Loaded { keys, stamp: stamp_of(&self.path), checked: Instant::now() };
        Ok(key)
    }
}

/// A file's modification time and length: what tells that it changed.
type Stamp = (SystemTime, u64);

fn stamp_of(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

fn keyring_error(path: &Path, reason: impl std::fmt::Display) -> StoreError {
    StoreError::Keyring { path: path.display().to_string(), reason: reason.to_string() }
}

fn create(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| keyring_error(path, e))?;
    }
    let key = DataKey::fresh();
    // Two processes starting at once: the first to create the file wins, the other reads it.
    match open_new(path) {
        Ok(mut file) => {
            std::io::Write::write_all(&mut file, render(&[key]).as_bytes()).map_err(|e| keyring_error(path, e))?;
            file.sync_all().map_err(|e| keyring_error(path, e))?;
            tracing::warn!(
                keyring = %path.display(),
                "created a data keyring: it protects right holders' identities; back it up and keep it secret (without it they cannot be read)"
            );
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(keyring_error(path, e)),
    }
}

fn open_new(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

fn write(path: &Path, keys: &[DataKey]) -> Result<()> {
    let fresh = path.with_extension(format!("new-{}", std::process::id()));
    let _ = std::fs::remove_file(&fresh);
    let mut file = open_new(&fresh).map_err(|e| keyring_error(&fresh, e))?;
    std::io::Write::write_all(&mut file, render(keys).as_bytes()).map_err(|e| keyring_error(&fresh, e))?;
    file.sync_all().map_err(|e| keyring_error(&fresh, e))?;
    std::fs::rename(&fresh, path).map_err(|e| keyring_error(path, e))
}

const HEADER: &str = "# landdb data keys: they protect right holders' names and citizen IDs in the database.\n\
# Keep this file secret and backed up: without it those cannot be read. One key a line: its id\n\
# and its secret (64 hex digits), oldest first; new data is sealed under the database's active key.\n";

fn render(keys: &[DataKey]) -> String {
    let mut out = HEADER.to_owned();
    for k in keys {
        let secret: String = k.secret.iter().map(|b| format!("{b:02x}")).collect();
        out.push_str(&format!("{} {secret}\n", k.name()));
    }
    out
}

fn read(path: &Path) -> Result<(Vec<DataKey>, Option<Stamp>)> {
    let stamp = stamp_of(path);
    let text = std::fs::read_to_string(path).map_err(|e| keyring_error(path, e))?;
    #[cfg(unix)]
    if let Ok(meta) = std::fs::metadata(path) {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(keyring = %path.display(), "the data keyring can be read by others than its owner: chmod 600 it");
        }
    }
    let keys = parse(&text).map_err(|reason| keyring_error(path, reason))?;
    Ok((keys, stamp))
}

fn parse(text: &str) -> Result<Vec<DataKey>, String> {
    let mut keys: Vec<DataKey> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |what: &str| format!("line {}: {what}; a key line is `ID SECRET` (8 and 64 hex digits)", n + 1);
        let (id, secret) = line.split_once(' ').ok_or_else(|| bad("no secret"))?;
        let id = u32::from_str_radix(id, 16).ok().filter(|_| id.len() == 8).ok_or_else(|| bad("the id"))?;
        let secret = secret.trim();
        if secret.len() != 64 || !secret.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad("the secret"));
        }
        let mut bytes = [0u8; 32];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = u8::from_str_radix(&secret[2 * i..2 * i + 2], 16).map_err(|_| bad("the secret"))?;
        }
        if keys.iter().any(|k| k.id == id) {
            return Err(bad("a second key with this id"));
        }
        keys.push(DataKey::new(id, bytes));
    }
    if keys.is_empty() {
        return Err("no key in it".into());
    }
    Ok(keys)
}

/// The state of a key in one database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// New rows are sealed under it.
    Active,
    /// Being replaced: rows under it are resealed under the active key.
    Retiring,
    /// No row uses it.
    Retired,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Active => "active",
            KeyState::Retiring => "retiring",
            KeyState::Retired => "retired",
        }
    }

    pub fn parse(raw: &str) -> Result<KeyState> {
        match raw {
            "active" => Ok(KeyState::Active),
            "retiring" => Ok(KeyState::Retiring),
            "retired" => Ok(KeyState::Retired),
            other => Err(StoreError::Corrupt(format!("data key state {other:?}"))),
        }
    }
}

/// A key as a database records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredKey {
    pub id: i64,
    pub check_value: String,
    pub state: KeyState,
}

impl RegisteredKey {
    /// A `data_key` row: id, check value, state.
    pub fn from_row((id, check_value, state): (i64, String, String)) -> Result<RegisteredKey> {
        Ok(RegisteredKey { id, check_value, state: KeyState::parse(&state)? })
    }
}

/// Checks the database's keys against the keyring: every key a row may be sealed under must
/// be there, and be the same key. Returns the active one.
pub fn check_registered(keyring: &Keyring, registered: &[RegisteredKey]) -> Result<DataKey> {
    let mut active = None;
    for r in registered.iter().filter(|r| r.state != KeyState::Retired) {
        let key = keyring.key(r.id)?;
        if key.check_value() != r.check_value {
            return Err(StoreError::DataKeyMismatch { key: key.name(), keyring: keyring.path().display().to_string() });
        }
        if r.state == KeyState::Active {
            active = Some(key);
        }
    }
    active.ok_or_else(|| StoreError::Corrupt("the database has no active data key".into()))
}

/// The blind indexes `citizen_id` may be stored under in a database whose rows are sealed
/// under the keys `in_use` (its active and retiring keys: during a rotation a row is under one
/// or the other). Asked of the database, not of the keyring's newest: a rotation another
/// process began is seen at once.
pub fn citizen_indexes(keyring: &Keyring, in_use: &[i64], citizen_id: &str) -> Result<Vec<Vec<u8>>> {
    in_use.iter().map(|id| Ok(keyring.key(*id)?.citizen_index(citizen_id))).collect()
}

/// The keys a database's rows are under, as a store last saw them: a lookup by citizen computes
/// the blind indexes for these and reads, in the same statement, which keys are in use; when a
/// rotation has changed them since, it asks again with the new set. One round trip, and a
/// lookup is never answered from indexes of a set of keys the rows are not under.
#[derive(Debug, Default)]
pub struct KeysInUse(Mutex<Vec<i64>>);

impl KeysInUse {
    pub fn last_seen(&self) -> Vec<i64> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Whether `found` (read with the rows) is what the indexes were computed for; remembers it.
    pub fn confirm(&self, asked: &[i64], mut found: Vec<i64>) -> Result<(), Vec<i64>> {
        found.sort_unstable();
        if found == asked {
            return Ok(());
        }
        *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = found.clone();
        Err(found)
    }
}

/// Where a rotation starts, from the keys a database records (checked against the keyring): the
/// key to reseal towards when one was stopped half way (a key still `retiring`: finished towards
/// the key it made, so that two at once walk towards the same key), or `None` for a new key; and
/// the names of the keys rows may be under, other than that one.
pub fn rotation_start(keyring: &Keyring, registered: &[RegisteredKey]) -> Result<(Option<DataKey>, Vec<String>)> {
    let active = check_registered(keyring, registered)?;
    let resume = registered.iter().any(|k| k.state == KeyState::Retiring).then_some(active);
    let from = registered
        .iter()
        .filter(|k| k.state != KeyState::Retired && resume.as_ref().is_none_or(|r| r.id() != k.id))
        .map(|k| format!("{:08x}", k.id))
        .collect();
    Ok((resume, from))
}

/// What a rotation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    pub from: Vec<String>,
    pub to: String,
    pub holders: u64,
    pub quarantined: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use landdb_model::RightHolder;

    fn holder() -> RightHolder {
        RightHolder {
            name: "Nguyễn Thị Hương".into(),
            citizen_id: Some("048185000123".into()),
            birth_year: Some(1985),
            address: Some("Số 12 Trần Phú".into()),
        }
    }

    #[test]
    fn a_holder_opens_only_in_its_own_row_under_its_own_key() {
        let key = DataKey::fresh();
        let sealed = key.seal_holder(7, 0, &holder());
        assert_eq!(key.open_holder(7, 0, &sealed.sealed).expect("opens"), holder());
        assert!(key.open_holder(8, 0, &sealed.sealed).is_err(), "moved to another version");
        assert!(key.open_holder(7, 1, &sealed.sealed).is_err(), "moved to another ordinal");
        assert!(DataKey::fresh().open_holder(7, 0, &sealed.sealed).is_err(), "another key");
        let text = String::from_utf8_lossy(&sealed.sealed);
        assert!(!text.contains("Hương") && !text.contains("048185000123"));
        let mut flipped = sealed.sealed.clone();
        flipped[30] ^= 1;
        assert!(key.open_holder(7, 0, &flipped).is_err(), "changed");
    }

    #[test]
    fn the_blind_index_is_equal_for_equal_ids_under_one_key_only() {
        let (a, b) = (DataKey::fresh(), DataKey::fresh());
        assert_eq!(a.citizen_index("048185000123"), a.citizen_index(" 048185000123 "));
        assert_ne!(a.citizen_index("048185000123"), a.citizen_index("048185000124"));
        assert_ne!(a.citizen_index("048185000123"), b.citizen_index("048185000123"));
        assert_eq!(a.seal_holder(1, 0, &holder()).citizen_index, Some(a.citizen_index("048185000123")));
    }

    #[test]
    fn a_keyring_is_created_read_extended_and_refused_when_wrong() {
        let dir = std::env::temp_dir().join(format!("landdb-keys-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("ring.keys");
        let ring = Keyring::at(&path).expect("created");
        let first = ring.newest().expect("one key");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("file").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let second = ring.add().expect("added");
        let (keys, _) = read(&path).expect("reads");
        assert_eq!(keys.iter().map(DataKey::id).collect::<Vec<_>>(), vec![first.id(), second.id()]);
        assert_eq!(ring.key(first.id()).expect("kept").check_value(), first.check_value());
        let registered = [
            RegisteredKey { id: first.id(), check_value: first.check_value(), state: KeyState::Retiring },
            RegisteredKey { id: second.id(), check_value: second.check_value(), state: KeyState::Active },
        ];
        assert_eq!(check_registered(&ring, &registered).expect("matches").id(), second.id());
        // A rotation stopped half way resumes towards its key; otherwise a new one is made.
        let (resume, from) = rotation_start(&ring, &registered).expect("start");
        assert_eq!((resume.map(|k| k.id()), from), (Some(second.id()), vec![first.name()]));
        let settled = [
            RegisteredKey { id: first.id(), check_value: first.check_value(), state: KeyState::Retired },
            RegisteredKey { id: second.id(), check_value: second.check_value(), state: KeyState::Active },
        ];
        let (resume, from) = rotation_start(&ring, &settled).expect("start");
        assert_eq!((resume.map(|k| k.id()), from), (None, vec![second.name()]));
        let wrong = [RegisteredKey { id: first.id(), check_value: "00".into(), state: KeyState::Active }];
        assert!(matches!(check_registered(&ring, &wrong), Err(StoreError::DataKeyMismatch { .. })));
        let absent = [RegisteredKey { id: 1, check_value: "00".into(), state: KeyState::Active }];
        let err = check_registered(&ring, &absent).expect_err("not in the keyring");
        assert!(err.to_string().contains("00000001") && err.to_string().contains("ring.keys"), "{err}");
        for bad in ["", "# only a comment\n", "zz 00\n", "0000000a 1234\n"] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
