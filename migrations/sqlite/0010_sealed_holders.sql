-- Right holders' identities sealed at rest (issue 21): see
-- migrations/postgres/0013_sealed_holders.sql. SQLite cannot make a column nullable in place,
-- so the clear columns get a placeholder while rows are sealed and go in migration 11.
CREATE TABLE data_key (
    id          INTEGER PRIMARY KEY,
    check_value TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('active', 'retiring', 'retired')),
    since       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE UNIQUE INDEX data_key_one_active ON data_key (state) WHERE state = 'active';

ALTER TABLE right_holder ADD COLUMN key_id INTEGER;
ALTER TABLE right_holder ADD COLUMN sealed BLOB;
ALTER TABLE right_holder ADD COLUMN citizen_index BLOB;
ALTER TABLE quarantine ADD COLUMN key_id INTEGER;
ALTER TABLE quarantine ADD COLUMN sealed_source BLOB;
