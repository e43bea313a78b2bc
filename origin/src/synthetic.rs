//! A synthetic catalog for load tests: many titles whose HLS and DASH manifests are real and
//! whose segments are sized like real ones (360p about 200 KB, 720p about 1 MB, 1080p about
//! 2.5 MB per 4 s), filled with pseudo-random bytes. The bytes are not video: players in a
//! browser cannot decode them, but a CDN, `strata loadgen` and `strata prewarm` handle them
//! exactly as real segments. No ffmpeg, so thousands of titles take seconds.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use strata_contracts::api::control_plane::{CATALOG_VERSION, CatalogFile, Licensing, Rendition, Title};

/// One rung of the synthetic ladder.
struct Rung {
    width: u32,
    height: u32,
    /// Segment bytes per 4 s.
    bytes_per_4s: u64,
}

const LADDER: [Rung; 3] = [
    Rung {
        width: 640,
        height: 360,
        bytes_per_4s: 200_000,
    },
    Rung {
        width: 1280,
        height: 720,
        bytes_per_4s: 1_000_000,
    },
    Rung {
        width: 1920,
        height: 1080,
        bytes_per_4s: 2_500_000,
    },
];

/// Segment length, seconds.
pub const SEGMENT_SECS: u32 = 4;

/// What to make.
#[derive(Debug, Clone)]
pub struct SyntheticPlan {
    /// Titles, named `t0000`, `t0001`, ...
    pub titles: usize,
    /// Length of each title, seconds (rounded up to whole segments).
    pub duration_secs: u32,
    /// Seed of the sizes and bytes.
    pub seed: u64,
}

/// What was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntheticCatalog {
    /// Title directory names, in order.
    pub titles: Vec<String>,
    /// Files written.
    pub files: u64,
    /// Bytes written.
    pub bytes: u64,
}

/// xorshift64*: fast, deterministic filler; the bytes only need to look incompressible.
struct Filler(u64);

impl Filler {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn bytes(&mut self, n: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(n as usize + 8);
        while (out.len() as u64) < n {
            out.extend_from_slice(&self.next().to_le_bytes());
        }
        out.truncate(n as usize);
        out
    }
}

/// The master playlist of a title (pure).
pub fn master_playlist() -> String {
    let mut m = String::from("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    for (i, r) in LADDER.iter().enumerate() {
        let bandwidth = r.bytes_per_4s * 8 / u64::from(SEGMENT_SECS) * 11 / 10;
        let _ = writeln!(
            m,
            "#EXT-X-STREAM-INF:BANDWIDTH={bandwidth},RESOLUTION={}x{},CODECS=\"avc1.640028\"\nmedia_{i}.m3u8",
            r.width, r.height
        );
    }
    m
}

/// The media playlist of rung `i` with `segments` segments (pure).
pub fn media_playlist(i: usize, segments: u32) -> String {
    let mut m = format!(
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:{SEGMENT_SECS}\n#EXT-X-MEDIA-SEQUENCE:1\n\
         #EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-MAP:URI=\"init-{i}.m4s\"\n"
    );
    for k in 1..=segments {
        let _ = writeln!(m, "#EXTINF:{SEGMENT_SECS}.000,\nseg-{i}-{k:05}.m4s");
    }
    m.push_str("#EXT-X-ENDLIST\n");
    m
}

/// The DASH MPD of a title of `segments` segments (pure).
pub fn mpd(segments: u32) -> String {
    let mut reps = String::new();
    for (i, r) in LADDER.iter().enumerate() {
        let bandwidth = r.bytes_per_4s * 8 / u64::from(SEGMENT_SECS);
        let _ = write!(
            reps,
            "<Representation id=\"{i}\" mimeType=\"video/mp4\" codecs=\"avc1.640028\" bandwidth=\"{bandwidth}\" width=\"{}\" height=\"{}\">\
             <SegmentTemplate timescale=\"1000\" duration=\"{}\" initialization=\"init-$RepresentationID$.m4s\" \
             media=\"seg-$RepresentationID$-$Number%05d$.m4s\" startNumber=\"1\"/></Representation>",
            r.width,
            r.height,
            SEGMENT_SECS * 1000
        );
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" \
         profiles=\"urn:mpeg:dash:profile:isoff-live:2011\" type=\"static\" \
         mediaPresentationDuration=\"PT{}S\" minBufferTime=\"PT4S\"><Period id=\"0\" start=\"PT0S\">\
         <AdaptationSet id=\"0\" contentType=\"video\" segmentAlignment=\"true\">{reps}</AdaptationSet></Period></MPD>\n",
        segments * SEGMENT_SECS
    )
}

