//! What a viewer learns from a title's manifest: the video ladder, the audio track it plays,
//! the pathways (CDNs) the manifest names, and its Content Steering server. HLS master
//! playlists (m3u8-rs) and DASH MPDs (dash-mpd-core, `SegmentTemplate` with `$Number$` and a
//! fixed duration) alike.

use anyhow::{Context, bail};
use std::collections::BTreeMap;

/// A track's segments on one pathway, `(URL, seconds)` in order, and its init section.
pub type SegmentList = (Vec<(String, f64)>, Option<String>);

/// The pathway of a manifest that names none (HLS's default `PATHWAY-ID`).
pub const DEFAULT_PATHWAY: &str = ".";

/// Where a track's segments are listed.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// HLS: the media playlist's URL on each pathway the master names; fetched when the track
    /// is first played on a pathway.
    Playlist(BTreeMap<String, String>),
    /// DASH: segment references (with their seconds) and the init section, relative to the
    /// BaseURL of the pathway played; known from the MPD alone.
    Template {
        /// `(reference, seconds)` in order.
        segments: Vec<(String, f64)>,
        /// The init section's reference.
        init: Option<String>,
    },
}

/// One video rendition or the audio track.
#[derive(Debug, Clone, PartialEq)]
pub struct Track {
    /// Declared bandwidth, bit/s.
    pub bandwidth: u64,
    /// Where its segments are listed.
    pub source: Source,
}

/// A manifest's Content Steering tag (HLS `EXT-X-CONTENT-STEERING`, DASH `ContentSteering`).
#[derive(Debug, Clone, PartialEq)]
pub struct SteeringTag {
    /// The steering manifest's URL, resolved against the manifest's.
    pub server_uri: String,
    /// The pathway to start on until the steering manifest says otherwise.
    pub pathway: Option<String>,
}

/// A title as one viewer plays it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Presentation {
    /// Video renditions, lowest bandwidth first.
    pub video: Vec<Track>,
    /// The audio track played beside the video; `None` when audio is muxed in (or absent).
    pub audio: Option<Track>,
    /// The pathways the manifest names, in its order.
    pub pathways: Vec<String>,
    /// DASH: each pathway's BaseURL (HLS: empty; its URLs are per track).
    pub bases: BTreeMap<String, String>,
    /// Content Steering, when the manifest names a steering server.
    pub steering: Option<SteeringTag>,
    /// Whether it came from a DASH MPD.
    pub dash: bool,
}

impl Presentation {
    /// Parses the manifest at `url`: a DASH MPD when its path ends in `.mpd`, else an HLS
    /// master playlist.
    pub fn parse(url: &str, text: &[u8]) -> anyhow::Result<Self> {
        if url.split('?').next().unwrap_or_default().ends_with(".mpd") {
            parse_mpd(url, text)
        } else {
            parse_master(url, text)
        }
    }

    /// The pathway to start on: the steering tag's, else the manifest's first.
    pub fn initial_pathway(&self) -> String {
        self.steering
            .as_ref()
            .and_then(|s| s.pathway.clone())
            .filter(|p| self.pathways.contains(p))
            .unwrap_or_else(|| self.pathways[0].clone())
    }

    /// `track`'s media playlist URL on `pathway` (one the manifest names), HLS only.
    pub fn playlist_url(&self, track: &Track, pathway: &str) -> Option<String> {
        match &track.source {
            Source::Playlist(urls) => urls.get(pathway).cloned(),
            Source::Template { .. } => None,
        }
    }
}

