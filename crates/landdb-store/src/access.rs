//! Agencies, API keys and the audit log, kept beside the parcels in either store. Changes to
//! agencies or keys bump a generation counter that every running server polls, so a revoked key
//! stops working on every process within one poll. Audit entries are appended in batches, each
//! chained to the one before under the store's write lock, so that several processes writing
//! at once still make one chain. Verification ([`AccessStore::verify_audit`]) reads the whole
//! log in one consistent snapshot, to the real end of the table, and checks the indexes kept
//! beside the entries (what answers "who saw this parcel") against the entries themselves.

use std::future::Future;

use chrono::{DateTime, NaiveDate, Utc};
use landdb_access::audit::Form;
use landdb_access::limits::{Leased, QuotaLease};
use landdb_access::webhook::{DeadLetter, Subscription};
use landdb_access::{Agency, AuditEntry, AuditEvent, Broken, FollowedScope, KeyRecord, Verified};

use crate::Result;

/// Which audit entries to read.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub agency: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Only entries that disclosed the personal data of one of these versions.
    pub disclosed: Option<Vec<i64>>,
    /// Only entries that disclosed one of these versions, personal data or not: every agency
    /// that received the parcel.
    pub received: Option<Vec<i64>>,
    /// Only entries that disclosed a parcel of one of these communes (entries of the older
    /// forms, which did not list communes, are not ruled out by it). Asked with the commune of
    /// the versions above ([`AskedParcel`]), it changes no answer and lets the PostGIS store
    /// read only the blocks of that commune.
    pub communes: Option<Vec<u32>>,
    /// Entries after this sequence number (paging).
    pub after: i64,
    pub limit: i64,
}

impl AuditQuery {
    /// Whether the entry answers the query (after its sequence number, of its agency, in its
    /// period, disclosing one of its versions, personal data or any).
    pub fn matches(&self, e: &AuditEntry) -> bool {
        e.seq > self.after
            && self.agency.as_deref().is_none_or(|a| a == &*e.event.agency)
            && self.since.is_none_or(|t| e.event.at >= t)
            && self.until.is_none_or(|t| e.event.at < t)
            && self.disclosed.as_ref().is_none_or(|vs| e.event.personal.iter().any(|v| vs.contains(v)))
            && self.received.as_ref().is_none_or(|vs| e.event.received().any(|v| vs.contains(&v)))
            && self
                .communes
                .as_ref()
                .is_none_or(|cs| e.form < Form::ByCommune || e.event.communes.iter().any(|c| cs.contains(c)))
    }
}

/// A parcel as a question of the audit log names it: every version of its natural key, and the
/// commune of that key (what blocks of entries are indexed by).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AskedParcel {
    pub versions: Vec<i64>,
    pub communes: Option<Vec<u32>>,
}

impl AskedParcel {
    /// The parcel that `version` is a version of. A version the store no longer holds is asked
    /// for alone: the entries naming it are still on record, found without the commune index.
    pub async fn of(store: &impl crate::ParcelStore, version: i64) -> Result<AskedParcel> {
        let Some(v) = store.version(landdb_model::VersionId(version)).await? else {
            return Ok(AskedParcel { versions: vec![version], communes: None });
        };
        let versions = store.history(&v.parcel.key).await?.iter().map(|v| v.id.0).collect();
        Ok(AskedParcel { versions, communes: Some(vec![v.parcel.key.commune.number()]) })
    }
}

pub trait AccessStore: Send + Sync {
    /// Creates the agency or replaces its title, role and policy.
    fn put_agency(&self, agency: &Agency) -> impl Future<Output = Result<()>> + Send;
    fn agencies(&self) -> impl Future<Output = Result<Vec<Agency>>> + Send;
    fn put_key(&self, key: &KeyRecord) -> impl Future<Output = Result<()>> + Send;
    /// Sets when a key stops working: `revoked_at` (revocation) or `expires_at` (the end of a
    /// rotation's overlap). False when there is no such key.
    fn end_key(
        &self,
        id: &str,
        revoked_at: Option<DateTime<Utc>>,
        expires_at: Option<DateTime<Utc>>,
    ) -> impl Future<Output = Result<bool>> + Send;
    fn keys(&self) -> impl Future<Output = Result<Vec<KeyRecord>>> + Send;
    /// A number that changes whenever agencies or keys do.
    fn access_generation(&self) -> impl Future<Output = Result<i64>> + Send;

