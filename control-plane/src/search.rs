//! Full-text search over the catalog with tantivy: an in-memory index built from the database
//! at start, updated in place when a title changes here, and rebuilt when the catalog changed
//! elsewhere (another control plane on the same PostgreSQL). Names and cast match with one
//! typo (Levenshtein distance 1, a transposition counting as one); synopses are stemmed.
//! Genres and years are facets. An update that fails leaves the last committed index serving
//! and marks results stale until a rebuild succeeds.

use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use strata_contracts::api::control_plane::{FacetCount, SearchFacets, SearchResponse, Title, TitleSummary};
use tantivy::collector::{Count, FacetCollector, TopDocs};
use tantivy::query::{AllQuery, BooleanQuery, Occur, Query, QueryParser, TermQuery};
use tantivy::schema::{
    FacetOptions, Field, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions, Value,
};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};

/// Memory the index writer may use before it flushes.
const WRITER_BUDGET: usize = 32 << 20;
/// The longest query read.
pub const MAX_QUERY_CHARS: usize = 200;

/// Why the index could not be updated or asked.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// tantivy failed.
    #[error("search index: {0}")]
    Index(#[from] tantivy::TantivyError),
    /// Loading the titles to index failed.
    #[error("loading the catalog for the search index: {0}")]
    Load(String),
}

/// A search as asked.
#[derive(Debug, Clone, Default)]
pub struct SearchQuery {
    /// Free text; empty matches every title (for facet-only browsing).
    pub text: String,
    /// Only titles of this genre.
    pub genre: Option<String>,
    /// Only titles of this year.
    pub year: Option<u32>,
    /// At most this many results.
    pub limit: usize,
}

#[derive(Clone, Copy)]
struct Fields {
    id: Field,
    name: Field,
    cast: Field,
    synopsis: Field,
    genre: Field,
    year: Field,
    summary: Field,
}

/// The catalog's search index.
pub struct SearchIndex {
    index: Index,
    reader: IndexReader,
    writer: Mutex<IndexWriter>,
    fields: Fields,
    stale: AtomicBool,
}

impl SearchIndex {
    /// An empty index.
    pub fn new() -> Result<SearchIndex, SearchError> {
        let mut schema = Schema::builder();
        let words = |tokenizer: &str| {
            TextOptions::default().set_indexing_options(
                TextFieldIndexing::default()
                    .set_tokenizer(tokenizer)
                    .set_index_option(IndexRecordOption::WithFreqsAndPositions),
            )
        };
        let fields = Fields {
            id: schema.add_text_field("id", STRING),
            // Names and cast keep their words as written (lower-cased), so that a typo is one
            // edit away from the indexed word; synopses are stemmed for recall.
            name: schema.add_text_field("name", words("default")),
            cast: schema.add_text_field("cast", words("default")),
            synopsis: schema.add_text_field("synopsis", words("en_stem")),
            genre: schema.add_facet_field("genre", FacetOptions::default()),
            year: schema.add_facet_field("year", FacetOptions::default()),
            summary: schema.add_text_field("summary", STORED),
        };
        let index = Index::create_in_ram(schema.build());
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        let writer = index.writer(WRITER_BUDGET)?;
        Ok(SearchIndex {
            index,
            reader,
            writer: Mutex::new(writer),
            fields,
            stale: AtomicBool::new(false),
        })
    }

    fn document(&self, t: &Title) -> TantivyDocument {
        let f = &self.fields;
        let mut doc = TantivyDocument::new();
        doc.add_text(f.id, &t.id);
        doc.add_text(f.name, &t.name);
        for c in &t.cast {
            doc.add_text(f.cast, c);
        }
        doc.add_text(f.synopsis, &t.synopsis);
        for g in &t.genres {
            doc.add_facet(f.genre, tantivy::schema::Facet::from_path([g.as_str()]));
        }
        if t.year > 0 {
            doc.add_facet(f.year, tantivy::schema::Facet::from_path([t.year.to_string()]));
        }
        let summary = serde_json::to_string(&TitleSummary::from(t)).expect("summaries serialize");
        doc.add_text(f.summary, summary);
        doc
    }

