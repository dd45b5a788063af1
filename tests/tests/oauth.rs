//! OAuth2 bearer tokens from the platform's identity provider (made here: its keys, its JWKS file,
//! its tokens): a good token is its client's agency; a wrong issuer, audience, signature,
//! algorithm (`none`, HS256 keyed with the public key), an expired token or an unknown client is
//! a 401; a key unknown to the JWKS is fetched when a token names it; API keys keep working.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use landdb_access::{Area, Role};
use landdb_api::oauth::{Jwks, OAuthSettings};
use landdb_tests::http::{OPERATOR_KEY, Setup, agency, client, get_with, policy, samples, server_with};
use serde_json::{Value, json};

const ISSUER: &str = "https://id.platform.example/realms/ndxp";
const AUDIENCE: &str = "landdb";

/// A signing key of the identity provider: EC P-256 (ES256).
struct SigningKey {
    kid: String,
    pair: rcgen::KeyPair,
}

impl SigningKey {
    fn new(kid: &str) -> SigningKey {
        SigningKey { kid: kid.to_owned(), pair: rcgen::KeyPair::generate().expect("a P-256 key") }
    }

    /// Its public half as a JWK.
    fn jwk(&self) -> Value {
        let raw = self.pair.public_key_raw(); // 0x04 | x | y
        json!({ "kty": "EC", "crv": "P-256", "kid": self.kid, "use": "sig", "alg": "ES256",
                "x": B64.encode(&raw[1..33]), "y": B64.encode(&raw[33..65]) })
    }

    fn sign(&self, claims: &Value) -> String {
        self.sign_typed(claims, "JWT")
    }

    /// Signed with `typ` in the header (an access token is `JWT` or `at+jwt`, RFC 9068).
    fn sign_typed(&self, claims: &Value, typ: &str) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some(typ.to_owned());
        header.kid = Some(self.kid.clone());
        let key = EncodingKey::from_ec_der(&self.pair.serialize_der());
        jsonwebtoken::encode(&header, claims, &key).expect("a token")
    }
}

fn claims(client: &str, issuer: &str, audience: &str, expires_in: i64) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({ "iss": issuer, "aud": audience, "client_id": client, "iat": now, "exp": now + expires_in })
}

/// A token with a made-up header and the signature of `sign` over it (for `none` and HS256).
fn forged(header: &Value, claims: &Value, signature: &[u8]) -> String {
    let head = B64.encode(header.to_string());
    let body = B64.encode(claims.to_string());
    format!("{head}.{body}.{}", B64.encode(signature))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_platform_token_is_its_clients_agency_and_nothing_else_passes() {
    let dir = std::env::temp_dir().join(format!("landdb-oauth-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a directory");
    let jwks_file = dir.join("jwks.json");
    let first = SigningKey::new("k1");
    std::fs::write(&jwks_file, json!({ "keys": [first.jwk()] }).to_string()).expect("the JWKS");
    let oauth = OAuthSettings {
        issuer: ISSUER.to_owned(),
        audience: AUDIENCE.to_owned(),
        jwks: Jwks::File(jwks_file.clone()),
        client_claim: "client_id".to_owned(),
    };
    let s = server_with(&[samples().join("20194.geojson")], Setup { oauth: Some(oauth), ..Setup::default() }).await;
    let area = Area::Communes { codes: vec!["20194".into()] };
    agency(&s, "tax-haivan", Role::Reader, policy(Role::Reader, area, false)).await;
    let record = landdb_api::admin::oauth_key(&s.store, "tax-haivan", ISSUER, "tax-haivan-adapter", None)
        .await
        .expect("registered");
    s.app.gate.reload(&s.app.reference).await.expect("reloaded");

    let items = format!("{}/collections/parcels/items?limit=3", s.base);
    let ask = |token: String| {
        let url = items.clone();
        async move {
            let answer = reqwest::Client::new().get(&url).bearer_auth(token).send().await.expect("an answer");
            let status = answer.status().as_u16();
            (status, answer.json::<Value>().await.unwrap_or_default())
        }
    };
    let good = claims("tax-haivan-adapter", ISSUER, AUDIENCE, 300);
    let (status, doc) = ask(first.sign(&good)).await;
    assert_eq!(status, 200, "{doc}");
    for f in doc["features"].as_array().expect("features") {
        assert_eq!(f["properties"]["commune"], "20194", "the agency's area");
    }
    assert_eq!(ask(first.sign_typed(&good, "at+jwt")).await.0, 200, "an access token by RFC 9068's type");

    // Everything else is a 401.
    let stranger = SigningKey::new("k1");
    let public_jwk = first.jwk().to_string();
    let hs256 = {
        use hmac::Mac;
        let header = json!({ "alg": "HS256", "typ": "JWT", "kid": "k1" });
        let signing_input = format!("{}.{}", B64.encode(header.to_string()), B64.encode(good.to_string()));
        let mut mac =
            <hmac::Hmac<sha2::Sha256> as hmac::digest::KeyInit>::new_from_slice(public_jwk.as_bytes()).expect("a key");
        mac.update(signing_input.as_bytes());
        format!("{signing_input}.{}", B64.encode(mac.finalize().into_bytes()))
    };
    let refused = [
        ("another issuer", first.sign(&claims("tax-haivan-adapter", "https://evil.example/", AUDIENCE, 300))),
        ("another audience", first.sign(&claims("tax-haivan-adapter", ISSUER, "someone-else", 300))),
        ("expired", first.sign(&claims("tax-haivan-adapter", ISSUER, AUDIENCE, -120))),
        ("an unknown client", first.sign(&claims("police-adapter", ISSUER, AUDIENCE, 300))),
        ("signed by another key with the same kid", stranger.sign(&good)),
        ("alg none", forged(&json!({ "alg": "none", "typ": "JWT", "kid": "k1" }), &good, b"")),
        ("HS256 keyed with the public key", hs256),
        ("a token of another type (a DPoP proof)", first.sign_typed(&good, "dpop+jwt")),
        ("a token of another type (a logout token)", first.sign_typed(&good, "logout+jwt")),
        ("an edited body", {
            let token = first.sign(&good);
            let parts: Vec<&str> = token.split('.').collect();
            let more = claims("tax-haivan-adapter", ISSUER, AUDIENCE, 86_400 * 365);
            format!("{}.{}.{}", parts[0], B64.encode(more.to_string()), parts[2])
        }),
    ];
    for (what, token) in refused {
        let (status, _) = ask(token).await;
        assert_eq!(status, 401, "{what}");
    }

    // A new signing key, published in the JWKS: the first token that names it reads it.
    let second = SigningKey::new("k2");
    std::fs::write(&jwks_file, json!({ "keys": [first.jwk(), second.jwk()] }).to_string()).expect("the JWKS");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (status, doc) = ask(second.sign(&good)).await;
    assert_eq!(status, 200, "a key the JWKS gained: {doc}");

    // Revoked like a key.
    landdb_api::admin::revoke(&s.store, &record.id).await.expect("revoked");
    s.app.gate.reload(&s.app.reference).await.expect("reloaded");
    assert_eq!(ask(first.sign(&good)).await.0, 401, "a revoked client");

    // API keys keep working.
    let (status, _, _) = get_with(&client(), &format!("{}/collections", s.base)).await;
    assert_eq!(status, 200, "{OPERATOR_KEY}");
    let _ = std::fs::remove_dir_all(&dir);
}
