//! Which class a path belongs to, which decides its `Cache-Control`.
//!
//! Segments are classed by extension. Manifests are classed by content, because the same
//! `.m3u8` name can be a finished VOD playlist or a sliding live window: a playlist is VOD
//! when it says it is finished (`#EXT-X-ENDLIST`, `PLAYLIST-TYPE:VOD`) or is a master
//! playlist (no segments of its own); an MPD is VOD when `type="static"` (the default).

use strata_contracts::config::origin::CacheControlConfig;

/// The classes of path that get their own `Cache-Control`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathClass {
    /// Media or init segment: bytes never change.
    Segment,
    /// A finished playlist or a static MPD.
    VodManifest,
    /// A playlist or MPD that is still growing.
    LiveManifest,
    /// Anything else.
    Other,
}

/// Manifest formats, whose class depends on their content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestKind {
    /// HLS playlist (`.m3u8`).
    Hls,
    /// DASH MPD (`.mpd`).
    Dash,
}

/// What the extension alone tells: a class, or that the content must be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByExtension {
    /// The class is known.
    Known(PathClass),
    /// A manifest: call [`classify_manifest`] on its body.
    Manifest(ManifestKind),
}

/// Classes a path by its extension.
pub fn by_extension(ext: Option<&str>) -> ByExtension {
    match ext.unwrap_or("") {
        "m3u8" => ByExtension::Manifest(ManifestKind::Hls),
        "mpd" => ByExtension::Manifest(ManifestKind::Dash),
        "m4s" | "mp4" | "m4a" | "m4v" | "cmfv" | "cmfa" | "ts" | "vtt" | "aac" => {
            ByExtension::Known(PathClass::Segment)
        }
        _ => ByExtension::Known(PathClass::Other),
    }
}

/// Classes a manifest by its body.
pub fn classify_manifest(kind: ManifestKind, body: &[u8]) -> PathClass {
    let text = String::from_utf8_lossy(body);
    let vod = match kind {
        ManifestKind::Hls => {
            let mut has_segments = false;
            let mut finished = false;
            for line in text.lines() {
                let line = line.trim();
                if line == "#EXT-X-ENDLIST" || line == "#EXT-X-PLAYLIST-TYPE:VOD" {
                    finished = true;
                } else if line.starts_with("#EXTINF") {
                    has_segments = true;
                }
            }
            finished || !has_segments
        }
        ManifestKind::Dash => !mpd_is_dynamic(&text),
    };
    if vod {
        PathClass::VodManifest
    } else {
        PathClass::LiveManifest
    }
}

/// Whether the MPD element carries `type="dynamic"` (ISO/IEC 23009-1 5.3.1.2).
fn mpd_is_dynamic(text: &str) -> bool {
    let Some(start) = text.find("<MPD") else {
        return false;
    };
    let Some(len) = text[start..].find('>') else {
        return false;
    };
    let element = &text[start..start + len];
    element.contains("type=\"dynamic\"") || element.contains("type='dynamic'")
}

/// The configured `Cache-Control` value for a class.
pub fn cache_control(config: &CacheControlConfig, class: PathClass) -> &str {
    match class {
        PathClass::Segment => &config.segment,
        PathClass::VodManifest => &config.vod_manifest,
        PathClass::LiveManifest => &config.live_manifest,
        PathClass::Other => &config.other,
    }
}

#[cfg(test)]
mod test {
    use super::*;

    const VOD_MEDIA: &str = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\nseg1.m4s\n#EXT-X-ENDLIST\n";
    const LIVE_MEDIA: &str =
        "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:7\n#EXTINF:2.0,\nseg7.m4s\n";
    const MASTER: &str = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=800000\nmedia_0.m3u8\n";

    #[test]
    fn segments_are_classed_by_extension() {
        for ext in ["m4s", "mp4", "m4a", "m4v", "ts", "vtt"] {
            assert_eq!(
                by_extension(Some(ext)),
                ByExtension::Known(PathClass::Segment),
                "{ext}"
            );
        }
        assert_eq!(by_extension(Some("json")), ByExtension::Known(PathClass::Other));
        assert_eq!(by_extension(None), ByExtension::Known(PathClass::Other));
    }

    #[test]
    fn finished_and_master_playlists_are_vod() {
        assert_eq!(
            classify_manifest(ManifestKind::Hls, VOD_MEDIA.as_bytes()),
            PathClass::VodManifest
        );
        assert_eq!(
            classify_manifest(ManifestKind::Hls, MASTER.as_bytes()),
            PathClass::VodManifest
        );
        let typed = "#EXTM3U\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXTINF:2,\na.m4s\n";
        assert_eq!(
            classify_manifest(ManifestKind::Hls, typed.as_bytes()),
            PathClass::VodManifest
        );
    }

    #[test]
    fn growing_playlist_is_live() {
        assert_eq!(
            classify_manifest(ManifestKind::Hls, LIVE_MEDIA.as_bytes()),
            PathClass::LiveManifest
        );
        let event = "#EXTM3U\n#EXT-X-PLAYLIST-TYPE:EVENT\n#EXTINF:2,\na.m4s\n";
        assert_eq!(
            classify_manifest(ManifestKind::Hls, event.as_bytes()),
            PathClass::LiveManifest
        );
    }

    #[test]
    fn mpd_type_decides() {
        let stat = r#"<?xml version="1.0"?><MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static"></MPD>"#;
        let dynamic = r#"<MPD type="dynamic" availabilityStartTime="2026-01-01T00:00:00Z"><Period/></MPD>"#;
        let untyped = r#"<MPD profiles="urn:mpeg:dash:profile:isoff-live:2011"></MPD>"#;
        assert_eq!(
            classify_manifest(ManifestKind::Dash, stat.as_bytes()),
            PathClass::VodManifest
        );
        assert_eq!(
            classify_manifest(ManifestKind::Dash, dynamic.as_bytes()),
            PathClass::LiveManifest
        );
        assert_eq!(
            classify_manifest(ManifestKind::Dash, untyped.as_bytes()),
            PathClass::VodManifest
        );
    }

    #[test]
    fn config_value_follows_class() {
        let c = CacheControlConfig::default();
        assert!(cache_control(&c, PathClass::Segment).contains("immutable"));
        assert_eq!(cache_control(&c, PathClass::LiveManifest), c.live_manifest);
    }
}
