//! Password hashing under load: never more hashes at once than the configured slots, and a
//! quick `503 overloaded` with `Retry-After` for what does not fit, instead of a queue that
//! runs into the request timeout.

use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::Value;

use crate::for_backends;
use crate::helpers::*;

for_backends! {
    sqlite_memory: [
        a_login_flood_beyond_the_hashing_capacity_gets_overloaded_answers_with_retry_after,
    ],
}

async fn a_login_flood_beyond_the_hashing_capacity_gets_overloaded_answers_with_retry_after(
    backend: Backend,
) {
    let app = spawn_app_with(backend, |c| {
        c.passwords.max_concurrent_hashes = 1;
        c.passwords.queue_wait_ms = 0;
        c.limits.login_ip_max = 1000;
    })
    .await;
    let r = app.register("flood", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::CREATED);

    let answers = join_all((0..24).map(|_| app.login("flood", PASSWORD))).await;
    let (mut ok, mut refused) = (0, 0);
    for response in answers {
        match response.status() {
            StatusCode::OK => ok += 1,
            StatusCode::SERVICE_UNAVAILABLE => {
                refused += 1;
                assert_eq!(retry_after_secs(&response), 1);
                let body: Value = response.json().await.unwrap();
                let object = body.as_object().unwrap();
                assert_eq!(object.len(), 2, "{body}");
                assert_eq!(body["error"], "overloaded");
                assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
            }
            other => panic!("unexpected {other}: {}", response.text().await.unwrap()),
        }
    }
    assert!(ok >= 1, "no login got through ({refused} refused)");
    assert!(refused >= 1, "every one of {ok} logins waited for the slot");
    let hashing = app.auth.password_hashing();
    assert_eq!(hashing.peak_running, 1, "{hashing:?}");
    assert_eq!(hashing.refused, refused);
}
