//! The pages' stylesheet and script, compiled into the binary and served under a name
//! that carries a hash of their content, so a browser may keep them for a year: a new
//! build with other content has other names.

use std::sync::LazyLock;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::super::extract::ApiPath;
use crate::domain::crypto::sha256_b64;

/// An embedded file.
pub(super) struct Asset {
    body: &'static str,
    content_type: &'static str,
    /// `stem.<hash>.ext`
    file_name: LazyLock<String>,
}

impl Asset {
    /// The path the pages link to.
    pub(super) fn path(&self) -> String {
        format!("/account/static/{}", *self.file_name)
    }
}

const CSS: &str = include_str!("assets/pages.css");
const JS: &str = include_str!("assets/pages.js");
const ICON: &str = include_str!("assets/icon.svg");

/// The stylesheet of every page.
pub(super) static STYLESHEET: Asset = Asset {
    body: CSS,
    content_type: "text/css; charset=utf-8",
    file_name: LazyLock::new(|| versioned("pages", "css", CSS)),
};

/// The one script: the pages work without it (it adds the password policy's feedback).
pub(super) static SCRIPT: Asset = Asset {
    body: JS,
    content_type: "text/javascript; charset=utf-8",
    file_name: LazyLock::new(|| versioned("pages", "js", JS)),
};

/// The pages' icon (without one, browsers ask for `/favicon.ico` and log its `404`).
pub(super) static ICON_SVG: Asset = Asset {
    body: ICON,
    content_type: "image/svg+xml",
    file_name: LazyLock::new(|| versioned("icon", "svg", ICON)),
};

fn versioned(stem: &str, ext: &str, body: &str) -> String {
    let hash = sha256_b64(body.as_bytes());
    format!("{stem}.{}.{ext}", &hash[..12])
}

/// `GET /account/static/{file}`: an embedded file by its current name, cached for a year;
/// any other name is `404`.
pub(super) async fn serve(ApiPath(file): ApiPath<String>) -> Response {
    let Some(asset) = [&STYLESHEET, &SCRIPT, &ICON_SVG]
        .into_iter()
        .find(|a| *a.file_name == file)
    else {
        return (StatusCode::NOT_FOUND, "no such file").into_response();
    };
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            ),
        ],
        asset.body,
    )
        .into_response()
}
