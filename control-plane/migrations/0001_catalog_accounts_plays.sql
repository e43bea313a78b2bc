-- Portable across SQLite and PostgreSQL: TEXT and BIGINT only, times as Unix seconds.
CREATE TABLE titles (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    year BIGINT NOT NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE title_genres (
    title_id TEXT NOT NULL,
    genre TEXT NOT NULL,
    PRIMARY KEY (title_id, genre)
);

CREATE TABLE accounts (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    tier TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE profiles (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    name TEXT NOT NULL,
    position BIGINT NOT NULL
);
CREATE INDEX profiles_account ON profiles (account_id);

CREATE TABLE plays (
    id TEXT PRIMARY KEY,
    title_id TEXT NOT NULL,
    account_id TEXT NOT NULL,
    profile_id TEXT NOT NULL,
    device TEXT NOT NULL,
    country TEXT NOT NULL,
    max_height BIGINT NOT NULL,
    token TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX plays_title_started ON plays (title_id, started_at);
