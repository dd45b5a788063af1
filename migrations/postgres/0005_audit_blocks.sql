-- The audit log in blocks (issue 7): one row for each batch the writer appends, holding its
-- entries as lines of text, instead of one row for each entry. Every request writes an entry;
-- a row and its index entries an entry cost PostgreSQL about 2 µs of CPU, on the cores that
-- answer the requests, and the block costs it a fraction of that. The chain is unchanged: each
-- line is an entry's hash, a space, and the JSON array the hash covers (sequence number, time
-- in microseconds, agency, key, method, endpoint, parameters, purpose, status, parcels, the
-- versions whose personal data it disclosed, the previous entry's hash). The view audit_entry
-- reads them as rows again, for SQL.

CREATE TABLE audit_block (
    last_seq  bigint PRIMARY KEY,
    first_seq bigint NOT NULL,
    -- The earliest and latest request in the block, the agencies it holds and the versions
    -- whose personal data it disclosed: what finds the blocks a question needs.
    min_at    timestamptz NOT NULL,
    max_at    timestamptz NOT NULL,
    agencies  text[] NOT NULL,
    disclosed bigint[] NOT NULL,
    entries   text NOT NULL
);
-- Lines repeat each other (the previous hash, the agency, the endpoint): LZ4 is cheap and
-- shrinks a block about four times, which costs less than writing it out uncompressed.
ALTER TABLE audit_block ALTER COLUMN entries SET COMPRESSION lz4;
CREATE INDEX audit_block_max_at ON audit_block (max_at);
CREATE INDEX audit_block_disclosed ON audit_block USING gin (disclosed);

-- The entries already written, in blocks of 10,000, with their hashes as they are.
INSERT INTO audit_block (last_seq, first_seq, min_at, max_at, agencies, disclosed, entries)
SELECT max(e.seq), min(e.seq), min(e.at), max(e.at),
       array_agg(DISTINCT e.agency ORDER BY e.agency),
       ARRAY(SELECT DISTINCT d.version_id FROM audit_disclosure d
             WHERE d.seq BETWEEN min(e.seq) AND max(e.seq) ORDER BY 1),
       string_agg(e.hash || ' ' || json_build_array(e.seq, (extract(epoch FROM e.at) * 1000000)::bigint,
                  e.agency, e.key_id, e.method, e.endpoint, e.params, e.purpose, e.status, e.parcels,
                  e.personal::json, e.prev_hash)::text, E'\n' ORDER BY e.seq)
FROM audit_entry e
GROUP BY (e.seq - 1) / 10000;

DROP TABLE audit_entry;
DROP TABLE audit_disclosure;

CREATE TRIGGER audit_block_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_block
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();

CREATE VIEW audit_entry AS
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
       e ->> 11 AS prev_hash,
       l.hash
FROM audit_block b
CROSS JOIN LATERAL (
    SELECT split_part(line, ' ', 1) AS hash, substr(line, strpos(line, ' ') + 1)::jsonb AS e
    FROM regexp_split_to_table(b.entries, E'\n') AS line
    WHERE line <> ''
) l;
