//! Packaging: turning a picture and a sound into a CMAF ladder that HLS and DASH share.
//!
//! For now this makes the sample title (a synthetic test pattern and tone) with Debian's
//! `ffmpeg`: H.264/AAC renditions at 360p, 540p and 720p, 2 s fMP4 segments, one DASH MPD
//! and one HLS master playlist over the same segments. The title is built in a hidden
//! staging directory and renamed into place, so a half-written title is never served.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Name of the sample title's directory.
pub const SAMPLE_TITLE: &str = "sample";

/// One rung of the ladder.
struct Rung {
    height: u32,
    width: u32,
    kbps: u32,
}

const LADDER: [Rung; 3] = [
    Rung {
        width: 640,
        height: 360,
        kbps: 800,
    },
    Rung {
        width: 960,
        height: 540,
        kbps: 1600,
    },
    Rung {
        width: 1280,
        height: 720,
        kbps: 3000,
    },
];

/// The renditions the sample title has, as the catalog lists them: the video ladder (ids are
/// the DASH representation ids ffmpeg gives them) and the AAC audio.
pub fn sample_renditions() -> Vec<strata_contracts::api::control_plane::Rendition> {
    use strata_contracts::api::control_plane::Rendition;
    let mut out: Vec<Rendition> = LADDER
        .iter()
        .enumerate()
        .map(|(i, r)| Rendition {
            id: i.to_string(),
            // H.264 Main; level 3.0 fits 360p, 3.1 the taller rungs.
            codec: if r.height <= 360 {
                "avc1.4d401e"
            } else {
                "avc1.4d401f"
            }
            .into(),
            width: r.width,
            height: r.height,
            bitrate: u64::from(r.kbps) * 1000,
        })
        .collect();
    out.push(Rendition {
        id: LADDER.len().to_string(),
        codec: "mp4a.40.2".into(),
        width: 0,
        height: 0,
        bitrate: 128_000,
    });
    out
}

/// Segment duration, seconds.
const SEGMENT_SECS: u32 = 2;

/// Why packaging failed.
#[derive(Debug, thiserror::Error)]
pub enum PackagingError {
    /// ffmpeg is not installed.
    #[error(
        "ffmpeg was not found on PATH; install it (Debian/Ubuntu: `sudo apt-get install -y ffmpeg`) and run again"
    )]
    FfmpegMissing,
    /// ffmpeg ran and failed.
    #[error("ffmpeg failed ({status}): {stderr}")]
    Ffmpeg { status: String, stderr: String },
    /// A file operation failed.
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },
    /// The requested duration is out of range.
    #[error("duration must be between 4 and 600 seconds, not {0}")]
    Duration(u32),
}

/// Where the sample title's entry points are.
#[derive(Debug, Clone)]
pub struct SampleTitle {
    /// The title's directory.
    pub dir: PathBuf,
    /// HLS master playlist.
    pub master_playlist: PathBuf,
    /// DASH MPD.
    pub mpd: PathBuf,
}

impl SampleTitle {
    /// The title as it would be laid out under `root`.
    pub fn under(root: &Path) -> Self {
        let dir = root.join(SAMPLE_TITLE);
        Self {
            master_playlist: dir.join("master.m3u8"),
            mpd: dir.join("manifest.mpd"),
            dir,
        }
    }

    /// Whether the title is complete on disk.
    pub fn exists(&self) -> bool {
        self.master_playlist.is_file() && self.mpd.is_file()
    }
}

/// Makes the sample title under `root` (as `root/sample/`), replacing any earlier one.
pub fn make_sample_title(root: &Path, duration_secs: u32) -> Result<SampleTitle, PackagingError> {
    if !(4..=600).contains(&duration_secs) {
        return Err(PackagingError::Duration(duration_secs));
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |error| PackagingError::Io { path, error }
    };
    std::fs::create_dir_all(root).map_err(io(root))?;
    let staging = root.join(format!(".{SAMPLE_TITLE}.partial"));
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(io(&staging))?;
    }
    std::fs::create_dir_all(&staging).map_err(io(&staging))?;

    let output = Command::new("ffmpeg")
        .args(ffmpeg_args(duration_secs))
        .arg(staging.join("manifest.mpd"))
        .output()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => PackagingError::FfmpegMissing,
            _ => PackagingError::Io {
                path: "ffmpeg".into(),
                error: e,
            },
        })?;
    if !output.status.success() {
        let _ = std::fs::remove_dir_all(&staging);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
        return Err(PackagingError::Ffmpeg {
            status: output.status.to_string(),
            stderr: tail.into_iter().rev().collect::<Vec<_>>().join(" | "),
        });
    }
    let title = SampleTitle::under(root);
    if title.dir.exists() {
        std::fs::remove_dir_all(&title.dir).map_err(io(&title.dir))?;
    }
    std::fs::rename(&staging, &title.dir).map_err(io(&title.dir))?;
    Ok(title)
}

