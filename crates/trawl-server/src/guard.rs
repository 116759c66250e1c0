//! The checks every request passes before a handler sees it, in order:
//!
//! 1. **Host** (DNS rebinding): a loopback name (`localhost`,
//!    `*.localhost`), any IP literal (a rebinding page can only make the
//!    browser send its own *name*), or a `[server] public_hosts` entry;
//!    otherwise `421`.
//! 2. **Origin** (cross-site requests): absent (not a browser, or a
//!    same-origin navigation), the server's own origin, or a `[server]
//!    allowed_origins` entry; otherwise `403`. `Origin: null` is foreign.
//!    A request a browser marks `Sec-Fetch-Site: cross-site` or `same-site`
//!    with no Origin (a `no-cors` fetch, an `<img>`: the page cannot read
//!    the answer, but the server would still do the work) is refused too,
//!    except following a link to the UI's page ([`cross_site_allowed`]).
//! 3. **Token** ([`Policy::role`]): with tokens configured, `Authorization:
//!    Bearer …` must carry a known token of the route's role (`401` without
//!    one, `403` with too small a role). Without tokens (loopback only,
//!    unless explicitly allowed) everything is open.
//! 4. **Content type** of a POST ([`Policy::content_types`]): only the
//!    route's declared types (`415`): `text/plain` and form types, which a
//!    cross-site page may send without a preflight, are never among them.
//!
//! Every response then carries `X-Content-Type-Options: nosniff`,
//! `Referrer-Policy: no-referrer` and `X-Frame-Options: DENY`; no wildcard
//! CORS header is ever sent (CORS is answered only for allowed origins,
//! by the layer in `routes.rs`). An error answering a request that
//! carries a body also says `Connection: close`: the body may be left
//! unread (a refused push is answered before its body arrives), so the
//! connection ends, and a client must not send its next request on it.
//! A refused body of at most [`REFUSED_BODY_DRAIN_BYTES_MAX`] is read and
//! thrown away after the answer ([`drain_refused_body`], at most
//! [`REFUSED_BODY_DRAIN_SECS_MAX`]): a client that sends its whole body
//! before reading then gets the answer, not a broken pipe. Nothing of it
//! is kept.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use futures::StreamExt;

use crate::auth::Role;
use crate::routes::{AppState, error};

/// What a route asks of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// The role a token must have (when tokens are configured); `None`: open.
    pub role: Option<Role>,
    /// Content types a POST body may have (parameters such as `charset` ignored).
    pub content_types: &'static [&'static str],
}

/// JSON bodies: SQL requests, Firehose deliveries.
pub const JSON_TYPES: &[&str] = &["application/json"];
/// Metadata events: JSON lines.
pub const METADATA_TYPES: &[&str] = &[
    "application/json",
    "application/x-ndjson",
    "application/jsonl",
];
/// Flow-log payloads: lines, gzip, CloudWatch Logs envelopes.
pub const FLOW_TYPES: &[&str] = &[
    "application/octet-stream",
    "application/gzip",
    "application/x-gzip",
    "application/json",
    "application/x-ndjson",
];

/// The policy of `path` (unknown paths need the read role, so a 404 tells
/// a stranger nothing either).
pub fn policy(path: &str, metrics_open: bool) -> Policy {
    let (role, content_types): (Option<Role>, &'static [&'static str]) = match path {
        "/" | "/health" | "/api/v1/health" => (None, &[]),
        // The UI's own files hold no data (their queries need the read role).
        ui if ui.starts_with(crate::assets::UI_PREFIX) => (None, &[]),
        "/metrics" if metrics_open => (None, &[]),
        "/metrics" => (Some(Role::Read), &[]),
        "/api/v1/sql" => (Some(Role::Read), JSON_TYPES),
        // GETs: the token must be in `Authorization` (never in the URL).
        "/api/v1/tail" | "/api/v1/whois" => (Some(Role::Read), &[]),
        "/api/v1/flows" => (Some(Role::Write), FLOW_TYPES),
        "/api/v1/metadata" => (Some(Role::Write), METADATA_TYPES),
        // Firehose authenticates in its handler (its own header and error shape).
        "/api/v1/firehose" => (None, JSON_TYPES),
        _ => (Some(Role::Read), &[]),
    };
    Policy {
        role,
        content_types,
    }
}

