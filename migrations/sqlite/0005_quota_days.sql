-- As migrations/postgres/0007_quota_days.sql (the day as ISO 8601 text).
CREATE TABLE quota_day (
    agency TEXT    NOT NULL,
    day    TEXT    NOT NULL,
    taken  INTEGER NOT NULL CHECK (taken >= 0),
    PRIMARY KEY (agency, day)
);
