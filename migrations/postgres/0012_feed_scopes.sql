-- The scopes change-feed followers were given tokens under (issue 20): an agency's area and
-- personal-data grant, by the fingerprint its tokens carry. When the agency's policy changes, a
-- follower's next page compares the scope its copy was made under with the new one and sends the
-- parcels that entered or left, instead of the whole scope again.
CREATE TABLE feed_scope (
    agency      text   NOT NULL,
    fingerprint bigint NOT NULL,
    doc         jsonb  NOT NULL,
    PRIMARY KEY (agency, fingerprint)
);