/// A request the guard turns away: its status and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// 401, 403, 415 or 421.
    pub status: StatusCode,
    /// What the caller can do about it.
    pub message: String,
}

impl Refused {
    fn new(status: StatusCode, message: impl Into<String>) -> Refused {
        Refused {
            status,
            message: message.into(),
        }
    }

    /// The JSON error response (with `WWW-Authenticate` on a 401).
    pub fn into_response(self) -> Response {
        let unauthorized = self.status == StatusCode::UNAUTHORIZED;
        let mut response = error(self.status, self.message);
        if unauthorized {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"trawl\""),
            );
        }
        response
    }
}

/// The middleware: the checks of the module header, then the handler,
/// then the response headers.
pub async fn guard(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let has_body = carries_body(request.headers());
    let mut response = match check(&state, &request) {
        Ok(()) => next.run(request).await,
        Err(refused) => {
            drain_refused_body(request);
            refused.into_response()
        }
    };
    let refused_with_body =
        has_body && (response.status().is_client_error() || response.status().is_server_error());
    let headers = response.headers_mut();
    if refused_with_body {
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

/// The most of a refused request's body read (and thrown away) so that its
/// client can read the answer; a longer body is not read at all.
pub const REFUSED_BODY_DRAIN_BYTES_MAX: u64 = 8 << 20;
/// The longest a refused request's body is waited for.
pub const REFUSED_BODY_DRAIN_SECS_MAX: u64 = 5;

/// Reads and drops the body of a refused `request` in the background, when
/// it announces at most [`REFUSED_BODY_DRAIN_BYTES_MAX`], for at most
/// [`REFUSED_BODY_DRAIN_SECS_MAX`]. The connection stays open meanwhile
/// (the answer says `Connection: close`): a client that writes its whole
/// body before it reads gets the answer instead of a broken pipe.
pub fn drain_refused_body(request: Request<Body>) {
    let (parts, body) = request.into_parts();
    let announced = header_str(&parts.headers, header::CONTENT_LENGTH)
        .and_then(|n| n.trim().parse::<u64>().ok());
    let chunked = parts.headers.contains_key(header::TRANSFER_ENCODING);
    let small = announced.is_some_and(|n| n > 0 && n <= REFUSED_BODY_DRAIN_BYTES_MAX);
    if !small && !chunked {
        return;
    }
    tokio::spawn(async move {
        let mut frames = body.into_data_stream();
        let mut read_bytes: u64 = 0;
        let drain = async {
            while let Some(Ok(chunk)) = frames.next().await {
                read_bytes += chunk.len() as u64;
                if read_bytes > REFUSED_BODY_DRAIN_BYTES_MAX {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(REFUSED_BODY_DRAIN_SECS_MAX), drain).await;
    });
}

/// Whether a request announces a body (a length above zero, or chunks).
fn carries_body(headers: &HeaderMap) -> bool {
    headers.contains_key(header::TRANSFER_ENCODING)
        || header_str(headers, header::CONTENT_LENGTH).is_some_and(|n| n.trim() != "0")
}

fn check(state: &AppState, request: &Request<Body>) -> Result<(), Refused> {
    let headers = request.headers();
    // A Host that is missing or not visible ASCII is empty: never served.
    let host = header_str(headers, header::HOST).unwrap_or("");
    if !host_allowed(host, &state.config.public_hosts) {
        return Err(Refused::new(
            StatusCode::MISDIRECTED_REQUEST,
            format!(
                "Host {host:?} is not served here: use a loopback address, an IP address, or a name in [server] public_hosts"
            ),
        ));
    }
    // An Origin that is not visible ASCII is foreign, not absent.
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("(not ASCII)");
        let own = format!(
            "{}://{host}",
            if state.tls.is_some() { "https" } else { "http" }
        );
        let allowed = origin.eq_ignore_ascii_case(&own)
            || state
                .config
                .allowed_origins
                .iter()
                .any(|o| o.eq_ignore_ascii_case(origin));
        if !allowed {
            return Err(Refused::new(
                StatusCode::FORBIDDEN,
                format!("Origin {origin:?} is not allowed (add it to [server] allowed_origins)"),
            ));
        }
    }
    cross_site_allowed(headers, request.uri().path())?;
    let policy = policy(request.uri().path(), state.config.metrics_open);
    if let Some(role) = policy.role {
        authorize(state, headers, role)?;
    }
    if request.method() == Method::POST {
        check_content_type(headers, policy.content_types)?;
    }
    Ok(())
}

/// Refuses what a browser sends on behalf of a page of another site
/// without an Origin header (a `no-cors` fetch, an `<img>`): such a page
/// cannot read the answer, but it could still make the server work (run a
/// tail filter, a whois). Browsers mark every request with
/// `Sec-Fetch-Site`; requests from other sites that carry an Origin were
/// checked above (allowed origins pass), and following a link to the UI's
/// page is allowed. Clients other than browsers send no such header.
pub fn cross_site_allowed(headers: &HeaderMap, path: &str) -> Result<(), Refused> {
    let site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    if !matches!(site, Some("cross-site" | "same-site")) || headers.contains_key(header::ORIGIN) {
        return Ok(());
    }
    let navigation = headers
        .get("sec-fetch-mode")
        .is_some_and(|m| m.as_bytes() == b"navigate");
    if navigation && (path == "/" || path.starts_with(crate::assets::UI_PREFIX)) {
        return Ok(());
    }
    Err(Refused::new(
        StatusCode::FORBIDDEN,
        "a request a page of another site sent without an Origin is not served",
    ))
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Checks the bearer token for `needed` (nothing to check without tokens).
pub fn authorize(state: &AppState, headers: &HeaderMap, needed: Role) -> Result<(), Refused> {
    if state.tokens.is_empty() {
        return Ok(());
    }
    let Some(token) = bearer(headers) else {
        return Err(Refused::new(
            StatusCode::UNAUTHORIZED,
            "this server needs a token: Authorization: Bearer TOKEN",
        ));
    };
    match state.tokens.role_of(token) {
        Some(role) if role.allows(needed) => Ok(()),
        Some(_) => Err(Refused::new(
            StatusCode::FORBIDDEN,
            format!("this token's role cannot do this (needs the {needed:?} role)"),
        )),
        None => Err(Refused::new(StatusCode::UNAUTHORIZED, "unknown token")),
    }
}

/// The token of `Authorization: Bearer TOKEN`.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = header_str(headers, header::AUTHORIZATION)?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

fn check_content_type(headers: &HeaderMap, allowed: &[&str]) -> Result<(), Refused> {
    let given = header_str(headers, header::CONTENT_TYPE).unwrap_or("");
    let essence = given.split(';').next().unwrap_or("").trim();
    if allowed.iter().any(|t| t.eq_ignore_ascii_case(essence)) {
        return Ok(());
    }
    Err(Refused::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        format!(
            "Content-Type {given:?} is not accepted here; send one of: {}",
            allowed.join(", ")
        ),
    ))
}

/// Whether the server answers to `host` (a Host header, port optional).
pub fn host_allowed(host: &str, public_hosts: &[String]) -> bool {
    let name = host_name(host);
    if name.is_empty() {
        return false;
    }
    let lower = name.to_ascii_lowercase();
    if lower == "localhost" || lower.ends_with(".localhost") {
        return true;
    }
    if name.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    public_hosts.iter().any(|entry| {
        if entry.contains(':') {
            entry.eq_ignore_ascii_case(host)
        } else {
            entry.eq_ignore_ascii_case(name)
        }
    })
}

/// The name part of a Host header: `[::1]:80` → `::1`, `a.b:80` → `a.b`.
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("");
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_names_and_ip_literals_are_served_other_names_only_if_listed() {
        let public = vec![
            "trawl.example.com".to_string(),
            "ops.example.com:8443".to_string(),
        ];
        for (host, ok) in [
            ("127.0.0.1:8941", true),
            ("localhost:8941", true),
            ("LOCALHOST", true),
            ("app.localhost:1", true),
            ("[::1]:8941", true),
            ("10.1.2.3:8941", true),
            ("trawl.example.com", true),
            ("trawl.example.com:8941", true),
            ("ops.example.com:8443", true),
            ("ops.example.com:9000", false),
            ("evil.example.net:8941", false),
            ("localhost.evil.example.net", false),
            ("", false),
            (":8941", false),
        ] {
            assert_eq!(host_allowed(host, &public), ok, "{host}");
        }
    }

    #[test]
    fn pages_of_other_sites_cannot_make_the_server_work_without_an_origin() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, HeaderValue::from_static(v));
            }
            h
        };
        let no_cors = headers(&[
            ("sec-fetch-site", "cross-site"),
            ("sec-fetch-mode", "no-cors"),
        ]);
        assert!(cross_site_allowed(&no_cors, "/api/v1/tail").is_err());
        assert!(cross_site_allowed(&no_cors, "/api/v1/whois").is_err());
        let same_site = headers(&[
            ("sec-fetch-site", "same-site"),
            ("sec-fetch-mode", "no-cors"),
        ]);
        assert!(cross_site_allowed(&same_site, "/metrics").is_err());
        // A link followed to the UI, the page's own requests, other clients.
        let link = headers(&[
            ("sec-fetch-site", "cross-site"),
            ("sec-fetch-mode", "navigate"),
        ]);
        assert!(cross_site_allowed(&link, "/").is_ok());
        assert!(cross_site_allowed(&link, "/api/v1/tail").is_err());
        let own = headers(&[
            ("sec-fetch-site", "same-origin"),
            ("sec-fetch-mode", "cors"),
        ]);
        assert!(cross_site_allowed(&own, "/api/v1/tail").is_ok());
        assert!(cross_site_allowed(&HeaderMap::new(), "/api/v1/tail").is_ok());
        // With an Origin, the Origin check decides (allowed origins pass).
        let cors = headers(&[
            ("sec-fetch-site", "cross-site"),
            ("origin", "https://ops.example.com"),
        ]);
        assert!(cross_site_allowed(&cors, "/api/v1/sql").is_ok());
    }

    #[test]
    fn a_bearer_token_is_read_from_its_header() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer(&headers), None);
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc"),
        );
        assert_eq!(bearer(&headers), Some("abc"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&headers), None);
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("bearer  "));
        assert_eq!(bearer(&headers), None);
    }

    #[test]
    fn content_types_are_matched_without_their_parameters() {
        let mut headers = HeaderMap::new();
        assert!(check_content_type(&headers, JSON_TYPES).is_err());
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        assert!(check_content_type(&headers, JSON_TYPES).is_ok());
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        assert!(check_content_type(&headers, JSON_TYPES).is_err());
        assert!(check_content_type(&headers, FLOW_TYPES).is_err());
    }

    #[test]
    fn every_push_route_needs_the_write_role() {
        for path in ["/api/v1/flows", "/api/v1/metadata"] {
            assert_eq!(policy(path, false).role, Some(Role::Write), "{path}");
        }
        assert_eq!(policy("/api/v1/sql", false).role, Some(Role::Read));
        assert_eq!(policy("/api/v1/tail", false).role, Some(Role::Read));
        assert_eq!(policy("/api/v1/whois", false).role, Some(Role::Read));
        assert_eq!(policy("/metrics", false).role, Some(Role::Read));
        assert_eq!(policy("/metrics", true).role, None);
        assert_eq!(policy("/nope", false).role, Some(Role::Read));
        assert_eq!(policy("/health", false).role, None);
    }
}
