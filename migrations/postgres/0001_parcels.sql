-- landdb system of record: parcel versions with history, lineage, right holders, import batches
-- and the change feed. Applied automatically at start (sqlx migrator, under an advisory lock).

-- PostGIS itself is enabled before migrating (landdb-store checks it and says what to run if not).

CREATE TABLE import_batch (
    id            bigserial PRIMARY KEY,
    source        text        NOT NULL,
    province_code text,
    content_hash  text,
    mode          text        NOT NULL DEFAULT 'append',
    started_at    timestamptz NOT NULL DEFAULT now(),
    committed_at  timestamptz,
    summary       jsonb       NOT NULL DEFAULT '{}'::jsonb
);
-- Re-uploading the same content finds the earlier batch through this index.
CREATE UNIQUE INDEX import_batch_content_hash ON import_batch (content_hash) WHERE content_hash IS NOT NULL;

CREATE TABLE parcel_version (
    id                    bigserial PRIMARY KEY,
    national_id           text             NOT NULL,
    commune_code          text             NOT NULL,
    sheet                 text             NOT NULL,
    parcel_no             text             NOT NULL,
    commune_code_received text             NOT NULL,
    province_code         text             NOT NULL,
    land_use              text[]           NOT NULL DEFAULT '{}',
    legal_area_m2         double precision,
    measured_area_m2      double precision,
    geometry_area_m2      double precision NOT NULL,
    address               text,
    certificate_no        text,
    source_crs            text,
    extra                 jsonb            NOT NULL DEFAULT '{}'::jsonb,
    geom                  geometry(MultiPolygon, 4326) NOT NULL,
    valid_from            timestamptz      NOT NULL,
    valid_to              timestamptz,
    batch_id              bigint           NOT NULL REFERENCES import_batch (id),
    retired_by_batch      bigint           REFERENCES import_batch (id),
    CHECK (valid_to IS NULL OR valid_to >= valid_from)
);
-- At most one current version per natural key: a second one is refused, never silently overwritten.
CREATE UNIQUE INDEX parcel_version_current_key ON parcel_version (commune_code, sheet, parcel_no) WHERE valid_to IS NULL;
CREATE INDEX parcel_version_key ON parcel_version (commune_code, sheet, parcel_no);
CREATE INDEX parcel_version_national_id ON parcel_version (national_id);
CREATE INDEX parcel_version_batch ON parcel_version (batch_id);
CREATE INDEX parcel_version_retired_by ON parcel_version (retired_by_batch);
CREATE INDEX parcel_version_geom ON parcel_version USING gist (geom);

-- Which earlier versions a version came from (update: one; merge: several; split: shared parent).
CREATE TABLE parcel_lineage (
    version_id bigint NOT NULL REFERENCES parcel_version (id),
    parent_id  bigint NOT NULL REFERENCES parcel_version (id),
    PRIMARY KEY (version_id, parent_id)
);
CREATE INDEX parcel_lineage_parent ON parcel_lineage (parent_id);

-- Personal data, apart so that access rules can withhold it wholesale.
CREATE TABLE right_holder (
    version_id bigint   NOT NULL REFERENCES parcel_version (id),
    ordinal    smallint NOT NULL,
    name       text     NOT NULL,
    citizen_id text,
    birth_year smallint,
    address    text,
    PRIMARY KEY (version_id, ordinal)
);

CREATE VIEW current_parcel AS
    SELECT * FROM parcel_version WHERE valid_to IS NULL;

-- The change feed. Rows are written at commit time under an advisory lock, so `seq` order is commit
-- order and a follower that has read up to N never later finds a change below N.
CREATE TABLE parcel_change (
    seq          bigserial   PRIMARY KEY,
    batch_id     bigint      NOT NULL REFERENCES import_batch (id),
    kind         text        NOT NULL CHECK (kind IN ('created', 'retired')),
    version_id   bigint      NOT NULL REFERENCES parcel_version (id),
    national_id  text        NOT NULL,
    commune_code text        NOT NULL,
    changed_at   timestamptz NOT NULL DEFAULT now()
);