/// An HLS master playlist: the variants of each pathway (`PATHWAY-ID`), the audio rendition
/// of their `AUDIO` group (the `DEFAULT=YES` one, else the first with a URI), and the steering
/// tag.
fn parse_master(url: &str, text: &[u8]) -> anyhow::Result<Presentation> {
    use m3u8_rs::{AlternativeMediaType, QuotedOrUnquoted};
    let master = match m3u8_rs::parse_playlist_res(text) {
        Ok(m3u8_rs::Playlist::MasterPlaylist(m)) => m,
        Ok(_) => bail!("{url}: a media playlist, not a master playlist"),
        Err(e) => bail!("{url}: not an HLS playlist: {e}"),
    };
    let attr = |attrs: &Option<std::collections::HashMap<String, QuotedOrUnquoted>>, name: &str| {
        attrs
            .as_ref()
            .and_then(|a| a.get(name))
            .map(|v| v.as_str().to_string())
    };
    // Variants by pathway, each pathway's ladder ascending.
    let mut pathways: Vec<String> = Vec::new();
    let mut ladders: BTreeMap<String, Vec<&m3u8_rs::VariantStream>> = BTreeMap::new();
    for v in master.variants.iter().filter(|v| !v.is_i_frame) {
        let pathway = attr(&v.other_attributes, "PATHWAY-ID").unwrap_or_else(|| DEFAULT_PATHWAY.into());
        if !pathways.contains(&pathway) {
            pathways.push(pathway.clone());
        }
        ladders.entry(pathway).or_default().push(v);
    }
    if pathways.is_empty() {
        bail!("{url}: no variant streams");
    }
    for ladder in ladders.values_mut() {
        ladder.sort_by_key(|v| v.bandwidth);
    }
    let first = &ladders[&pathways[0]];
    // A pathway whose ladder differs from the first one's cannot stand in for it.
    pathways.retain(|p| {
        ladders[p].len() == first.len()
            && ladders[p]
                .iter()
                .zip(first)
                .all(|(a, b)| a.bandwidth == b.bandwidth)
    });
    let mut video = Vec::new();
    for (i, v) in first.iter().enumerate() {
        let mut urls = BTreeMap::new();
        for p in &pathways {
            urls.insert(p.clone(), resolve(url, &ladders[p][i].uri)?);
        }
        video.push(Track {
            bandwidth: v.bandwidth,
            source: Source::Playlist(urls),
        });
    }
    // The audio rendition of each pathway's AUDIO group.
    let mut audio_urls = BTreeMap::new();
    let mut audio_bandwidth = 0;
    for p in &pathways {
        let Some(group) = ladders[p].last().and_then(|v| v.audio.clone()) else {
            continue;
        };
        let in_group: Vec<_> = master
            .alternatives
            .iter()
            .filter(|m| m.media_type == AlternativeMediaType::Audio && m.group_id == group && m.uri.is_some())
            .collect();
        let Some(chosen) = in_group.iter().find(|m| m.default).or(in_group.first()) else {
            continue; // audio muxed into the video
        };
        audio_urls.insert(
            p.clone(),
            resolve(url, chosen.uri.as_deref().unwrap_or_default())?,
        );
        audio_bandwidth = attr(&chosen.other_attributes, "BANDWIDTH")
            .and_then(|b| b.parse().ok())
            .unwrap_or(128_000);
    }
    let audio = (!audio_urls.is_empty()).then_some(Track {
        bandwidth: audio_bandwidth,
        source: Source::Playlist(audio_urls),
    });
    let steering = master
        .unknown_tags
        .iter()
        .find(|t| t.tag == "X-CONTENT-STEERING")
        .map(|t| steering_attributes(url, t.rest.as_deref().unwrap_or_default()))
        .transpose()?;
    Ok(Presentation {
        video,
        audio,
        pathways,
        bases: BTreeMap::new(),
        steering,
        dash: false,
    })
}

/// `SERVER-URI` and `PATHWAY-ID` of an `EXT-X-CONTENT-STEERING` tag.
fn steering_attributes(url: &str, rest: &str) -> anyhow::Result<SteeringTag> {
    let mut server_uri = None;
    let mut pathway = None;
    // Attribute values here are quoted strings without commas inside the quotes, or plain.
    let mut rest = rest;
    while !rest.is_empty() {
        let Some((name, after)) = rest.split_once('=') else {
            break;
        };
        let (value, next) = match after.strip_prefix('"') {
            Some(quoted) => {
                let end = quoted
                    .find('"')
                    .with_context(|| format!("{url}: unterminated {name}"))?;
                (&quoted[..end], quoted[end + 1..].trim_start_matches(','))
            }
            None => after.split_once(',').unwrap_or((after, "")),
        };
        match name.trim() {
            "SERVER-URI" => server_uri = Some(resolve(url, value)?),
            "PATHWAY-ID" => pathway = Some(value.to_string()),
            _ => {}
        }
        rest = next;
    }
    Ok(SteeringTag {
        server_uri: server_uri
            .with_context(|| format!("{url}: EXT-X-CONTENT-STEERING without SERVER-URI"))?,
        pathway,
    })
}

