//! OAuth2 bearer tokens (JWT) from the data-sharing platform's identity provider, beside API keys.
//!
//! A token is taken when its signature verifies under a key of the provider's JWKS (a file, or an
//! HTTPS address fetched and cached; fetched again, at most once a second, when a token names a
//! key id it does not hold), with the algorithm that key is for (never `none`, never HS256 with a
//! public key), from the configured issuer, for the configured audience, and not expired. The
//! client it names (the configured claim, `client_id` unless told) identifies its agency through
//! a credential `landdb key add-oauth` made, kept as a key is (`oauth-…`): revoked, expired and
//! audited like one.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

/// How often an unknown key id may make the JWKS be read again.
const REFRESH_AT_MOST: Duration = Duration::from_secs(1);
/// How long a JWKS address may take to answer.
const FETCH: Duration = Duration::from_secs(5);
/// Clock difference allowed on `exp` and `nbf`.
const LEEWAY: u64 = 30;

/// Where the provider's keys are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Jwks {
    File(PathBuf),
    Url(String),
}

impl Jwks {
    /// An `https://` address, or a file. Plain `http://` is refused: whoever sits on the path
    /// could hand the server keys of their own and sign any token.
    pub fn parse(raw: &str) -> Result<Jwks, String> {
        if raw.starts_with("https://") {
            Ok(Jwks::Url(raw.to_owned()))
        } else if raw.contains("://") {
            Err(format!("--oauth-jwks {raw}: give an https:// address or a file"))
        } else {
            Ok(Jwks::File(PathBuf::from(raw)))
        }
    }
}

/// The settings of a server's OAuth2 tokens.
#[derive(Debug, Clone)]
pub struct OAuthSettings {
    pub issuer: String,
    pub audience: String,
    pub jwks: Jwks,
    /// The claim naming the client (`client_id`, `azp`, `sub`).
    pub client_claim: String,
}

/// Verifies tokens against the provider's keys.
#[derive(Debug)]
pub struct OAuth {
    settings: OAuthSettings,
    keys: RwLock<Keys>,
    refreshing: tokio::sync::Mutex<()>,
}

struct Keys {
    by_id: HashMap<String, (DecodingKey, Algorithm)>,
    read_at: Option<Instant>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("ids", &self.by_id.keys().collect::<Vec<_>>())
            .field("read_at", &self.read_at)
            .finish()
    }
}

/// A request whose bearer token verified: its client's credential.
#[derive(Debug, Clone)]
pub struct Verified(pub crate::access::Credential);

/// The credential of `client` of `issuer`: what `landdb key add-oauth` records and the gate
/// looks up.
pub fn credential(issuer: &str, client: &str) -> String {
    format!("oauth-client:{issuer}\u{0}{client}")
}

/// Whether a bearer token is a JWT (three base64url parts), not a landdb key.
pub fn is_jwt(token: &str) -> bool {
    !token.starts_with("landdb_") && token.split('.').count() == 3
}

/// The `typ` header values of an access token (compared without case).
const ACCESS_TOKEN_TYPES: [&str; 3] = ["jwt", "at+jwt", "application/at+jwt"];

impl OAuth {
    /// The verifier of `settings`, its keys read now (a JWKS that cannot be read stops the start).
    pub async fn new(settings: OAuthSettings) -> Result<OAuth, String> {
        let keys = read(&settings.jwks).await?;
        if keys.is_empty() {
            return Err(format!(
                "{:?}: the JWKS holds no key landdb can use (RSA or EC P-256/P-384, with a kid)",
                settings.jwks
            ));
        }
        Ok(OAuth {
            settings,
            keys: RwLock::new(Keys { by_id: keys, read_at: Some(Instant::now()) }),
            refreshing: tokio::sync::Mutex::new(()),
        })
    }

