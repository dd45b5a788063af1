-- Right holders' identities sealed at rest (issue 21). A holder's name, citizen ID, birth year
-- and address are kept only sealed (XChaCha20-Poly1305 under a data key held outside the
-- database, in a keyring file) and the citizen ID also as a blind index (HMAC-SHA256), so that
-- lookups by citizen need no clear ID. The quarantine's source records (attributes as read,
-- anyone's name or ID among them) are sealed the same way. `data_key` records which keys this
-- database's rows are sealed under (never the keys themselves).
--
-- `key_id` names the key a row is sealed under without a foreign key: a per-row check would cost
-- every bulk load, and a row under a key the keyring lacks is refused when read anyway.
--
-- This migration adds the sealed columns; landdb then seals the rows written before it (the
-- keys are not SQL's to know) and migration 14 drops the clear columns.
CREATE TABLE data_key (
    id          bigint      PRIMARY KEY,
    check_value text        NOT NULL,
    state       text        NOT NULL CHECK (state IN ('active', 'retiring', 'retired')),
    since       timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX data_key_one_active ON data_key (state) WHERE state = 'active';

ALTER TABLE right_holder
    ADD COLUMN key_id bigint,
    ADD COLUMN sealed bytea,
    ADD COLUMN citizen_index bytea,
    ALTER COLUMN name DROP NOT NULL;
ALTER TABLE quarantine
    ADD COLUMN key_id bigint,
    ADD COLUMN sealed_source bytea,
    ALTER COLUMN source DROP NOT NULL;
