-- Browse rows: newest titles, titles of a genre, plays in the trending window.
CREATE INDEX titles_year ON titles (year, created_at);
CREATE INDEX title_genres_genre ON title_genres (genre, title_id);
CREATE INDEX plays_started ON plays (started_at);
