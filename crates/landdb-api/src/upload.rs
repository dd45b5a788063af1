//! Receiving an upload: `multipart/form-data` read as it arrives, under limits that hold before
//! the disk or the connection pays for them. A declared `Content-Length` over the size limit is
//! refused before a byte of the body is read, and the body is counted as it streams (413 the
//! moment it passes the limit); a body that stalls longer than the idle limit, or takes longer
//! than the total limit, is refused (408). The file goes to the job's directory under a safe name,
//! and its content is hashed on the way so that the same upload twice at once is recognised.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::http::{StatusCode, header};
use futures::StreamExt;
use landdb_ingest::import::Mode;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use crate::jobs::worker::bytes;
use crate::ogc::ApiError;

/// How large and how slow an upload may be.
#[derive(Debug, Clone, Copy)]
pub struct UploadLimits {
    /// The whole request body (a whole province zipped is a few hundred megabytes).
    pub max_bytes: u64,
    /// The longest wait for the next bytes of the body.
    pub idle: Duration,
    /// The longest the whole body may take to arrive.
    pub total: Duration,
}

impl Default for UploadLimits {
    fn default() -> Self {
        UploadLimits { max_bytes: 4 << 30, idle: Duration::from_secs(60), total: Duration::from_secs(3600) }
    }
}

/// An upload received and on disk.
#[derive(Debug)]
pub struct Received {
    /// Where it was written (inside the job's directory).
    pub path: PathBuf,
    /// The name the client gave it.
    pub shown: String,
    pub mode: Mode,
    /// SHA-256 of the safe name, the mode and the content: the same upload sent twice.
    pub fingerprint: [u8; 32],
}

/// Why an upload was not received.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("the upload is larger than this server takes ({limit}): split it by commune, or ask the operator")]
    TooLarge { limit: String },
    #[error("the upload stalled: no data for {seconds} s")]
    Idle { seconds: u64 },
    #[error("the upload took longer than {seconds} s to arrive")]
    TooSlow { seconds: u64 },
    #[error("{0}")]
    Malformed(String),
    #[error("the upload could not be written on the server")]
    Disk(#[source] std::io::Error),
}

impl From<UploadError> for ApiError {
    fn from(e: UploadError) -> Self {
        match &e {
            UploadError::TooLarge { .. } => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "PayloadTooLarge", e.to_string())
            }
            UploadError::Idle { .. } | UploadError::TooSlow { .. } => {
                ApiError::new(StatusCode::REQUEST_TIMEOUT, "RequestTimeout", e.to_string())
            }
            UploadError::Malformed(_) => ApiError::bad_parameter(e.to_string()),
            UploadError::Disk(io) => ApiError::internal(io),
        }
    }
}

/// Refuses a request whose declared size is over the limit, before its body is read.
pub fn check_declared_size(headers: &axum::http::HeaderMap, limits: &UploadLimits) -> Result<(), UploadError> {
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(n) if n > limits.max_bytes => Err(UploadError::TooLarge { limit: bytes(limits.max_bytes) }),
        _ => Ok(()),
    }
}

