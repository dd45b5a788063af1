-- As migrations/postgres/0004_access.sql (timestamps as RFC 3339 text, JSON as text).

CREATE TABLE agency (
    name       TEXT PRIMARY KEY,
    title      TEXT NOT NULL,
    role       TEXT NOT NULL,
    policy     TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE api_key (
    id         TEXT PRIMARY KEY,
    agency     TEXT NOT NULL REFERENCES agency (name),
    hash       TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    expires_at TEXT,
    revoked_at TEXT
);

CREATE TABLE access_generation (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    generation INTEGER NOT NULL
);
INSERT INTO access_generation VALUES (1, 0);

CREATE TABLE audit_entry (
    seq       INTEGER PRIMARY KEY,
    at        TEXT NOT NULL,
    agency    TEXT NOT NULL,
    key_id    TEXT NOT NULL,
    method    TEXT NOT NULL,
    endpoint  TEXT NOT NULL,
    params    TEXT NOT NULL,
    purpose   TEXT NOT NULL,
    status    INTEGER NOT NULL,
    parcels   INTEGER NOT NULL,
    personal  TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);
CREATE INDEX audit_entry_agency_at ON audit_entry (agency, at);

CREATE TABLE audit_disclosure (
    version_id INTEGER NOT NULL,
    seq        INTEGER NOT NULL,
    PRIMARY KEY (version_id, seq)
);

CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash TEXT NOT NULL
);

CREATE TRIGGER audit_entry_no_update BEFORE UPDATE ON audit_entry
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_entry_no_delete BEFORE DELETE ON audit_entry
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
