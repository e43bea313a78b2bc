//! Per-play manifests from the packaged ones: video renditions taller than the play allows are
//! removed, segment URLs point at the CDN and carry the playback token, and the content
//! steering tag is added when steering is configured. Pure text in, text out.
//!
//! HLS needs the control plane to serve the media playlists too: a player resolves segment
//! URIs against the playlist's own URL and never carries a query along, so the token can
//! only reach segment requests by being written into each segment URI.

use m3u8_rs::{ExtTag, MasterPlaylist, MediaPlaylist};

/// Why a packaged manifest could not be turned into a play's manifest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// The packaged manifest does not parse.
    #[error("the packaged {kind} does not parse: {reason}")]
    Unparsable {
        /// `HLS master playlist`, `HLS media playlist` or `DASH MPD`.
        kind: &'static str,
        /// The parser's complaint.
        reason: String,
    },
    /// Every video rendition is taller than allowed.
    #[error("no video rendition is at most {0} pixels tall")]
    NothingPlayable(u32),
}

/// Where a play's URLs point.
#[derive(Debug, Clone)]
pub struct PlayUrls<'a> {
    /// The play's base URL at the control plane: `<public>/v1/plays/<play>`.
    pub play_base: &'a str,
    /// The CDN URL of the packaged manifest's directory, ending in `/`.
    pub cdn_dir: &'a str,
    /// The playback token.
    pub token: &'a str,
    /// Content steering server URI for this play, when steering is configured.
    pub steering: Option<&'a str>,
}

/// The pathway id of Strata's own edges in steering manifests.
pub const PATHWAY: &str = "strata";

/// The HLS master playlist of a play, and the media playlists it may fetch.
pub fn hls_master(
    packaged: &[u8],
    max_height: u32,
    urls: &PlayUrls<'_>,
) -> Result<(String, Vec<String>), ManifestError> {
    let mut master = parse_master(packaged)?;
    let allowed = allowed_media(&master, max_height)?;
    master.variants.retain(|v| allowed.iter().any(|a| a == &v.uri));
    for v in &mut master.variants {
        v.uri = format!("{}/hls/{}", urls.play_base, v.uri);
    }
    for alt in &mut master.alternatives {
        if let Some(uri) = &mut alt.uri {
            *uri = format!("{}/hls/{uri}", urls.play_base);
        }
    }
    if let Some(steering) = urls.steering {
        // Every variant on the base pathway, so that steering's clones of it find them.
        for v in &mut master.variants {
            v.other_attributes.get_or_insert_with(Default::default).insert(
                "PATHWAY-ID".into(),
                m3u8_rs::QuotedOrUnquoted::Quoted(PATHWAY.into()),
            );
        }
        master.unknown_tags.push(ExtTag {
            tag: "X-CONTENT-STEERING".into(),
            rest: Some(format!("SERVER-URI=\"{steering}\",PATHWAY-ID=\"{PATHWAY}\"")),
        });
    }
    let mut out = Vec::new();
    master.write_to(&mut out).expect("writing to a Vec");
    Ok((String::from_utf8(out).expect("m3u8-rs writes UTF-8"), allowed))
}

fn parse_master(packaged: &[u8]) -> Result<MasterPlaylist, ManifestError> {
    m3u8_rs::parse_master_playlist_res(packaged).map_err(|e| ManifestError::Unparsable {
        kind: "HLS master playlist",
        reason: short(&format!("{e:?}")),
    })
}

/// The media playlists (variant URIs, then rendition-group URIs) of a master playlist that a
/// play capped at `max_height` may fetch. Variants without a resolution (audio-only) stay.
pub fn allowed_media(master: &MasterPlaylist, max_height: u32) -> Result<Vec<String>, ManifestError> {
    let fits = |v: &m3u8_rs::VariantStream| v.resolution.is_none_or(|r| r.height <= u64::from(max_height));
    let mut allowed: Vec<String> = master
        .variants
        .iter()
        .filter(|v| !v.is_i_frame && fits(v))
        .map(|v| v.uri.clone())
        .collect();
    if allowed.is_empty() {
        return Err(ManifestError::NothingPlayable(max_height));
    }
    allowed.extend(
        master
            .variants
            .iter()
            .filter(|v| v.is_i_frame && fits(v))
            .map(|v| v.uri.clone()),
    );
    allowed.extend(master.alternatives.iter().filter_map(|a| a.uri.clone()));
    Ok(allowed)
}

