-- Every right holder and quarantined record is sealed: the clear columns go (see
-- migrations/postgres/0014_clear_holders_dropped.sql).
ALTER TABLE right_holder DROP COLUMN name;
ALTER TABLE right_holder DROP COLUMN citizen_id;
ALTER TABLE right_holder DROP COLUMN birth_year;
ALTER TABLE right_holder DROP COLUMN address;
CREATE INDEX right_holder_citizen ON right_holder (citizen_index) WHERE citizen_index IS NOT NULL;
ALTER TABLE quarantine DROP COLUMN source;
