-- Who received what, indexed by commune (issue 17's throughput): a GIN entry for every parcel
-- version an answer disclosed cost PostgreSQL about 5 µs a point lookup (benches/RESULTS.md),
-- the whole of the access path's budget. Lines written from now on are arrays of fourteen
-- fields: after the versions (sorted deltas) come the communes (by number, sorted) of what the
-- entry disclosed, and the hash covers both. A block lists the communes of its entries in
-- `communes`: a few keys a block, however many parcels went out. "Which agencies received
-- parcel X" reads the blocks of X's commune and picks the lines that list X's versions.
--
-- Blocks written before keep `disclosed` (every version their entries disclosed) and an empty
-- `communes`; new blocks the other way round. `landdb audit verify` recomputes both from the
-- lines, so editing either is found.
ALTER TABLE audit_block ADD COLUMN communes integer[] NOT NULL DEFAULT '{}';
COMMENT ON COLUMN audit_block.communes IS
    'the communes of the parcels the block''s entries disclosed (checked by landdb audit verify)';
COMMENT ON COLUMN audit_block.disclosed IS
    'every parcel version the block''s entries of the older forms disclosed (checked by landdb audit verify)';
CREATE INDEX audit_block_communes ON audit_block USING gin (communes);

-- The view gains the communes (NULL for entries of the older forms) and finds the previous
-- hash in any form.
CREATE OR REPLACE VIEW audit_entry AS
SELECT (e ->> 0)::bigint AS seq,
       timestamptz 'epoch' + (e ->> 1)::bigint * interval '1 microsecond' AS at,
       e ->> 2 AS agency,
       e ->> 3 AS key_id,
       e ->> 4 AS method,
       e ->> 5 AS endpoint,
       e ->> 6 AS params,
       e ->> 7 AS purpose,
       (e ->> 8)::int AS status,
       (e ->> 9)::bigint AS parcels,
       ARRAY(SELECT jsonb_array_elements_text(e -> 10)::bigint) AS personal,
       e ->> (jsonb_array_length(e) - 1) AS prev_hash,
       l.hash,
       CASE WHEN jsonb_array_length(e) >= 13 THEN
           ARRAY(SELECT (sum(d::bigint) OVER (ORDER BY i))::bigint
                 FROM jsonb_array_elements_text(e -> 11) WITH ORDINALITY AS t(d, i) ORDER BY i)
       END AS versions,
       CASE WHEN jsonb_array_length(e) = 14 THEN
           ARRAY(SELECT jsonb_array_elements_text(e -> 12)::integer)
       END AS communes
FROM audit_block b
CROSS JOIN LATERAL (
    SELECT split_part(line, ' ', 1) AS hash, substr(line, strpos(line, ' ') + 1)::jsonb AS e
    FROM regexp_split_to_table(b.entries, E'\n') AS line
    WHERE line <> ''
) l;
