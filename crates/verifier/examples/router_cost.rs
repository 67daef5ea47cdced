//! What a verified request costs through axum with the verifier's layer placed two ways, for
//! counting instructions under `valgrind --tool=cachegrind` (deterministic, unlike wall time
//! on a shared machine): run it with two `ROUTER_CALLS` and divide the difference. Requests go
//! through `oneshot` in-process (no network, no hyper). `ROUTER_MODE`:
//! `baseline` (a no-auth handler, no layer, no token), `route_layer` (`/me` behind
//! `route_layer(VerifierLayer)`, tracked mode), `whole_router` (the layer around the whole
//! router, `/baseline/me` a public path; `/me` with its token) and `whole_router_public`
//! (`/baseline/me` of that router, without a token); `fallback`: `/me` in a router behind
//! the layer, nested as the fallback service of the router of the no-auth handler. See
//! `docs/benchmarks.md`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_methods,
    clippy::panic
)] // a measurement: fail loudly

use std::hint::black_box;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Request, header};
use tower::ServiceExt as _;
use tower_layer::Layer as _;
use verifier::{Authenticated, RevocationMode, VerifierLayer};

mod support;

async fn me(user: Authenticated) -> String {
    user.sub.clone()
}

async fn baseline_me() -> String {
    "baseline".into()
}

fn main() {
    verifier::contract::install_crypto_provider();
    let calls: u64 = std::env::var("ROUTER_CALLS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);
    let layout = std::env::var("ROUTER_MODE").unwrap_or_else(|_| "route_layer".into());
    let support::HotPath {
        rt,
        verifier,
        token,
        _redis,
    } = support::hot_path(RevocationMode::Tracked);
    rt.block_on(async {
        let request = |path: &str, token: Option<&str>| {
            let mut r = Request::get(path);
            if let Some(t) = token {
                r = r.header(header::AUTHORIZATION, format!("Bearer {t}"));
            }
            r.body(Body::empty()).unwrap()
        };
        let routes = Router::new().route("/baseline/me", get(baseline_me));
        match layout.as_str() {
            "baseline" => {
                for _ in 0..calls {
                    let answer = routes.clone().oneshot(request("/baseline/me", None)).await;
                    assert!(black_box(answer.unwrap()).status().is_success());
                }
            }
            "route_layer" => {
                let app = routes
                    .route("/me", get(me))
                    .route_layer(VerifierLayer::new(verifier));
                for _ in 0..calls {
                    let answer = app.clone().oneshot(request("/me", Some(&token))).await;
                    assert!(black_box(answer.unwrap()).status().is_success());
                }
            }
            "fallback" => {
                let protected =
                    VerifierLayer::new(verifier).layer(Router::new().route("/me", get(me)));
                let app = routes.fallback_service(protected);
                for _ in 0..calls {
                    let answer = app.clone().oneshot(request("/me", Some(&token))).await;
                    assert!(black_box(answer.unwrap()).status().is_success());
                }
            }
            whole => {
                let app = VerifierLayer::new(verifier)
                    .public_paths(["/baseline/me"])
                    .layer(routes.route("/me", get(me)));
                let (path, token) = match whole {
                    "whole_router" => ("/me", Some(token.as_str())),
                    "whole_router_public" => ("/baseline/me", None),
                    other => panic!("ROUTER_MODE={other}: not a layout this example measures"),
                };
                for _ in 0..calls {
                    let answer = app.clone().oneshot(request(path, token)).await;
                    assert!(black_box(answer.unwrap()).status().is_success());
                }
            }
        }
    });
    println!("{calls} requests");
}
