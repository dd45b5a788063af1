-- Records an import rejected, kept whole with their reasons so a province can fix and resubmit
-- them; and a fingerprint of each version's content, so a replacing upload can tell changed
-- parcels from unchanged ones.

CREATE TABLE quarantine (
    id       bigserial PRIMARY KEY,
    batch_id bigint NOT NULL REFERENCES import_batch (id),
    file     text   NOT NULL,
    layer    text   NOT NULL,
    feature  integer NOT NULL,
    parcel_key text,
    reasons  jsonb  NOT NULL,
    -- The source attributes and raw rings (in the source CRS) exactly as read.
    source   jsonb  NOT NULL
);
CREATE INDEX quarantine_batch ON quarantine (batch_id);

ALTER TABLE parcel_version ADD COLUMN fingerprint text NOT NULL DEFAULT '';
