//! Logout and logout-all at the auth-center are seen by the demo-service (in both revocation
//! modes that check Redis); other sessions and other users are not affected.

use std::time::Duration;

use verifier::RevocationMode;

use crate::helpers::*;
use crate::on_standalone_and_cluster;

on_standalone_and_cluster!(
    a_logout_at_the_auth_center_ends_that_session_at_the_demo_service_only,
    a_logout_all_at_the_auth_center_ends_every_session_of_that_user_at_the_demo_service,
);

/// A tracked and an every-request demo-service on `center`'s Redis (max staleness 60 s:
/// only the invalidation push can end a cached session within the poll bound).
async fn demos(center: &AuthCenter) -> Vec<Demo> {
    let mut demos = Vec::new();
    for mode in [RevocationMode::Tracked, RevocationMode::EveryRequest] {
        let mut settings = center.demo_settings();
        settings.verifier.revocation = mode;
        settings.verifier.max_staleness = Duration::from_secs(60);
        demos.push(Demo::spawn(settings).await);
    }
    demos
}

async fn a_logout_at_the_auth_center_ends_that_session_at_the_demo_service_only(store: Store) {
    let center = AuthCenter::spawn(store).await;
    let demos = demos(&center).await;
    let leaving = center.register_and_login("walter").await;
    let staying = center.login_ok("walter").await;
    let other_user = center.register_and_login("skyler").await;
    for demo in &demos {
        for tokens in [&leaving, &staying, &other_user] {
            demo.me(tokens).await.assert_ok();
        }
    }

    center.logout(&leaving).await;

    for demo in &demos {
        becomes_revoked(demo, &leaving, "the logged-out session").await;
        demo.me(&staying).await.assert_ok();
        demo.me(&other_user).await.assert_ok();
    }
}

async fn a_logout_all_at_the_auth_center_ends_every_session_of_that_user_at_the_demo_service(
    store: Store,
) {
    let center = AuthCenter::spawn(store).await;
    let demos = demos(&center).await;
    let first = center.register_and_login("jesse").await;
    let second = center.login_ok("jesse").await;
    let third = center.login_ok("jesse").await;
    let other_user = center.register_and_login("gus").await;
    for demo in &demos {
        for tokens in [&first, &second, &third, &other_user] {
            demo.me(tokens).await.assert_ok();
        }
    }

    center.logout_all(&second).await;

    for demo in &demos {
        for tokens in [&first, &second, &third] {
            becomes_revoked(demo, tokens, "a session of the logged-out user").await;
        }
        demo.me(&other_user).await.assert_ok();
    }
    // The user can log in again and use the new session.
    let again = center.login_ok("jesse").await;
    for demo in &demos {
        demo.me(&again).await.assert_ok();
    }
}
