-- Every parcel version an answer disclosed is on record (issue 17), not only those whose
-- personal data it held: `versions` lists them (a JSON array, sorted), and the entry's hash covers
-- them. Entries written before keep NULL here and the preimage they were hashed with (twelve
-- fields), so they still verify; the chain never goes back to that form once it has left it.
ALTER TABLE audit_entry ADD COLUMN versions TEXT;

-- audit_disclosure now indexes every version an entry disclosed (what "who saw this parcel"
-- reads); for the older entries it holds their personal-data versions, which is all they listed.
-- `landdb audit verify` checks it against the entries. Read in entry order by verify:
CREATE INDEX audit_disclosure_seq ON audit_disclosure (seq);

CREATE TRIGGER audit_disclosure_no_update BEFORE UPDATE ON audit_disclosure
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_disclosure_no_delete BEFORE DELETE ON audit_disclosure
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
