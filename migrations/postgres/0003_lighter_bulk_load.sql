-- A bulk import writes every version and one feed row per change; what slowed it was checking
-- rows that cannot be wrong. Measured on the 78,836 Đà Nẵng parcels (PostgreSQL 15, 2 cores):
--
-- The change feed is written at commit by INSERT … SELECT from parcel_version itself, inside the
-- batch's transaction, so its references hold by construction; checking them again per row cost
-- 0.6 s of the feed's 0.9 s.
ALTER TABLE parcel_change
    DROP CONSTRAINT parcel_change_batch_id_fkey,
    DROP CONSTRAINT parcel_change_version_id_fkey;

-- Most versions are never retired: index only those that are (every lookup by retiring batch
-- names a batch, which the planner knows is not null).
DROP INDEX parcel_version_retired_by;
CREATE INDEX parcel_version_retired_by ON parcel_version (retired_by_batch) WHERE retired_by_batch IS NOT NULL;
