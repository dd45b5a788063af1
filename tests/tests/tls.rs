//! `landdb serve` over HTTPS, as agencies reach it through a data-sharing platform: TLS 1.2 and
//! 1.3 only, HTTP/2; mutual TLS, where a client certificate of the configured CA, registered with
//! `landdb key add-cert`, identifies its agency without a key, and one of another CA, one not
//! registered, one revoked or expired, is refused; and a renewed certificate served without a
//! restart. Clients: reqwest (rustls), Python's `ssl`, and curl.

use std::path::{Path, PathBuf};
use std::time::Duration;

use landdb_access::{Area, Role};
use landdb_api::tls::TlsFiles;
use landdb_tests::http::{OPERATOR_KEY, Server, Setup, agency, policy, samples, server_with};
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};

/// A test certificate authority.
struct Authority {
    cert: Certificate,
    key: KeyPair,
    pem: String,
}

impl Authority {
    fn new(name: &str) -> Authority {
        let key = KeyPair::generate().expect("a key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).expect("a CA");
        Authority { pem: cert.pem(), cert, key }
    }

    /// A certificate for `names` (a server's) or, with no names, a client's named `who`: its
    /// PEM, and its key's.
    fn issue(&self, who: &str, names: &[&str]) -> (String, String) {
        let key = KeyPair::generate().expect("a key");
        let mut params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).expect("params");
        params.distinguished_name.push(DnType::CommonName, who);
        params.extended_key_usages = if names.is_empty() {
            vec![ExtendedKeyUsagePurpose::ClientAuth]
        } else {
            vec![ExtendedKeyUsagePurpose::ServerAuth]
        };
        let cert = params.signed_by(&key, &self.cert, &self.key).expect("a certificate");
        (cert.pem(), key.serialize_pem())
    }
}

/// Where a test keeps its files.
fn dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("landdb-tls-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a directory");
    dir
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("a file");
    path
}

/// A server of commune 20194 over HTTPS, certified by `ca`, asking for client certificates of
/// `client_ca` when given.
async fn https_server(dir: &Path, ca: &Authority, client_ca: Option<&Authority>) -> Server {
    let (cert, key) = ca.issue("landdb", &["localhost", "127.0.0.1"]);
    let tls = TlsFiles {
        cert: write(dir, "server.pem", &cert),
        key: write(dir, "server-key.pem", &key),
        client_ca: client_ca.map(|c| write(dir, "client-ca.pem", &c.pem)),
    };
    server_with(&[samples().join("20194.geojson")], Setup { tls: Some(tls), ..Setup::default() }).await
}

/// A client trusting `ca`, with a client certificate when given.
fn client(ca: &Authority, identity: Option<&(String, String)>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem.as_bytes()).expect("the CA"));
    if let Some((cert, key)) = identity {
        builder = builder.identity(reqwest::Identity::from_pem(format!("{cert}{key}").as_bytes()).expect("identity"));
    }
    builder.build().expect("a client")
}

/// `/collections` asked with the operator's key by a client trusting `ca`.
async fn operator_asks(ca: &Authority, base: &str) -> reqwest::Response {
    let asked = client(ca, None).get(format!("{base}/collections")).bearer_auth(OPERATOR_KEY).send();
    asked.await.expect("an answer over HTTPS")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_speaks_http2_and_tls_1_2_or_1_3_only() {
    let dir = dir("versions");
    let ca = Authority::new("landdb test CA");
    let s = https_server(&dir, &ca, None).await;
    let answer = operator_asks(&ca, &s.base).await;
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.version(), reqwest::Version::HTTP_2, "HTTP/2 by ALPN");
    // Plain HTTP to the HTTPS port gets no answer.
    let plain = s.base.replace("https://", "http://");
    assert!(reqwest::get(format!("{plain}/")).await.is_err_and(|e| !e.is_status()));
    // Python's ssl: 1.2 and 1.3 connect; 1.0 and 1.1 do not.
    let port = s.base.rsplit(':').next().expect("a port");
    let ca_file = write(&dir, "ca.pem", &ca.pem);
    for (version, connects) in [("TLSv1", false), ("TLSv1_1", false), ("TLSv1_2", true), ("TLSv1_3", true)] {
        let script = format!(
            "import ssl, socket, sys\n\
             c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)\n\
             c.load_verify_locations(sys.argv[1])\n\
             c.minimum_version = c.maximum_version = ssl.TLSVersion.{version}\n\
             try:\n    c.set_ciphers('ALL:@SECLEVEL=0')\nexcept ssl.SSLError:\n    pass\n\
             try:\n    s = c.wrap_socket(socket.create_connection(('127.0.0.1', {port})), server_hostname='localhost')\n    print(s.version())\nexcept (ssl.SSLError, OSError) as e:\n    print('refused', e)\n    sys.exit(3)\n"
        );
        let out = std::process::Command::new("python3").args(["-c", &script]).arg(&ca_file).output().expect("python3");
        assert_eq!(out.status.success(), connects, "{version}: {}", String::from_utf8_lossy(&out.stdout));
    }
    // curl, as an operator would try it.
    let out = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_version} %{http_code}", "--cacert"])
        .arg(&ca_file)
        .args(["-H", &format!("Authorization: Bearer {OPERATOR_KEY}"), &format!("{}/collections", s.base)])
        .output()
        .expect("curl");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said == "2 200" || said == "1.1 200", "curl: {said}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A client certificate of the configured CA, registered for an agency, is that agency: its
