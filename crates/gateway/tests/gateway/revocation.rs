//! Deleting the session key in Redis ends the session at the gateway on the next request,
//! in both revocation modes that check Redis.

use serde_json::json;
use verifier::RevocationMode;

use crate::support::*;

#[tokio::test]
async fn a_deleted_session_key_is_refused_from_the_next_requests_on() {
    let env = Env::new().await;
    for mode in [RevocationMode::Tracked, RevocationMode::EveryRequest] {
        let gateway = env
            .gateway(|settings| settings.verifier.revocation = mode)
            .await;
        let session = env.session("user-1").await;
        let token = env.issuer.token(&session, json!({}));
        for dialect in DIALECTS {
            gateway
                .with_token(dialect, "/", &token)
                .await
                .assert_allowed();
        }
        env.end(&session).await;
        let ask = || gateway.with_token(Dialect::AuthRequest, "/", &token);
        if mode == RevocationMode::EveryRequest {
            ask().await.assert_401("session_revoked");
        } else {
            // Tracked mode learns of the `DEL` from Redis's invalidation push, which may
            // still be on its way when `DEL` returns.
            poll_until("the session's end reaches the gateway", ask, |a| {
                a.status == 401
            })
            .await
            .assert_401("session_revoked");
        }
        for dialect in DIALECTS {
            for _ in 0..5 {
                let answer = gateway.with_token(dialect, "/", &token).await;
                answer.assert_401("session_revoked").assert_no_identity();
            }
        }
    }
}

#[tokio::test]
async fn a_token_of_a_session_that_never_existed_is_a_401() {
    let env = Env::new().await;
    let gateway = env.gateway(|_| {}).await;
    let never = Session {
        sub: "user-1".into(),
        sid: "never".into(),
    };
    let token = env.issuer.token(&never, json!({}));
    for dialect in DIALECTS {
        gateway
            .with_token(dialect, "/", &token)
            .await
            .assert_401("session_revoked");
    }
}

#[tokio::test]
async fn with_revocation_off_a_deleted_session_is_still_accepted() {
    let env = Env::new().await;
    let gateway = env
        .gateway(|settings| {
            settings.verifier.revocation = RevocationMode::Off;
            (
                settings.verifier.redis_url,
                settings.verifier.redis_cluster_urls,
            ) = (None, None);
        })
        .await;
    let session = env.session("user-1").await;
    let token = env.issuer.token(&session, json!({}));
    env.end(&session).await;
    gateway
        .with_token(Dialect::ExtAuthz, "/", &token)
        .await
        .assert_allowed();
    // And it is ready: there is no Redis to wait for.
    assert_eq!(gateway.get("/readyz").await.status, 200);
}
