//! Signed checkpoints of the audit chain's head, kept outside the database: what makes the log
//! something a database administrator cannot rewrite unseen. The hash chain finds any entry
//! edited, moved or removed from the middle, but whoever owns the tables can cut entries from the
//! end and move the recorded head back, or wipe the log and write a new one; only a witness of an
//! earlier head, which the database does not hold, finds that.
//!
//! A checkpoint is one line of text, `seq hash time signature`: the chain held entry `seq` with
//! `hash` at `time` (RFC 3339, microseconds, UTC), signed with Ed25519 over [`DOMAIN`] followed
//! by `seq hash time` (the domain keeps these signatures from meaning anything else made with the
//! same key). Lines are appended to a file the database cannot write (and that the operating
//! system keeps append-only: `chattr +a`), and may be copied to an external log. A checkpoint
//! file is checked against the chain as it is followed ([`Witness`]): every signature, the order
//! of the lines, each checkpointed entry's hash, and that the chain still reaches the last one.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use ed25519_dalek::{Signature, Signer, Verifier};
/// The key types, for those who read and write key files.
pub use ed25519_dalek::{SigningKey, VerifyingKey};

use crate::audit::GENESIS;

/// What every checkpoint signature begins with.
pub const DOMAIN: &str = "landdb audit checkpoint v1\n";

/// One signed statement: the chain held entry `seq` with `hash` at `at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub seq: i64,
    pub hash: String,
    /// When it was signed, to the microsecond.
    pub at: DateTime<Utc>,
    pub signature: Signature,
}

/// A checkpoint file (or key) that does not hold, or a chain that no longer matches it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("checkpoint at line {line}: {why}")]
pub struct CheckpointError {
    /// 1-based line of the checkpoint file (0: the file or key as a whole).
    pub line: usize,
    pub why: String,
}

fn time_text(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

impl Checkpoint {
    /// The bytes a checkpoint's signature covers.
    pub fn message(seq: i64, hash: &str, at: DateTime<Utc>) -> Vec<u8> {
        format!("{DOMAIN}{seq} {hash} {}", time_text(at)).into_bytes()
    }

    /// Signs the head `seq`, `hash` at `at` (cut to microseconds, as the line keeps it).
    pub fn sign(seq: i64, hash: &str, at: DateTime<Utc>, key: &SigningKey) -> Checkpoint {
        let at = crate::AuditEvent::new_at(at);
        let signature = key.sign(&Checkpoint::message(seq, hash, at));
        Checkpoint { seq, hash: hash.to_owned(), at, signature }
    }

    /// The line the checkpoint file holds (without its newline).
    pub fn line(&self) -> String {
        format!("{} {} {} {}", self.seq, self.hash, time_text(self.at), hex::encode(self.signature.to_bytes()))
    }

    /// Reads a line [`Checkpoint::line`] wrote; the signature is checked by [`Checkpoint::verify`].
    pub fn parse(line: &str) -> Result<Checkpoint, String> {
        let fields: Vec<&str> = line.split(' ').collect();
        let [seq, hash, at, signature] = fields[..] else {
            return Err(format!("expected four fields (seq hash time signature), found {}", fields.len()));
        };
        let seq = seq.parse::<i64>().map_err(|_| format!("`{seq}` is not an entry number"))?;
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(format!("`{hash}` is not a SHA-256 hash in lower-case hex"));
        }
        let at = DateTime::parse_from_rfc3339(at)
            .map_err(|e| format!("`{at}` is not an RFC 3339 time ({e})"))?
            .with_timezone(&Utc);
        let bytes: [u8; 64] = hex::decode(signature)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| "the signature is not 128 hex digits".to_owned())?;
        Ok(Checkpoint { seq, hash: hash.to_owned(), at, signature: Signature::from_bytes(&bytes) })
    }

    /// Whether `key` signed this checkpoint as it reads.
    pub fn verify(&self, key: &VerifyingKey) -> Result<(), String> {
        key.verify(&Checkpoint::message(self.seq, &self.hash, self.at), &self.signature).map_err(|_| {
            "its signature does not hold under this public key: the line was edited, or signed with another key"
                .to_owned()
        })
    }
}