/// A DASH MPD: the video representations and the best audio representation of the first
/// period, each pathway's BaseURL (`serviceLocation`), and `ContentSteering`.
fn parse_mpd(url: &str, text: &[u8]) -> anyhow::Result<Presentation> {
    let text = std::str::from_utf8(text).map_err(|_| anyhow::anyhow!("{url}: not UTF-8"))?;
    let mpd = dash_mpd_core::parse(text).map_err(|e| anyhow::anyhow!("{url}: not a DASH MPD: {e}"))?;
    let period = mpd
        .periods
        .first()
        .ok_or_else(|| anyhow::anyhow!("{url}: no period"))?;
    let length = period
        .duration
        .or(mpd.mediaPresentationDuration)
        .ok_or_else(|| anyhow::anyhow!("{url}: no duration"))?
        .as_secs_f64();
    // Segment URLs hang off the BaseURL of the pathway played, else the MPD's own URL.
    let mut pathways = Vec::new();
    let mut bases = BTreeMap::new();
    for b in &mpd.base_url {
        let id = b
            .serviceLocation
            .clone()
            .unwrap_or_else(|| DEFAULT_PATHWAY.into());
        if !bases.contains_key(&id) {
            bases.insert(id.clone(), resolve(url, &b.base)?);
            pathways.push(id);
        }
    }
    if pathways.is_empty() {
        pathways.push(DEFAULT_PATHWAY.into());
        bases.insert(DEFAULT_PATHWAY.into(), url.to_string());
    }
    let mut video = Vec::new();
    let mut audio: Option<Track> = None;
    for set in &period.adaptations {
        for rep in &set.representations {
            let mime = rep
                .mimeType
                .as_deref()
                .or(set.mimeType.as_deref())
                .unwrap_or_default();
            let kind = rep
                .contentType
                .as_deref()
                .or(set.contentType.as_deref())
                .unwrap_or(if mime.starts_with("video/") {
                    "video"
                } else if mime.starts_with("audio/") {
                    "audio"
                } else {
                    ""
                });
            if kind != "video" && kind != "audio" {
                continue;
            }
            let Some(t) = rep.SegmentTemplate.as_ref().or(set.SegmentTemplate.as_ref()) else {
                bail!("{url}: a representation without a SegmentTemplate");
            };
            let (Some(media), Some(duration)) = (t.media.as_deref(), t.duration) else {
                bail!("{url}: only SegmentTemplate with media and duration is played");
            };
            let seconds = duration / t.timescale.unwrap_or(1) as f64;
            let id = rep.id.as_deref().unwrap_or_default();
            let count = (length / seconds - 1e-9).ceil().max(1.0) as u64;
            let first = t.startNumber.unwrap_or(1);
            let track = Track {
                bandwidth: rep.bandwidth.unwrap_or(0),
                source: Source::Template {
                    segments: (first..first + count)
                        .map(|n| (fill_template(media, id, Some(n)), seconds))
                        .collect(),
                    init: t.initialization.as_deref().map(|i| fill_template(i, id, None)),
                },
            };
            if kind == "video" {
                video.push(track);
            } else if audio.as_ref().is_none_or(|a| track.bandwidth > a.bandwidth) {
                audio = Some(track);
            }
        }
    }
    if video.is_empty() {
        bail!("{url}: no video representations");
    }
    video.sort_by_key(|r| r.bandwidth);
    let steering = mpd_content_steering(url, text)?;
    Ok(Presentation {
        video,
        audio,
        pathways,
        bases,
        steering,
        dash: true,
    })
}

/// `$RepresentationID$`, `$Number$` and `$Number%0Nd$` of a segment template.
fn fill_template(template: &str, id: &str, n: Option<u64>) -> String {
    let mut s = template.replace("$RepresentationID$", id);
    if let Some(n) = n {
        s = s.replace("$Number$", &n.to_string());
        if let Some(start) = s.find("$Number%0")
            && let Some(end) = s[start + 9..].find("d$")
        {
            let width: usize = s[start + 9..start + 9 + end].parse().unwrap_or(1);
            s.replace_range(start..start + 9 + end + 2, &format!("{n:0width$}"));
        }
    }
    s
}

