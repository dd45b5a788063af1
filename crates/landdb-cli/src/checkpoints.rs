//! Signed checkpoints of the audit head as files: the secret key file, the append-only
//! checkpoint file, and the signer that `landdb audit checkpoint` and `landdb serve
//! --checkpoint-key` share. The rules (message, signatures, checking a file against the chain)
//! are `landdb_access::checkpoint`; this is the I/O around them.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::Utc;
use landdb_access::audit::{Chain, GENESIS};
use landdb_access::checkpoint::{self, Checkpoint, Witness};
use landdb_store::{AccessStore, AnyStore, AuditQuery};

/// Writes a new secret key to `path` (readable by its owner only; an existing file is never
/// replaced) and its public key beside it (`path.pub`); returns the public key in hex.
pub fn keygen(path: &Path) -> anyhow::Result<String> {
    let key = checkpoint::generate_key();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).with_context(|| {
        format!("cannot create the key file {} (an existing key is never replaced)", path.display())
    })?;
    file.write_all(checkpoint::secret_key_text(&key).as_bytes())?;
    file.sync_all()?;
    let public = checkpoint::public_key_text(&key.verifying_key());
    let pub_path = public_path(path);
    std::fs::write(&pub_path, format!("{public}\n"))
        .with_context(|| format!("cannot write the public key to {}", pub_path.display()))?;
    Ok(public)
}

fn public_path(secret: &Path) -> PathBuf {
    let mut p = secret.as_os_str().to_owned();
    p.push(".pub");
    PathBuf::from(p)
}

pub fn read_secret_key(path: &Path) -> anyhow::Result<checkpoint::SigningKey> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!("cannot read the checkpoint key {} (make one with `landdb audit keygen`)", path.display())
    })?;
    checkpoint::parse_secret_key(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// A public key given as 64 hex digits, or as a file holding them.
pub fn read_public_key(arg: &str) -> anyhow::Result<checkpoint::VerifyingKey> {
    if let Ok(key) = checkpoint::parse_public_key(arg) {
        return Ok(key);
    }
    let text = std::fs::read_to_string(arg)
        .with_context(|| format!("--public-key {arg}: neither 64 hex digits nor a readable file"))?;
    checkpoint::parse_public_key(&text).map_err(|e| anyhow::anyhow!("{arg}: {e}"))
}

/// A checkpoint file's checkpoints, every signature checked (a file that does not exist yet
/// holds none).
pub fn read_checkpoints(path: &Path, key: &checkpoint::VerifyingKey) -> anyhow::Result<Witness> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot read the checkpoint file {}", path.display())),
    };
    Witness::new(&text, key).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// Signs heads of the chain into a checkpoint file, each only after following the chain from the
/// previous checkpoint to it: a signer never witnesses a chain that was rewound or rewritten
/// behind its last checkpoint.
pub struct Signer {
    key: checkpoint::SigningKey,
    file: PathBuf,
    /// The last checkpoint written (entry and hash).
    last: Option<(i64, String)>,
}

impl Signer {
    pub fn open(key: &Path, file: &Path) -> anyhow::Result<Signer> {
        let key = read_secret_key(key)?;
        let witness = read_checkpoints(file, &key.verifying_key())?;
        let last = witness.last().map(|c| (c.seq, c.hash.clone()));
        Ok(Signer { key, file: file.to_owned(), last })
    }

    /// Signs the current head and appends it to the file; with `only_if_moved`, nothing happens
    /// while the head is where the last checkpoint left it. Fails, signing nothing, when the chain
    /// no longer leads from the last checkpoint to the head.
    pub async fn checkpoint(&mut self, store: &AnyStore, only_if_moved: bool) -> anyhow::Result<Option<Checkpoint>> {
        let (seq, hash) = store.audit_head().await?.unwrap_or((0, GENESIS.to_owned()));
        if only_if_moved && self.last.as_ref().is_some_and(|(s, h)| *s == seq && *h == hash) {
            return Ok(None);
        }
        let mut chain = match &self.last {
            Some((s, h)) => Chain::resume(*s, h),
            None => Chain::default(),
        };
        if let Some((last_seq, _)) = &self.last
            && seq < *last_seq
        {
            anyhow::bail!(
                "the audit head is entry {seq}, behind the last checkpoint (entry {last_seq}): entries were cut \
                 from the log; nothing signed (run `landdb audit verify --checkpoints`)"
            );
        }
        // The entries since the last checkpoint, up to the head read above.
        while chain.last().0 < seq {
            let after = chain.last().0;
            let page = store.audit_entries(&AuditQuery { after, limit: 10_000, ..AuditQuery::default() }).await?;
            if page.is_empty() {
                break;
            }
            for entry in page.iter().take_while(|e| e.seq <= seq) {
                chain.follow(entry).map_err(|broken| {
                    anyhow::anyhow!("the audit log is broken since the last checkpoint: {broken}; nothing signed")
                })?;
            }
        }
        if chain.last() != (seq, hash.as_str()) {
            let (got, _) = chain.last();
            anyhow::bail!(
                "the recorded audit head (entry {seq}) is not where the chain from the last checkpoint ends (entry \
                 {got}); nothing signed (run `landdb audit verify`)"
            );
        }
        let signed = Checkpoint::sign(seq, &hash, Utc::now(), &self.key);
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&self.file)
            .with_context(|| format!("cannot append to the checkpoint file {}", self.file.display()))?;
        // One write of the whole line, then to disk: a checkpoint is worth only what survives.
        file.write_all(format!("{}\n", signed.line()).as_bytes())?;
        file.sync_data()?;
        self.last = Some((seq, hash));
        Ok(Some(signed))
    }
}
