//! Registered clients through the admin API and the CLI: created (the secret shown once),
//! listed, secret rotated, keys replaced, disabled and enabled, every change audited; and
//! what a registration refuses.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::cli::auth_center_with_env;
use crate::helpers::*;
use crate::{for_backends, for_every_backend};

for_every_backend!(an_admin_registers_lists_rotates_disables_and_enables_a_client);

for_backends! {
    sqlite_memory: [
        registration_refuses_what_cannot_work_and_writes_nothing,
        the_first_party_client_is_built_in_and_public_clients_identify_by_id,
        a_key_client_gets_its_keys_replaced_or_a_secret_instead,
        only_admins_manage_clients,
    ],
}

const CLIENTS: &str = "/v1/admin/clients";

async fn created(app: &TestApp, admin: &str, body: &Value) -> Value {
    let r = app.post_json_bearer(CLIENTS, admin, body).await;
    let status = r.status();
    let text = r.text().await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{text}");
    serde_json::from_str(&text).unwrap()
}

async fn an_admin_registers_lists_rotates_disables_and_enables_a_client(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = app.admin_login("root").await;
    let admin = root.access_token.as_str();
    let body = created(
        &app,
        admin,
        &json!({
            "client_id": "billing-cron",
            "name": "Nightly billing",
            "roles": ["svc"],
            "scopes": ["invoices:write", "invoices:read", "invoices:read"],
            "introspect": true,
        }),
    )
    .await;
    let secret = body["client_secret"].as_str().unwrap().to_string();
    assert_eq!(secret.len(), 43, "256 bits, base64url");
    assert_eq!(body["client_type"], "confidential");
    assert_eq!(
        body["token_endpoint_auth_methods"],
        json!(["client_secret_basic", "client_secret_post"])
    );
    assert_eq!(body["scopes"], json!(["invoices:read", "invoices:write"]));
    assert_eq!(
        (body["introspect"].as_bool(), body["disabled"].as_bool()),
        (Some(true), Some(false))
    );
    // The id is taken now, on every database (and the built-in one always was).
    for id in ["billing-cron", "first-party"] {
        let r = app
            .post_json_bearer(CLIENTS, admin, &json!({ "client_id": id }))
            .await;
        assert_error(r, StatusCode::CONFLICT, "client_id_taken").await;
    }
    // Listed and shown, never with the secret or its hash.
    let list = app.get_json_ok(CLIENTS, admin).await;
    let ids: Vec<&str> = list["clients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["client_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["billing-cron", "first-party"]);
    let one = app
        .get_json_ok("/v1/admin/clients/billing-cron", admin)
        .await;
    assert_eq!(one["name"], "Nightly billing");
    for shown in [list.to_string(), one.to_string()] {
        assert!(
            !shown.contains(&secret) && !shown.contains("hmac"),
            "{shown}"
        );
    }
    let client = TestClient {
        id: "billing-cron".into(),
        secret,
    };
    let before = app.client_token(&client, None).await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    // Rotation: a new secret, once; the old one and the tokens it got end.
    let r = app
        .post_bearer("/v1/admin/clients/billing-cron/secret", admin)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let rotated: Value = r.json().await.unwrap();
    let new_secret = rotated["client_secret"].as_str().unwrap().to_string();
    assert_ne!(new_secret, client.secret);
    assert!(rotated["secret_rotated_at"].is_string());
    assert!(!app.accepts(&before).await);
    let r = app
        .post_form(
            "/oauth2/token",
            &[("grant_type", "client_credentials")],
            Some((&client.id, &client.secret)),
        )
        .await;
    assert_oauth_error(r, StatusCode::UNAUTHORIZED, "invalid_client").await;
    let client = TestClient {
        id: client.id,
        secret: new_secret,
    };
    let token = app.client_token(&client, None).await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    // Disabled: its tokens end at once and it cannot authenticate; enabled: it can again.
    let r = app
        .post_bearer("/v1/admin/clients/billing-cron/disable", admin)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["disabled"], true);
    assert!(!app.accepts(&token).await);
    assert_eq!(app.session_count("billing-cron").await, 0);
    let r = app
        .post_form(
            "/oauth2/token",
            &[("grant_type", "client_credentials")],
            Some((&client.id, &client.secret)),
        )
        .await;
    assert_oauth_error(r, StatusCode::UNAUTHORIZED, "invalid_client").await;
    let r = app
        .post_bearer("/v1/admin/clients/billing-cron/enable", admin)
        .await;
    assert_eq!(r.json::<Value>().await.unwrap()["disabled"], false);
    app.client_token(&client, None).await;
    // Every change is audited with the admin as actor and the client as target.
    let events: Vec<(String, Option<String>)> = app
        .all_audit_events()
        .await
        .into_iter()
        .filter(|e| e.event.starts_with("admin.client"))
        .map(|e| (e.event, e.detail))
        .collect();
    assert_eq!(
        events,
        [
            ("admin.client_enabled".to_string(), Some(String::new())),
            (
                "admin.client_disabled".into(),
                Some("1 tokens ended".into())
            ),
            (
                "admin.client_secret_rotated".into(),
                Some("1 tokens ended".into())
            ),
            (
                "admin.client_created".into(),
                Some(
                    "confidential, client_secret_basic/client_secret_post; roles [svc]; \
                     scopes [invoices:read invoices:write]; introspect"
                        .into()
                )
            ),
        ]
    );
    for e in app.all_audit_events().await {
        if e.event.starts_with("admin.client") {
            assert_eq!(e.actor.as_deref(), Some(root.user_id().as_str()));
            assert_eq!(e.target.as_deref(), Some("billing-cron"));
        }
    }
}

