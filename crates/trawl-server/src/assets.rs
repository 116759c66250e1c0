//! The web UI's files, compiled into the binary.
//!
//! Everything under `crates/trawl-server/ui/` (the page, its ES modules
//! under `js/`, its style, and the unmodified vendored libraries under
//! `vendor/`, see `ui/VENDORED.md`) is embedded with `include_dir` and
//! served at `/` (the page) and `/ui/PATH`. No Node.js is needed to build or
//! run trawl: the page loads the modules through an import map.
//!
//! Each file is compressed once, on first use (or by [`warm`] at start),
//! with brotli and gzip; a request gets the smallest encoding its
//! `Accept-Encoding` allows, an `ETag` (a hash of the file) and `no-cache`,
//! so a reload costs a 304 and an upgrade is never served stale files.
//!
//! Every UI response carries [`ui_csp`]: scripts from this origin plus the
//! page's import map (allowed by its hash), requests to this origin only,
//! never framed. The files hold no data; the guard lets them through
//! without a token (`guard::policy`), and their queries need the read role.

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use include_dir::{Dir, include_dir};
use sha2::{Digest, Sha256};

/// Where the UI's files are served (`/ui/js/main.js`, …).
pub const UI_PREFIX: &str = "/ui/";

/// The page served at `/`.
const INDEX: &str = "index.html";

static UI: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/ui");

/// One file with its encodings.
struct Asset {
    content_type: &'static str,
    etag: HeaderValue,
    identity: &'static [u8],
    gzip: Vec<u8>,
    brotli: Vec<u8>,
}

static ASSETS: LazyLock<HashMap<String, Asset>> = LazyLock::new(|| {
    let mut assets = HashMap::new();
    collect(&UI, &mut assets);
    assets
});

static CSP: LazyLock<String> = LazyLock::new(|| {
    let page = UI
        .get_file(INDEX)
        .and_then(|f| f.contents_utf8())
        .unwrap_or("");
    let hashes: String = inline_scripts(page)
        .map(|script| {
            let digest = Sha256::digest(script.as_bytes());
            format!(
                " 'sha256-{}'",
                base64::engine::general_purpose::STANDARD.encode(digest)
            )
        })
        .collect();
    format!(
        "default-src 'none'; script-src 'self'{hashes}; style-src 'self'; \
         style-src-attr 'unsafe-inline'; \
         connect-src 'self'; img-src 'self' data:; font-src 'self'; base-uri 'none'; \
         form-action 'none'; frame-ancestors 'none'"
    )
});

/// The UI's Content-Security-Policy: its own scripts and styles, the
/// page's inline import map by hash, requests to its own origin only,
/// never framed. Inline `style` attributes are allowed (ECharts writes its
/// tooltips as markup with them; an attribute cannot run script), inline
/// `<style>` elements and every inline script but the import map are not.
pub fn ui_csp() -> &'static str {
    &CSP
}

/// Compresses every file now (call once at start, off the async threads),
/// so the first visitor does not wait for it.
pub fn warm() {
    LazyLock::force(&ASSETS);
    LazyLock::force(&CSP);
}

/// The text of each inline `<script>` of `page` (the import map).
fn inline_scripts(page: &str) -> impl Iterator<Item = &str> {
    page.split("<script").skip(1).filter_map(|rest| {
        let (tag, body) = rest.split_once('>')?;
        if tag.contains("src=") {
            return None;
        }
        body.split_once("</script>").map(|(script, _)| script)
    })
}

fn collect(dir: &'static Dir<'static>, assets: &mut HashMap<String, Asset>) {
    for file in dir.files() {
        let path = file.path().to_string_lossy().replace('\\', "/");
        let identity = file.contents();
        let digest = Sha256::digest(identity);
        let etag = format!("\"{}\"", hex_prefix(&digest));
        assets.insert(
            path.clone(),
            Asset {
                content_type: content_type(&path),
                etag: HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"0\"")),
                identity,
                gzip: gzip(identity),
                brotli: brotli(identity),
            },
        );
    }
    for sub in dir.dirs() {
        collect(sub, assets);
    }
}

fn hex_prefix(digest: &[u8]) -> String {
    digest[..12].iter().map(|b| format!("{b:02x}")).collect()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(data);
    encoder.finish().unwrap_or_default()
}

fn brotli(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() / 3);
    let params = brotli::enc::BrotliEncoderParams {
        quality: 9,
        lgwin: 22,
        ..Default::default()
    };
    let mut input = data;
    match brotli::BrotliCompress(&mut input, &mut out, &params) {
        Ok(_) => out,
        Err(_) => Vec::new(),
    }
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("json") => "application/json",
        _ => "text/plain; charset=utf-8",
    }
}

