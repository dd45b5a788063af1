-- The scopes change-feed followers were given tokens under (issue 20), by the fingerprint their
-- tokens carry: see migrations/postgres/0012_feed_scopes.sql.
CREATE TABLE feed_scope (
    agency      TEXT    NOT NULL,
    fingerprint INTEGER NOT NULL,
    doc         TEXT    NOT NULL,
    PRIMARY KEY (agency, fingerprint)
);
