-- Secrets every server of one database shares, made the first time one is needed: the key that
-- seals change-feed tokens, so that a token holds across restarts.
CREATE TABLE server_secret (
    purpose    TEXT PRIMARY KEY,
    secret     BLOB NOT NULL CHECK (length(secret) = 32),
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