async fn registration_refuses_what_cannot_work_and_writes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = app.admin_login("root").await;
    let admin = root.access_token.as_str();
    created(&app, admin, &json!({ "client_id": "taken" })).await;
    let private = json!({ "kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", "d": "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A" });
    use base64::Engine as _;
    let small_rsa = json!({ "kty": "RSA", "e": "AQAB",
        "n": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([0xB7u8; 128]) });
    for (body, status, code) in [
        (
            json!({ "client_id": "taken" }),
            StatusCode::CONFLICT,
            "client_id_taken",
        ),
        (
            json!({ "client_id": "first-party" }),
            StatusCode::CONFLICT,
            "client_id_taken",
        ),
        (
            json!({ "client_id": "27b313fd-b88b-4263-979c-dbba6ab71841" }),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            json!({ "client_id": "a:b" }),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            json!({ "client_id": "" }),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            json!({ "client_id": "x", "scopes": ["a b"] }),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            json!({ "client_id": "x", "roles": ["a,b"] }),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            json!({ "client_id": "x", "name": "a\nb" }),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            json!({ "client_id": "x", "client_type": "public", "scopes": ["a"] }),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            json!({ "client_id": "x", "client_type": "public", "introspect": true }),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            json!({ "client_id": "x", "redirect_uris": ["https://app.example/cb"] }),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            json!({ "client_id": "x", "client_type": "public", "redirect_uris": ["http://app.example/cb"] }),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            json!({ "client_id": "x", "client_type": "public", "allowed_origins": ["*"] }),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            json!({ "client_id": "x", "jwks": { "keys": [private] } }),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            json!({ "client_id": "x", "jwks": { "keys": [small_rsa] } }),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            json!({ "client_id": "x", "jwks": { "keys": [] } }),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            json!({ "client_id": "x", "client_type": "service" }),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            json!({ "client_id": "x", "client_secret": "mine" }),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
    ] {
        let r = app.post_json_bearer(CLIENTS, admin, &body).await;
        assert_eq!(r.status(), status, "{body}");
        assert_error(r, status, code).await;
    }
    let r = app
        .request(reqwest::Method::POST, CLIENTS)
        .bearer_auth(admin)
        .header("content-type", "application/json")
        .body(r#"{"client_id":"x","client_id":"y"}"#)
        .send()
        .await
        .unwrap();
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_request").await;
    let list = app.get_json_ok(CLIENTS, admin).await;
    assert_eq!(list["clients"].as_array().unwrap().len(), 2, "{list}");
    let created_events = app.audit_events("admin.client_created").await;
    assert_eq!(created_events.len(), 1);
    // Unknown clients are 404 everywhere.
    for path in ["/v1/admin/clients/nobody", "/v1/admin/clients/no%20body"] {
        let r = app.get_bearer(path, admin).await;
        assert_error(r, StatusCode::NOT_FOUND, "not_found").await;
    }
    for path in ["secret", "disable", "enable"] {
        let r = app
            .post_bearer(&format!("/v1/admin/clients/nobody/{path}"), admin)
            .await;
        assert_error(r, StatusCode::NOT_FOUND, "not_found").await;
    }
}

async fn the_first_party_client_is_built_in_and_public_clients_identify_by_id(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = app.admin_login("root").await;
    let admin = root.access_token.as_str();
    let first = app
        .get_json_ok("/v1/admin/clients/first-party", admin)
        .await;
    assert_eq!(first["client_type"], "public");
    assert_eq!(first["built_in"], true);
    assert_eq!(first["token_endpoint_auth_methods"], json!(["none"]));
    for path in ["secret", "disable"] {
        let r = app
            .post_bearer(&format!("/v1/admin/clients/first-party/{path}"), admin)
            .await;
        assert_error(r, StatusCode::BAD_REQUEST, "invalid_request").await;
    }
    // Logins go on.
    app.register_and_login("wim").await;
    // A public client: no secret, its URIs and origins kept.
    let body = created(
        &app,
        admin,
        &json!({
            "client_id": "spa",
            "client_type": "public",
            "redirect_uris": ["https://app.example.com/cb", "http://127.0.0.1:8765/cb"],
            "allowed_origins": ["https://app.example.com"],
        }),
    )
    .await;
    assert!(body.get("client_secret").is_none(), "{body}");
    assert_eq!(body["allowed_origins"], json!(["https://app.example.com"]));
    // It names itself with client_id; it has no tokens of its own to revoke.
    let r = app
        .post_form(
            "/oauth2/revoke",
            &[("token", "x"), ("client_id", "spa")],
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = app
        .post_bearer("/v1/admin/clients/spa/disable", admin)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = app
        .post_form(
            "/oauth2/revoke",
            &[("token", "x"), ("client_id", "spa")],
            None,
        )
        .await;
    assert_oauth_error(r, StatusCode::UNAUTHORIZED, "invalid_client").await;
}

async fn a_key_client_gets_its_keys_replaced_or_a_secret_instead(backend: Backend) {
    use verifier::Clock as _;
    let app = spawn_app(backend).await;
    let root = app.admin_login("root").await;
    let admin = root.access_token.as_str();
    let (old, new) = (ClientKey::generate("k-old"), ClientKey::generate("k-new"));
    let body = created(
        &app,
        admin,
        &json!({ "client_id": "signer", "jwks": { "keys": [old.public_jwk] } }),
    )
    .await;
    assert!(body.get("client_secret").is_none());
    assert_eq!(
        body["token_endpoint_auth_methods"],
        json!(["private_key_jwt"])
    );
    assert_eq!(body["jwks"]["keys"][0]["alg"], "EdDSA");
    assert_eq!(body["jwks"]["keys"][0]["use"], "sig");
    let token_by = |key: &ClientKey| {
        let assertion = key.assertion("signer", app.clock.now_secs());
        let app = &app;
        async move {
            app.post_form(
                "/oauth2/token",
                &[
                    ("grant_type", "client_credentials"),
                    ("client_assertion_type", JWT_BEARER),
                    ("client_assertion", &assertion),
                ],
                None,
            )
            .await
            .status()
        }
    };
    assert_eq!(token_by(&old).await, StatusCode::OK);
    assert_eq!(token_by(&new).await, StatusCode::UNAUTHORIZED);
    // Both keys for a rollover, then only the new one.
    let r = app
        .put_json_bearer(
            "/v1/admin/clients/signer/keys",
            admin,
            &json!({ "jwks": { "keys": [old.public_jwk, new.public_jwk] } }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(app.session_count("signer").await, 0, "its tokens ended");
    assert_eq!(token_by(&old).await, StatusCode::OK);
    assert_eq!(token_by(&new).await, StatusCode::OK);
    let r = app
        .put_json_bearer(
            "/v1/admin/clients/signer/keys",
            admin,
            &json!({ "jwks": { "keys": [new.public_jwk] } }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(token_by(&old).await, StatusCode::UNAUTHORIZED);
    assert_eq!(token_by(&new).await, StatusCode::OK);
    // A secret instead of the keys.
    let r = app
        .post_bearer("/v1/admin/clients/signer/secret", admin)
        .await;
    let body: Value = r.json().await.unwrap();
    assert_eq!(token_by(&new).await, StatusCode::UNAUTHORIZED);
    app.client_token(
        &TestClient {
            id: "signer".into(),
            secret: body["client_secret"].as_str().unwrap().into(),
        },
        None,
    )
    .await;
    assert_eq!(app.audit_events("admin.client_keys_set").await.len(), 2);
    // Bad keys change nothing.
    let r = app
        .put_json_bearer(
            "/v1/admin/clients/signer/keys",
            admin,
            &json!({ "jwks": {} }),
        )
        .await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_request").await;
    assert_eq!(app.audit_events("admin.client_keys_set").await.len(), 2);
}

async fn only_admins_manage_clients(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register_and_login("plain").await;
    let client = app.secret_client("svc", &[], &["admin"], false).await;
    let r = app.get_bearer(CLIENTS, &user.access_token).await;
    assert_error(r, StatusCode::FORBIDDEN, "forbidden").await;
    let r = app
        .post_json_bearer(CLIENTS, &user.access_token, &json!({ "client_id": "mine" }))
        .await;
    assert_error(r, StatusCode::FORBIDDEN, "forbidden").await;
    let r = app
        .post_bearer("/v1/admin/clients/svc/disable", &user.access_token)
        .await;
    assert_error(r, StatusCode::FORBIDDEN, "forbidden").await;
    let r = app.get_bearer(CLIENTS, "garbage").await;
    assert_error(r, StatusCode::UNAUTHORIZED, "invalid_token").await;
    // A service account given the admin role acts as an admin, audited as itself.
    let token = app.client_token(&client, None).await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let r = app
        .post_json_bearer(CLIENTS, &token, &json!({ "client_id": "made-by-svc" }))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let made = app.audit_events("admin.client_created").await;
    assert_eq!(made[0].actor.as_deref(), Some("svc"));
}

#[tokio::test]
async fn the_cli_registers_lists_rotates_disables_and_enables_clients() {
    let dir = tempfile::tempdir().unwrap();
    let db_url = format!("sqlite:{}", dir.path().join("cli.db").display());
    let run = |args: &[&str]| {
        let out = auth_center_with_env(&db_url, &[], args, "");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.success(), stdout, stderr)
    };
    let (ok, stdout, stderr) = run(&[
        "client",
        "create",
        "--id",
        "nightly",
        "--scope",
        "reports",
        "--role",
        "svc",
        "--introspect",
    ]);
    assert!(ok, "{stderr}");
    let secret = stdout
        .lines()
        .find_map(|l| l.strip_prefix("client_secret: "))
        .unwrap_or_else(|| panic!("no secret in {stdout}"))
        .to_string();
    assert_eq!(secret.len(), 43);
    assert!(stderr.contains("not shown again"), "{stderr}");
    let jwks = dir.path().join("keys.json");
    std::fs::write(
        &jwks,
        json!({ "keys": [ClientKey::generate("k").public_jwk] }).to_string(),
    )
    .unwrap();
    let (ok, stdout, stderr) = run(&[
        "client",
        "create",
        "--id",
        "signer",
        "--jwks-file",
        jwks.to_str().unwrap(),
    ]);
    assert!(ok && !stdout.contains("client_secret"), "{stdout}{stderr}");
    let (ok, stdout, _) = run(&["client", "list"]);
    assert!(ok);
    assert!(
        stdout.contains("first-party\tpublic\tnone\tenabled"),
        "{stdout}"
    );
    assert!(stdout.contains("nightly\tconfidential\tclient_secret_basic,client_secret_post\tenabled\troles [svc]\tscopes [reports]\tintrospect"), "{stdout}");
    assert!(
        stdout.contains("signer\tconfidential\tprivate_key_jwt"),
        "{stdout}"
    );
    assert!(!stdout.contains(&secret));
    // Refusals fail with a message.
    let (ok, _, stderr) = run(&["client", "create", "--id", "nightly"]);
    assert!(!ok && stderr.contains("client_id is taken"), "{stderr}");
    let (ok, _, _) = run(&["client", "disable", "--id", "first-party"]);
    assert!(!ok);
    // Rotate, disable, enable.
    let (ok, stdout, stderr) = run(&["client", "rotate-secret", "--id", "nightly"]);
    assert!(ok, "{stderr}");
    let new_secret = stdout
        .lines()
        .find_map(|l| l.strip_prefix("client_secret: "))
        .unwrap()
        .to_string();
    assert_ne!(new_secret, secret);
    let (ok, stdout, _) = run(&["client", "disable", "--id", "nightly"]);
    assert!(ok && stdout.contains("disabled"), "{stdout}");
    let (ok, _, _) = run(&["client", "enable", "--id", "nightly"]);
    assert!(ok);
    // A server on that database issues tokens with the rotated secret; the audit log says
    // the CLI did it all.
    let app = spawn_app_with(
        Backend {
            db: Db::Sqlite,
            sessions: Sessions::Memory,
        },
        |c| c.database_url = db_url.clone().into(),
    )
    .await;
    let client = TestClient {
        id: "nightly".into(),
        secret: new_secret,
    };
    let body = app.client_token(&client, None).await;
    assert_eq!(body["scope"], "reports");
    let r = app
        .post_form(
            "/oauth2/token",
            &[("grant_type", "client_credentials")],
            Some(("nightly", &secret)),
        )
        .await;
    assert_oauth_error(r, StatusCode::UNAUTHORIZED, "invalid_client").await;
    let events: Vec<String> = app
        .all_audit_events()
        .await
        .into_iter()
        .filter(|e| e.actor.as_deref() == Some("cli"))
        .map(|e| e.event)
        .collect();
    assert_eq!(
        events,
        [
            "admin.client_enabled",
            "admin.client_disabled",
            "admin.client_secret_rotated",
            "admin.client_created",
            "admin.client_created",
        ]
    );
}
