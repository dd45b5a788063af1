//! Who may see what. Agencies and their API keys ([`key`]), the policy each works under
//! ([`policy`]: area, personal data, operations, limits, validity, purpose), the counters that
//! enforce its limits ([`limits`]), the hash-chained audit trail ([`audit`]) with its block index
//! columns ([`audit_block`]) and the signed
//! checkpoints that witness its head outside the database ([`checkpoint`]). Pure logic:
//! the store keeps agencies, keys and entries; the API enforces the policies at one point.

pub mod audit;
pub mod audit_block;
pub mod checkpoint;
pub mod key;
pub mod limits;
pub mod policy;
pub mod webhook;

pub use audit::{AuditEntry, AuditEvent, Broken, Verified};
pub use key::{KeyRecord, NewKey};
pub use policy::{Agency, Area, FollowedScope, Limits, Operation, Policy, Role, Scope};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    #[error("{0}")]
    Invalid(String),
}
