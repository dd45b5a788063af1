-- As migrations/postgres/0002_quarantine.sql.

CREATE TABLE quarantine (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    batch_id   INTEGER NOT NULL REFERENCES import_batch (id),
    file       TEXT NOT NULL,
    layer      TEXT NOT NULL,
    feature    INTEGER NOT NULL,
    parcel_key TEXT,
    reasons    TEXT NOT NULL,
    source     TEXT NOT NULL
);
CREATE INDEX quarantine_batch ON quarantine (batch_id);

ALTER TABLE parcel_version ADD COLUMN fingerprint TEXT NOT NULL DEFAULT '';
