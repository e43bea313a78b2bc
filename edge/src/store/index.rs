//! Which keys the cache holds, for purge by prefix and for the inventory.
//!
//! foyer stores objects under hashes and cannot list them, so the store keeps its own map
//! of primary key → stored variants, and a journal of it (`strata-index.log` beside the disk
//! tier) so that a restarted edge still knows what it holds. At start the journal is read,
//! entries whose object is gone (evicted) are dropped, and the journal is rewritten compact.
//! The map can briefly list objects foyer has evicted since; readers check presence.

use parking_lot::{Mutex, RwLock};
use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

/// One stored variant of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variant {
    /// The store's hash key.
    pub hex: String,
    /// Body bytes.
    pub bytes: u64,
}

#[derive(Default)]
struct Maps {
    by_key: BTreeMap<String, Vec<Variant>>,
    key_of: HashMap<String, String>,
    /// Body bytes of every variant listed.
    bytes: u64,
}

/// The journal file and how many lines it holds, so that it is rewritten before it grows far
/// beyond what it describes.
struct Journal {
    path: PathBuf,
    file: File,
    lines: u64,
}

/// The key map and its journal.
pub struct KeyIndex {
    maps: RwLock<Maps>,
    journal: Option<Mutex<Journal>>,
}

/// A journal is rewritten once it has this many lines more than twice the variants listed.
const JOURNAL_SLACK: u64 = 10_000;

impl KeyIndex {
    /// An index kept in memory only.
    pub fn in_memory() -> Self {
        Self {
            maps: RwLock::new(Maps::default()),
            journal: None,
        }
    }

    /// Loads the journal at `path` (if any), keeps the entries `alive` says still exist,
    /// and rewrites the journal with just those.
    pub fn open(path: &Path, alive: impl Fn(&str) -> bool) -> std::io::Result<Self> {
        let mut maps = Maps::default();
        if let Ok(file) = File::open(path) {
            for line in BufReader::new(file).lines() {
                let line = line?;
                let mut parts = line.splitn(4, '\t');
                match (parts.next(), parts.next(), parts.next(), parts.next()) {
                    (Some("+"), Some(hex), Some(bytes), Some(key)) => {
                        if let Ok(bytes) = bytes.parse() {
                            insert(&mut maps, key, hex, bytes);
                        }
                    }
                    (Some("-"), Some(hex), None, None) => remove(&mut maps, hex),
                    // A torn last line after a crash: ignore it.
                    _ => {}
                }
            }
        }
        let dead: Vec<String> = maps.key_of.keys().filter(|hex| !alive(hex)).cloned().collect();
        for hex in dead {
            remove(&mut maps, &hex);
        }
        let journal = rewrite(path, &maps)?;
        Ok(Self {
            maps: RwLock::new(maps),
            journal: Some(Mutex::new(journal)),
        })
    }

    /// Body bytes of every variant listed.
    pub fn bytes(&self) -> u64 {
        self.maps.read().bytes
    }

    /// Variants listed.
    pub fn variant_count(&self) -> usize {
        self.maps.read().key_of.len()
    }

    /// Checks up to `batch` keys after `cursor` (from the first when `None`) and forgets the
    /// variants `alive` says are gone (evicted); returns where to go on, `None` once the end
    /// is reached. Called a batch at a time in the background, so that what the cache
    /// evicted leaves the map (and its journal) without a pause.
    pub fn sweep(&self, cursor: Option<&str>, batch: usize, alive: impl Fn(&str) -> bool) -> Option<String> {
        let (dead, next) = {
            let maps = self.maps.read();
            let mut keys = match cursor {
                Some(c) => maps
                    .by_key
                    .range::<str, _>((std::ops::Bound::Excluded(c), std::ops::Bound::Unbounded)),
                None => maps.by_key.range::<str, _>(..),
            };
            let mut dead = Vec::new();
            let mut last = None;
            for (key, variants) in keys.by_ref().take(batch) {
                dead.extend(variants.iter().filter(|v| !alive(&v.hex)).map(|v| v.hex.clone()));
                last = Some(key.clone());
            }
            let more = keys.next().is_some();
            (dead, last.filter(|_| more))
        };
        for hex in dead {
            self.forget(&hex);
        }
        self.compact_if_grown();
        next
    }