/// [`allowed_media`] from the packaged master's text.
pub fn allowed_media_of(packaged_master: &[u8], max_height: u32) -> Result<Vec<String>, ManifestError> {
    allowed_media(&parse_master(packaged_master)?, max_height)
}

/// An HLS media playlist whose segment and init-section URIs point at the CDN with the token.
pub fn hls_media(packaged: &[u8], urls: &PlayUrls<'_>) -> Result<String, ManifestError> {
    let mut media: MediaPlaylist =
        m3u8_rs::parse_media_playlist_res(packaged).map_err(|e| ManifestError::Unparsable {
            kind: "HLS media playlist",
            reason: short(&format!("{e:?}")),
        })?;
    for seg in &mut media.segments {
        seg.uri = cdn_url(&seg.uri, urls);
        if let Some(map) = &mut seg.map {
            map.uri = cdn_url(&map.uri, urls);
        }
    }
    let mut out = Vec::new();
    media.write_to(&mut out).expect("writing to a Vec");
    Ok(String::from_utf8(out).expect("m3u8-rs writes UTF-8"))
}

/// A DASH MPD for a play: video representations taller than `max_height` removed, a
/// `BaseURL` at the CDN, the token on every segment template, and `<ContentSteering>` when
/// steering is configured.
pub fn dash_mpd(packaged: &str, max_height: u32, urls: &PlayUrls<'_>) -> Result<String, ManifestError> {
    let mut mpd = dash_mpd_core::parse(packaged).map_err(|e| ManifestError::Unparsable {
        kind: "DASH MPD",
        reason: short(&e.to_string()),
    })?;
    let mut video_left = 0usize;
    let mut video_seen = 0usize;
    for period in &mut mpd.periods {
        for set in &mut period.adaptations {
            let is_video = set.contentType.as_deref() == Some("video")
                || set.mimeType.as_deref().is_some_and(|m| m.starts_with("video/"));
            if is_video {
                video_seen += set.representations.len();
                set.representations
                    .retain(|r| r.height.is_none_or(|h| h <= u64::from(max_height)));
                video_left += set.representations.len();
                if let Some(h) = set.maxHeight {
                    set.maxHeight = Some(h.min(u64::from(max_height)));
                }
            }
            if let Some(t) = &mut set.SegmentTemplate {
                tokenize_template(t, urls.token);
            }
            for r in &mut set.representations {
                if let Some(t) = &mut r.SegmentTemplate {
                    tokenize_template(t, urls.token);
                }
            }
        }
        if let Some(t) = &mut period.SegmentTemplate {
            tokenize_template(t, urls.token);
        }
    }
    if video_seen > 0 && video_left == 0 {
        return Err(ManifestError::NothingPlayable(max_height));
    }
    mpd.base_url = vec![dash_mpd_core::BaseURL {
        base: urls.cdn_dir.to_string(),
        serviceLocation: urls.steering.map(|_| PATHWAY.to_string()),
        ..Default::default()
    }];
    let mut text = mpd.to_string();
    if let Some(steering) = urls.steering {
        // dash-mpd-core has no MPD-level <ContentSteering> (DASH 5th edition, 5.3.1.2), so
        // it goes in as text, before the first Period as the schema orders it.
        let element = format!(
            "<ContentSteering defaultServiceLocation=\"{PATHWAY}\" queryBeforeStart=\"true\">{}</ContentSteering>",
            xml_escape(steering)
        );
        if let Some(at) = text.find("<BaseURL") {
            text.insert_str(at, &element);
        }
    }
    Ok(text)
}

fn tokenize_template(t: &mut dash_mpd_core::SegmentTemplate, token: &str) {
    for field in [&mut t.media, &mut t.initialization] {
        if let Some(v) = field {
            *v = with_token(v, token);
        }
    }
}

/// `uri` made absolute against the CDN directory (when relative), with the token added.
fn cdn_url(uri: &str, urls: &PlayUrls<'_>) -> String {
    let absolute = if uri.contains("://") {
        uri.to_string()
    } else if let Some(path) = uri.strip_prefix('/') {
        // Root-relative: keep the CDN's scheme and host.
        let host_end = urls.cdn_dir.find("://").map_or(0, |i| i + 3);
        let host_end = urls.cdn_dir[host_end..]
            .find('/')
            .map_or(urls.cdn_dir.len(), |i| host_end + i);
        format!("{}/{path}", &urls.cdn_dir[..host_end])
    } else {
        format!("{}{uri}", urls.cdn_dir)
    };
    with_token(&absolute, urls.token)
}

