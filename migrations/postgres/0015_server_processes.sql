-- The `landdb serve` processes sharing this database (issue 22), each seen once a second: an
-- agency's requests-a-second limit is shared out among the live ones, so that several servers
-- behind one address hold it together. A process that stops takes its row away; one that dies
-- is no longer counted after 3 s and forgotten after 10.
CREATE TABLE server_process (
    id      text        PRIMARY KEY,
    seen_at timestamptz NOT NULL
);
