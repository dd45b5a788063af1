//! HTTPS for `landdb serve` (rustls): TLS 1.3 and 1.2 only, HTTP/2 and HTTP/1.1 by ALPN. The
//! certificate chain and key are read from PEM files and read again when either file changes,
//! so a renewed certificate is served without a restart (a file that does not parse leaves the
//! one in force, and says why). With a client CA, the server asks for a client certificate
//! (mutual TLS): one that chains to the CA identifies its agency, as a key would, through a
//! credential `landdb key add-cert` made of its public key (see [`ClientCertificate`]); a client
//! without one still connects, and must then send a key.
//!
//! Handshakes run in tasks of their own, each bounded in time (and at most 32 at once from one
//! address), so that a slow or silent client holds up nobody else's; the connections they complete are served by `axum::serve` like plain
//! ones (the same graceful shutdown).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use sha2::{Digest, Sha256};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// How long a client may take to complete its handshake.
const HANDSHAKE: Duration = Duration::from_secs(10);
/// How often the certificate files are looked at.
const RELOAD: Duration = Duration::from_secs(2);
/// Handshakes completed and not yet taken by the server.
const READY: usize = 256;
/// Handshakes under way at once (more wait for the next accept).
const HANDSHAKING: usize = 1024;
/// Handshakes under way at once from one address: past them, its new connections are closed at
/// once, so that one host cannot hold every slot with silent connections.
const HANDSHAKING_FROM_ONE: usize = 32;

/// Where the server's TLS material is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain (PEM), the server's first.
    pub cert: PathBuf,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// The CA (PEM) whose client certificates identify agencies; none: no client certificates.
    pub client_ca: Option<PathBuf>,
}

/// Why TLS cannot start (or a reload was not taken).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {why}")]
    File { path: PathBuf, why: String },
    #[error("the TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    #[error("the client CA: {0}")]
    ClientCa(String),
    #[error("serving: {0}")]
    Io(#[from] std::io::Error),
}

/// Serves `router` on `tcp` until `shutdown` (then lets the requests under way finish): over
/// TLS with `tls`, each request knowing its [`Peer`]; plainly without.
pub async fn serve(
    tcp: TcpListener,
    router: axum::Router,
    tls: Option<TlsFiles>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), TlsError> {
    match tls {
        None => axum::serve(tcp, router).with_graceful_shutdown(shutdown).await?,
        Some(files) => {
            let listener = TlsListener::new(tcp, files)?;
            axum::serve(listener, router.into_make_service_with_connect_info::<Peer>())
                .with_graceful_shutdown(shutdown)
                .await?;
        }
    }
    Ok(())
}

fn file_error(path: &Path, why: impl std::fmt::Display) -> TlsError {
    TlsError::File { path: path.to_owned(), why: why.to_string() }
}

/// The rustls configuration of `files`: TLS 1.3 and 1.2, ring's algorithms, `h2` then
/// `http/1.1`.
pub fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| file_error(&files.cert, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_error(&files.cert, e))?;
    if chain.is_empty() {
        return Err(file_error(&files.cert, "holds no certificate (give the chain in PEM, the server's first)"));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| file_error(&files.key, e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(ca).map_err(|e| file_error(ca, e))? {
                roots.add(cert.map_err(|e| file_error(ca, e))?)?;
            }
            if roots.is_empty() {
                return Err(file_error(ca, "holds no CA certificate"));
            }
            // A client without a certificate may still connect (and send a key).
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|e| TlsError::ClientCa(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A client certificate that chained to the client CA, as the server knows its holder: by the
/// SHA-256 of its public key (SubjectPublicKeyInfo), which a renewed certificate for the same
/// key keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    pub spki_sha256: String,
}

impl ClientCertificate {
    /// The certificate's, if it parses.
    pub fn of(der: &CertificateDer<'_>) -> Option<ClientCertificate> {
        let cert = webpki::EndEntityCert::try_from(der).ok()?;
        Some(ClientCertificate { spki_sha256: hex::encode(Sha256::digest(cert.subject_public_key_info().as_ref())) })
    }

    /// The first certificate of a PEM file (what `landdb key add-cert` reads).
    pub fn from_pem_file(path: &Path) -> Result<ClientCertificate, TlsError> {
        let cert = CertificateDer::from_pem_file(path).map_err(|e| file_error(path, e))?;
        ClientCertificate::of(&cert).ok_or_else(|| file_error(path, "not an X.509 certificate"))
    }

    /// The credential the store keeps for it (as it keeps a key's hash): what `landdb key
    /// add-cert` records and the gate looks up.
    pub fn credential(&self) -> crate::access::Credential {
        crate::access::Credential::proven(credential(&self.spki_sha256))
    }
}

/// The credential of a client certificate whose public key has this SHA-256 (hex).
pub fn credential(spki_sha256: &str) -> String {
    format!("client-certificate:spki-sha256:{}", spki_sha256.to_ascii_lowercase())
}

/// Who is at the other end of a connection.
#[derive(Debug, Clone)]
pub struct Peer {
    pub address: SocketAddr,
    /// The client certificate it showed, verified against the client CA.
    pub certificate: Option<ClientCertificate>,
}

impl Connected<IncomingStream<'_, TlsListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        stream.remote_addr().clone()
    }
}