/// Which encoding `accept` (an `Accept-Encoding` value) takes, best first:
/// `br`, then `gzip`, else none. A coding with `q=0` is refused.
pub fn chosen_encoding(accept: &str) -> Option<&'static str> {
    let takes = |name: &str| {
        accept.split(',').any(|part| {
            let mut pieces = part.split(';').map(str::trim);
            let coding = pieces.next().unwrap_or("");
            let refused = pieces.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            coding.eq_ignore_ascii_case(name) && !refused
        })
    };
    ["br", "gzip"].into_iter().find(|name| takes(name))
}

/// `GET /`: the page.
pub async fn index(headers: HeaderMap) -> Response {
    respond(INDEX, &headers)
}

/// `GET /ui/{*path}`: one of the UI's files.
pub async fn file(Path(path): Path<String>, headers: HeaderMap) -> Response {
    respond(&path, &headers)
}

fn respond(path: &str, headers: &HeaderMap) -> Response {
    let Some(asset) = ASSETS.get(path) else {
        return crate::routes::error(StatusCode::NOT_FOUND, format!("no UI file {path:?}"));
    };
    let mut response = if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|tag| tag == asset.etag)
    {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let accept = headers
            .get(header::ACCEPT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let (body, encoding) = match chosen_encoding(accept) {
            Some("br") if !asset.brotli.is_empty() => (asset.brotli.clone(), Some("br")),
            Some("br" | "gzip") if !asset.gzip.is_empty() => (asset.gzip.clone(), Some("gzip")),
            _ => (asset.identity.to_vec(), None),
        };
        let mut response = body.into_response();
        if let Some(encoding) = encoding {
            response
                .headers_mut()
                .insert(header::CONTENT_ENCODING, HeaderValue::from_static(encoding));
        }
        response
    };
    let out = response.headers_mut();
    out.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    if let Ok(csp) = HeaderValue::from_str(ui_csp()) {
        out.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    out.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    out.insert(header::ETAG, asset.etag.clone());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_are_chosen_by_preference_and_q_zero_refuses() {
        assert_eq!(chosen_encoding("gzip, deflate, br, zstd"), Some("br"));
        assert_eq!(chosen_encoding("gzip"), Some("gzip"));
        assert_eq!(chosen_encoding("br;q=0, gzip;q=0.5"), Some("gzip"));
        assert_eq!(chosen_encoding("identity"), None);
        assert_eq!(chosen_encoding(""), None);
    }

    #[test]
    fn every_file_round_trips_through_both_encodings() {
        for (path, asset) in ASSETS.iter() {
            let mut inflated = Vec::new();
            std::io::Read::read_to_end(
                &mut flate2::read::GzDecoder::new(&asset.gzip[..]),
                &mut inflated,
            )
            .unwrap();
            assert_eq!(inflated, asset.identity, "{path} gzip");
            let mut decoded = Vec::new();
            brotli::BrotliDecompress(&mut &asset.brotli[..], &mut decoded).unwrap();
            assert_eq!(decoded, asset.identity, "{path} brotli");
        }
        assert!(ASSETS.contains_key(INDEX));
        assert!(ASSETS.contains_key("vendor/echarts/echarts.esm.min.mjs"));
    }

    #[test]
    fn the_import_map_is_allowed_by_hash_and_nothing_else_inline() {
        let page = UI.get_file(INDEX).unwrap().contents_utf8().unwrap();
        let scripts: Vec<&str> = inline_scripts(page).collect();
        assert_eq!(scripts.len(), 1, "one inline script: the import map");
        assert!(scripts[0].contains("\"imports\""));
        assert!(ui_csp().contains("'sha256-"));
        let script_src = ui_csp()
            .split(';')
            .find(|d| d.trim().starts_with("script-src"))
            .unwrap();
        assert!(!script_src.contains("unsafe"), "{script_src}");
        assert!(!ui_csp().contains("style-src 'self' 'unsafe"));
    }

    #[test]
    fn vendored_files_are_the_ones_vendored_md_names() {
        let table = UI.get_file("VENDORED.md").unwrap().contents_utf8().unwrap();
        let mut checked = 0;
        let vendored = ASSETS
            .iter()
            .filter(|(path, _)| path.starts_with("vendor/") && path.ends_with(".mjs"));
        for (path, asset) in vendored {
            let hash: String = Sha256::digest(asset.identity)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            let row = table
                .lines()
                .find(|l| l.contains(&format!("`{path}`")))
                .unwrap_or_else(|| panic!("{path} is not listed in VENDORED.md"));
            assert!(
                row.contains(&hash),
                "{path}: sha256 {hash} differs from VENDORED.md"
            );
            checked += 1;
        }
        assert_eq!(checked, 6);
    }

    #[test]
    fn the_first_load_is_under_a_megabyte_compressed() {
        let total: usize = ASSETS
            .iter()
            .filter(|(path, _)| {
                path.ends_with("js") || path.ends_with("css") || path.ends_with("html")
            })
            .map(|(_, a)| a.brotli.len().min(a.gzip.len()))
            .sum();
        assert!(total < 1_000_000, "{total} bytes");
    }
}