    /// Applies a change (titles created or replaced, ids removed) and makes it visible. On
    /// failure nothing of it is visible and the index is marked stale.
    pub fn apply(&self, upserts: &[Title], removals: &[&str]) -> Result<(), SearchError> {
        let result = self.commit(|writer, this| {
            for t in upserts {
                writer.delete_term(Term::from_field_text(this.fields.id, &t.id));
                writer.add_document(this.document(t))?;
            }
            for id in removals {
                writer.delete_term(Term::from_field_text(this.fields.id, id));
            }
            Ok(())
        });
        if result.is_err() {
            self.stale.store(true, Ordering::Relaxed);
        }
        result
    }

    /// Replaces the whole index with `load`'s titles. If `load` or indexing fails, the last
    /// good index keeps serving and results say they are stale.
    pub fn rebuild(&self, load: Result<Vec<Title>, String>) -> Result<usize, SearchError> {
        let titles = match load {
            Ok(t) => t,
            Err(e) => {
                self.stale.store(true, Ordering::Relaxed);
                return Err(SearchError::Load(e));
            }
        };
        let result = self.commit(|writer, this| {
            writer.delete_all_documents()?;
            for t in &titles {
                writer.add_document(this.document(t))?;
            }
            Ok(())
        });
        match result {
            Ok(()) => {
                self.stale.store(false, Ordering::Relaxed);
                Ok(titles.len())
            }
            Err(e) => {
                self.stale.store(true, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    fn commit(
        &self,
        change: impl FnOnce(&IndexWriter, &Self) -> Result<(), tantivy::TantivyError>,
    ) -> Result<(), SearchError> {
        let mut writer = self.writer.lock();
        if let Err(e) = change(&writer, self).and_then(|()| writer.commit().map(|_| ())) {
            // Drop what was staged, so the next change starts from the last commit.
            let _ = writer.rollback();
            return Err(e.into());
        }
        self.reader.reload()?;
        Ok(())
    }

    /// Whether the index is known to lag the catalog.
    pub fn is_stale(&self) -> bool {
        self.stale.load(Ordering::Relaxed)
    }

    /// Runs a search.
    pub fn search(&self, q: &SearchQuery) -> Result<SearchResponse, SearchError> {
        let f = &self.fields;
        let text: Box<dyn Query> = if q.text.trim().is_empty() {
            Box::new(AllQuery)
        } else {
            let mut parser = QueryParser::for_index(&self.index, vec![f.name, f.cast, f.synopsis]);
            parser.set_field_boost(f.name, 3.0);
            parser.set_field_boost(f.cast, 1.5);
            parser.set_field_fuzzy(f.name, false, 1, true);
            parser.set_field_fuzzy(f.cast, false, 1, true);
            // Viewers type words, not query syntax: whatever does not parse is dropped.
            parser.parse_query_lenient(&q.text).0
        };
        let mut clauses = vec![(Occur::Must, text)];
        let facet_term = |field, value: &str| -> Box<dyn Query> {
            Box::new(TermQuery::new(
                Term::from_facet(field, &tantivy::schema::Facet::from_path([value])),
                IndexRecordOption::Basic,
            ))
        };
        if let Some(g) = &q.genre {
            clauses.push((Occur::Must, facet_term(f.genre, g)));
        }
        if let Some(y) = q.year {
            clauses.push((Occur::Must, facet_term(f.year, &y.to_string())));
        }
        let query = BooleanQuery::new(clauses);
        let mut genres = FacetCollector::for_field("genre");
        genres.add_facet("/");
        let mut years = FacetCollector::for_field("year");
        years.add_facet("/");
        let searcher = self.reader.searcher();
        let (top, total, genre_counts, year_counts) = searcher.search(
            &query,
            &(
                TopDocs::with_limit(q.limit.max(1)).order_by_score(),
                Count,
                genres,
                years,
            ),
        )?;
        let mut results = Vec::with_capacity(top.len());
        for (_score, address) in top {
            let doc: TantivyDocument = searcher.doc(address)?;
            if let Some(summary) = doc.get_first(f.summary).and_then(|v| v.as_str())
                && let Ok(s) = serde_json::from_str::<TitleSummary>(summary)
            {
                results.push(s);
            }
        }
        let counts = |c: &tantivy::collector::FacetCounts| -> Vec<FacetCount> {
            let mut v: Vec<FacetCount> = c
                .get("/")
                .map(|(facet, count)| FacetCount {
                    value: facet.to_path().last().map_or_else(String::new, |s| s.to_string()),
                    count,
                })
                .collect();
            v.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
            v
        };
        Ok(SearchResponse {
            results,
            total: total as u64,
            facets: SearchFacets {
                genres: counts(&genre_counts),
                years: counts(&year_counts),
            },
            stale: self.is_stale(),
        })
    }
}

#[cfg(test)]
mod test {
    use super::*;

    fn title(id: &str, name: &str, genres: &[&str], year: u32, cast: &[&str], synopsis: &str) -> Title {
        serde_json::from_value(serde_json::json!({
            "id": id, "name": name, "genres": genres, "year": year, "cast": cast,
            "synopsis": synopsis, "hls": "/x/master.m3u8"
        }))
        .unwrap()
    }

    fn catalog() -> Vec<Title> {
        vec![
            title(
                "1",
                "The Deep Blue Sea",
                &["Documentary", "Nature"],
                2019,
                &["Ada Lovelace"],
                "Whales sing across oceans.",
            ),
            title(
                "2",
                "Mountain Echoes",
                &["Documentary"],
                2021,
                &["Grace Hopper"],
                "Climbers chase a summit.",
            ),
            title(
                "3",
                "Midnight Circuit",
                &["Thriller"],
                2021,
                &["Alan Turing"],
                "A hacker races the clock.",
            ),
        ]
    }

    fn ids(r: &SearchResponse) -> Vec<&str> {
        r.results.iter().map(|s| s.id.as_str()).collect()
    }

    fn ask(index: &SearchIndex, text: &str) -> SearchResponse {
        index
            .search(&SearchQuery {
                text: text.into(),
                limit: 10,
                ..Default::default()
            })
            .unwrap()
    }

    #[test]
    fn typos_in_names_and_cast_still_find_the_title() {
        let index = SearchIndex::new().unwrap();
        index.rebuild(Ok(catalog())).unwrap();
        assert_eq!(ids(&ask(&index, "mountain")), ["2"]);
        assert_eq!(
            ids(&ask(&index, "moutnain")),
            ["2"],
            "a transposition is one edit"
        );
        assert_eq!(ids(&ask(&index, "midnigt circuit")), ["3"]);
        assert_eq!(ids(&ask(&index, "turnig")), ["3"]);
        // Stemmed synopsis: "whale" finds "Whales".
        assert_eq!(ids(&ask(&index, "whale")), ["1"]);
        assert!(ask(&index, "zzzzqqq").results.is_empty());
        // Query syntax in viewer input never errors.
        assert!(
            index
                .search(&SearchQuery {
                    text: "deep AND (".into(),
                    limit: 5,
                    ..Default::default()
                })
                .is_ok()
        );
    }

    #[test]
    fn facets_count_and_filter() {
        let index = SearchIndex::new().unwrap();
        index.rebuild(Ok(catalog())).unwrap();
        let all = ask(&index, "");
        assert_eq!(all.total, 3);
        assert_eq!(
            all.facets.genres[0],
            FacetCount {
                value: "Documentary".into(),
                count: 2
            }
        );
        assert_eq!(
            all.facets.years[0],
            FacetCount {
                value: "2021".into(),
                count: 2
            }
        );
        let docs_2021 = index
            .search(&SearchQuery {
                text: String::new(),
                genre: Some("Documentary".into()),
                year: Some(2021),
                limit: 10,
            })
            .unwrap();
        assert_eq!(ids(&docs_2021), ["2"]);
    }

    #[test]
    fn changes_show_at_once_and_a_failed_rebuild_keeps_the_last_good_index() {
        let index = SearchIndex::new().unwrap();
        index.rebuild(Ok(catalog())).unwrap();
        let mut renamed = catalog()[1].clone();
        renamed.name = "Valley Whispers".into();
        index.apply(&[renamed], &["3"]).unwrap();
        assert_eq!(ids(&ask(&index, "valley")), ["2"]);
        assert!(ask(&index, "mountain").results.is_empty());
        assert!(ask(&index, "midnight").results.is_empty());
        assert!(index.rebuild(Err("database unreachable".into())).is_err());
        let r = ask(&index, "valley");
        assert_eq!(ids(&r), ["2"], "the last good index still answers");
        assert!(r.stale);
        index.rebuild(Ok(catalog())).unwrap();
        assert!(!ask(&index, "mountain").stale);
    }
}
