-- The communes of what an entry disclosed (issue 17; PostGIS migration 9 indexes its blocks by
-- them): a JSON array of commune numbers, sorted, covered by the entry's hash (fourteen fields).
-- Entries written before keep NULL here and the preimage they were hashed with. The embedded
-- store still finds "who received parcel X" through audit_disclosure, a row a disclosed version.
ALTER TABLE audit_entry ADD COLUMN communes TEXT;
