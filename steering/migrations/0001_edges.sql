-- The fleet: each edge's registration and last heartbeat (JSON), times in Unix milliseconds.
CREATE TABLE edges (
    id TEXT PRIMARY KEY,
    registration TEXT NOT NULL,
    heartbeat TEXT,
    heartbeat_at BIGINT NOT NULL,
    registered_at BIGINT NOT NULL
);