/// The ffmpeg arguments, up to the output path.
fn ffmpeg_args(duration_secs: u32) -> Vec<String> {
    let fps = 30;
    let gop = fps * SEGMENT_SECS;
    let top = &LADDER[LADDER.len() - 1];
    let mut args: Vec<String> = vec![
        "-hide_banner".into(),
        "-loglevel".into(),
        "error".into(),
        "-y".into(),
        "-f".into(),
        "lavfi".into(),
        "-i".into(),
        format!(
            "testsrc2=size={}x{}:rate={fps}:duration={duration_secs}",
            top.width, top.height
        ),
        "-f".into(),
        "lavfi".into(),
        "-i".into(),
        format!("sine=frequency=440:sample_rate=48000:duration={duration_secs}"),
    ];
    let splits: String = (0..LADDER.len()).map(|i| format!("[s{i}]")).collect();
    let scales: Vec<String> = LADDER
        .iter()
        .enumerate()
        .map(|(i, r)| format!("[s{i}]scale={}:{}[v{}]", r.width, r.height, r.height))
        .collect();
    args.push("-filter_complex".into());
    args.push(format!(
        "[0:v]split={}{splits};{}",
        LADDER.len(),
        scales.join(";")
    ));
    for r in &LADDER {
        args.extend(["-map".into(), format!("[v{}]", r.height)]);
    }
    args.extend(["-map".into(), "1:a".into()]);
    args.extend(
        [
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-profile:v",
            "main",
            "-pix_fmt",
            "yuv420p",
            "-sc_threshold",
            "0",
        ]
        .map(String::from),
    );
    args.extend([
        "-g".into(),
        gop.to_string(),
        "-x264-params".into(),
        format!("keyint={gop}:min-keyint={gop}:scenecut=0"),
    ]);
    for (i, r) in LADDER.iter().enumerate() {
        args.extend([
            format!("-b:v:{i}"),
            format!("{}k", r.kbps),
            format!("-maxrate:v:{i}"),
            format!("{}k", r.kbps * 11 / 10),
            format!("-bufsize:v:{i}"),
            format!("{}k", r.kbps * 2),
        ]);
    }
    args.extend(["-c:a", "aac", "-b:a", "128k", "-ac", "2"].map(String::from));
    args.extend(
        [
            "-f",
            "dash",
            "-use_template",
            "1",
            "-use_timeline",
            "0",
            "-init_seg_name",
            "init-$RepresentationID$.m4s",
            "-media_seg_name",
            "seg-$RepresentationID$-$Number%05d$.m4s",
            "-adaptation_sets",
            "id=0,streams=v id=1,streams=a",
            "-hls_playlist",
            "1",
            "-hls_master_name",
            "master.m3u8",
        ]
        .map(String::from),
    );
    args.extend(["-seg_duration".into(), SEGMENT_SECS.to_string()]);
    args
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn every_rung_gets_its_own_bitrate_and_the_gop_matches_the_segment() {
        let args = ffmpeg_args(20).join(" ");
        assert!(
            args.contains("-b:v:0 800k") && args.contains("-b:v:2 3000k"),
            "{args}"
        );
        assert!(args.contains("keyint=60:min-keyint=60"), "{args}");
        assert!(args.contains("split=3[s0][s1][s2]"), "{args}");
        assert!(args.contains("[s2]scale=1280:720[v720]"), "{args}");
    }

    #[test]
    fn duration_out_of_range_is_refused_before_running_anything() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            make_sample_title(dir.path(), 1),
            Err(PackagingError::Duration(1))
        ));
        assert!(!dir.path().join(SAMPLE_TITLE).exists());
    }
}