impl fmt::Display for Checkpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "entry {} at {}", self.seq, time_text(self.at))
    }
}

/// A new signing key, from the operating system's random numbers.
pub fn generate_key() -> SigningKey {
    use rand::RngCore;
    let mut seed = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut seed);
    SigningKey::from_bytes(&seed)
}

/// The text of a secret key file: its 32-byte seed in hex, and a newline.
pub fn secret_key_text(key: &SigningKey) -> String {
    format!("{}\n", hex::encode(key.to_bytes()))
}

/// A secret key file's text, as [`secret_key_text`] writes it.
pub fn parse_secret_key(text: &str) -> Result<SigningKey, String> {
    let bytes: [u8; 32] = hex::decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| "a checkpoint key is 64 hex digits (what `landdb audit keygen` writes)".to_owned())?;
    Ok(SigningKey::from_bytes(&bytes))
}

/// A public key in hex (64 digits), as `landdb audit keygen` prints it.
pub fn parse_public_key(text: &str) -> Result<VerifyingKey, String> {
    let bytes: [u8; 32] = hex::decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| "a public key is 64 hex digits (what `landdb audit keygen` prints)".to_owned())?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| "those 64 hex digits are not an Ed25519 public key".to_owned())
}

pub fn public_key_text(key: &VerifyingKey) -> String {
    hex::encode(key.to_bytes())
}

/// A checkpoint file checked against the chain while it is followed: built from the file (every
/// signature and the order of the lines checked at once), then shown each entry in order
/// ([`Witness::saw`]), then told where the chain ends ([`Witness::end`]).
#[derive(Debug, Clone)]
pub struct Witness {
    /// The checkpoints with their line numbers, in the file's order (which is the chain's).
    checkpoints: Vec<(usize, Checkpoint)>,
    /// The first checkpoint not yet matched with its entry.
    next: usize,
}

impl Witness {
    /// Reads a checkpoint file's text and checks every line's signature under `key`, and that
    /// the lines never go back (in entry or in time): lines moved or put back are found here.
    pub fn new(file: &str, key: &VerifyingKey) -> Result<Witness, CheckpointError> {
        let mut checkpoints: Vec<(usize, Checkpoint)> = Vec::new();
        for (i, text) in file.lines().enumerate() {
            let line = i + 1;
            if text.trim().is_empty() {
                continue;
            }
            let c = Checkpoint::parse(text.trim_end()).map_err(|why| CheckpointError { line, why })?;
            c.verify(key).map_err(|why| CheckpointError { line, why: format!("({c}) {why}") })?;
            if c.seq < 0 || (c.seq == 0 && c.hash != GENESIS) {
                return Err(CheckpointError { line, why: format!("({c}) names no entry of a chain") });
            }
            if let Some((earlier, before)) = checkpoints.last()
                && (c.seq < before.seq || c.at < before.at || (c.seq == before.seq && c.hash != before.hash))
            {
                return Err(CheckpointError {
                    line,
                    why: format!(
                        "({c}) goes back from line {earlier} ({before}): the signer was shown a chain that had \
                         been rewound or rewritten, or the lines were reordered"
                    ),
                });
            }
            checkpoints.push((line, c));
        }
        Ok(Witness { checkpoints, next: 0 })
    }

    /// How many checkpoints the file holds.
    pub fn len(&self) -> usize {
        self.checkpoints.len()
    }

    pub fn is_empty(&self) -> bool {
        self.checkpoints.is_empty()
    }

    /// The last checkpoint: where a signer resumes.
    pub fn last(&self) -> Option<&Checkpoint> {
        self.checkpoints.last().map(|(_, c)| c)
    }

