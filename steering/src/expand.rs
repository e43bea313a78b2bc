//! Which objects a pre-warm of a packaged title fills: HLS master -> media playlists ->
//! segments and init sections; DASH MPD -> every segment of every representation from its
//! `SegmentTemplate` (`$Number$` with a fixed duration). Pure text in, paths out.

/// Why a manifest could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpandError {
    /// It does not parse.
    #[error("{path}: not a valid {kind}: {reason}")]
    Unparsable {
        /// The manifest.
        path: String,
        /// What it should have been.
        kind: &'static str,
        /// The parser's complaint.
        reason: String,
    },
    /// A form this expander does not handle yet.
    #[error("{path}: {0}", path = .1)]
    Unsupported(String, String),
}

/// The directory of a path, with its trailing `/`.
pub fn dir_of(path: &str) -> &str {
    path.rfind('/').map_or("/", |i| &path[..=i])
}

/// `uri` as an absolute path, relative to the manifest at `base_path`: absolute URLs keep
/// only their path (the object is filled through each edge, whatever host the URL names).
pub fn resolve(base_path: &str, uri: &str) -> String {
    let uri = uri.split(['?', '#']).next().unwrap_or(uri);
    if let Some((_, rest)) = uri.split_once("://") {
        return rest.find('/').map_or("/".into(), |i| rest[i..].to_string());
    }
    if uri.starts_with('/') {
        return uri.to_string();
    }
    let mut parts: Vec<&str> = dir_of(base_path).split('/').filter(|p| !p.is_empty()).collect();
    for seg in uri.split('/') {
        match seg {
            "." | "" => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    format!("/{}", parts.join("/"))
}

/// The media playlists of an HLS master whose renditions are at most `max_height` tall (0:
/// all), with the alternative renditions (audio, subtitles), as absolute paths.
pub fn hls_media_playlists(
    master_path: &str,
    text: &[u8],
    max_height: u32,
) -> Result<Vec<String>, ExpandError> {
    let master = m3u8_rs::parse_master_playlist_res(text).map_err(|e| ExpandError::Unparsable {
        path: master_path.into(),
        kind: "HLS master playlist",
        reason: format!("{e:?}").chars().take(200).collect(),
    })?;
    if master.variants.is_empty() {
        return Err(ExpandError::Unparsable {
            path: master_path.into(),
            kind: "HLS master playlist",
            reason: "it lists no variant streams (a media playlist?)".into(),
        });
    }
    let fits = |v: &m3u8_rs::VariantStream| {
        max_height == 0 || v.resolution.is_none_or(|r| r.height <= u64::from(max_height))
    };
    let mut out: Vec<String> = master
        .variants
        .iter()
        .filter(|v| !v.is_i_frame && fits(v))
        .map(|v| resolve(master_path, &v.uri))
        .collect();
    out.extend(
        master
            .alternatives
            .iter()
            .filter_map(|a| a.uri.as_deref())
            .map(|u| resolve(master_path, u)),
    );
    out.dedup();
    Ok(out)
}

/// The segments and init sections of an HLS media playlist, as absolute paths.
pub fn hls_media_objects(playlist_path: &str, text: &[u8]) -> Result<Vec<String>, ExpandError> {
    let media = m3u8_rs::parse_media_playlist_res(text).map_err(|e| ExpandError::Unparsable {
        path: playlist_path.into(),
        kind: "HLS media playlist",
        reason: format!("{e:?}").chars().take(200).collect(),
    })?;
    let mut out = Vec::new();
    for seg in &media.segments {
        if let Some(map) = &seg.map {
            let p = resolve(playlist_path, &map.uri);
            if !out.contains(&p) {
                out.push(p);
            }
        }
        out.push(resolve(playlist_path, &seg.uri));
    }
    Ok(out)
}

/// Every object of a DASH MPD's representations at most `max_height` tall (0: all).
pub fn dash_objects(mpd_path: &str, text: &str, max_height: u32) -> Result<Vec<String>, ExpandError> {
    let mpd = dash_mpd_core::parse(text).map_err(|e| ExpandError::Unparsable {
        path: mpd_path.into(),
        kind: "DASH MPD",
        reason: e.to_string().chars().take(200).collect(),
    })?;
    let unsupported = |what: &str| ExpandError::Unsupported(what.to_string(), mpd_path.to_string());
    let mut out = Vec::new();
    for period in &mpd.periods {
        let length = period
            .duration
            .or(mpd.mediaPresentationDuration)
            .ok_or_else(|| unsupported("no period duration or mediaPresentationDuration"))?
            .as_secs_f64();
        for set in &period.adaptations {
            for rep in &set.representations {
                if max_height > 0 && rep.height.is_some_and(|h| h > u64::from(max_height)) {
                    continue;
                }
                let template = rep
                    .SegmentTemplate
                    .as_ref()
                    .or(set.SegmentTemplate.as_ref())
                    .or(period.SegmentTemplate.as_ref())
                    .ok_or_else(|| unsupported("a representation without a SegmentTemplate"))?;
                let id = rep.id.as_deref().unwrap_or_default();
                let bandwidth = rep.bandwidth.unwrap_or(0);
                let fill = |t: &str, number: Option<u64>, time: Option<u64>| {
                    substitute(t, id, bandwidth, number, time)
                };
                if let Some(init) = &template.initialization {
                    out.push(resolve(mpd_path, &fill(init, None, None)));
                }
                let media = template
                    .media
                    .as_deref()
                    .ok_or_else(|| unsupported("a SegmentTemplate without media"))?;
                let start = template.startNumber.unwrap_or(1);
                if let Some(timeline) = &template.SegmentTimeline {
                    // Each S is `d` long, repeated `r` more times (r = -1: up to the period's
                    // end), from `t` or from where the previous one ended.
                    let timescale = template.timescale.unwrap_or(1).max(1);
                    let end = (length * timescale as f64).round() as u64;
                    let (mut time, mut number) = (0u64, start);
                    for (i, seg) in timeline.segments.iter().enumerate() {
                        if seg.d == 0 {
                            return Err(unsupported("a SegmentTimeline entry with d=0"));
                        }
                        if let Some(t) = seg.t {
                            time = t;
                        }
                        let next_t = timeline.segments.get(i + 1).and_then(|n| n.t);
                        let repeats = match seg.r.unwrap_or(0) {
                            r if r >= 0 => r as u64,
                            _ => next_t
                                .unwrap_or(end)
                                .saturating_sub(time)
                                .div_ceil(seg.d)
                                .saturating_sub(1),
                        };
                        for _ in 0..=repeats.min(1_000_000) {
                            out.push(resolve(mpd_path, &fill(media, Some(number), Some(time))));
                            time += seg.d;
                            number += 1;
                        }
                    }
                    continue;
                }
                let timescale = template.timescale.unwrap_or(1) as f64;
                let duration = template.duration.filter(|d| *d > 0.0).ok_or_else(|| {
                    unsupported("a SegmentTemplate without a duration or a SegmentTimeline")
                })? / timescale;
                let count = (length / duration - 1e-9).ceil().max(0.0) as u64;
                for n in start..start + count {
                    out.push(resolve(mpd_path, &fill(media, Some(n), None)));
                }
            }
        }
    }
    Ok(out)
}

/// A `SegmentTemplate` string with `$RepresentationID$`, `$Bandwidth$`, `$Number$`, `$Time$`
/// (each optionally `%0Nd`-formatted) filled in.
fn substitute(template: &str, id: &str, bandwidth: u64, number: Option<u64>, time: Option<u64>) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find('$') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let Some(end) = after.find('$') else {
            out.push_str(&rest[start..]);
            return out;
        };
        let token = &after[..end];
        let (name, format) = token.split_once('%').map_or((token, None), |(n, f)| (n, Some(f)));
        let value = match name {
            "" => "$".to_string(),
            "RepresentationID" => id.to_string(),
            "Bandwidth" => bandwidth.to_string(),
            "Number" => number.map_or_else(String::new, |n| formatted(n, format)),
            "Time" => time.map_or_else(String::new, |t| formatted(t, format)),
            other => format!("${other}$"),
        };
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// `n` with an `%0Nd` width, if one is given.
fn formatted(n: u64, format: Option<&str>) -> String {
    match format
        .and_then(|f| f.strip_prefix('0'))
        .and_then(|f| f.strip_suffix('d'))
    {
        Some(width) => format!("{n:0width$}", width = width.parse().unwrap_or(1)),
        None => n.to_string(),
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn paths_resolve_like_a_player_resolves_them() {
        assert_eq!(resolve("/t/1/master.m3u8", "media_0.m3u8"), "/t/1/media_0.m3u8");
        assert_eq!(resolve("/t/1/master.m3u8", "../2/x.m4s?token=a"), "/t/2/x.m4s");
        assert_eq!(resolve("/t/1/master.m3u8", "/abs/x.m4s"), "/abs/x.m4s");
        assert_eq!(
            resolve("/t/1/master.m3u8", "https://cdn.example/t/9/x.m4s"),
            "/t/9/x.m4s"
        );
    }

    #[test]
    fn hls_expands_to_the_chosen_renditions_and_their_segments() {
        let master = b"#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"en\",URI=\"audio.m3u8\"\n\
#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360,AUDIO=\"a\"\nv360.m3u8\n\
#EXT-X-STREAM-INF:BANDWIDTH=3000000,RESOLUTION=1280x720,AUDIO=\"a\"\nv720.m3u8\n";
        assert_eq!(
            hls_media_playlists("/t/m.m3u8", master, 0).unwrap(),
            ["/t/v360.m3u8", "/t/v720.m3u8", "/t/audio.m3u8"]
        );
        assert_eq!(
            hls_media_playlists("/t/m.m3u8", master, 540).unwrap(),
            ["/t/v360.m3u8", "/t/audio.m3u8"]
        );
        let media = b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MAP:URI=\"init.m4s\"\n#EXTINF:2,\ns1.m4s\n#EXTINF:2,\ns2.m4s\n#EXT-X-ENDLIST\n";
        assert_eq!(
            hls_media_objects("/t/v360.m3u8", media).unwrap(),
            ["/t/init.m4s", "/t/s1.m4s", "/t/s2.m4s"]
        );
        assert!(matches!(
            hls_media_playlists("/t/m.m3u8", b"<html>", 0),
            Err(ExpandError::Unparsable { .. })
        ));
    }

    #[test]
    fn dash_templates_expand_to_every_numbered_segment() {
        let mpd = r#"<?xml version="1.0"?><MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT5.0S">
<Period><AdaptationSet contentType="video">
<Representation id="0" bandwidth="800000" height="360"><SegmentTemplate timescale="1000" duration="2000" initialization="init-$RepresentationID$.m4s" media="seg-$RepresentationID$-$Number%05d$.m4s" startNumber="1"/></Representation>
<Representation id="1" bandwidth="3000000" height="720"><SegmentTemplate timescale="1000" duration="2000" initialization="init-$RepresentationID$.m4s" media="seg-$RepresentationID$-$Number$.m4s" startNumber="1"/></Representation>
</AdaptationSet></Period></MPD>"#;
        let all = dash_objects("/t/manifest.mpd", mpd, 0).unwrap();
        assert_eq!(
            all,
            [
                "/t/init-0.m4s",
                "/t/seg-0-00001.m4s",
                "/t/seg-0-00002.m4s",
                "/t/seg-0-00003.m4s",
                "/t/init-1.m4s",
                "/t/seg-1-1.m4s",
                "/t/seg-1-2.m4s",
                "/t/seg-1-3.m4s"
            ]
        );
        assert_eq!(dash_objects("/t/manifest.mpd", mpd, 360).unwrap().len(), 4);
        assert!(matches!(
            dash_objects("/t/x.mpd", "nope", 0),
            Err(ExpandError::Unparsable { .. })
        ));
    }

    #[test]
    fn dash_segment_timelines_expand_by_time_and_repeat() {
        // As Shaka Packager writes them: $Time$ templates over an S list with repeats.
        let mpd = r#"<?xml version="1.0"?><MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT10S">
<Period><AdaptationSet contentType="video"><SegmentTemplate timescale="1000" initialization="v/init.mp4" media="v/$Time$.m4s">
<SegmentTimeline><S t="0" d="4000" r="1"/><S d="2000"/></SegmentTimeline></SegmentTemplate>
<Representation id="v" bandwidth="1000000" height="720"/></AdaptationSet>
<AdaptationSet contentType="audio"><SegmentTemplate timescale="48000" initialization="a/init.mp4" media="a/$Number%03d$.m4s" startNumber="0">
<SegmentTimeline><S t="0" d="96000" r="-1"/></SegmentTimeline></SegmentTemplate>
<Representation id="a" bandwidth="128000"/></AdaptationSet></Period></MPD>"#;
        let all = dash_objects("/t/m.mpd", mpd, 0).unwrap();
        assert_eq!(
            all,
            [
                "/t/v/init.mp4",
                "/t/v/0.m4s",
                "/t/v/4000.m4s",
                "/t/v/8000.m4s",
                "/t/a/init.mp4",
                "/t/a/000.m4s",
                "/t/a/001.m4s",
                "/t/a/002.m4s",
                "/t/a/003.m4s",
                "/t/a/004.m4s"
            ]
        );
    }
}