/// area, its audit entries under the certificate's credential. Another CA's certificate does not
/// complete the handshake; an unregistered, revoked or expired one is a 401; a key still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_identifies_its_agency() {
    let dir = dir("mutual");
    let (ca, clients, others) =
        (Authority::new("landdb test CA"), Authority::new("platform CA"), Authority::new("someone else's CA"));
    let s = https_server(&dir, &ca, Some(&clients)).await;
    let key =
        agency(&s, "notary", Role::Reader, policy(Role::Reader, Area::Communes { codes: vec!["20194".into()] }, false))
            .await;
    let notary = clients.issue("notary", &[]);
    let notary_file = write(&dir, "notary.pem", &notary.0);
    let spki = landdb_api::tls::ClientCertificate::from_pem_file(&notary_file).expect("the certificate").spki_sha256;
    // The same fingerprint as openssl's, as an operator would compute it.
    let openssl = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl x509 -in {} -pubkey -noout | openssl pkey -pubin -outform der | sha256sum",
            notary_file.display()
        ))
        .output()
        .expect("openssl");
    assert!(String::from_utf8_lossy(&openssl.stdout).starts_with(&spki), "SPKI SHA-256 as openssl computes it");
    let record = landdb_api::admin::certificate_key(&s.store, "notary", &spki, None).await.expect("registered");
    s.app.gate.reload(&s.app.reference).await.expect("reloaded");

    let items = format!("{}/collections/parcels/items?limit=5", s.base);
    let with_cert = client(&ca, Some(&notary));
    let answer = with_cert.get(&items).send().await.expect("an answer");
    assert_eq!(answer.status(), 200, "the certificate is the notary");
    let doc: serde_json::Value = answer.json().await.expect("JSON");
    for f in doc["features"].as_array().expect("features") {
        assert_eq!(f["properties"]["commune"], "20194", "the notary's area");
    }
    // The audit log names the credential (its entries are written a moment after the answer).
    let operator = client(&ca, None);
    let mut audit = String::new();
    for _ in 0..50 {
        let answer = operator
            .get(format!("{}/admin/audit?agency=notary", s.base))
            .bearer_auth(OPERATOR_KEY)
            .send()
            .await
            .expect("the audit log");
        audit = answer.text().await.expect("text");
        if audit.contains(&record.id) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(audit.contains(&record.id), "the audit log names the credential {}: {audit}", record.id);
    // The credential's text sent as a key is nobody's: only the connection proves a certificate.
    let posing = client(&ca, None).get(&items).bearer_auth(format!("client-certificate:spki-sha256:{spki}"));
    assert_eq!(posing.send().await.expect("an answer").status(), 401, "a certificate's credential sent as a key");
    // A key on the same connection still decides who asks.
    let answer = with_cert.get(&items).bearer_auth(&key).send().await.expect("an answer");
    assert_eq!(answer.status(), 200);

    // Another CA's certificate: no handshake.
    let stranger = others.issue("notary", &[]);
    assert!(client(&ca, Some(&stranger)).get(&items).send().await.is_err(), "another CA's certificate");
    // The right CA, not registered: 401.
    let unknown = clients.issue("tax", &[]);
    assert_eq!(client(&ca, Some(&unknown)).get(&items).send().await.expect("an answer").status(), 401);
    // Revoked: 401 (every server within its reload interval).
    landdb_api::admin::revoke(&s.store, &record.id).await.expect("revoked");
    s.app.gate.reload(&s.app.reference).await.expect("reloaded");
    assert_eq!(client(&ca, Some(&notary)).get(&items).send().await.expect("an answer").status(), 401);
    // Expired: 401.
    let later = clients.issue("notary again", &[]);
    let later_spki = {
        let path = write(&dir, "later.pem", &later.0);
        landdb_api::tls::ClientCertificate::from_pem_file(&path).expect("certificate").spki_sha256
    };
    let past = chrono::Utc::now() - chrono::Duration::seconds(1);
    landdb_api::admin::certificate_key(&s.store, "notary", &later_spki, Some(past)).await.expect("registered");
    s.app.gate.reload(&s.app.reference).await.expect("reloaded");
    assert_eq!(client(&ca, Some(&later)).get(&items).send().await.expect("an answer").status(), 401);
    // Python's ssl with a client certificate, as a platform's adapter would connect.
    let good = clients.issue("notary, renewed", &[]);
    let good_file = write(&dir, "good.pem", &format!("{}{}", good.0, good.1));
    let good_spki = landdb_api::tls::ClientCertificate::from_pem_file(&good_file).expect("certificate").spki_sha256;
    landdb_api::admin::certificate_key(&s.store, "notary", &good_spki, None).await.expect("registered");
    s.app.gate.reload(&s.app.reference).await.expect("reloaded");
    let ca_file = write(&dir, "ca.pem", &ca.pem);
    let port = s.base.rsplit(':').next().expect("a port");
    let script = format!(
        "import ssl, http.client, sys\n\
         c = ssl.create_default_context(cafile=sys.argv[1])\n\
         c.load_cert_chain(sys.argv[2])\n\
         h = http.client.HTTPSConnection('localhost', {port}, context=c)\n\
         h.request('GET', '/collections/parcels/items?limit=1')\n\
         print(h.getresponse().status)\n"
    );
    let out = std::process::Command::new("python3")
        .args(["-c", &script])
        .arg(&ca_file)
        .arg(&good_file)
        .output()
        .expect("python3");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "200", "{}", String::from_utf8_lossy(&out.stderr));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A renewed certificate written over the files is served to the next connection, without a