/// Reads the multipart body of `request` into `dir`: one `file` field (a cadastral file or a
/// zip) and an optional `mode` (`append` or `replace-commune`).
pub async fn receive(
    request: axum::extract::Request,
    dir: &Path,
    limits: &UploadLimits,
) -> Result<Received, UploadError> {
    let malformed = |why: String| UploadError::Malformed(why);
    check_declared_size(request.headers(), limits)?;
    let content_type = request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let boundary = multer::parse_boundary(content_type)
        .map_err(|_| malformed("send the upload as multipart/form-data with a `file` field".into()))?;
    let counted = Arc::new(AtomicU64::new(0));
    let over = Arc::new(AtomicBool::new(false));
    let max = limits.max_bytes;
    let body = {
        let (counted, over) = (Arc::clone(&counted), Arc::clone(&over));
        request.into_body().into_data_stream().map(move |chunk| {
            let chunk = chunk.map_err(std::io::Error::other)?;
            let n = counted.fetch_add(chunk.len() as u64, Ordering::Relaxed) + chunk.len() as u64;
            if n > max {
                over.store(true, Ordering::Relaxed);
                return Err(std::io::Error::other("the upload passed the size limit"));
            }
            Ok(chunk)
        })
    };
    let mut multipart = multer::Multipart::new(body, boundary);
    let clock = Clock { started: Instant::now(), limits: *limits };
    let broke = |e: multer::Error, what: &str| {
        if over.load(Ordering::Relaxed) {
            UploadError::TooLarge { limit: bytes(max) }
        } else {
            UploadError::Malformed(format!("{what}: {e}"))
        }
    };
    let mut file: Option<(PathBuf, String, [u8; 32])> = None;
    let mut mode = Mode::Append;
    while let Some(mut field) = clock
        .wait(multipart.next_field())
        .await?
        .map_err(|e| broke(e, "the upload is not valid multipart/form-data"))?
    {
        match field.name().unwrap_or_default() {
            "file" => {
                if file.is_some() {
                    return Err(malformed("give one `file` field (zip several files into one)".into()));
                }
                let given = field.file_name().unwrap_or_default().to_owned();
                let name = crate::jobs::safe_file_name(&given).ok_or_else(|| {
                    malformed(format!(
                        "file `{given}`: not a cadastral file this server reads; send {}",
                        landdb_ingest::source::EXTENSIONS.map(|e| format!(".{e}")).join(", ")
                    ))
                })?;
                let path = dir.join(&name);
                let mut out = tokio::fs::File::create(&path).await.map_err(UploadError::Disk)?;
                let mut content = Sha256::new();
                while let Some(chunk) = clock
                    .wait(field.chunk())
                    .await?
                    .map_err(|e| broke(e, &format!("the upload of `{given}` broke off")))?
                {
                    content.update(&chunk);
                    out.write_all(&chunk).await.map_err(UploadError::Disk)?;
                }
                out.flush().await.map_err(UploadError::Disk)?;
                file = Some((path, given, content.finalize().into()));
            }
            "mode" => {
                let mut raw = Vec::new();
                while let Some(chunk) = clock.wait(field.chunk()).await?.map_err(|e| broke(e, "mode"))? {
                    raw.extend_from_slice(&chunk);
                    if raw.len() > 64 {
                        return Err(malformed("mode: give `append` or `replace-commune`".into()));
                    }
                }
                mode = match String::from_utf8_lossy(&raw).trim() {
                    "append" => Mode::Append,
                    "replace-commune" => Mode::ReplaceCommune,
                    other => return Err(malformed(format!("mode={other}: give `append` or `replace-commune`"))),
                };
            }
            other => {
                return Err(malformed(format!("unknown form field `{other}`: an upload has `file` and `mode`")));
            }
        }
    }
    let (path, shown, content) = file.ok_or_else(|| malformed("the upload has no `file` field".into()))?;
    let mut fingerprint = Sha256::new();
    fingerprint.update(path.file_name().map(|n| n.as_encoded_bytes()).unwrap_or_default());
    fingerprint.update([0]);
    fingerprint.update(mode.name());
    fingerprint.update([0]);
    fingerprint.update(content);
    Ok(Received { path, shown, mode, fingerprint: fingerprint.finalize().into() })
}

/// The body's time limits: each wait for more data is bounded by the idle limit and by what is
/// left of the total.
struct Clock {
    started: Instant,
    limits: UploadLimits,
}

impl Clock {
    async fn wait<T>(&self, next: impl Future<Output = T>) -> Result<T, UploadError> {
        let total_left = self.limits.total.saturating_sub(self.started.elapsed());
        match tokio::time::timeout(self.limits.idle.min(total_left), next).await {
            Ok(v) => Ok(v),
            Err(_) if self.started.elapsed() >= self.limits.total => {
                Err(UploadError::TooSlow { seconds: self.limits.total.as_secs() })
            }
            Err(_) => Err(UploadError::Idle { seconds: self.limits.idle.as_secs() }),
        }
    }
}