    /// Appends the events to the chain, in order, in one transaction.
    fn append_audit(&self, events: &[AuditEvent]) -> impl Future<Output = Result<()>> + Send;
    fn audit_entries(&self, query: &AuditQuery) -> impl Future<Output = Result<Vec<AuditEntry>>> + Send;
    /// The last entry's sequence number and hash, as recorded beside the chain.
    fn audit_head(&self) -> impl Future<Output = Result<Option<(i64, String)>>> + Send;
    /// Follows the whole chain, in one consistent snapshot, to the real end of the table (not
    /// only to the recorded head), checks that it ends at the recorded head, and checks every
    /// index kept beside the entries against them (PostGIS: each block's columns; embedded: the
    /// disclosure table). `on_entry` sees every entry in order (a checkpoint file is checked
    /// against them). The first break is named; `Err` only when the store cannot be read.
    fn verify_audit(
        &self,
        on_entry: &mut (dyn FnMut(&AuditEntry) + Send),
    ) -> impl Future<Output = Result<Result<Verified, Broken>>> + Send;
    /// Parcels `agency` has taken since `since`, by the audit log.
    fn parcels_taken(&self, agency: &str, since: DateTime<Utc>) -> impl Future<Output = Result<u64>> + Send;
    /// Leases part of an agency's quota for a day from the count every server process shares,
    /// under the store's lock ([`QuotaLease::grant`]): concurrent leases, from any process,
    /// never together pass the quota. A day's count starts from [`Self::parcels_taken`] since
    /// its midnight.
    fn lease_quota(&self, lease: &QuotaLease) -> impl Future<Output = Result<Leased>> + Send;
    /// Gives back to the shared count what a process leased and did not send.
    fn return_quota(&self, agency: &str, day: NaiveDate, features: u64) -> impl Future<Output = Result<()>> + Send;
    /// The secret of this database for `purpose`: `fresh` (32 random bytes), stored, the first
    /// time any server asks; what was stored first, ever after. What every server of one
    /// database must share, such as the key that seals change-feed tokens.
    fn secret(&self, purpose: &str, fresh: [u8; 32]) -> impl Future<Output = Result<[u8; 32]>> + Send;

    /// Says that server process `id` is alive (once a second), forgets processes not seen for
    /// 10 s, and returns how many were seen in the last 3 s (this one included): what an
    /// agency's requests-a-second limit is shared out among.
    fn heartbeat(&self, id: &str) -> impl Future<Output = Result<u64>> + Send;
    /// Server process `id` stops: no longer counted.
    fn leave(&self, id: &str) -> impl Future<Output = Result<()>> + Send;

    /// Keeps the scope an agency's change-feed tokens are sealed under, by its fingerprint
    /// (kept once; the same fingerprint is the same scope).
    fn remember_scope(&self, agency: &str, scope: &FollowedScope) -> impl Future<Output = Result<()>> + Send;

    /// The scope of `agency` with this fingerprint, if one was kept.
    fn remembered_scope(
        &self,
        agency: &str,
        fingerprint: u64,
    ) -> impl Future<Output = Result<Option<FollowedScope>>> + Send;

