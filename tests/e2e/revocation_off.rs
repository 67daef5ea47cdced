//! `RevocationMode::Off` is an explicit opt-in: no Redis is needed, valid tokens are accepted,
//! and removing the session (DEL, logout) does NOT reach the demo-service.

use verifier::RevocationMode;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_revocation_off_the_demo_service_needs_no_redis_and_a_del_does_not_revoke() {
    let center = AuthCenter::spawn(Store::Standalone).await;
    let mut settings = center.demo_settings();
    settings.verifier.revocation = RevocationMode::Off;
    (
        settings.verifier.redis_url,
        settings.verifier.redis_cluster_urls,
    ) = (None, None);
    let demo = Demo::spawn(settings).await;

    let tokens = center.register_and_login("oscar").await;
    demo.me(&tokens).await.assert_ok();

    let key = center.session_key(&tokens);
    assert_eq!(center.redis_on_key("DEL", &key, &[]).await, 1);
    stays(
        "a deleted session is still accepted with revocation off",
        || demo.me(&tokens),
        Answer::is_ok,
    )
    .await;

    let other = center.login_ok("oscar").await;
    center.logout(&other).await;
    stays(
        "a logged-out session is still accepted with revocation off",
        || demo.me(&other),
        Answer::is_ok,
    )
    .await;
}