    /// The chain holds entry `seq` with `hash` (entries in order, each once).
    pub fn saw(&mut self, seq: i64, hash: &str) -> Result<(), CheckpointError> {
        while let Some((line, c)) = self.checkpoints.get(self.next) {
            if c.seq == 0 {
                self.next += 1;
                continue;
            }
            if c.seq > seq {
                break;
            }
            if c.seq < seq {
                // Only a chain that skips entries gets here; the chain itself reports that.
                return Err(CheckpointError { line: *line, why: format!("({c}) names an entry the chain lacks") });
            }
            if c.hash != hash {
                return Err(CheckpointError {
                    line: *line,
                    why: format!(
                        "({c}) witnessed hash {} but the chain's entry {seq} now has {hash}: the log was rewritten \
                         from there on",
                        c.hash
                    ),
                });
            }
            self.next += 1;
        }
        Ok(())
    }

    /// The chain ends at entry `last_seq`: every checkpoint must have been met by then.
    pub fn end(self, last_seq: i64) -> Result<usize, CheckpointError> {
        match self.checkpoints[self.next..].iter().find(|(_, c)| c.seq > 0) {
            Some((line, c)) => Err(CheckpointError {
                line: *line,
                why: format!(
                    "({c}) witnessed entry {} but the chain now ends at entry {last_seq}: entries were cut from its \
                     end (or the log wiped) after that checkpoint",
                    c.seq
                ),
            }),
            None => Ok(self.checkpoints.len()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{AuditEntry, AuditEvent};
    use proptest::prelude::*;

    fn chain(n: i64, salt: &str) -> Vec<AuditEntry> {
        let mut prev = GENESIS.to_owned();
        (1..=n)
            .map(|i| {
                let event = AuditEvent {
                    at: AuditEvent::new_at(DateTime::from_timestamp(1_750_000_000 + i, 0).unwrap_or_default()),
                    agency: "tax".into(),
                    key_id: "k".into(),
                    method: "GET".into(),
                    endpoint: "/parcels/at".into(),
                    params: format!("{salt}{i}"),
                    purpose: "p".into(),
                    status: 200,
                    parcels: 1,
                    personal: Vec::new(),
                    versions: vec![i],
                    communes: Vec::new(),
                };
                let e = event.chain(i, &prev);
                prev.clone_from(&e.hash);
                e
            })
            .collect()
    }

    fn file(c: &[AuditEntry], at: &[usize], key: &SigningKey) -> String {
        at.iter()
            .enumerate()
            .map(|(k, &i)| {
                let t = DateTime::from_timestamp(1_760_000_000 + k as i64, 0).unwrap_or_default();
                let (seq, hash) = if i == 0 { (0, GENESIS) } else { (c[i - 1].seq, c[i - 1].hash.as_str()) };
                Checkpoint::sign(seq, hash, t, key).line() + "\n"
            })
            .collect()
    }

    /// Checks `file` against `chain`, as a verification follows it.
    fn check(file: &str, c: &[AuditEntry], key: &VerifyingKey) -> Result<usize, CheckpointError> {
        let mut w = Witness::new(file, key)?;
        for e in c {
            w.saw(e.seq, &e.hash)?;
        }
        w.end(c.last().map_or(0, |e| e.seq))
    }

    #[test]
    fn a_line_reads_back_and_its_signature_holds_only_under_its_key() {
        let key = generate_key();
        let c = Checkpoint::sign(42, &"ab".repeat(32), Utc::now(), &key);
        let read = Checkpoint::parse(&c.line()).expect("reads");
        assert_eq!(read, c);
        read.verify(&key.verifying_key()).expect("holds");
        assert!(read.verify(&generate_key().verifying_key()).is_err());
        assert_eq!(parse_secret_key(&secret_key_text(&key)).expect("key").to_bytes(), key.to_bytes());
        let public = public_key_text(&key.verifying_key());
        assert_eq!(parse_public_key(&public).expect("public"), key.verifying_key());
        assert!(Checkpoint::parse("1 2 3").expect_err("short").contains("four fields"));
        assert!(parse_public_key("xyz").expect_err("not hex").contains("64 hex digits"));
    }

    #[test]
    fn the_message_is_domain_separated() {
        let t = DateTime::from_timestamp(0, 0).unwrap_or_default();
        let m = Checkpoint::message(1, GENESIS, t);
        assert!(m.starts_with(DOMAIN.as_bytes()));
        assert!(String::from_utf8(m).expect("text").ends_with(&format!("1 {GENESIS} 1970-01-01T00:00:00.000000Z")));
    }

    #[test]
    fn an_edited_line_a_wrong_key_and_reordered_lines_are_named() {
        let key = generate_key();
        let c = chain(10, "");
        let text = file(&c, &[3, 6, 10], &key);
        assert_eq!(check(&text, &c, &key.verifying_key()).expect("holds"), 3);
        let wrong = check(&text, &c, &generate_key().verifying_key()).expect_err("wrong key");
        assert_eq!(wrong.line, 1);
        // The second line's entry number changed to 5.
        let lines: Vec<&str> = text.lines().collect();
        let edited = lines[1].replacen("6 ", "5 ", 1);
        let broken =
            check(&format!("{}\n{edited}\n{}\n", lines[0], lines[2]), &c, &key.verifying_key()).expect_err("edited");
        assert_eq!(broken.line, 2, "{broken}");
        assert!(broken.why.contains("signature"), "{broken}");
        let reordered = format!("{}\n{}\n{}\n", lines[0], lines[2], lines[1]);
        let broken = check(&reordered, &c, &key.verifying_key()).expect_err("reordered");
        assert_eq!(broken.line, 3, "{broken}");
    }

    #[test]
    fn an_empty_chain_checkpoint_and_a_wiped_log() {
        let key = generate_key();
        let c = chain(4, "");
        let text = file(&c, &[0, 4], &key);
        assert_eq!(check(&text, &c, &key.verifying_key()).expect("holds"), 2);
        let wiped = check(&text, &[], &key.verifying_key()).expect_err("wiped");
        assert_eq!(wiped.line, 2);
        assert!(wiped.why.contains("now ends at entry 0"), "{wiped}");
    }

    proptest! {
        /// Over random chains and checkpoints: an untouched chain passes; a chain cut below a
        /// checkpoint, or rewritten (another chain of the same length) at or before one, fails
        /// at the first checkpoint it contradicts.
        #[test]
        fn checkpoints_catch_every_rewind_and_rewrite(
            n in 1i64..40,
            marks in proptest::collection::btree_set(0usize..40, 1..6),
            cut in 0i64..40,
            rewrite_from in 1i64..40,
        ) {
            let key = generate_key();
            let c = chain(n, "");
            let marks: Vec<usize> = marks.into_iter().filter(|&m| m as i64 <= n).collect();
            prop_assume!(!marks.is_empty());
            let text = file(&c, &marks, &key);
            let public = key.verifying_key();
            prop_assert_eq!(check(&text, &c, &public).expect("untouched"), marks.len());

            let first_beyond = |limit: i64| marks.iter().position(|&m| m as i64 > limit).map(|k| k + 1);
            let cut = cut % n;
            let result = check(&text, &c[..cut as usize], &public);
            match first_beyond(cut) {
                Some(line) => prop_assert_eq!(result.expect_err("cut").line, line),
                None => prop_assert!(result.is_ok()),
            }

            // Entries from `rewrite_from` on replaced by others that chain correctly.
            let rewrite_from = (rewrite_from - 1) % n + 1;
            let other = chain(n, "forged");
            let mut forged = c[..rewrite_from as usize - 1].to_vec();
            let mut prev = forged.last().map_or(GENESIS.to_owned(), |e| e.hash.clone());
            for e in &other[rewrite_from as usize - 1..] {
                let e = e.event.clone().chain(e.seq, &prev);
                prev.clone_from(&e.hash);
                forged.push(e);
            }
            let result = check(&text, &forged, &public);
            match first_beyond(rewrite_from - 1) {
                Some(line) => prop_assert_eq!(result.expect_err("rewritten").line, line),
                None => prop_assert!(result.is_ok()),
            }
        }
    }
}
