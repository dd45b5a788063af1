//! Who may see what. Agencies and their API keys ([`key`]), the policy each works under
//! ([`policy`]: area, personal data, operations, limits, validity, purpose), the counters that
//! enforce its limits ([`limits`]), and the hash-chained audit trail ([`audit`]). Pure logic:
//! the store keeps agencies, keys and entries; the API enforces the policies at one point.

pub mod audit;
pub mod key;
pub mod limits;
pub mod policy;

pub use audit::{AuditEntry, AuditEvent, Broken, Verified};
pub use key::{KeyRecord, NewKey};
pub use policy::{Agency, Area, Limits, Operation, Policy, Role, Scope};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    #[error("{0}")]
    Invalid(String),
}