/// Writes the catalog under `root` (a directory per title) and `root/catalog.json` for
/// `strata catalog import`.
pub fn write(root: &Path, plan: &SyntheticPlan) -> std::io::Result<SyntheticCatalog> {
    let segments = plan.duration_secs.div_ceil(SEGMENT_SECS).max(1);
    let mut filler = Filler(plan.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut made = SyntheticCatalog {
        titles: Vec::new(),
        files: 0,
        bytes: 0,
    };
    let mut catalog = Vec::new();
    for t in 0..plan.titles {
        let name = format!("t{t:04}");
        let dir = root.join(&name);
        std::fs::create_dir_all(&dir)?;
        let mut put = |file: &str, data: &[u8]| -> std::io::Result<()> {
            std::fs::File::create(dir.join(file))?.write_all(data)?;
            made.files += 1;
            made.bytes += data.len() as u64;
            Ok(())
        };
        put("master.m3u8", master_playlist().as_bytes())?;
        put("manifest.mpd", mpd(segments).as_bytes())?;
        for (i, r) in LADDER.iter().enumerate() {
            put(&format!("media_{i}.m3u8"), media_playlist(i, segments).as_bytes())?;
            put(&format!("init-{i}.m4s"), &filler.bytes(800))?;
            for k in 1..=segments {
                // Sizes vary by ±10%, as encoded segments do.
                let jitter = 90 + filler.next() % 21;
                put(
                    &format!("seg-{i}-{k:05}.m4s"),
                    &filler.bytes(r.bytes_per_4s * jitter / 100),
                )?;
            }
        }
        catalog.push(Title {
            id: name.clone(),
            name: format!("Synthetic title {t}"),
            synopsis: "Random bytes sized like a three-rung ladder, for load tests.".into(),
            genres: vec!["Synthetic".into()],
            cast: Vec::new(),
            year: 2026,
            runtime_min: (segments * SEGMENT_SECS).div_ceil(60),
            artwork: String::new(),
            hls: format!("/{name}/master.m3u8"),
            dash: format!("/{name}/manifest.mpd"),
            renditions: LADDER
                .iter()
                .enumerate()
                .map(|(i, r)| Rendition {
                    id: i.to_string(),
                    codec: "avc1.640028".into(),
                    width: r.width,
                    height: r.height,
                    bitrate: r.bytes_per_4s * 8 / u64::from(SEGMENT_SECS),
                })
                .collect(),
            licensing: Licensing::default(),
        });
        made.titles.push(name);
    }
    let file = CatalogFile {
        version: CATALOG_VERSION,
        titles: catalog,
    };
    std::fs::write(
        root.join("catalog.json"),
        serde_json::to_vec_pretty(&file).expect("catalogs serialize"),
    )?;
    Ok(made)
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn manifests_parse_and_agree_on_the_segments() {
        let master = m3u8_rs::parse_master_playlist_res(master_playlist().as_bytes()).unwrap();
        assert_eq!(master.variants.len(), 3);
        assert_eq!(master.variants[2].resolution.unwrap().height, 1080);
        let media = m3u8_rs::parse_media_playlist_res(media_playlist(1, 5).as_bytes()).unwrap();
        assert_eq!(media.segments.len(), 5);
        assert_eq!(media.segments[4].uri, "seg-1-00005.m4s");
        assert!(media.end_list);
        let mpd = dash_mpd_core::parse(&mpd(5)).unwrap();
        assert_eq!(mpd.periods[0].adaptations[0].representations.len(), 3);
        assert_eq!(mpd.mediaPresentationDuration.unwrap().as_secs(), 20);
    }

    #[test]
    fn titles_are_written_with_sizes_like_real_segments() {
        let dir = tempfile::tempdir().unwrap();
        let made = write(
            dir.path(),
            &SyntheticPlan {
                titles: 2,
                duration_secs: 10,
                seed: 1,
            },
        )
        .unwrap();
        assert_eq!(made.titles, ["t0000", "t0001"]);
        // Per title: master, MPD, and per rung a playlist, an init section and 3 segments.
        assert_eq!(made.files, 2 * (2 + 3 * (2 + 3)));
        let seg = std::fs::metadata(dir.path().join("t0001/seg-2-00003.m4s"))
            .unwrap()
            .len();
        assert!((2_250_000..=2_750_000).contains(&seg), "{seg}");
        let a = std::fs::read(dir.path().join("t0000/seg-0-00001.m4s")).unwrap();
        let b = std::fs::read(dir.path().join("t0000/seg-0-00002.m4s")).unwrap();
        assert_ne!(a[..64], b[..64], "segments differ");
        let catalog: CatalogFile =
            serde_json::from_slice(&std::fs::read(dir.path().join("catalog.json")).unwrap()).unwrap();
        assert_eq!(catalog.titles.len(), 2);
        assert_eq!(catalog.titles[1].hls, "/t0001/master.m3u8");
    }
}
