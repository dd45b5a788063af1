-- Every parcel version an answer disclosed is on record (issue 17), not only those whose
-- personal data it held. Lines written from now on are arrays of thirteen fields: the versions
-- (sorted, as their first value and then differences) come before the previous hash, and the
-- hash covers them. Lines written before keep their twelve fields and their hashes; the chain
-- never goes back to that form once it has left it.
--
-- The column `disclosed` of audit_block now lists every version its entries disclosed (personal
-- data or not; for the older entries, their personal-data versions, which is all they listed):
-- its GIN index answers "which agencies received this parcel". `landdb audit verify` recomputes
-- it, `agencies` and the time and sequence ranges from the lines, so editing them is found.
COMMENT ON COLUMN audit_block.disclosed IS
    'every parcel version the block''s entries disclosed (checked by landdb audit verify)';

-- The view gains the versions (NULL for entries of the older form) and finds the previous hash
-- in either form.
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
       CASE WHEN jsonb_array_length(e) = 13 THEN e ->> 12 ELSE e ->> 11 END AS prev_hash,
       l.hash,
       CASE WHEN jsonb_array_length(e) = 13 THEN
           ARRAY(SELECT (sum(d::bigint) OVER (ORDER BY i))::bigint
                 FROM jsonb_array_elements_text(e -> 11) WITH ORDINALITY AS t(d, i) ORDER BY i)
       END AS versions
FROM audit_block b
CROSS JOIN LATERAL (
    SELECT split_part(line, ' ', 1) AS hash, substr(line, strpos(line, ' ') + 1)::jsonb AS e
    FROM regexp_split_to_table(b.entries, E'\n') AS line
    WHERE line <> ''
) l;
