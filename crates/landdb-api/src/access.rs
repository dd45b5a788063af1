//! Who is asking, and what they may see. Every handler takes an [`Access`]: it is the one place
//! where the access rules (issue 7: API keys, agencies, area and field scopes) will sit in front of
//! every path. Until then every caller is anonymous and sees the public fields only.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::ogc::ApiError;

#[derive(Debug, Clone)]
pub struct Access {
    /// Whether personal data (the address, right holders) may be disclosed.
    pub personal_data: bool,
}

impl Access {
    pub fn anonymous() -> Self {
        Access { personal_data: false }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Access {
    type Rejection = ApiError;

    async fn from_request_parts(_parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Access::anonymous())
    }
}
