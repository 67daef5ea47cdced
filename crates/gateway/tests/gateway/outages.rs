//! Redis out of reach: the gateway fails closed (`503` with `Retry-After`, never `200` for a
//! session it cannot check), says it is not ready, and recovers when Redis is back.

use serde_json::json;
use test_support::RedisServer;
use verifier::RevocationMode;

use crate::support::*;

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

#[tokio::test]
async fn an_unreachable_redis_is_a_503_with_retry_after_never_a_200() {
    let env = Env::on(format!("redis://127.0.0.1:{}", closed_port())).await;
    let token = env.issuer.token(
        &Session {
            sub: "user-1".into(),
            sid: "s1".into(),
        },
        json!({}),
    );
    for mode in [RevocationMode::Tracked, RevocationMode::EveryRequest] {
        let gateway = env
            .gateway(|settings| {
                settings.verifier.revocation = mode;
                settings.rules = vec![anonymous_rule("/public")];
            })
            .await;
        for dialect in DIALECTS {
            for path in ["/orders", "/public/page"] {
                let answer = gateway.with_token(dialect, path, &token).await;
                answer.assert_503().assert_not_stored().assert_no_identity();
            }
            // Without a token there is no session to check: the anonymous path still
            // passes, and other paths need a token.
            gateway
                .ask(dialect, "GET", "/public/page")
                .answer()
                .await
                .assert_allowed();
            assert_eq!(
                gateway.ask(dialect, "GET", "/orders").answer().await.status,
                401
            );
        }
        gateway.get("/readyz").await.assert_503();
        assert_eq!(
            gateway.get("/healthz").await.status,
            200,
            "alive, not ready"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_redis_turns_answers_into_503s_until_it_is_back() {
    let mut redis = tokio::task::block_in_place(RedisServer::start).expect("a private Redis");
    let env = Env::on(redis.url()).await;
    let gateway = env
        .gateway(|settings| settings.verifier.revocation = RevocationMode::EveryRequest)
        .await;
    let session = env.session("user-1").await;
    let token = env.issuer.token(&session, json!({}));
    let ask = || gateway.with_token(Dialect::AuthRequest, "/", &token);
    ask().await.assert_allowed();
    assert_eq!(gateway.get("/readyz").await.status, 200);

    tokio::task::block_in_place(|| redis.stop()).expect("stop Redis");
    ask().await.assert_503().assert_not_stored();
    let ready = gateway.get("/readyz").await;
    ready.assert_503();
    assert_eq!(ready.body["status"], "unavailable", "{ready:?}");
    assert_eq!(
        ready.body["checks"]["redis"], "error: Redis does not answer",
        "{ready:?}"
    );

    tokio::task::block_in_place(|| redis.restart()).expect("restart Redis");
    poll_until(
        "ready again",
        || gateway.get("/readyz"),
        |a| a.status == 200,
    )
    .await;
    // The restarted Redis is empty: the session is gone for good.
    ask().await.assert_401("session_revoked");
    let again = env.session("user-1").await;
    let token = env.issuer.token(&again, json!({}));
    gateway
        .with_token(Dialect::AuthRequest, "/", &token)
        .await
        .assert_allowed();
}