/// restart; a file that does not load leaves the one in force.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_certificate_is_served_without_a_restart() {
    let dir = dir("reload");
    let (first, second) = (Authority::new("first CA"), Authority::new("second CA"));
    let s = https_server(&dir, &first, None).await;
    let collections = format!("{}/collections", s.base);
    let ask = |ca: &Authority| client(ca, None).get(&collections).bearer_auth(OPERATOR_KEY).send();
    assert_eq!(ask(&first).await.expect("an answer").status(), 200);
    assert!(ask(&second).await.is_err(), "not yet the second CA's");
    // A broken file: the certificate in force stays.
    write(&dir, "server.pem", "not a certificate");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(ask(&first).await.expect("still served").status(), 200);
    // The renewed certificate and key.
    let (cert, key) = second.issue("landdb", &["localhost", "127.0.0.1"]);
    write(&dir, "server-key.pem", &key);
    write(&dir, "server.pem", &cert);
    let mut served = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if ask(&second).await.is_ok_and(|a| a.status() == 200) {
            served = true;
            break;
        }
    }
    assert!(served, "the renewed certificate is served");
    assert!(ask(&first).await.is_err(), "the old one no longer");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `landdb sync` follows an HTTPS server whose certificate a private CA issued (`--ca-cert`),
/// and refuses one it has no reason to trust.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_follows_an_https_server_of_a_private_ca() {
    use landdb_sync::{Copy, Options, Source};
    let dir = dir("sync");
    let ca = Authority::new("platform CA");
    let s = https_server(&dir, &ca, None).await;
    let ca_file = write(&dir, "ca.pem", &ca.pem);
    let copy_path = dir.join("copy.sqlite").to_string_lossy().into_owned();
    let copy = Copy::open(&copy_path, "parcels").await.expect("a copy");
    let once = Options { once: true, limit: 500, wait: 0 };
    let untrusted = Source { url: s.base.clone(), key: OPERATOR_KEY.to_owned(), ca_cert: None };
    let refused = landdb_sync::sync(&untrusted, &copy, Options { limit: 1, ..once }, &|_| {});
    assert!(tokio::time::timeout(Duration::from_secs(120), refused).await.expect("ends").is_err(), "an unknown CA");
    let trusted = Source { ca_cert: Some(ca_file), ..untrusted };
    let summary = landdb_sync::sync(&trusted, &copy, once, &|_| {}).await.expect("followed over HTTPS");
    assert_eq!(copy.count().await.expect("count"), s.engine.snapshot().len() as u64);
    assert!(summary.caught_up);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Silent connections from one address hold at most its share of the handshake slots: past it,
/// its new connections are closed at once, and clients elsewhere are served all along.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_hold_every_handshake() {
    use tokio::io::AsyncReadExt;
    let dir = dir("slots");
    let ca = Authority::new("landdb test CA");
    let s = https_server(&dir, &ca, None).await;
    let port: u16 = s.base.rsplit(':').next().and_then(|p| p.parse().ok()).expect("a port");
    let from = |ip: [u8; 4]| async move {
        let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
        socket.bind((std::net::Ipv4Addr::from(ip), 0).into()).expect("bind");
        socket.connect(([127, 0, 0, 1], port).into()).await.expect("connected")
    };
    // 32 silent connections from 127.0.0.2: each holds a slot (the server waits for a hello).
    let mut silent = Vec::new();
    for _ in 0..32 {
        silent.push(from([127, 0, 0, 2]).await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The 33rd is closed at once.
    let mut extra = from([127, 0, 0, 2]).await;
    let mut byte = [0u8; 1];
    let closed = tokio::time::timeout(Duration::from_secs(2), extra.read(&mut byte)).await;
    assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "the 33rd silent connection is closed: {closed:?}");
    // Another address is served.
    assert_eq!(operator_asks(&ca, &s.base).await.status(), 200);
    drop(silent);
    let _ = std::fs::remove_dir_all(&dir);
}
