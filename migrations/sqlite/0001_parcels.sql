-- landdb embedded store: the same model as migrations/postgres, in SQLite. Geometry is WKB in
-- EPSG:4326 with its bounding box in columns; timestamps are RFC 3339 text; arrays and maps JSON.

CREATE TABLE import_batch (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    source        TEXT NOT NULL,
    province_code TEXT,
    content_hash  TEXT,
    mode          TEXT NOT NULL DEFAULT 'append',
    started_at    TEXT NOT NULL,
    committed_at  TEXT,
    summary       TEXT NOT NULL DEFAULT '{}'
);
CREATE UNIQUE INDEX import_batch_content_hash ON import_batch (content_hash) WHERE content_hash IS NOT NULL;

CREATE TABLE parcel_version (
    id                    INTEGER PRIMARY KEY AUTOINCREMENT,
    national_id           TEXT NOT NULL,
    commune_code          TEXT NOT NULL,
    sheet                 TEXT NOT NULL,
    parcel_no             TEXT NOT NULL,
    commune_code_received TEXT NOT NULL,
    province_code         TEXT NOT NULL,
    land_use              TEXT NOT NULL DEFAULT '[]',
    legal_area_m2         REAL,
    measured_area_m2      REAL,
    geometry_area_m2      REAL NOT NULL,
    address               TEXT,
    certificate_no        TEXT,
    source_crs            TEXT,
    extra                 TEXT NOT NULL DEFAULT '{}',
    geom                  BLOB NOT NULL,
    min_lon               REAL NOT NULL,
    min_lat               REAL NOT NULL,
    max_lon               REAL NOT NULL,
    max_lat               REAL NOT NULL,
    valid_from            TEXT NOT NULL,
    valid_to              TEXT,
    batch_id              INTEGER NOT NULL REFERENCES import_batch (id),
    retired_by_batch      INTEGER REFERENCES import_batch (id)
);
CREATE UNIQUE INDEX parcel_version_current_key ON parcel_version (commune_code, sheet, parcel_no) WHERE valid_to IS NULL;
CREATE INDEX parcel_version_key ON parcel_version (commune_code, sheet, parcel_no);
CREATE INDEX parcel_version_national_id ON parcel_version (national_id);
CREATE INDEX parcel_version_batch ON parcel_version (batch_id);
CREATE INDEX parcel_version_retired_by ON parcel_version (retired_by_batch);
CREATE INDEX parcel_version_bbox ON parcel_version (min_lon, max_lon, min_lat, max_lat);

CREATE TABLE parcel_lineage (
    version_id INTEGER NOT NULL REFERENCES parcel_version (id),
    parent_id  INTEGER NOT NULL REFERENCES parcel_version (id),
    PRIMARY KEY (version_id, parent_id)
);
CREATE INDEX parcel_lineage_parent ON parcel_lineage (parent_id);

CREATE TABLE right_holder (
    version_id INTEGER NOT NULL REFERENCES parcel_version (id),
    ordinal    INTEGER NOT NULL,
    name       TEXT NOT NULL,
    citizen_id TEXT,
    birth_year INTEGER,
    address    TEXT,
    PRIMARY KEY (version_id, ordinal)
);

CREATE VIEW current_parcel AS
    SELECT * FROM parcel_version WHERE valid_to IS NULL;

CREATE TABLE parcel_change (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    batch_id     INTEGER NOT NULL REFERENCES import_batch (id),
    kind         TEXT NOT NULL CHECK (kind IN ('created', 'retired')),
    version_id   INTEGER NOT NULL REFERENCES parcel_version (id),
    national_id  TEXT NOT NULL,
    commune_code TEXT NOT NULL,
    changed_at   TEXT NOT NULL
);
