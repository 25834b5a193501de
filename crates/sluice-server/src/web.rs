//! The web editor: a small front end (plain HTML, CSS and JavaScript in `web/`, no build
//! step) compiled into the binary and served at `/editor/`. It talks to the `/v1` API with
//! the token the user logs in with; nothing is loaded from anywhere else.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use crate::error::ApiError;

/// The editor's files: name, content type, content.
const FILES: &[(&str, &str, &str)] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_str!("../web/index.html"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/app.js"),
    ),
    (
        "highlight.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/highlight.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("../web/app.css"),
    ),
    // The starting points of a new Rust module: the templates of `sluice new`, with
    // `{{name}}` and `{{Type}}` for the editor to fill in.
    (
        "template-rust-codec.rs",
        "text/plain; charset=utf-8",
        include_str!("../../sluice-cli/templates/codec.lib.rs.tmpl"),
    ),
    (
        "template-rust-codec.vectors.yaml",
        "text/plain; charset=utf-8",
        include_str!("../../sluice-cli/templates/codec.vectors.yaml.tmpl"),
    ),
    (
        "template-rust-router.rs",
        "text/plain; charset=utf-8",
        include_str!("../../sluice-cli/templates/router.lib.rs.tmpl"),
    ),
    (
        "template-rust-router.vectors.yaml",
        "text/plain; charset=utf-8",
        include_str!("../../sluice-cli/templates/router.vectors.yaml.tmpl"),
    ),
];

/// Scripts and styles only from this server, no frames, no plug-ins.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data:; \
     object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

/// `GET /` and `GET /editor`: to the editor.
pub async fn to_editor() -> Redirect {
    Redirect::permanent("/editor/")
}

/// `GET /editor/`: the editor's page.
pub async fn index() -> Response {
    file("index.html")
}

/// `GET /editor/{file}`: one of the editor's files.
pub async fn asset(Path(name): Path<String>) -> Response {
    file(&name)
}

fn file(name: &str) -> Response {
    let Some((_, content_type, body)) = FILES.iter().find(|(n, _, _)| *n == name) else {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("the editor has no file `{name}`"),
        )
        .into_response();
    };
    let mut response = (*body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // The files change with the binary: always revalidate.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}