/// The MPD-level `<ContentSteering>` (DASH 5th edition, 5.3.1.2), which dash-mpd-core does
/// not read: its URL (the element's text) and `defaultServiceLocation`.
fn mpd_content_steering(url: &str, text: &str) -> anyhow::Result<Option<SteeringTag>> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(text);
    let mut depth = 0usize;
    loop {
        match reader.read_event().with_context(|| format!("{url}: XML"))? {
            Event::Start(e) if depth == 1 && e.local_name().as_ref() == "ContentSteering" => {
                let pathway = e
                    .try_get_attribute("defaultServiceLocation")
                    .ok()
                    .flatten()
                    .and_then(|a| {
                        a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                            .ok()
                            .map(|v| v.into_owned())
                    });
                let end = e.to_end().into_owned();
                let raw = reader
                    .read_text(end.name())
                    .with_context(|| format!("{url}: ContentSteering"))?;
                let target = quick_xml::escape::unescape(raw.trim())
                    .map_err(|e| anyhow::anyhow!("{url}: ContentSteering: {e}"))?;
                return Ok(Some(SteeringTag {
                    server_uri: resolve(url, &target)?,
                    pathway,
                }));
            }
            Event::Start(_) => depth += 1,
            Event::End(_) => depth = depth.saturating_sub(1),
            Event::Eof => return Ok(None),
            _ => {}
        }
    }
}

/// A media playlist's segments (URL, seconds) and its init section, if any.
pub fn parse_media(url: &str, text: &[u8]) -> anyhow::Result<SegmentList> {
    let media = match m3u8_rs::parse_playlist_res(text) {
        Ok(m3u8_rs::Playlist::MediaPlaylist(m)) => m,
        Ok(_) => bail!("{url}: a master playlist where a media playlist was expected"),
        Err(e) => bail!("{url}: not an HLS playlist: {e}"),
    };
    let init = media
        .segments
        .iter()
        .find_map(|s| s.map.as_ref())
        .map(|m| resolve(url, &m.uri))
        .transpose()?;
    let segments = media
        .segments
        .iter()
        .map(|s| Ok((resolve(url, &s.uri)?, f64::from(s.duration))))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if segments.is_empty() {
        bail!("{url}: no segments");
    }
    Ok((segments, init))
}

