//! Store errors, worded for the operator who has to act on them.

use landdb_model::VersionId;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "cannot reach PostgreSQL at {url}: {reason}. Is the server running? `tools/setup` installs and starts it; or pass another --database / DATABASE_URL"
    )]
    Unreachable { url: String, reason: String },
    #[error(
        "PostgreSQL at {url} refused the login: {reason}. Check the user and password in --database / DATABASE_URL"
    )]
    LoginRefused { url: String, reason: String },
    #[error(
        "database {database:?} does not exist on {url}: create it (`tools/setup` creates `landdb`) or pass another --database"
    )]
    NoSuchDatabase { url: String, database: String },
    #[error(
        "PostGIS is not installed on the PostgreSQL server at {url}: install the postgis package for your PostgreSQL version (`tools/setup` does), then retry"
    )]
    PostgisMissing { url: String },
    #[error(
        "PostGIS is installed but not enabled in database {database:?}, and this user may not enable it: run `psql -d {database} -c 'CREATE EXTENSION postgis'` as a superuser (`tools/setup` does)"
    )]
    PostgisNotEnabled { database: String },
    #[error("cannot open the embedded store {path}: {reason}")]
    Embedded { path: String, reason: String },
    #[error(
        "unsupported database URL {0}: use postgres://… for PostGIS, or sqlite://FILE (or a file path) for the embedded store"
    )]
    UnsupportedUrl(String),
    #[error(
        "PostgreSQL at {url} is a standby (read-only): give the primary as --database, and the standby as --read-database to serve reads from it (`landdb migrate` and imports run against the primary)"
    )]
    Standby { url: String },
    #[error("cannot read from {url}: {reason}")]
    Replica { url: String, reason: String },
    #[error("schema migration failed: {0}")]
    Migration(String),
    #[error(
        "a current parcel with key {key} already exists; the batch was not applied (supersede the existing version instead of inserting a second one)"
    )]
    CurrentParcelExists { key: String },
    #[error("parcel version {0} is not current, so it cannot be superseded or retired")]
    NotCurrent(VersionId),
    #[error("parcel version {0} was not written by this batch, so it cannot be withdrawn")]
    NotInBatch(VersionId),
    #[error("this batch already failed ({0}); roll it back")]
    BatchFailed(String),
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    #[error("cannot use the data keyring {path}: {reason}")]
    Keyring { path: String, reason: String },
    #[error(
        "right holders in this database are sealed under data key {key}, which the keyring {keyring} does not hold: give the keyring they were written with (--data-keys FILE or LANDDB_DATA_KEYS)"
    )]
    DataKeyMissing { key: String, keyring: String },
    #[error(
        "data key {key} of the keyring {keyring} is not the key this database's right holders are sealed under (same id, other secret): give the keyring they were written with (--data-keys FILE or LANDDB_DATA_KEYS)"
    )]
    DataKeyMismatch { key: String, keyring: String },
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

impl StoreError {
    /// Whether the store is away rather than the request wrong: the connection was refused or
    /// lost, no connection came free in time, the server is shutting down or not accepting
    /// connections, the database is gone, or the embedded file stayed locked. Worth trying again
    /// later; never the caller's input.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Unreachable { .. } | Self::NoSuchDatabase { .. } => true,
            Self::Database(e) => unavailable(e),
            _ => false,
        }
    }

    /// Whether another import of the same content committed first: its batch took the content
    /// hash this one's needed (two identical imports at once, in two processes).
    pub fn is_same_import_committed(&self) -> bool {
        match self {
            Self::Database(sqlx::Error::Database(db)) => {
                // PostgreSQL names the index; SQLite the column.
                db.constraint() == Some("import_batch_content_hash")
                    || db.message().contains("import_batch.content_hash")
            }
            _ => false,
        }
    }
}

pub(crate) fn unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // PostgreSQL: class 08 (connection exception), admin or crash shutdown, cannot connect
            // now, too many connections, database dropped. SQLite: busy (5), locked (6).
            code.starts_with("08") || matches!(&*code, "57P01" | "57P02" | "57P03" | "53300" | "3D000" | "5" | "6")
        }),
        _ => false,
    }
}

/// Extracts `a/b/c` from PostgreSQL's or SQLite's unique-violation text for the current-key index.
pub(crate) fn key_from_unique_violation(message: &str) -> String {
    // PostgreSQL: "Key (commune_code, sheet, parcel_no)=(20203, 1, 5) already exists."
    if let Some(values) = message.split(")=(").nth(1).and_then(|rest| rest.split(')').next()) {
        return values.split(", ").collect::<Vec<_>>().join("/");
    }
    message.to_owned()
}
