use reqwest::StatusCode;
use serde_json::Value;

use crate::for_every_backend;
use crate::helpers::*;

for_every_backend!(
    login_returns_an_eddsa_access_token_with_the_contract_claims,
    every_login_opens_a_new_session,
    me_returns_the_caller_without_secrets,
    usernames_are_canonicalised_and_unique,
    unknown_user_and_wrong_password_get_byte_identical_answers,
    a_failed_login_creates_no_session_and_is_audited,
    jwks_publishes_the_signing_key_without_private_members,
    a_second_instance_verifies_tokens_of_the_first,
    logins_beyond_the_session_cap_end_the_least_recently_used_session,
);

async fn logins_beyond_the_session_cap_end_the_least_recently_used_session(backend: Backend) {
    let app = spawn_app_with(backend, |c| c.sessions.max_per_user = 2).await;
    let first = app.register_and_login("capped").await;
    app.clock.advance(std::time::Duration::from_secs(1));
    let second = app.login_ok("capped").await;
    app.clock.advance(std::time::Duration::from_secs(1));
    // Using the first session makes the second the least recently used.
    let first = app.refresh_ok(&first.refresh_token).await;
    app.clock.advance(std::time::Duration::from_secs(1));
    let third = app.login_ok("capped").await;
    assert_eq!(app.session_count(&third.user_id()).await, 2);
    assert_eq!(
        app.me(&second.access_token).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.me(&first.access_token).await.status(), StatusCode::OK);
    assert_eq!(app.me(&third.access_token).await.status(), StatusCode::OK);
}

async fn login_returns_an_eddsa_access_token_with_the_contract_claims(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = {
        app.register("alice", PASSWORD).await;
        app.login("alice", PASSWORD).await
    };
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(response.headers()["pragma"], "no-cache");
    let tokens: Tokens = response.json().await.unwrap();
    assert_eq!(tokens.token_type, "Bearer");
    assert_eq!(tokens.expires_in, 900);

    let header = tokens.header();
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["typ"], "at+jwt");
    assert!(header["kid"].as_str().is_some_and(|k| !k.is_empty()));

    let claims = tokens.claims();
    for claim in [
        "iss", "sub", "aud", "exp", "iat", "nbf", "jti", "sid", "roles",
    ] {
        assert!(
            !claims[claim].is_null(),
            "claim {claim} missing in {claims}"
        );
    }
    assert_eq!(claims["iss"], "http://auth.test");
    assert_eq!(claims["aud"], "api");
    assert_eq!(claims["sid"], tokens.session_id.as_str());
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        900
    );
    assert!(
        claims.get("username").is_none(),
        "no personal data in claims"
    );

    // user id . sid . 256-bit secret (43 base64url characters) . 128-bit MAC (22)
    let parts: Vec<&str> = tokens.refresh_token.split('.').collect();
    assert_eq!(parts.len(), 4);
    assert_eq!(parts[0], claims["sub"].as_str().unwrap());
    assert_eq!(parts[1], claims["sid"].as_str().unwrap());
    assert_eq!((parts[2].len(), parts[3].len()), (43, 22));
}

async fn every_login_opens_a_new_session(backend: Backend) {
    let app = spawn_app(backend).await;
    let first = app.register_and_login("bob").await;
    let second = app.login_ok("bob").await;
    assert_ne!(first.session_id, second.session_id);
    assert_ne!(first.refresh_token, second.refresh_token);
    assert_eq!(app.session_count(&first.user_id()).await, 2);
}

async fn me_returns_the_caller_without_secrets(backend: Backend) {
    let app = spawn_app(backend).await;
    let tokens = app.register_and_login("Carol").await;
    let response = app.me(&tokens.access_token).await;
    assert_eq!(response.status(), StatusCode::OK);
    let me: Value = response.json().await.unwrap();
    assert_eq!(me["username"], "carol");
    assert_eq!(me["id"], tokens.user_id().as_str());
    assert_eq!(me["session_id"], tokens.session_id.as_str());
    assert!(me.get("password_hash").is_none());
}

async fn usernames_are_canonicalised_and_unique(backend: Backend) {
    let app = spawn_app(backend).await;
    assert_eq!(
        app.register("Dave", PASSWORD).await.status(),
        StatusCode::CREATED
    );
    let (status, code) = error_code(app.register("DAVE", PASSWORD).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::CONFLICT, "username_taken")
    );
    // Full-width letters map to the same account.
    assert_eq!(
        app.login("ＤＡＶＥ", PASSWORD).await.status(),
        StatusCode::OK
    );
}

async fn unknown_user_and_wrong_password_get_byte_identical_answers(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register("erin", PASSWORD).await;
    let wrong = app.login("erin", "not the password").await;
    let unknown = app.login("nobody-here", "not the password").await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.status(), unknown.status());
    let headers = |r: &reqwest::Response| {
        let mut h: Vec<(String, String)> = r
            .headers()
            .iter()
            // Both differ on every response, whatever the account.
            .filter(|(k, _)| *k != "date" && *k != "x-request-id")
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string()))
            .collect();
        h.sort();
        h
    };
    assert_eq!(headers(&wrong), headers(&unknown));
    assert_eq!(wrong.bytes().await.unwrap(), unknown.bytes().await.unwrap());
}

async fn a_failed_login_creates_no_session_and_is_audited(backend: Backend) {
    let app = spawn_app(backend).await;
    let tokens = app.register_and_login("frank").await;
    let user_id = tokens.user_id();
    assert_eq!(
        app.login("frank", "wrong password!").await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.session_count(&user_id).await, 1);
    let failures = app.audit_events("login.failure").await;
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].target.as_deref(), Some(user_id.as_str()));
    assert_eq!(app.audit_events("login.success").await.len(), 1);
}

async fn jwks_publishes_the_signing_key_without_private_members(backend: Backend) {
    let app = spawn_app(backend).await;
    let tokens = app.register_and_login("grace").await;
    let jwks: Value = app
        .client
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    let key = &keys[0];
    assert_eq!(key["kid"], tokens.header()["kid"]);
    assert_eq!(
        (key["kty"].as_str(), key["crv"].as_str()),
        (Some("OKP"), Some("Ed25519"))
    );
    assert_eq!(
        (key["alg"].as_str(), key["use"].as_str()),
        (Some("EdDSA"), Some("sig"))
    );
    for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
        assert!(
            key.get(private).is_none(),
            "private member {private} published"
        );
    }
    // The RFC 8414 metadata points at the JWKS (the rest of it: tests/api/oauth.rs).
    let metadata: Value = app
        .client
        .get(app.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(metadata["issuer"], "http://auth.test");
    assert_eq!(
        metadata["jwks_uri"],
        "http://auth.test/.well-known/jwks.json"
    );
}

async fn a_second_instance_verifies_tokens_of_the_first(backend: Backend) {
    let first = spawn_app(backend).await;
    let tokens = first.register_and_login("heidi").await;
    let second = first.second_instance().await;
    let jwks = |app: &TestApp| {
        let url = app.url("/.well-known/jwks.json");
        let client = app.client.clone();
        async move {
            client
                .get(url)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    assert_eq!(
        jwks(&first).await,
        jwks(&second).await,
        "both instances publish the same keys"
    );
    if backend.sessions != Sessions::Memory {
        // Sessions are shared through Redis: the second instance accepts and refreshes.
        assert_eq!(
            second.me(&tokens.access_token).await.status(),
            StatusCode::OK
        );
        let next = second.refresh_ok(&tokens.refresh_token).await;
        assert_eq!(first.me(&next.access_token).await.status(), StatusCode::OK);
    }
}