fn with_token(uri: &str, token: &str) -> String {
    let sep = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{sep}{}={token}", strata_contracts::token::TOKEN_PARAM)
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('"', "&quot;")
}

fn short(s: &str) -> String {
    s.chars().take(200).collect()
}

#[cfg(test)]
mod test {
    use super::*;

    const MASTER: &str = "#EXTM3U\n#EXT-X-VERSION:7\n\
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"audio\",DEFAULT=YES,URI=\"media_3.m3u8\"\n\
#EXT-X-STREAM-INF:BANDWIDTH=932925,RESOLUTION=640x360,CODECS=\"avc1.4d401e,mp4a.40.2\",AUDIO=\"a\"\nmedia_0.m3u8\n\
#EXT-X-STREAM-INF:BANDWIDTH=1732925,RESOLUTION=960x540,CODECS=\"avc1.4d401f,mp4a.40.2\",AUDIO=\"a\"\nmedia_1.m3u8\n\
#EXT-X-STREAM-INF:BANDWIDTH=3132925,RESOLUTION=1280x720,CODECS=\"avc1.4d401f,mp4a.40.2\",AUDIO=\"a\"\nmedia_2.m3u8\n";

    const MEDIA: &str = "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:1\n\
#EXT-X-MAP:URI=\"init-0.m4s\"\n#EXTINF:2.000000,\nseg-0-00001.m4s\n#EXTINF:2.000000,\nseg-0-00002.m4s\n#EXT-X-ENDLIST\n";