    /// The credential of the client a valid token names; none for any token that is not valid
    /// (the caller then answers 401, whatever was wrong).
    pub async fn verify(&self, token: &str) -> Option<crate::access::Credential> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        // An access token says it is one, or says nothing: a DPoP proof, a logout token or any
        // other JWT the provider signs is not a bearer credential (RFC 8725 §3.11, RFC 9068).
        if header.typ.as_deref().is_some_and(|t| !ACCESS_TOKEN_TYPES.contains(&t.to_ascii_lowercase().as_str())) {
            return None;
        }
        let kid = header.kid?;
        let (key, algorithm) = match self.key(&kid) {
            Some(found) => found,
            None => {
                self.refresh().await;
                self.key(&kid)?
            }
        };
        // The key's own algorithm, whatever the header says.
        if header.alg != algorithm {
            return None;
        }
        let mut validation = Validation::new(algorithm);
        validation.set_issuer(&[&self.settings.issuer]);
        validation.set_audience(&[&self.settings.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.leeway = LEEWAY;
        validation.validate_nbf = true;
        let data = jsonwebtoken::decode::<serde_json::Map<String, Value>>(token, &key, &validation).ok()?;
        let client = data.claims.get(&self.settings.client_claim)?.as_str()?;
        Some(crate::access::Credential::proven(credential(&self.settings.issuer, client)))
    }

    fn key(&self, kid: &str) -> Option<(DecodingKey, Algorithm)> {
        self.keys.read().unwrap_or_else(std::sync::PoisonError::into_inner).by_id.get(kid).cloned()
    }

    /// Reads the JWKS again, unless it was read less than a second ago.
    async fn refresh(&self) {
        let _one = self.refreshing.lock().await;
        let recent = self
            .keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .read_at
            .is_some_and(|at| at.elapsed() < REFRESH_AT_MOST);
        if recent {
            return;
        }
        match read(&self.settings.jwks).await {
            // A JWKS answered empty (a provider's hiccup) would refuse every token: the keys held stay.
            Ok(keys) if keys.is_empty() => {
                tracing::warn!("the JWKS was read again with no usable key; the keys held stay");
                self.keys.write().unwrap_or_else(std::sync::PoisonError::into_inner).read_at = Some(Instant::now());
            }
            Ok(keys) => {
                *self.keys.write().unwrap_or_else(std::sync::PoisonError::into_inner) =
                    Keys { by_id: keys, read_at: Some(Instant::now()) };
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the JWKS again; the keys held stay");
                self.keys.write().unwrap_or_else(std::sync::PoisonError::into_inner).read_at = Some(Instant::now());
            }
        }
    }
}

/// The usable keys of a JWKS, by key id, each with its algorithm.
async fn read(jwks: &Jwks) -> Result<HashMap<String, (DecodingKey, Algorithm)>, String> {
    let text = match jwks {
        Jwks::File(path) => {
            tokio::fs::read_to_string(path).await.map_err(|e| format!("the JWKS {}: {e}", path.display()))?
        }
        Jwks::Url(url) => {
            // HTTPS only, and no redirect: a redirect could lead to plain HTTP or elsewhere.
            let client = reqwest::Client::builder()
                .timeout(FETCH)
                .https_only(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| e.to_string())?;
            let answer = client.get(url).send().await.map_err(|e| format!("the JWKS {url}: {e}"))?;
            answer
                .error_for_status()
                .map_err(|e| format!("the JWKS {url}: {e}"))?
                .text()
                .await
                .map_err(|e| e.to_string())?
        }
    };
    let set: JwkSet = serde_json::from_str(&text).map_err(|e| format!("{jwks:?}: not a JWKS: {e}"))?;
    Ok(set.keys.iter().filter_map(|jwk| Some((jwk.common.key_id.clone()?, usable(jwk)?))).collect())
}

/// A key and the one algorithm it verifies: RSA (RS256, or what its `alg` says of RS/PS), EC
/// P-256 (ES256) or P-384 (ES384). Symmetric keys are never taken: a JWKS is public.
fn usable(jwk: &Jwk) -> Option<(DecodingKey, Algorithm)> {
    // A key published for encryption is not a signing key.
    if jwk.common.public_key_use.as_ref().is_some_and(|u| *u != jsonwebtoken::jwk::PublicKeyUse::Signature) {
        return None;
    }
    let algorithm = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => match jwk.common.key_algorithm.map(|a| a.to_string()).as_deref() {
            None | Some("RS256") => Algorithm::RS256,
            Some("RS384") => Algorithm::RS384,
            Some("RS512") => Algorithm::RS512,
            Some("PS256") => Algorithm::PS256,
            Some("PS384") => Algorithm::PS384,
            Some("PS512") => Algorithm::PS512,
            Some(_) => return None,
        },
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => Algorithm::ES256,
            EllipticCurve::P384 => Algorithm::ES384,
            _ => return None,
        },
        _ => return None,
    };
    Some((DecodingKey::from_jwk(jwk).ok()?, algorithm))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jwks_comes_from_a_file_or_https_only() {
        assert_eq!(Jwks::parse("https://id.example/jwks"), Ok(Jwks::Url("https://id.example/jwks".into())));
        assert_eq!(Jwks::parse("/etc/landdb/jwks.json"), Ok(Jwks::File("/etc/landdb/jwks.json".into())));
        assert!(Jwks::parse("http://id.example/jwks").is_err(), "plain HTTP lets the path hand over keys");
        assert!(Jwks::parse("ftp://id.example/jwks").is_err());
    }

    /// Only signing keys with a key id and an asymmetric algorithm are taken.
    #[test]
    fn only_asymmetric_signing_keys_are_taken() {
        let ec = |extra: serde_json::Value| {
            let mut jwk = serde_json::json!({ "kty": "EC", "crv": "P-256", "kid": "k",
                "x": "MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4", "y": "4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM" });
            jwk.as_object_mut().expect("object").extend(extra.as_object().expect("object").clone());
            serde_json::from_value::<Jwk>(jwk).expect("a JWK")
        };
        assert_eq!(usable(&ec(serde_json::json!({}))).map(|(_, a)| a), Some(Algorithm::ES256));
        assert_eq!(usable(&ec(serde_json::json!({ "use": "sig" }))).map(|(_, a)| a), Some(Algorithm::ES256));
        assert!(usable(&ec(serde_json::json!({ "use": "enc" }))).is_none(), "an encryption key");
        let secret: Jwk =
            serde_json::from_value(serde_json::json!({ "kty": "oct", "kid": "s", "k": "c2VjcmV0" })).expect("a JWK");
        assert!(usable(&secret).is_none(), "a symmetric key in a public JWKS");
    }
}
