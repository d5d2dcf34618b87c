//! Who may ask what: the `Host` check (a loopback server answers only to loopback names, so a DNS
//! rebinding page cannot reach it), the token (bearer header, or the HttpOnly cookie the login form
//! sets), the `Origin` check of state-changing requests (CSRF), and the security headers of every
//! response (a Content-Security-Policy without inline scripts, no framing, no sniffing).

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::state::Shared;

/// The session cookie's name.
pub const COOKIE: &str = "funnel_session";

/// The cookie value for a token: a hash, so the cookie jar never holds the token itself.
pub fn session_of(token: &str) -> String {
    Sha256::digest(format!("funnel-session:{token}").as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Compares in time independent of where the strings differ.
pub fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

fn header(h: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn cookie<'h>(h: &'h HeaderMap, name: &str) -> Option<&'h str> {
    h.get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// How a request proved it may ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proof {
    /// No token is configured.
    Open,
    /// `Authorization: Bearer T` (not sent by browsers on their own: no CSRF).
    Bearer,
    /// The session cookie (sent by browsers on their own: needs the Origin check).
    Cookie,
}

fn proof(state: &Shared, h: &HeaderMap) -> Option<Proof> {
    let (Some(token), Some(session)) = (&state.config.token, &state.session) else {
        return Some(Proof::Open);
    };
    if let Some(bearer) = header(h, header::AUTHORIZATION).and_then(|v| v.strip_prefix("Bearer ")) {
        return same(bearer.trim(), token).then_some(Proof::Bearer);
    }
    cookie(h, COOKIE)
        .filter(|c| same(c, session))
        .map(|_| Proof::Cookie)
}

/// The host name of a `Host` header (without the port).
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("");
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

fn forbidden(reason: &str) -> Response {
    ApiError::new(StatusCode::FORBIDDEN, reason).into_response()
}

/// Paths anyone may fetch: the login form and the static assets (no data in them).
fn public(path: &str) -> bool {
    path == "/login" || path.starts_with("/static/")
}

/// The checks, in order: Host, Origin (state-changing methods), token.
pub async fn guard(State(state): State<Shared>, req: Request, next: Next) -> Response {
    let h = req.headers();
    let host = header(h, header::HOST).unwrap_or("");
    if state.config.listen.ip().is_loopback()
        && !matches!(host_name(host), "127.0.0.1" | "localhost" | "::1")
    {
        return forbidden(&format!(
            "host {host:?} is not this server's: it listens on loopback only and answers to 127.0.0.1, localhost or [::1]"
        ));
    }
    let changes_state = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let proof = proof(&state, h);
    if changes_state {
        let expected = format!("http://{host}");
        match header(h, header::ORIGIN) {
            Some(origin) if origin != expected => {
                return forbidden(&format!(
                    "cross-origin request refused: Origin {origin:?} is not {expected:?}"
                ));
            }
            Some(_) => {}
            // Browsers send Origin with every POST; a cookie-authenticated one without it is suspect.
            None if proof == Some(Proof::Cookie) => {
                return forbidden("a state-changing request must carry an Origin header");
            }
            None => {}
        }
        if header(h, header::HeaderName::from_static("sec-fetch-site"))
            .is_some_and(|s| s == "cross-site")
        {
            return forbidden("cross-site request refused");
        }
    }
    let path = req.uri().path().to_string();
    if proof.is_none() && !public(&path) {
        if path.starts_with("/api/") {
            let mut r = ApiError::new(
                StatusCode::UNAUTHORIZED,
                "a token is required: send `Authorization: Bearer <token>` or log in at /login",
            )
            .into_response();
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return r;
        }
        return Redirect::to("/login").into_response();
    }
    next.run(req).await
}

/// Security headers on every response.
pub async fn headers(req: Request, next: Next) -> Response {
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The form of `POST /login`.
#[derive(Debug, serde::Deserialize)]
pub struct Login {
    /// The token.
    pub token: String,
}

/// `POST /login`: a right token sets the HttpOnly session cookie and goes to `/`.
pub async fn login(State(state): State<Shared>, axum::Form(form): axum::Form<Login>) -> Response {
    match (&state.config.token, &state.session) {
        (Some(token), Some(session)) if same(form.token.trim(), token) => {
            let mut r = Redirect::to("/").into_response();
            let cookie = format!("{COOKIE}={session}; HttpOnly; SameSite=Strict; Path=/");
            if let Ok(v) = cookie.parse() {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r
        }
        (None, _) => Redirect::to("/").into_response(),
        _ => (
            StatusCode::UNAUTHORIZED,
            crate::pages::login_page(Some("wrong token")),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_and_cookies_are_read() {
        assert_eq!(host_name("127.0.0.1:8080"), "127.0.0.1");
        assert_eq!(host_name("[::1]:8080"), "::1");
        assert_eq!(host_name("localhost"), "localhost");
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, "a=1; funnel_session=xyz".parse().unwrap());
        assert_eq!(cookie(&h, COOKIE), Some("xyz"));
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("abc", "ab"));
        assert_ne!(session_of("t"), "t");
    }
}
