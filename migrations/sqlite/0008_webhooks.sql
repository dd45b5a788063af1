-- Webhook subscriptions (issue 20), kept as documents, with the lease by which one server
-- delivers each; and the deliveries that failed every try.
CREATE TABLE subscription (
    id           TEXT PRIMARY KEY,
    agency       TEXT NOT NULL,
    doc          TEXT NOT NULL,
    leased_by    TEXT,
    leased_until TEXT
);

CREATE TABLE dead_letter (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    subscription TEXT NOT NULL,
    doc          TEXT NOT NULL,
    replayed_at  TEXT
);
CREATE INDEX dead_letter_subscription ON dead_letter (subscription);
