-- Secrets every server of one database shares, made the first time one is needed: the key that
-- seals change-feed tokens, so that a token holds across restarts and across the servers behind
-- one address. Kept here, beside the data they protect, not in a process.
CREATE TABLE server_secret (
    purpose    text PRIMARY KEY,
    secret     bytea NOT NULL CHECK (length(secret) = 32),
    created_at timestamptz NOT NULL DEFAULT now()
);
