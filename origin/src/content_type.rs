//! `Content-Type` by file extension, for the formats a video origin serves.

/// The media type for a file extension (lower case, without the dot).
pub fn for_extension(ext: Option<&str>) -> &'static str {
    match ext.unwrap_or("") {
        "m3u8" => "application/vnd.apple.mpegurl",
        "mpd" => "application/dash+xml",
        // RFC 8216/ISO BMFF: media and init segments of CMAF and fMP4.
        "m4s" => "video/iso.segment",
        "mp4" | "m4v" | "cmfv" => "video/mp4",
        "m4a" | "cmfa" => "audio/mp4",
        "aac" => "audio/aac",
        "ts" => "video/mp2t",
        "vtt" => "text/vtt",
        "json" => "application/json",
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "webp" => "image/webp",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod test {
    use super::for_extension;

    #[test]
    fn video_formats_have_their_registered_types() {
        assert_eq!(for_extension(Some("m3u8")), "application/vnd.apple.mpegurl");
        assert_eq!(for_extension(Some("mpd")), "application/dash+xml");
        assert_eq!(for_extension(Some("m4s")), "video/iso.segment");
        assert_eq!(for_extension(Some("mp4")), "video/mp4");
        assert_eq!(for_extension(Some("m4a")), "audio/mp4");
        assert_eq!(for_extension(Some("m4v")), "video/mp4");
        assert_eq!(for_extension(Some("ts")), "video/mp2t");
        assert_eq!(for_extension(Some("vtt")), "text/vtt");
        assert_eq!(for_extension(Some("json")), "application/json");
    }

    #[test]
    fn unknown_or_missing_extension_is_octet_stream() {
        assert_eq!(for_extension(Some("exe")), "application/octet-stream");
        assert_eq!(for_extension(None), "application/octet-stream");
    }
}