    fn urls(steering: Option<&'static str>) -> PlayUrls<'static> {
        PlayUrls {
            play_base: "http://cp.test/v1/plays/p1",
            cdn_dir: "http://edge.test:8081/sample/",
            token: "v1.abc.def",
            steering,
        }
    }

    #[test]
    fn the_master_keeps_only_renditions_that_fit_and_points_at_the_play() {
        let (text, allowed) = hls_master(MASTER.as_bytes(), 540, &urls(None)).unwrap();
        assert_eq!(allowed, ["media_0.m3u8", "media_1.m3u8", "media_3.m3u8"]);
        let parsed = m3u8_rs::parse_master_playlist_res(text.as_bytes()).unwrap();
        let heights: Vec<u64> = parsed
            .variants
            .iter()
            .map(|v| v.resolution.unwrap().height)
            .collect();
        assert_eq!(heights, [360, 540]);
        assert_eq!(
            parsed.variants[0].uri,
            "http://cp.test/v1/plays/p1/hls/media_0.m3u8"
        );
        assert_eq!(
            parsed.alternatives[0].uri.as_deref(),
            Some("http://cp.test/v1/plays/p1/hls/media_3.m3u8")
        );
        assert!(!text.contains("CONTENT-STEERING"));
        assert_eq!(
            hls_master(MASTER.as_bytes(), 300, &urls(None)),
            Err(ManifestError::NothingPlayable(300))
        );
    }

    #[test]
    fn the_master_names_the_steering_server_when_there_is_one() {
        let (text, _) = hls_master(
            MASTER.as_bytes(),
            2160,
            &urls(Some("http://steer.test/v1/steering/p1")),
        )
        .unwrap();
        assert!(
            text.contains("#EXT-X-CONTENT-STEERING:SERVER-URI=\"http://steer.test/v1/steering/p1\",PATHWAY-ID=\"strata\""),
            "{text}"
        );
        assert_eq!(
            text.matches("PATHWAY-ID=\"strata\"").count(),
            1 + 3,
            "the tag and every variant: {text}"
        );
    }

    #[test]
    fn media_segments_point_at_the_cdn_with_the_token() {
        let text = hls_media(MEDIA.as_bytes(), &urls(None)).unwrap();
        let parsed = m3u8_rs::parse_media_playlist_res(text.as_bytes()).unwrap();
        assert_eq!(parsed.segments.len(), 2);
        assert_eq!(
            parsed.segments[0].uri,
            "http://edge.test:8081/sample/seg-0-00001.m4s?token=v1.abc.def"
        );
        assert_eq!(
            parsed.segments[0].map.as_ref().unwrap().uri,
            "http://edge.test:8081/sample/init-0.m4s?token=v1.abc.def"
        );
        assert!(parsed.end_list);
    }

    #[test]
    fn root_relative_and_absolute_uris_keep_their_path() {
        let u = urls(None);
        assert_eq!(
            cdn_url("/other/a.m4s", &u),
            "http://edge.test:8081/other/a.m4s?token=v1.abc.def"
        );
        assert_eq!(
            cdn_url("http://x.test/a.m4s?k=1", &u),
            "http://x.test/a.m4s?k=1&token=v1.abc.def"
        );
    }

    const MPD: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" profiles="urn:mpeg:dash:profile:isoff-live:2011" type="static" mediaPresentationDuration="PT20.0S" minBufferTime="PT4.0S">
  <Period id="0" start="PT0.0S">
    <AdaptationSet id="0" contentType="video" maxWidth="1280" maxHeight="720">
      <Representation id="0" mimeType="video/mp4" codecs="avc1.4d401e" bandwidth="800000" width="640" height="360">
        <SegmentTemplate timescale="1000000" duration="2000000" initialization="init-$RepresentationID$.m4s" media="seg-$RepresentationID$-$Number%05d$.m4s" startNumber="1"/>
      </Representation>
      <Representation id="2" mimeType="video/mp4" codecs="avc1.4d401f" bandwidth="3000000" width="1280" height="720">
        <SegmentTemplate timescale="1000000" duration="2000000" initialization="init-$RepresentationID$.m4s" media="seg-$RepresentationID$-$Number%05d$.m4s" startNumber="1"/>
      </Representation>
    </AdaptationSet>
    <AdaptationSet id="1" contentType="audio">
      <Representation id="3" mimeType="audio/mp4" codecs="mp4a.40.2" bandwidth="128000">
        <SegmentTemplate timescale="1000000" duration="2000000" initialization="init-$RepresentationID$.m4s" media="seg-$RepresentationID$-$Number%05d$.m4s" startNumber="1"/>
      </Representation>
    </AdaptationSet>
  </Period>
</MPD>"#;

    #[test]
    fn the_mpd_keeps_fitting_video_and_tokenizes_every_template() {
        let text = dash_mpd(MPD, 540, &urls(None)).unwrap();
        let mpd = dash_mpd_core::parse(&text).unwrap();
        assert_eq!(mpd.base_url[0].base, "http://edge.test:8081/sample/");
        let sets = &mpd.periods[0].adaptations;
        let video: Vec<_> = sets[0]
            .representations
            .iter()
            .map(|r| r.height.unwrap())
            .collect();
        assert_eq!(video, [360]);
        assert_eq!(sets[0].maxHeight, Some(540));
        assert_eq!(sets[1].representations.len(), 1, "audio stays");
        for r in sets.iter().flat_map(|s| &s.representations) {
            let t = r.SegmentTemplate.as_ref().unwrap();
            assert_eq!(
                t.media.as_deref(),
                Some("seg-$RepresentationID$-$Number%05d$.m4s?token=v1.abc.def")
            );
            assert_eq!(
                t.initialization.as_deref(),
                Some("init-$RepresentationID$.m4s?token=v1.abc.def")
            );
        }
        assert!(!text.contains("ContentSteering"));
        assert_eq!(
            dash_mpd(MPD, 300, &urls(None)),
            Err(ManifestError::NothingPlayable(300))
        );
    }

    #[test]
    fn the_mpd_names_the_steering_server_when_there_is_one() {
        let text = dash_mpd(MPD, 2160, &urls(Some("http://steer.test/v1/steering/p1?a=1&b=2"))).unwrap();
        assert!(
            text.contains(r#"<ContentSteering defaultServiceLocation="strata" queryBeforeStart="true">http://steer.test/v1/steering/p1?a=1&amp;b=2</ContentSteering><BaseURL serviceLocation="strata">"#),
            "{text}"
        );
        assert!(dash_mpd_core::parse(&text).is_ok());
    }

    #[test]
    fn bad_packaged_manifests_are_named() {
        assert!(matches!(
            hls_master(b"not a playlist", 720, &urls(None)),
            Err(ManifestError::Unparsable {
                kind: "HLS master playlist",
                ..
            })
        ));
        assert!(matches!(
            dash_mpd("<html>", 720, &urls(None)),
            Err(ManifestError::Unparsable { kind: "DASH MPD", .. })
        ));
    }
}
