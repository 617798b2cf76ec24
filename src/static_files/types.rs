//! `Content-Type` by file extension: the table and its lookup.

use std::path::Path;

use super::MAX_EXTENSION_LEN;

/// The `Content-Type` value for a file name, from its extension
/// (case-insensitive), by [`CONTENT_TYPES`]; unknown or missing extensions
/// give `application/octet-stream`.
///
/// ```
/// use std::path::Path;
///
/// use catamount::static_files::content_type;
///
/// assert_eq!(content_type(Path::new("report.PDF")), "application/pdf");
/// assert_eq!(content_type(Path::new("index.html")), "text/html; charset=utf-8");
/// assert_eq!(content_type(Path::new("Makefile")), "application/octet-stream");
/// ```
pub fn content_type(path: &Path) -> &'static str {
    const OCTET_STREAM: &str = "application/octet-stream";
    let Some(ext) = path.extension().and_then(|e| e.to_str()) else {
        return OCTET_STREAM;
    };
    // Lower-cased on the stack.
    let mut lower = [0u8; MAX_EXTENSION_LEN];
    let Some(lower) = lower.get_mut(..ext.len()) else {
        return OCTET_STREAM;
    };
    lower.copy_from_slice(ext.as_bytes());
    lower.make_ascii_lowercase();
    CONTENT_TYPES
        .iter()
        .find(|(e, _)| e.as_bytes() == &*lower)
        .map_or(OCTET_STREAM, |(_, t)| t)
}

/// Extension (lower case) and `Content-Type` of the web's common types.
/// Textual types (`text/*`, JSON and XML with their `+json`/`+xml`
/// kinds, YAML, TOML) carry `; charset=utf-8` and no other type does; a
/// test holds every entry to that.
///
/// ```
/// use catamount::static_files::CONTENT_TYPES;
///
/// assert!(CONTENT_TYPES.contains(&("css", "text/css; charset=utf-8")));
/// ```
pub const CONTENT_TYPES: &[(&str, &str)] = &[
    // Text and markup.
    ("html", "text/html; charset=utf-8"),
    ("htm", "text/html; charset=utf-8"),
    ("xhtml", "application/xhtml+xml; charset=utf-8"),
    ("css", "text/css; charset=utf-8"),
    // RFC 9239 made text/javascript the one correct type for scripts.
    ("js", "text/javascript; charset=utf-8"),
    ("mjs", "text/javascript; charset=utf-8"),
    ("cjs", "text/javascript; charset=utf-8"),
    ("json", "application/json; charset=utf-8"),
    ("map", "application/json; charset=utf-8"),
    ("jsonld", "application/ld+json; charset=utf-8"),
    ("webmanifest", "application/manifest+json; charset=utf-8"),
    ("manifest", "text/cache-manifest; charset=utf-8"),
    ("appcache", "text/cache-manifest; charset=utf-8"),
    ("xml", "application/xml; charset=utf-8"),
    ("xsl", "application/xml; charset=utf-8"),
    ("rss", "application/rss+xml; charset=utf-8"),
    ("atom", "application/atom+xml; charset=utf-8"),
    ("txt", "text/plain; charset=utf-8"),
    ("text", "text/plain; charset=utf-8"),
    ("log", "text/plain; charset=utf-8"),
    ("csv", "text/csv; charset=utf-8"),
    ("tsv", "text/tab-separated-values; charset=utf-8"),
    ("md", "text/markdown; charset=utf-8"),
    ("markdown", "text/markdown; charset=utf-8"),
    ("yaml", "application/yaml; charset=utf-8"),
    ("yml", "application/yaml; charset=utf-8"),
    ("toml", "application/toml; charset=utf-8"),
    ("ics", "text/calendar; charset=utf-8"),
    ("vcf", "text/vcard; charset=utf-8"),
    ("vtt", "text/vtt; charset=utf-8"),
    ("svg", "image/svg+xml; charset=utf-8"),
    // Images.
    ("png", "image/png"),
    ("apng", "image/apng"),
    ("jpg", "image/jpeg"),
    ("jpeg", "image/jpeg"),
    ("jpe", "image/jpeg"),
    ("jfif", "image/jpeg"),
    ("gif", "image/gif"),
    ("webp", "image/webp"),
    ("avif", "image/avif"),
    ("jxl", "image/jxl"),
    ("heic", "image/heic"),
    ("heif", "image/heif"),
    ("ico", "image/x-icon"),
    ("bmp", "image/bmp"),
    ("tif", "image/tiff"),
    ("tiff", "image/tiff"),
    // Fonts.
    ("woff", "font/woff"),
    ("woff2", "font/woff2"),
    ("ttf", "font/ttf"),
    ("otf", "font/otf"),
    ("eot", "application/vnd.ms-fontobject"),
    // Archives and binaries.
    ("pdf", "application/pdf"),
    ("zip", "application/zip"),
    ("gz", "application/gzip"),
    ("tgz", "application/gzip"),
    ("tar", "application/x-tar"),
    ("br", "application/x-brotli"),
    ("bz2", "application/x-bzip2"),
    ("xz", "application/x-xz"),
    ("zst", "application/zstd"),
    ("7z", "application/x-7z-compressed"),
    ("rar", "application/vnd.rar"),
    ("jar", "application/java-archive"),
    ("wasm", "application/wasm"),
    // Audio.
    ("mp3", "audio/mpeg"),
    ("ogg", "audio/ogg"),
    ("oga", "audio/ogg"),
    ("opus", "audio/ogg"),
    ("wav", "audio/wav"),
    ("m4a", "audio/mp4"),
    ("aac", "audio/aac"),
    ("flac", "audio/flac"),
    ("weba", "audio/webm"),
    ("mid", "audio/midi"),
    ("midi", "audio/midi"),
    // Video and streaming.
    ("mp4", "video/mp4"),
    ("m4v", "video/mp4"),
    ("webm", "video/webm"),
    ("ogv", "video/ogg"),
    ("mov", "video/quicktime"),
    ("mkv", "video/x-matroska"),
    ("avi", "video/x-msvideo"),
    ("mpeg", "video/mpeg"),
    ("mpg", "video/mpeg"),
    ("m3u8", "application/vnd.apple.mpegurl"),
    ("mpd", "application/dash+xml; charset=utf-8"),
    // 3D.
    ("gltf", "model/gltf+json; charset=utf-8"),
    ("glb", "model/gltf-binary"),
    // Documents.
    ("rtf", "application/rtf"),
    ("epub", "application/epub+zip"),
    ("doc", "application/msword"),
    (
        "docx",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ),
    ("xls", "application/vnd.ms-excel"),
    (
        "xlsx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ),
    ("ppt", "application/vnd.ms-powerpoint"),
    (
        "pptx",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ),
    ("odt", "application/vnd.oasis.opendocument.text"),
    ("ods", "application/vnd.oasis.opendocument.spreadsheet"),
    ("odp", "application/vnd.oasis.opendocument.presentation"),
];