    /// Creates the webhook subscription or replaces it (same id).
    fn put_subscription(&self, s: &Subscription) -> impl Future<Output = Result<()>> + Send;
    /// Replaces a subscription that still exists (the delivery worker's progress): false when it
    /// was deleted meanwhile, which stays deleted.
    fn update_subscription(&self, s: &Subscription) -> impl Future<Output = Result<bool>> + Send;
    fn subscriptions(&self) -> impl Future<Output = Result<Vec<Subscription>>> + Send;
    /// False when there was no such subscription.
    fn delete_subscription(&self, id: &str) -> impl Future<Output = Result<bool>> + Send;
    /// Takes (or keeps) the right to deliver the subscription until `until`, unless another
    /// holder has it beyond `now`: one server of several delivers each subscription.
    fn lease_subscription(
        &self,
        id: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool>> + Send;
    /// Keeps a failed delivery; returns its id.
    fn add_dead_letter(&self, d: &DeadLetter) -> impl Future<Output = Result<i64>> + Send;
    fn dead_letters(&self, subscription: &str) -> impl Future<Output = Result<Vec<DeadLetter>>> + Send;
    fn mark_replayed(&self, id: i64, at: DateTime<Utc>) -> impl Future<Output = Result<()>> + Send;
}

/// A subscription as a stored document.
pub(crate) fn subscription_doc(s: &Subscription) -> Result<String> {
    serde_json::to_string(s).map_err(|e| crate::StoreError::Corrupt(format!("a subscription: {e}")))
}

pub(crate) fn subscription_from(doc: &str) -> Result<Subscription> {
    serde_json::from_str(doc).map_err(|e| crate::StoreError::Corrupt(format!("a stored subscription: {e}")))
}

/// A followed scope as a stored document.
pub(crate) fn scope_doc(s: &FollowedScope) -> Result<String> {
    serde_json::to_string(s).map_err(|e| crate::StoreError::Corrupt(format!("a followed scope: {e}")))
}

pub(crate) fn read_scope_doc(doc: &str) -> Result<FollowedScope> {
    serde_json::from_str(doc).map_err(|e| crate::StoreError::Corrupt(format!("a stored followed scope: {e}")))
}

/// A dead letter's document (its id is the row's).
pub(crate) fn dead_letter_doc(d: &DeadLetter) -> Result<String> {
    serde_json::to_string(d).map_err(|e| crate::StoreError::Corrupt(format!("a dead letter: {e}")))
}

pub(crate) fn dead_letter_from(id: i64, doc: &str, replayed_at: Option<DateTime<Utc>>) -> Result<DeadLetter> {
    let mut d: DeadLetter =
        serde_json::from_str(doc).map_err(|e| crate::StoreError::Corrupt(format!("a stored dead letter: {e}")))?;
    d.id = id;
    d.replayed_at = replayed_at;
    Ok(d)
}

/// The personal-data versions of an entry, as stored (a JSON array; most entries disclose none,
/// and have nothing to format).
pub(crate) fn personal_text(event: &AuditEvent) -> std::borrow::Cow<'static, str> {
    if event.personal.is_empty() {
        return "[]".into();
    }
    serde_json::to_string(&event.personal).map_or("[]".into(), Into::into)
}

/// Every version an entry disclosed, as the embedded store keeps it: a JSON array, sorted; `None`
/// for an entry of the oldest form, which did not list them.
pub(crate) fn versions_text(entry: &AuditEntry) -> Option<String> {
    (entry.form >= Form::EveryVersion)
        .then(|| serde_json::to_string(&entry.event.versions).unwrap_or_else(|_| "[]".to_owned()))
}

/// The communes of what an entry disclosed, as the embedded store keeps them: a JSON array,
/// sorted; `None` for an entry of an older form, which did not list them.
pub(crate) fn communes_text(entry: &AuditEntry) -> Option<String> {
    (entry.form >= Form::ByCommune)
        .then(|| serde_json::to_string(&entry.event.communes).unwrap_or_else(|_| "[]".to_owned()))
}

pub(crate) fn communes_from(raw: &str) -> Result<Vec<u32>> {
    serde_json::from_str(raw).map_err(|e| crate::StoreError::Corrupt(format!("audit commune list {raw:?}: {e}")))
}

pub(crate) fn personal_from(raw: &str) -> Result<Vec<i64>> {
    serde_json::from_str(raw).map_err(|e| crate::StoreError::Corrupt(format!("audit personal list {raw:?}: {e}")))
}

pub(crate) fn policy_from(name: &str, raw: serde_json::Value) -> Result<landdb_access::Policy> {
    serde_json::from_value(raw).map_err(|e| crate::StoreError::Corrupt(format!("policy of agency {name}: {e}")))
}

pub(crate) fn role_from(raw: &str) -> Result<landdb_access::Role> {
    landdb_access::Role::parse(raw).map_err(|e| crate::StoreError::Corrupt(e.to_string()))
}
