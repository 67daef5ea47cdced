//! A login at the auth-center opens the demo-service; roles travel in the token.

use reqwest::StatusCode;
use verifier::RevocationMode;

use crate::helpers::*;
use crate::on_standalone_and_cluster;

on_standalone_and_cluster!(
    a_login_at_the_auth_center_is_accepted_by_the_demo_service_in_every_revocation_mode,
    admin_answers_403_to_a_plain_user_and_200_to_a_user_with_the_admin_role,
    the_default_whole_router_layout_asks_a_token_everywhere_but_on_its_public_paths,
    the_route_layer_layout_protects_its_routes_and_leaves_unknown_paths_open,
);

async fn a_login_at_the_auth_center_is_accepted_by_the_demo_service_in_every_revocation_mode(
    store: Store,
) {
    let center = AuthCenter::spawn(store).await;
    let tracked = center.demo(RevocationMode::Tracked).await;
    let every_request = center.demo(RevocationMode::EveryRequest).await;
    let tokens = center.register_and_login("alice").await;
    assert_eq!(tokens.token_type, "Bearer");
    assert!(tokens.expires_in > 0);

    for demo in [&tracked, &every_request] {
        // Twice: the second answer may come from the caches.
        for _ in 0..2 {
            let me = demo.me(&tokens).await;
            me.assert_ok();
            assert_eq!(me.body["sub"], tokens.user_id().as_str());
            assert_eq!(me.body["sid"], tokens.session_id.as_str());
            assert_eq!(me.body["aud"], AUDIENCE);
            assert_eq!(me.body["roles"], serde_json::json!([]));
        }
    }
}

async fn admin_answers_403_to_a_plain_user_and_200_to_a_user_with_the_admin_role(store: Store) {
    let center = AuthCenter::spawn(store).await;
    let demo = center.demo(RevocationMode::Tracked).await;
    let plain = center.register_and_login("plain").await;
    let admin = center.admin_login("root").await;

    let refused = demo.admin(&plain).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{refused:?}");
    assert_eq!(refused.code(), Some("insufficient_role"));
    demo.me(&plain).await.assert_ok();

    let allowed = demo.admin(&admin).await;
    allowed.assert_ok();
    assert_eq!(allowed.body["sub"], admin.user_id().as_str());
    let me = demo.me(&admin).await;
    me.assert_ok();
    assert_eq!(me.body["roles"], serde_json::json!(["admin"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_and_garbage_tokens_get_401_invalid_token_and_no_auth_routes_stay_open() {
    let center = AuthCenter::spawn(Store::Standalone).await;
    let demo = center.demo(RevocationMode::Tracked).await;
    let tokens = center.register_and_login("mallory").await;

    Answer::of(demo.get("/me", None).await)
        .await
        .assert_401("invalid_token");
    Answer::of(demo.get("/admin", None).await)
        .await
        .assert_401("invalid_token");
    for garbage in ["garbage", "a.b.c", "e30.e30.", &tokens.refresh_token] {
        Answer::of(demo.get("/me", Some(garbage)).await)
            .await
            .assert_401("invalid_token");
    }
    // One changed character in the middle of the signature.
    let at = tokens.access_token.rfind('.').unwrap() + 10;
    let mut forged = tokens.access_token.clone();
    let changed = if &forged[at..=at] == "A" { "B" } else { "A" };
    forged.replace_range(at..=at, changed);
    Answer::of(demo.get("/me", Some(&forged)).await)
        .await
        .assert_401("invalid_token");

    for open in ["/baseline/me", "/healthz"] {
        Answer::of(demo.get(open, None).await).await.assert_ok();
    }
    assert_eq!(
        demo.get("/nowhere", Some(&tokens.access_token))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
}

async fn the_default_whole_router_layout_asks_a_token_everywhere_but_on_its_public_paths(
    store: Store,
) {
    let center = AuthCenter::spawn(store).await;
    let demo = center.demo(RevocationMode::Tracked).await;
    let tokens = center.register_and_login("whole").await;
    // `/me` through the layer around the router; the others verify on their own and are
    // public paths of that layer only so that they are not verified twice.
    every_way_to_me_answers_the_caller_and_401_without_a_token(&demo, &tokens).await;
    for public in ["/baseline/me", "/healthz", "/metrics"] {
        let status = demo.get(public, None).await.status();
        assert_eq!(status, StatusCode::OK, "{public}");
    }
    for covered in ["/admin", "/nowhere", "/healthz/", "/baseline/me/"] {
        let status = demo.get(covered, None).await.status();
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{covered}");
    }
    let admin = demo
        .get("/admin", Some(&tokens.access_token))
        .await
        .status();
    assert_eq!(admin, StatusCode::FORBIDDEN);
    let nowhere = demo
        .get("/nowhere", Some(&tokens.access_token))
        .await
        .status();
    assert_eq!(nowhere, StatusCode::NOT_FOUND);
}

async fn the_route_layer_layout_protects_its_routes_and_leaves_unknown_paths_open(store: Store) {
    let center = AuthCenter::spawn(store).await;
    let mut settings = center.demo_settings();
    settings.layout = demo_service::Layout::RouteLayer;
    let demo = Demo::spawn(settings).await;
    let tokens = center.register_and_login("layered").await;
    every_way_to_me_answers_the_caller_and_401_without_a_token(&demo, &tokens).await;
    Answer::of(demo.get("/admin", None).await)
        .await
        .assert_401("invalid_token");
    let admin = demo
        .get("/admin", Some(&tokens.access_token))
        .await
        .status();
    assert_eq!(admin, StatusCode::FORBIDDEN);
    for open in ["/baseline/me", "/healthz", "/metrics"] {
        let status = demo.get(open, None).await.status();
        assert_eq!(status, StatusCode::OK, "{open}");
    }
    // Nothing covers a path no route has: it is not found, token or not.
    assert_eq!(
        demo.get("/nowhere", None).await.status(),
        StatusCode::NOT_FOUND
    );
}

/// `/me` and the three other ways the demo-service protects the same handler, in either
/// layout: the caller's claims with the token, `401` without.
async fn every_way_to_me_answers_the_caller_and_401_without_a_token(demo: &Demo, tokens: &Tokens) {
    for path in ["/me", "/route-layer/me", "/handler/me", "/verified/me"] {
        let me = Answer::of(demo.get(path, Some(&tokens.access_token)).await).await;
        me.assert_ok();
        assert_eq!(me.body["sub"], tokens.user_id().as_str(), "{path}");
        Answer::of(demo.get(path, None).await)
            .await
            .assert_401("invalid_token");
    }
}