    /// Rewrites the journal when it holds far more lines than variants listed.
    fn compact_if_grown(&self) {
        let Some(journal) = &self.journal else { return };
        let maps = self.maps.read();
        let mut journal = journal.lock();
        if journal.lines <= 2 * maps.key_of.len() as u64 + JOURNAL_SLACK {
            return;
        }
        match rewrite(&journal.path.clone(), &maps) {
            Ok(fresh) => *journal = fresh,
            Err(e) => tracing::warn!(error = %e, "cannot rewrite the cache index journal"),
        }
    }

    /// Records a stored variant of `key`.
    pub fn record(&self, key: &str, hex: &str, bytes: u64) {
        insert(&mut self.maps.write(), key, hex, bytes);
        self.append(&format!("+\t{hex}\t{bytes}\t{key}\n"));
    }

    /// Forgets a stored variant.
    pub fn forget(&self, hex: &str) {
        let known = self.maps.read().key_of.contains_key(hex);
        if known {
            remove(&mut self.maps.write(), hex);
            self.append(&format!("-\t{hex}\n"));
        }
    }

    /// Keys (with their variants) whose path starts with `path_prefix`, on any host.
    pub fn under(&self, path_prefix: &str) -> Vec<(String, Vec<Variant>)> {
        self.maps
            .read()
            .by_key
            .iter()
            .filter(|(key, _)| key.find('/').is_some_and(|i| key[i..].starts_with(path_prefix)))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Keys (with their variants) that start with `key_prefix`, host included.
    pub fn starting_with(&self, key_prefix: &str) -> Vec<(String, Vec<Variant>)> {
        self.maps
            .read()
            .by_key
            .range(key_prefix.to_string()..)
            .take_while(|(key, _)| key.starts_with(key_prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Whether some key starts with `key_prefix`.
    pub fn any_starting_with(&self, key_prefix: &str) -> bool {
        self.maps
            .read()
            .by_key
            .range(key_prefix.to_string()..)
            .next()
            .is_some_and(|(key, _)| key.starts_with(key_prefix))
    }

    /// The variants stored for exactly `key`.
    pub fn variants(&self, key: &str) -> Vec<Variant> {
        self.maps.read().by_key.get(key).cloned().unwrap_or_default()
    }

    fn append(&self, line: &str) {
        let Some(journal) = &self.journal else { return };
        let mut journal = journal.lock();
        journal.lines += 1;
        if let Err(e) = journal.file.write_all(line.as_bytes()) {
            tracing::warn!(error = %e, "cannot append to the cache index journal");
        }
    }
}

/// Writes `maps` as a fresh journal at `path` (through a temporary file and a rename) and
/// opens it for appending.
fn rewrite(path: &Path, maps: &Maps) -> std::io::Result<Journal> {
    let tmp: PathBuf = path.with_extension("log.new");
    let mut lines = 0;
    {
        let mut out = std::io::BufWriter::new(File::create(&tmp)?);
        for (key, variants) in &maps.by_key {
            for v in variants {
                writeln!(out, "+\t{}\t{}\t{key}", v.hex, v.bytes)?;
                lines += 1;
            }
        }
        out.flush()?;
    }
    std::fs::rename(&tmp, path)?;
    Ok(Journal {
        path: path.to_path_buf(),
        file: OpenOptions::new().append(true).open(path)?,
        lines,
    })
}

fn insert(maps: &mut Maps, key: &str, hex: &str, bytes: u64) {
    if let Some(old_key) = maps.key_of.insert(hex.to_string(), key.to_string())
        && old_key != key
    {
        drop_variant(maps, &old_key, hex);
    }
    let variants = maps.by_key.entry(key.to_string()).or_default();
    match variants.iter_mut().find(|v| v.hex == hex) {
        Some(v) => {
            maps.bytes = maps.bytes - v.bytes + bytes;
            v.bytes = bytes;
        }
        None => {
            variants.push(Variant {
                hex: hex.to_string(),
                bytes,
            });
            maps.bytes += bytes;
        }
    }
}

fn remove(maps: &mut Maps, hex: &str) {
    if let Some(key) = maps.key_of.remove(hex) {
        drop_variant(maps, &key, hex);
    }
}

/// Takes the variant `hex` out of `key`'s list (and its bytes out of the total), and the key
/// out of the map once it has no variant left.
fn drop_variant(maps: &mut Maps, key: &str, hex: &str) {
    let Some(vs) = maps.by_key.get_mut(key) else {
        return;
    };
    let gone: u64 = vs.iter().filter(|v| v.hex == hex).map(|v| v.bytes).sum();
    maps.bytes -= gone;
    vs.retain(|v| v.hex != hex);
    if vs.is_empty() {
        maps.by_key.remove(key);
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn prefixes_match_paths_on_any_host() {
        let ix = KeyIndex::in_memory();
        ix.record("a.example/t/1/seg.m4s", "h1", 10);
        ix.record("b.example/t/1/init.m4s", "h2", 20);
        ix.record("a.example/t/2/seg.m4s", "h3", 30);
        let keys: Vec<String> = ix.under("/t/1/").into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, vec!["a.example/t/1/seg.m4s", "b.example/t/1/init.m4s"]);
        assert_eq!(ix.under("/").len(), 3);
        ix.forget("h1");
        assert_eq!(ix.under("/t/1/").len(), 1);
    }

    #[test]
    fn variants_of_one_key_are_kept_together() {
        let ix = KeyIndex::in_memory();
        ix.record("e/vary", "v1", 5);
        ix.record("e/vary", "v2", 6);
        ix.record("e/vary", "v1", 7);
        assert_eq!(
            ix.variants("e/vary"),
            vec![
                Variant {
                    hex: "v1".into(),
                    bytes: 7
                },
                Variant {
                    hex: "v2".into(),
                    bytes: 6
                }
            ]
        );
    }

    #[test]
    fn bytes_are_kept_as_variants_come_and_go() {
        let ix = KeyIndex::in_memory();
        ix.record("e/a", "h1", 10);
        ix.record("e/a", "h2", 20);
        ix.record("e/b", "h3", 5);
        assert_eq!(ix.bytes(), 35);
        ix.record("e/a", "h1", 12);
        assert_eq!(ix.bytes(), 37, "a variant stored again counts once");
        ix.record("e/c", "h3", 6);
        assert_eq!(ix.bytes(), 38, "a hash that moved to another key counts once");
        assert!(ix.variants("e/b").is_empty());
        ix.forget("h2");
        assert_eq!(ix.bytes(), 18);
        ix.forget("h2");
        assert_eq!(ix.bytes(), 18);
    }

    #[test]
    fn sweeps_forget_what_was_evicted_a_batch_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("strata-index.log");
        let ix = KeyIndex::open(&path, |_| true).unwrap();
        for i in 0..10 {
            ix.record(&format!("e/{i}"), &format!("h{i}"), 1);
        }
        let alive = |hex: &str| hex != "h3" && hex != "h7";
        let mut cursor = ix.sweep(None, 4, alive);
        let mut batches = 1;
        while let Some(c) = cursor {
            cursor = ix.sweep(Some(&c), 4, alive);
            batches += 1;
        }
        assert_eq!(batches, 3, "10 keys in batches of 4");
        assert_eq!(ix.under("/").len(), 8);
        assert_eq!(ix.bytes(), 8);
        // A restart reads the forgetting back from the journal.
        drop(ix);
        let ix = KeyIndex::open(&path, |_| true).unwrap();
        assert_eq!(ix.under("/").len(), 8);
    }

    #[test]
    fn a_grown_journal_is_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("strata-index.log");
        let ix = KeyIndex::open(&path, |_| true).unwrap();
        // One object stored and evicted again and again: the journal grows, the map not.
        for i in 0..(JOURNAL_SLACK + 10) {
            ix.record("e/churn", &format!("h{i}"), 1);
            ix.forget(&format!("h{i}"));
        }
        ix.record("e/kept", "hk", 1);
        ix.sweep(None, 100, |_| true);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "+\thk\t1\te/kept\n", "rewritten to what it describes");
        ix.record("e/more", "hm", 1);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2, "and appended to after");
    }

    #[test]
    fn the_journal_survives_a_restart_and_drops_what_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("strata-index.log");
        {
            let ix = KeyIndex::open(&path, |_| true).unwrap();
            ix.record("e/a", "ha", 1);
            ix.record("e/b", "hb", 2);
            ix.record("e/c", "hc", 3);
            ix.forget("hb");
        }
        // A torn line from a crash is ignored.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"+\thx\t")
            .unwrap();
        let ix = KeyIndex::open(&path, |hex| hex != "hc").unwrap();
        let keys: Vec<String> = ix.under("/").into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, vec!["e/a"], "hb was purged, hc was evicted");
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "+\tha\t1\te/a\n", "rewritten compact");
    }
}
