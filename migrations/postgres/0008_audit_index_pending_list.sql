-- The index of who received what (audit_block.disclosed, a version for every parcel an answer
-- disclosed) is the audit log's main cost under load: a GIN index entry a disclosed version.
-- New entries go to the index's pending list and are merged into the index in sorted batches;
-- with the default 4 MB list the audit writer's own transactions keep merging small batches.
-- A 64 MB list leaves the merging to autovacuum, in larger batches: in a measurement of 594,565
-- versions (benches/RESULTS.md), the inserts took 0.48 s instead of 2.86 s and the merge by
-- VACUUM 1.34 s, a third less work in all and most of it off the writer's path. A question
-- ("who received parcel X") reads the pending list too, so answers are the same.
ALTER INDEX audit_block_disclosed SET (gin_pending_list_limit = 65536);