/// A listener whose connections come out of their TLS handshake.
#[derive(Debug)]
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, Peer)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Listens on `tcp` with the material of `files`, read again when it changes.
    pub fn new(tcp: TcpListener, files: TlsFiles) -> Result<TlsListener, TlsError> {
        let current = Arc::new(RwLock::new(server_config(&files)?));
        let local = tcp.local_addr().map_err(|e| file_error(Path::new("the listening socket"), e))?;
        tokio::spawn(reload(files, Arc::clone(&current)));
        let (done, ready) = mpsc::channel(READY);
        tokio::spawn(accept(tcp, current, done));
        Ok(TlsListener { ready, local })
    }
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = Peer;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(connection) => connection,
            // The accepting task ends only with the process.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(Peer { address: self.local, certificate: None })
    }
}

/// Accepts TCP connections and hands each to a handshake task of its own.
async fn accept(
    tcp: TcpListener,
    current: Arc<RwLock<Arc<ServerConfig>>>,
    done: mpsc::Sender<(TlsStream<TcpStream>, Peer)>,
) {
    let handshaking = Arc::new(tokio::sync::Semaphore::new(HANDSHAKING));
    let from: Arc<std::sync::Mutex<HashMap<IpAddr, usize>>> = Arc::default();
    loop {
        let Ok(permit) = Arc::clone(&handshaking).acquire_owned().await else { return };
        let (stream, address) = match tcp.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: wait a moment rather than spin.
                tracing::warn!(error = %e, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(slot) = Slot::take(&from, address.ip()) else {
            tracing::debug!(client = %address, "too many TLS handshakes under way from one address");
            continue; // dropped: closed
        };
        let _ = stream.set_nodelay(true);
        let config = Arc::clone(&current.read().unwrap_or_else(std::sync::PoisonError::into_inner));
        let done = done.clone();
        tokio::spawn(async move {
            let (_permit, _slot) = (permit, slot);
            let handshake = TlsAcceptor::from(config).accept(stream);
            match tokio::time::timeout(HANDSHAKE, handshake).await {
                Ok(Ok(tls)) => {
                    let certificate = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .and_then(|c| ClientCertificate::of(c));
                    let _ = done.send((tls, Peer { address, certificate })).await;
                }
                Ok(Err(e)) => tracing::debug!(client = %address, error = %e, "a TLS handshake failed"),
                Err(_) => tracing::debug!(client = %address, "a TLS handshake took too long"),
            }
        });
    }
}

/// One of an address's handshake slots, given back when dropped.
struct Slot {
    from: Arc<std::sync::Mutex<HashMap<IpAddr, usize>>>,
    ip: IpAddr,
}

impl Slot {
    fn take(from: &Arc<std::sync::Mutex<HashMap<IpAddr, usize>>>, ip: IpAddr) -> Option<Slot> {
        let mut held = from.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = held.entry(ip).or_default();
        if *n >= HANDSHAKING_FROM_ONE {
            return None;
        }
        *n += 1;
        Some(Slot { from: Arc::clone(from), ip })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = self.from.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = held.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                held.remove(&self.ip);
            }
        }
    }
}

/// Reads the files again whenever one changes; keeps the configuration in force when they do
/// not make one.
async fn reload(files: TlsFiles, current: Arc<RwLock<Arc<ServerConfig>>>) {
    let stamp = |files: &TlsFiles| -> Vec<Option<SystemTime>> {
        [Some(&files.cert), Some(&files.key), files.client_ca.as_ref()]
            .into_iter()
            .flatten()
            .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
            .collect()
    };
    let mut seen = stamp(&files);
    loop {
        tokio::time::sleep(RELOAD).await;
        let now = stamp(&files);
        if now == seen {
            continue;
        }
        seen = now;
        match server_config(&files) {
            Ok(config) => {
                *current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = config;
                tracing::info!(cert = %files.cert.display(), "TLS certificate reloaded");
            }
            Err(e) => tracing::warn!(error = %e, "the TLS files changed but do not load; the ones in force stay"),
        }
    }
}
