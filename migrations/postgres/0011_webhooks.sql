-- Webhook subscriptions (issue 20): each kept as a document (landdb_access::webhook), with the
-- lease by which one server of several delivers it; and the deliveries that failed every try.
CREATE TABLE subscription (
    id           text PRIMARY KEY,
    agency       text NOT NULL,
    doc          jsonb NOT NULL,
    leased_by    text,
    leased_until timestamptz
);

CREATE TABLE dead_letter (
    id           bigserial PRIMARY KEY,
    subscription text NOT NULL,
    doc          jsonb NOT NULL,
    replayed_at  timestamptz
);
CREATE INDEX dead_letter_subscription ON dead_letter (subscription);
