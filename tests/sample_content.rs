//! The sample title made by `strata sample-content` with the real ffmpeg, checked with
//! parsers of the formats (m3u8-rs, dash-mpd-core) and with ffprobe, and served.

mod support;

use std::process::Command;
use support::{http1, run_strata, sample_content_root, sha256, sha256_file};

#[test]
fn hls_master_and_media_playlists_parse_and_describe_a_ladder() {
    let root = sample_content_root().join("sample");
    let master = std::fs::read(root.join("master.m3u8")).unwrap();
    let master = match m3u8_rs::parse_playlist_res(&master).unwrap() {
        m3u8_rs::Playlist::MasterPlaylist(m) => m,
        other => panic!("expected a master playlist, got {other:?}"),
    };
    let mut heights: Vec<u64> = master
        .variants
        .iter()
        .map(|v| v.resolution.unwrap().height)
        .collect();
    heights.sort();
    assert_eq!(heights, vec![360, 540, 720]);
    for v in &master.variants {
        assert!(v.codecs.as_deref().unwrap().contains("avc1"), "{:?}", v.codecs);
        assert!(v.codecs.as_deref().unwrap().contains("mp4a"));
        assert!(v.bandwidth > 500_000);
    }
    assert!(
        master
            .alternatives
            .iter()
            .any(|a| a.media_type == m3u8_rs::AlternativeMediaType::Audio)
    );

    let media_uris = master
        .variants
        .iter()
        .map(|v| v.uri.clone())
        .chain(master.alternatives.iter().filter_map(|a| a.uri.clone()));
    for uri in media_uris {
        let bytes = std::fs::read(root.join(&uri)).unwrap();
        let media = match m3u8_rs::parse_playlist_res(&bytes).unwrap() {
            m3u8_rs::Playlist::MediaPlaylist(m) => m,
            other => panic!("{uri}: expected a media playlist, got {other:?}"),
        };
        assert!(media.end_list, "{uri} is VOD");
        assert!(
            media.target_duration >= 2 && media.target_duration <= 4,
            "{uri}: {}",
            media.target_duration
        );
        let total: f32 = media.segments.iter().map(|s| s.duration).sum();
        assert!((19.0..=21.0).contains(&total), "{uri}: {total} s");
        for s in &media.segments {
            assert!(root.join(&s.uri).is_file(), "{uri}: segment {} exists", s.uri);
            assert!(s.duration <= 2.1, "{uri}: segment of {} s", s.duration);
        }
        let map = media.segments[0]
            .map
            .as_ref()
            .expect("fMP4 playlists carry EXT-X-MAP");
        assert!(root.join(&map.uri).is_file());
    }
}

#[test]
fn dash_mpd_parses_and_shares_the_segments() {
    let root = sample_content_root().join("sample");
    let text = std::fs::read_to_string(root.join("manifest.mpd")).unwrap();
    let mpd = dash_mpd_core::parse(&text).unwrap();
    assert_eq!(mpd.mpdtype.as_deref().unwrap_or("static"), "static");
    let period = &mpd.periods[0];
    let video: Vec<_> = period
        .adaptations
        .iter()
        .flat_map(|a| a.representations.iter())
        .filter(|r| r.height.is_some())
        .collect();
    assert_eq!(video.len(), 3);
    let audio = period
        .adaptations
        .iter()
        .any(|a| a.contentType.as_deref() == Some("audio") || a.mimeType.as_deref() == Some("audio/mp4"));
    assert!(audio, "an audio adaptation set");
    // The MPD's segment template names the very files the HLS playlists list.
    assert!(text.contains("seg-$RepresentationID$-$Number%05d$.m4s"), "{text}");
    assert!(root.join("seg-0-00001.m4s").is_file());
}

#[test]
fn ffprobe_sees_h264_ladder_and_aac() {
    let root = sample_content_root().join("sample");
    for (rep, codec, dims) in [
        ("0", "h264", "640x360"),
        ("1", "h264", "960x540"),
        ("2", "h264", "1280x720"),
        ("3", "aac", ""),
    ] {
        // An init segment followed by a media segment is a playable fMP4 fragment.
        let mut joined = std::fs::read(root.join(format!("init-{rep}.m4s"))).unwrap();
        joined.extend(std::fs::read(root.join(format!("seg-{rep}-00001.m4s"))).unwrap());
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), &joined).unwrap();
        let out = Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-show_entries",
                "stream=codec_name,width,height",
                "-of",
                "csv=p=0",
            ])
            .arg(file.path())
            .output()
            .expect("ffprobe is installed");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(line.starts_with(codec), "rep {rep}: {line}");
        if !dims.is_empty() {
            assert!(line.contains(&dims.replace('x', ",")), "rep {rep}: {line}");
        }
    }
}

#[tokio::test]
async fn every_file_of_the_title_is_served_byte_exact() {
    let root = sample_content_root();
    let origin = support::start_origin(&root);
    let c = http1();
    let mut count = 0;
    for entry in std::fs::read_dir(root.join("sample")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let r = c
            .get(origin.url(&format!("/sample/{name}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{name}");
        assert_eq!(sha256(&r.bytes().await.unwrap()), sha256_file(&path), "{name}");
        count += 1;
    }
    assert!(count > 40, "{count} files");
}

#[test]
fn missing_ffmpeg_is_named_with_the_install_command() {
    let dir = tempfile::tempdir().unwrap();
    let (status, _, err) = run_strata(
        &["sample-content", "--out", dir.path().to_str().unwrap()],
        &[("PATH", "/nonexistent")],
    );
    assert!(!status.success());
    assert!(err.contains("ffmpeg was not found"), "{err}");
    assert!(err.contains("apt-get install -y ffmpeg"), "{err}");
    assert!(
        !dir.path().join("sample").exists(),
        "no half-made title is left behind"
    );
}
