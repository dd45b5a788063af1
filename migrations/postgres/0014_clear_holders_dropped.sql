-- Every right holder and quarantined record is sealed (landdb sealed those written before
-- migration 13 before running this one): the clear columns go.
ALTER TABLE right_holder
    DROP COLUMN name,
    DROP COLUMN citizen_id,
    DROP COLUMN birth_year,
    DROP COLUMN address,
    ALTER COLUMN key_id SET NOT NULL,
    ALTER COLUMN sealed SET NOT NULL;
CREATE INDEX right_holder_citizen ON right_holder (citizen_index) WHERE citizen_index IS NOT NULL;
ALTER TABLE quarantine
    DROP COLUMN source,
    ALTER COLUMN key_id SET NOT NULL,
    ALTER COLUMN sealed_source SET NOT NULL;
