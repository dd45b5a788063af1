-- The `landdb serve` processes sharing this store (see migrations/postgres/0015_server_processes.sql);
-- `seen_at` in seconds since 1970.
CREATE TABLE server_process (
    id      TEXT PRIMARY KEY,
    seen_at REAL NOT NULL
);