/// `reference` resolved against `base` (RFC 3986).
pub fn resolve(base: &str, reference: &str) -> anyhow::Result<String> {
    let base = reqwest::Url::parse(base).with_context(|| format!("bad URL {base}"))?;
    Ok(base
        .join(reference)
        .with_context(|| format!("bad reference {reference}"))?
        .to_string())
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn an_mpd_lists_video_audio_pathways_and_steering() {
        let mpd = br#"<?xml version="1.0"?><MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT5S">
<ContentSteering defaultServiceLocation="beta" queryBeforeStart="true">https://steer.test/v1/steering/p1?a=1&amp;b=2</ContentSteering>
<BaseURL serviceLocation="alpha">http://a.test/t/</BaseURL><BaseURL serviceLocation="beta">http://b.test/t/</BaseURL>
<Period><AdaptationSet contentType="video">
<Representation id="1" bandwidth="3000000" height="720"><SegmentTemplate timescale="1000" duration="2000" initialization="init-$RepresentationID$.m4s" media="seg-$RepresentationID$-$Number%05d$.m4s" startNumber="1"/></Representation>
<Representation id="0" bandwidth="800000" height="360"><SegmentTemplate timescale="1000" duration="2000" initialization="init-$RepresentationID$.m4s" media="seg-$RepresentationID$-$Number%05d$.m4s" startNumber="1"/></Representation>
</AdaptationSet><AdaptationSet><Representation id="3" mimeType="audio/mp4" bandwidth="128000"><SegmentTemplate timescale="1000" duration="2000" media="a-$Number$.m4s"/></Representation>
<Representation id="4" mimeType="audio/mp4" bandwidth="64000"><SegmentTemplate timescale="1000" duration="2000" media="b-$Number$.m4s"/></Representation></AdaptationSet></Period></MPD>"#;
        let p = Presentation::parse("http://e/t/manifest.mpd?token=x", mpd).unwrap();
        assert!(p.dash);
        assert_eq!(
            p.video.iter().map(|x| x.bandwidth).collect::<Vec<_>>(),
            [800_000, 3_000_000]
        );
        let Source::Template { segments, init } = &p.video[0].source else {
            panic!()
        };
        assert_eq!(init.as_deref(), Some("init-0.m4s"));
        assert_eq!(segments.len(), 3);
        assert_eq!(segments[2], ("seg-0-00003.m4s".to_string(), 2.0));
        // The best audio representation, by bandwidth.
        let audio = p.audio.as_ref().unwrap();
        assert_eq!(audio.bandwidth, 128_000);
        let Source::Template { segments, .. } = &audio.source else {
            panic!()
        };
        assert_eq!(segments[0].0, "a-1.m4s");
        assert_eq!(p.pathways, ["alpha", "beta"]);
        assert_eq!(p.bases["beta"], "http://b.test/t/");
        let steering = p.steering.as_ref().unwrap();
        assert_eq!(steering.server_uri, "https://steer.test/v1/steering/p1?a=1&b=2");
        assert_eq!(p.initial_pathway(), "beta");
        assert!(Presentation::parse("http://e/x.mpd", b"<html/>").is_err());
    }

    #[test]
    fn a_master_lists_pathways_audio_and_steering() {
        let master = b"#EXTM3U\n\
#EXT-X-CONTENT-STEERING:SERVER-URI=\"/steer?s=1\",PATHWAY-ID=\"cdn-b\"\n\
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a1\",NAME=\"en\",DEFAULT=YES,URI=\"https://a.test/audio.m3u8\"\n\
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"b1\",NAME=\"en\",DEFAULT=YES,URI=\"https://b.test/audio.m3u8\"\n\
#EXT-X-STREAM-INF:BANDWIDTH=2500000,AUDIO=\"a1\",PATHWAY-ID=\"cdn-a\"\nhttps://a.test/540p.m3u8\n\
#EXT-X-STREAM-INF:BANDWIDTH=800000,AUDIO=\"a1\",PATHWAY-ID=\"cdn-a\"\nhttps://a.test/360p.m3u8\n\
#EXT-X-STREAM-INF:BANDWIDTH=2500000,AUDIO=\"b1\",PATHWAY-ID=\"cdn-b\"\nhttps://b.test/540p.m3u8\n\
#EXT-X-STREAM-INF:BANDWIDTH=800000,AUDIO=\"b1\",PATHWAY-ID=\"cdn-b\"\nhttps://b.test/360p.m3u8\n";
        let p = Presentation::parse("http://cp.test/v1/plays/p/master.m3u8", master).unwrap();
        assert_eq!(p.pathways, ["cdn-a", "cdn-b"]);
        assert_eq!(p.video[0].bandwidth, 800_000);
        assert_eq!(
            p.playlist_url(&p.video[0], "cdn-b").unwrap(),
            "https://b.test/360p.m3u8"
        );
        assert_eq!(
            p.playlist_url(p.audio.as_ref().unwrap(), "cdn-a").unwrap(),
            "https://a.test/audio.m3u8"
        );
        let steering = p.steering.as_ref().unwrap();
        assert_eq!(steering.server_uri, "http://cp.test/steer?s=1");
        assert_eq!(p.initial_pathway(), "cdn-b");
        // No pathways, no audio group: one default pathway and muxed audio.
        let plain = b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=800000\n360p/index.m3u8\n";
        let p = Presentation::parse("http://e/t/master.m3u8", plain).unwrap();
        assert_eq!(p.pathways, [DEFAULT_PATHWAY]);
        assert_eq!(
            p.playlist_url(&p.video[0], ".").unwrap(),
            "http://e/t/360p/index.m3u8"
        );
        assert!(p.audio.is_none() && p.steering.is_none());
    }

    #[test]
    fn playlists_parse_and_bad_ones_are_named() {
        let media = b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:2.0,\nseg1.m4s\n#EXTINF:2.0,\nseg2.m4s\n#EXT-X-ENDLIST\n";
        let (segs, init) = parse_media("http://e/t/360p/index.m3u8", media).unwrap();
        assert_eq!(segs.len(), 2);
        assert_eq!(segs[1].0, "http://e/t/360p/seg2.m4s");
        assert_eq!(init.as_deref(), Some("http://e/t/360p/init.mp4"));
        let err = Presentation::parse("http://e/x", b"not a playlist").unwrap_err();
        assert!(err.to_string().contains("not an HLS playlist"), "{err}");
        assert!(Presentation::parse("http://e/x", media).is_err());
        let bad =
            b"#EXTM3U\n#EXT-X-CONTENT-STEERING:PATHWAY-ID=\"x\"\n#EXT-X-STREAM-INF:BANDWIDTH=1\na.m3u8\n";
        let err = Presentation::parse("http://e/x", bad).unwrap_err();
        assert!(err.to_string().contains("without SERVER-URI"), "{err}");
    }
}
