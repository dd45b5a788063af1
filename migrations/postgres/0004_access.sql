-- Access control and audit (issue 7): agencies with their policies, API keys (hashes only), a
-- generation counter running servers poll to reload them, and the append-only, hash-chained
-- audit log with its head and an index of the versions whose personal data each entry disclosed.

CREATE TABLE agency (
    name       text PRIMARY KEY,
    title      text NOT NULL,
    role       text NOT NULL,
    policy     jsonb NOT NULL,
    created_at timestamptz NOT NULL
);

CREATE TABLE api_key (
    id         text PRIMARY KEY,
    agency     text NOT NULL REFERENCES agency (name),
    hash       text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL,
    expires_at timestamptz,
    revoked_at timestamptz
);

CREATE TABLE access_generation (
    id         int PRIMARY KEY CHECK (id = 1),
    generation bigint NOT NULL
);
INSERT INTO access_generation VALUES (1, 0);

CREATE TABLE audit_entry (
    seq       bigint PRIMARY KEY,
    at        timestamptz NOT NULL,
    agency    text NOT NULL,
    key_id    text NOT NULL,
    method    text NOT NULL,
    endpoint  text NOT NULL,
    params    text NOT NULL,
    purpose   text NOT NULL,
    status    int NOT NULL,
    parcels   bigint NOT NULL,
    personal  text NOT NULL,
    prev_hash text NOT NULL,
    hash      text NOT NULL
);
-- Entries arrive in time order: a BRIN index finds a period for almost no cost a write (a
-- btree on every entry cost the request path measurably); an agency is filtered within it.
CREATE INDEX audit_entry_at ON audit_entry USING brin (at);

CREATE TABLE audit_disclosure (
    version_id bigint NOT NULL,
    seq        bigint NOT NULL,
    PRIMARY KEY (version_id, seq)
);

-- The last entry written: deleting entries from the end of the chain is caught against it.
CREATE TABLE audit_head (
    id   int PRIMARY KEY CHECK (id = 1),
    seq  bigint NOT NULL,
    hash text NOT NULL
);

CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only: % on % is refused', TG_OP, TG_TABLE_NAME;
END
$$;
CREATE TRIGGER audit_entry_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_entry
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_disclosure_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_disclosure
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
