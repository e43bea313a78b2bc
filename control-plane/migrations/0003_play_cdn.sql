-- The CDN base URL steering chose for a play at its start ('' for the configured cdn_url).
ALTER TABLE plays ADD COLUMN cdn TEXT NOT NULL DEFAULT '';
