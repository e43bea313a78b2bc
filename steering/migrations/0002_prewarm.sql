-- Pre-warm jobs and, per edge, each object's outcome (so a resumed job skips what is done).
CREATE TABLE prewarm_jobs (
    id TEXT PRIMARY KEY,
    request TEXT NOT NULL,
    objects TEXT NOT NULL,
    state TEXT NOT NULL,
    message TEXT,
    created_at BIGINT NOT NULL
);

CREATE TABLE prewarm_objects (
    job_id TEXT NOT NULL,
    edge_id TEXT NOT NULL,
    path TEXT NOT NULL,
    outcome TEXT NOT NULL,
    bytes BIGINT NOT NULL,
    PRIMARY KEY (job_id, edge_id, path)
);
