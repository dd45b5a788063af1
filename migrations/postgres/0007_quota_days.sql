-- Daily quotas counted in the store, so that every server process sharing it draws from one
-- count (issue 17: a quota is reserved atomically across concurrent requests and across server
-- processes sharing one database). A process leases a share of what is left (what a request
-- needs, or a sixty-fourth of the quota when that is more) and hands parcels out of its share
-- without a round trip; what it has not sent goes back when it stops. A process that dies keeps
-- its share spent: the agency may then get fewer parcels than its quota that day, never more.
-- A day is a calendar day in Vietnam; its count starts from the audit log's parcels of that day.
CREATE TABLE quota_day (
    agency text   NOT NULL,
    day    date   NOT NULL,
    taken  bigint NOT NULL CHECK (taken >= 0),
    PRIMARY KEY (agency, day)
);
