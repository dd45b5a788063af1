//! Which store a connection string means, and how to show it without its password.

use std::fmt;
use std::path::PathBuf;

use crate::StoreError;

/// A parsed `--database` / `DATABASE_URL` value.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// `postgres://…` or `postgresql://…`: PostGIS.
    Postgres(String),
    /// `sqlite://FILE`, `sqlite:FILE` or a plain file path: the embedded store.
    Sqlite(PathBuf),
}

impl DatabaseUrl {
    /// The embedded store used when no database is given.
    pub const DEFAULT_EMBEDDED: &'static str = "landdb.sqlite";

    pub fn parse(raw: &str) -> Result<Self, StoreError> {
        let raw = raw.trim();
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            url::Url::parse(raw).map_err(|_| StoreError::UnsupportedUrl(redact(raw)))?;
            Ok(Self::Postgres(raw.to_owned()))
        } else if let Some(path) = raw.strip_prefix("sqlite://").or_else(|| raw.strip_prefix("sqlite:")) {
            Ok(Self::Sqlite(PathBuf::from(path)))
        } else if raw.contains("://") || raw.is_empty() {
            Err(StoreError::UnsupportedUrl(redact(raw)))
        } else {
            Ok(Self::Sqlite(PathBuf::from(raw)))
        }
    }

    /// `--database` if given, else `DATABASE_URL` (clap folds the two), else the embedded default.
    pub fn or_default(given: Option<&str>) -> Result<Self, StoreError> {
        given.map_or_else(|| Ok(Self::Sqlite(PathBuf::from(Self::DEFAULT_EMBEDDED))), Self::parse)
    }
}

/// The URL with any password replaced by `***`.
pub(crate) fn redact(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut url) if url.password().is_some() => {
            // set_password fails only for URLs that cannot have one.
            let _ = url.set_password(Some("***"));
            url.to_string()
        }
        Ok(url) => url.to_string(),
        Err(_) => raw.split('@').next_back().map_or_else(String::new, |host| format!("…@{host}")),
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Postgres(url) => f.write_str(&redact(url)),
            Self::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        let url = DatabaseUrl::parse("postgres://landdb:s3cr3t@db.example:5432/landdb").expect("valid");
        let shown = format!("{url} {url:?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("landdb:***@db.example"), "{shown}");
        let err = DatabaseUrl::parse("mysql://u:s3cr3t@h/db").expect_err("unsupported");
        assert!(!err.to_string().contains("s3cr3t"), "{err}");
    }

    #[test]
    fn file_paths_mean_the_embedded_store() {
        assert_eq!(DatabaseUrl::parse("parcels.db").ok(), Some(DatabaseUrl::Sqlite("parcels.db".into())));
        assert_eq!(DatabaseUrl::parse("sqlite://x/y.db").ok(), Some(DatabaseUrl::Sqlite("x/y.db".into())));
        assert_eq!(DatabaseUrl::or_default(None).ok(), Some(DatabaseUrl::Sqlite(DatabaseUrl::DEFAULT_EMBEDDED.into())));
    }
}
