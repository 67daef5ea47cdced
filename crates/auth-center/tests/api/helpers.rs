//! `spawn_app`: the real auth-center on port 0 with its own database and Redis key
//! prefix, plus typed helpers.

use std::sync::Arc;
use std::time::Duration;

pub use auth_center::config::{Origin, RedisConfig};
use auth_center::domain::AuthService;
use auth_center::{Application, Config};
use reqwest::{Response, StatusCode};
use secrecy::SecretString;
use serde_json::{Value, json};
use verifier::contract::{ManualClock, RedisConnection, RedisOptions, SessionKeys};

/// Where users live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// Where sessions live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sessions {
    Memory,
    Redis,
    Cluster,
}

/// One store combination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backend {
    pub db: Db,
    pub sessions: Sessions,
}

pub const PASSWORD: &str = "correct horse battery staple";

/// A running auth-center.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub clock: ManualClock,
    pub backend: Backend,
    pub config: Config,
    pub auth: Arc<AuthService>,
    pub redis: Option<RedisConnection>,
    pub keys: SessionKeys,
    _dir: Arc<tempfile::TempDir>,
}

pub use test_support::{DpopKey, Tokens};

/// A test configuration for `backend`: free port, private database, private key prefix.
#[allow(clippy::field_reassign_with_default)] // reads better as a list of overrides
pub fn test_config(backend: Backend, dir: &tempfile::TempDir) -> Config {
    let mut config = Config::default();
    config.listen_addr = "127.0.0.1:0".parse().expect("addr");
    config.issuer = "http://auth.test".into();
    config.database_url = SecretString::from(match backend.db {
        Db::Sqlite => format!("sqlite:{}", dir.path().join("auth.db").display()),
        Db::Postgres => {
            test_support::create_postgres_database(&test_support::shared_postgres_url())
                .expect("create postgres database")
        }
    });
    match backend.sessions {
        Sessions::Memory => {}
        Sessions::Redis => {
            config.redis = RedisConfig::standalone(&test_support::shared_redis_url()).unwrap()
        }
        Sessions::Cluster => {
            config.redis = RedisConfig::cluster(test_support::shared_cluster_urls()).unwrap()
        }
    }
    config.redis_prefix = format!("t{}", uuid::Uuid::new_v4().simple());
    // OWASP's m=12 MiB, t=3 row: as strong as the default and quicker in debug builds.
    config.passwords.memory_kib = 12 * 1024;
    config.passwords.iterations = 3;
    config
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

pub async fn spawn_app_with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> TestApp {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = test_config(backend, &dir);
    tweak(&mut config);
    spawn_with_config(backend, config, Arc::new(dir), ManualClock::starting_now()).await
}

/// Starts an app on an explicit configuration (a second instance on the same stores).
pub async fn spawn_with_config(
    backend: Backend,
    config: Config,
    dir: Arc<tempfile::TempDir>,
    clock: ManualClock,
) -> TestApp {
    let app = Application::build_with_clock(config.clone(), Arc::new(clock.clone()))
        .await
        .expect("application builds");
    serve(backend, config, dir, clock, app).await
}

/// Starts an app on a domain service built by the test (a wrapped store injects faults),
/// serving `registry`'s metrics.
pub async fn spawn_with_service(
    backend: Backend,
    dir: Arc<tempfile::TempDir>,
    clock: ManualClock,
    auth: Arc<AuthService>,
    registry: service_kit::metrics::Registry,
) -> TestApp {
    let config = auth.config().clone();
    let app = Application::with_service(auth, registry)
        .await
        .expect("application builds");
    serve(backend, config, dir, clock, app).await
}

async fn serve(
    backend: Backend,
    config: Config,
    dir: Arc<tempfile::TempDir>,
    clock: ManualClock,
    app: Application,
) -> TestApp {
    let address = format!("http://127.0.0.1:{}", app.port());
    let auth = app.auth();
    tokio::spawn(app.run_until_stopped());
    // The test's own connection reaches Redis as the app does: same address, TLS and user.
    let redis = match config
        .redis_connection(RedisOptions::default())
        .expect("redis settings")
    {
        Some((target, options)) => Some(
            RedisConnection::connect(&target, options)
                .await
                .expect("redis"),
        ),
        None => None,
    };
    TestApp {
        address,
        client: reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client"),
        clock,
        backend,
        keys: SessionKeys::new(config.redis_prefix.clone()),
        config,
        auth,
        redis,
        _dir: dir,
    }
}

impl TestApp {
    /// A second instance sharing this one's database, Redis prefix and clock.
    pub async fn second_instance(&self) -> TestApp {
        spawn_with_config(
            self.backend,
            self.config.clone(),
            self._dir.clone(),
            self.clock.clone(),
        )
        .await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// `GET path`, without credentials.
    pub async fn get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().await.expect("GET")
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> Response {
        self.client
            .post(self.url(path))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn register(&self, username: &str, password: &str) -> Response {
        self.post_json(
            "/v1/register",
            &json!({ "username": username, "password": password }),
        )
        .await
    }

    pub async fn login(&self, username: &str, password: &str) -> Response {
        self.post_json(
            "/v1/login",
            &json!({ "username": username, "password": password }),
        )
        .await
    }

    /// Registers `username` with [`PASSWORD`] and logs in.
    pub async fn register_and_login(&self, username: &str) -> Tokens {
        let r = self.register(username, PASSWORD).await;
        assert_eq!(
            r.status(),
            StatusCode::CREATED,
            "register: {}",
            r.text().await.unwrap_or_default()
        );
        self.login_ok(username).await
    }

    pub async fn login_ok(&self, username: &str) -> Tokens {
        tokens_ok(self.login(username, PASSWORD).await, "login").await
    }

    pub async fn refresh(&self, refresh_token: &str) -> Response {
        self.post_json("/v1/refresh", &json!({ "refresh_token": refresh_token }))
            .await
    }

    pub async fn refresh_ok(&self, refresh_token: &str) -> Tokens {
        tokens_ok(self.refresh(refresh_token).await, "refresh").await
    }

    pub async fn get_bearer(&self, path: &str, access_token: &str) -> Response {
        self.client
            .get(self.url(path))
            .bearer_auth(access_token)
            .send()
            .await
            .expect("request")
    }

    pub async fn post_bearer(&self, path: &str, access_token: &str) -> Response {
        self.client
            .post(self.url(path))
            .bearer_auth(access_token)
            .send()
            .await
            .expect("request")
    }

    pub async fn me(&self, access_token: &str) -> Response {
        self.get_bearer("/v1/me", access_token).await
    }

    /// Live sessions of a user, straight from the store.
    pub async fn session_count(&self, user_id: &str) -> usize {
        self.auth
            .sessions_of(user_id)
            .await
            .expect("list sessions")
            .len()
    }

    /// `DEL` of a session key, as an operator in redis-cli would.
    pub async fn redis_del_session(&self, user_id: &str, sid: &str) -> i64 {
        let key = self.keys.session(user_id, sid).expect("key");
        let mut conn = self.redis.clone().expect("a Redis backend");
        redis::cmd("DEL")
            .arg(key)
            .query_async(&mut conn)
            .await
            .expect("DEL")
    }

    /// Audit events (newest first) with this name.
    pub async fn audit_events(&self, event: &str) -> Vec<auth_center::domain::ports::AuditEvent> {
        self.auth
            .recent_audit(1000)
            .await
            .expect("audit")
            .into_iter()
            .filter(|e| e.event == event)
            .collect()
    }
}

/// The token response of a `200`; panics with the body (for `what`) otherwise.
pub async fn tokens_ok(r: Response, what: &str) -> Tokens {
    let status = r.status();
    let text = r.text().await.unwrap_or_default();
    assert_eq!(status, StatusCode::OK, "{what}: {text}");
    serde_json::from_str(&text).expect("token body")
}

/// Asserts the common error shape and returns the code.
pub async fn error_code(response: Response) -> (StatusCode, String) {
    let status = response.status();
    let text = response.text().await.expect("a body");
    let body: Value =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("{status}: not JSON: {text:.200}"));
    let code = body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("{status}: no error field in {text:.200}"))
        .to_string();
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "message missing in {body}"
    );
    (status, code)
}

/// Runs one test body against every store combination, one `#[tokio::test]` each.
#[macro_export]
macro_rules! for_every_backend {
    ($($name:ident),* $(,)?) => {
        $crate::for_every_backend!(@db sqlite_memory, Sqlite, Memory; $($name),*);
        $crate::for_every_backend!(@db sqlite_redis, Sqlite, Redis; $($name),*);
        $crate::for_every_backend!(@db sqlite_cluster, Sqlite, Cluster; $($name),*);
        $crate::for_every_backend!(@db postgres_memory, Postgres, Memory; $($name),*);
        $crate::for_every_backend!(@db postgres_redis, Postgres, Redis; $($name),*);
        $crate::for_every_backend!(@db postgres_cluster, Postgres, Cluster; $($name),*);
    };
    (@db $module:ident, $db:ident, $sessions:ident; $($name:ident),*) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Backend {
                        db: $crate::helpers::Db::$db,
                        sessions: $crate::helpers::Sessions::$sessions,
                    })
                    .await
                }
            )*
        }
    };
}

// ---- helpers for the session-lifecycle tests (devices, admin, limits, cookies, keys) ----

/// Runs test bodies against chosen store combinations (SQLite-backed, and Postgres with
/// Redis where the SQL itself is what a test checks), one `#[tokio::test]` each; one
/// invocation per file:
/// `for_backends! { sqlite_memory: [a, b], sqlite_redis: [a], sqlite_cluster: [c], postgres_redis: [a] }`.
#[macro_export]
macro_rules! for_backends {
    (@one sqlite_memory [$($name:ident),* $(,)?]) => {
        $crate::for_every_backend!(@db on_sqlite_memory, Sqlite, Memory; $($name),*);
    };
    (@one sqlite_redis [$($name:ident),* $(,)?]) => {
        $crate::for_every_backend!(@db on_sqlite_redis, Sqlite, Redis; $($name),*);
    };
    (@one sqlite_cluster [$($name:ident),* $(,)?]) => {
        $crate::for_every_backend!(@db on_sqlite_cluster, Sqlite, Cluster; $($name),*);
    };
    (@one postgres_redis [$($name:ident),* $(,)?]) => {
        $crate::for_every_backend!(@db on_postgres_redis, Postgres, Redis; $($name),*);
    };
    ($($backend:ident : [$($name:ident),* $(,)?]),* $(,)?) => {
        $( $crate::for_backends!(@one $backend [$($name),*]); )*
    };
}

/// The `Retry-After` of a response, in seconds.
pub fn retry_after_secs(response: &Response) -> u64 {
    response
        .headers()
        .get("retry-after")
        .unwrap_or_else(|| panic!("{}: no Retry-After", response.status()))
        .to_str()
        .expect("ascii Retry-After")
        .parse()
        .expect("Retry-After in seconds")
}

/// Asserts a status and an error code in the common error shape.
pub async fn assert_error(response: Response, status: StatusCode, code: &str) {
    let (got_status, got_code) = error_code(response).await;
    assert_eq!(
        (got_status, got_code.as_str()),
        (status, code),
        "expected {status} {code}"
    );
}

impl TestApp {
    /// A request to `path` that the caller finishes (headers, body) and sends.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, self.url(path))
    }

    /// Creates a user with `roles` (through the domain, as the CLI does); returns its id.
    pub async fn create_user_with_roles(&self, username: &str, roles: &[&str]) -> String {
        self.auth
            .create_user(
                username,
                SecretString::from(PASSWORD.to_string()),
                roles.iter().map(|r| r.to_string()).collect(),
            )
            .await
            .expect("create user")
            .id
    }

    /// Creates an admin with [`PASSWORD`] and logs in.
    pub async fn admin_login(&self, username: &str) -> Tokens {
        self.create_user_with_roles(username, &["admin"]).await;
        self.login_ok(username).await
    }

    /// The claims of a new admin `root`, for calling the domain's admin methods directly.
    pub async fn admin_claims(&self) -> verifier::Claims {
        let root = self.admin_login("root").await;
        self.auth
            .authenticate(&root.access_token, None)
            .await
            .expect("an admin's token")
    }

    pub async fn delete_bearer(&self, path: &str, access_token: &str) -> Response {
        self.request(reqwest::Method::DELETE, path)
            .bearer_auth(access_token)
            .send()
            .await
            .expect("request")
    }

    pub async fn post_json_bearer(&self, path: &str, access_token: &str, body: &Value) -> Response {
        self.request(reqwest::Method::POST, path)
            .bearer_auth(access_token)
            .json(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn put_json_bearer(&self, path: &str, access_token: &str, body: &Value) -> Response {
        self.request(reqwest::Method::PUT, path)
            .bearer_auth(access_token)
            .json(body)
            .send()
            .await
            .expect("request")
    }

    /// A GET with a bearer token whose 200 JSON body is returned.
    pub async fn get_json_ok(&self, path: &str, access_token: &str) -> Value {
        let r = self.get_bearer(path, access_token).await;
        let status = r.status();
        let text = r.text().await.unwrap_or_default();
        assert_eq!(status, StatusCode::OK, "GET {path}: {text}");
        serde_json::from_str(&text).expect("a JSON body")
    }

    /// A login carrying `X-Forwarded-For: forwarded_for`.
    pub async fn login_forwarded(
        &self,
        username: &str,
        password: &str,
        forwarded_for: &str,
    ) -> Response {
        self.request(reqwest::Method::POST, "/v1/login")
            .header("x-forwarded-for", forwarded_for)
            .json(&json!({ "username": username, "password": password }))
            .send()
            .await
            .expect("request")
    }

    /// Members of the user's session index in Redis (empty when the key is gone).
    pub async fn redis_index_members(&self, user_id: &str) -> Vec<String> {
        let key = self.keys.user_index(user_id).expect("key");
        let mut conn = self.redis.clone().expect("a Redis backend");
        redis::cmd("ZRANGE")
            .arg(key)
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await
            .expect("ZRANGE")
    }

    /// `ZCARD` of the user's session index in Redis.
    pub async fn redis_index_len(&self, user_id: &str) -> u64 {
        let key = self.keys.user_index(user_id).expect("key");
        let mut conn = self.redis.clone().expect("a Redis backend");
        redis::cmd("ZCARD")
            .arg(key)
            .query_async(&mut conn)
            .await
            .expect("ZCARD")
    }

    /// Whether the session record exists in Redis.
    pub async fn redis_session_exists(&self, user_id: &str, sid: &str) -> bool {
        let key = self.keys.session(user_id, sid).expect("key");
        let mut conn = self.redis.clone().expect("a Redis backend");
        let n: i64 = redis::cmd("EXISTS")
            .arg(key)
            .query_async(&mut conn)
            .await
            .expect("EXISTS");
        n == 1
    }

    /// Every audit event (newest first).
    pub async fn all_audit_events(&self) -> Vec<auth_center::domain::ports::AuditEvent> {
        self.auth.recent_audit(1000).await.expect("audit")
    }

    /// Sids of the user's live sessions, sorted, straight from the store.
    pub async fn session_ids(&self, user_id: &str) -> Vec<String> {
        let mut sids: Vec<String> = self
            .auth
            .sessions_of(user_id)
            .await
            .expect("list sessions")
            .into_iter()
            .map(|s| s.sid)
            .collect();
        sids.sort();
        sids
    }
}

/// A PHC Argon2id hash of `password` with the app's parameters, made outside the app (as
/// another instance, or an older version, would have stored it).
pub fn argon2_hash(config: &Config, password: &[u8]) -> String {
    argon2_hash_with(config.passwords.iterations, config, password)
}

/// Like [`argon2_hash`], with `iterations` in place of the app's (a hash the app upgrades
/// on the next login when they differ).
pub fn argon2_hash_with(iterations: u32, config: &Config, password: &[u8]) -> String {
    use argon2::PasswordHasher as _;
    let params = argon2::Params::new(
        config.passwords.memory_kib,
        iterations,
        config.passwords.parallelism,
        None,
    )
    .expect("argon2 parameters");
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password(password)
        .expect("argon2 hash")
        .to_string()
}

impl TestApp {
    /// `/metrics`, parsed. This app's own: each app records into a registry of its own.
    pub async fn scrape(&self) -> Scrape {
        Scrape::parse(&self.metrics_text().await)
    }

    /// The `/metrics` text.
    pub async fn metrics_text(&self) -> String {
        let response = self.request(reqwest::Method::GET, "/metrics").send().await;
        response
            .expect("metrics")
            .text()
            .await
            .expect("metrics text")
    }
}

// ---- OAuth clients (clients.rs, oauth.rs, introspection.rs) ----

/// A confidential client registered by a test, and its secret.
#[derive(Debug, Clone)]
pub struct TestClient {
    pub id: String,
    pub secret: String,
}

/// The assertion type of `private_key_jwt`.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

impl TestApp {
    /// Registers a client through the domain, as the CLI does.
    pub async fn register_client(
        &self,
        new: auth_center::domain::clients::NewClient,
    ) -> auth_center::domain::clients::ClientWithSecret {
        self.auth
            .admin_create_client(
                &auth_center::domain::admin::cli_actor(),
                new,
                &auth_center::domain::ClientInfo::default(),
            )
            .await
            .expect("register a client")
    }

    /// Registers a confidential client with a secret, these scopes and roles, allowed to
    /// introspect or not.
    pub async fn secret_client(
        &self,
        id: &str,
        scopes: &[&str],
        roles: &[&str],
        introspect: bool,
    ) -> TestClient {
        use secrecy::ExposeSecret as _;
        let made = self
            .register_client(auth_center::domain::clients::NewClient {
                id: id.into(),
                scopes: scopes.iter().map(|s| s.to_string()).collect(),
                roles: roles.iter().map(|s| s.to_string()).collect(),
                introspect,
                ..Default::default()
            })
            .await;
        TestClient {
            id: id.into(),
            secret: made.secret.expect("a secret").expose_secret().to_string(),
        }
    }

    /// Registers a confidential `private_key_jwt` client with `key`.
    pub async fn key_client(&self, id: &str, key: &ClientKey, scopes: &[&str], introspect: bool) {
        let made = self
            .register_client(auth_center::domain::clients::NewClient {
                id: id.into(),
                scopes: scopes.iter().map(|s| s.to_string()).collect(),
                jwks: Some(json!({ "keys": [key.public_jwk.clone()] })),
                introspect,
                ..Default::default()
            })
            .await;
        assert!(made.secret.is_none(), "a key client has no secret");
    }

    /// A form POST, with `Authorization: Basic` (id and secret form-urlencoded, RFC 6749
    /// §2.3.1) when `basic` is given.
    pub async fn post_form(
        &self,
        path: &str,
        pairs: &[(&str, &str)],
        basic: Option<(&str, &str)>,
    ) -> Response {
        self.form_request(path, pairs, basic)
            .send()
            .await
            .expect("request")
    }

    /// [`TestApp::post_form`]'s request, for a test to add headers (a `DPoP` proof) to.
    pub fn form_request(
        &self,
        path: &str,
        pairs: &[(&str, &str)],
        basic: Option<(&str, &str)>,
    ) -> reqwest::RequestBuilder {
        let request = self
            .request(reqwest::Method::POST, path)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(pairs).expect("form"));
        match basic {
            Some((id, secret)) => request.header("authorization", basic_header(id, secret)),
            None => request,
        }
    }

    /// A client-credentials token with `client_secret_basic`; the 200 body.
    pub async fn client_token(&self, client: &TestClient, scope: Option<&str>) -> Value {
        let mut pairs = vec![("grant_type", "client_credentials")];
        if let Some(scope) = scope {
            pairs.push(("scope", scope));
        }
        let r = self
            .post_form("/oauth2/token", &pairs, Some((&client.id, &client.secret)))
            .await;
        let status = r.status();
        let text = r.text().await.unwrap_or_default();
        assert_eq!(status, StatusCode::OK, "client token: {text}");
        serde_json::from_str(&text).expect("a token body")
    }

    /// Whether an access token is accepted by the auth-center as a bearer token (signature,
    /// claims, no DPoP binding, session).
    pub async fn accepts(&self, access_token: &str) -> bool {
        self.auth.authenticate(access_token, None).await.is_ok()
    }
}

/// `Basic base64(urlencode(id) ":" urlencode(secret))` (RFC 6749 §2.3.1).
pub fn basic_header(id: &str, secret: &str) -> String {
    use base64::Engine as _;
    let encode = |s: &str| serde_urlencoded::to_string([("", s)]).expect("encode")[1..].to_string();
    let pair = format!("{}:{}", encode(id), encode(secret));
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

/// The claims of a JWT, decoded without verifying it.
pub fn jwt_claims(token: &str) -> Value {
    jwt_segment(token, 1)
}

/// The header of a JWT, decoded without verifying it.
pub fn jwt_header(token: &str) -> Value {
    jwt_segment(token, 0)
}

fn jwt_segment(token: &str, i: usize) -> Value {
    use base64::Engine as _;
    let segment = token.split('.').nth(i).expect("a segment");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(segment)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON")
}

/// Asserts an OAuth error (`{"error","error_description"}`, not cacheable); returns the
/// response's headers.
pub async fn assert_oauth_error(
    response: Response,
    status: StatusCode,
    code: &str,
) -> reqwest::header::HeaderMap {
    let got = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.expect("a body");
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{got}: {text}"));
    assert_eq!(
        (got, body["error"].as_str()),
        (status, Some(code)),
        "{text}"
    );
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "{text}"
    );
    assert_eq!(headers["cache-control"], "no-store", "{text}");
    headers
}

/// The Ed25519 key pair of a `private_key_jwt` client.
pub struct ClientKey {
    pub kid: String,
    encoding: jsonwebtoken::EncodingKey,
    pub public_jwk: Value,
}

impl ClientKey {
    pub fn generate(kid: &str) -> Self {
        use aws_lc_rs::signature::KeyPair as _;
        use base64::Engine as _;
        let pkcs8 = aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8(
            &aws_lc_rs::rand::SystemRandom::new(),
        )
        .expect("generate");
        let pair = aws_lc_rs::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("pair");
        let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
        Self {
            kid: kid.into(),
            encoding: jsonwebtoken::EncodingKey::from_ed_der(pkcs8.as_ref()),
            public_jwk: json!({ "kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid }),
        }
    }

    /// Signs `claims` with `header` members added to `{"alg":"EdDSA","kid":..}`.
    pub fn sign_with(&self, header_extra: &Value, claims: &Value) -> String {
        use base64::Engine as _;
        let mut header = json!({ "alg": "EdDSA", "kid": self.kid, "typ": "JWT" });
        for (k, v) in header_extra.as_object().expect("object") {
            if v.is_null() {
                header.as_object_mut().unwrap().remove(k);
            } else {
                header[k] = v.clone();
            }
        }
        let b64 =
            |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        let input = format!("{}.{}", b64(&header), b64(claims));
        let signature = jsonwebtoken::crypto::sign(
            input.as_bytes(),
            &self.encoding,
            jsonwebtoken::Algorithm::EdDSA,
        )
        .expect("sign");
        format!("{input}.{signature}")
    }

    /// Good assertion claims for `client_id` at time `now` (seconds), aud the token endpoint.
    pub fn claims(client_id: &str, now: i64) -> Value {
        json!({
            "iss": client_id,
            "sub": client_id,
            "aud": "http://auth.test/oauth2/token",
            "iat": now,
            "exp": now + 60,
            "jti": uuid::Uuid::new_v4().to_string(),
        })
    }

    /// A good assertion for `client_id` now.
    pub fn assertion(&self, client_id: &str, now: i64) -> String {
        self.sign_with(&json!({}), &Self::claims(client_id, now))
    }
}

// ---- DPoP (RFC 9449) ----

impl TestApp {
    /// The `htu` of a proof for `path`: the tests' public URL is the issuer.
    pub fn htu(&self, path: &str) -> String {
        format!("{}{path}", self.config.issuer)
    }

    /// Now, by the app's clock, in seconds: the `iat` of a fresh proof.
    pub fn now_secs(&self) -> i64 {
        use verifier::Clock as _;
        self.clock.now_secs()
    }

    /// A fresh proof of `key` for `POST path`.
    pub fn proof(&self, key: &DpopKey, path: &str) -> String {
        key.proof("POST", &self.htu(path), self.now_secs())
    }

    /// A login of `username` with [`PASSWORD`] and the `DPoP` header `proof`.
    pub async fn login_with_proof(&self, username: &str, proof: &str) -> Response {
        self.request(reqwest::Method::POST, "/v1/login")
            .header("dpop", proof)
            .json(&json!({ "username": username, "password": PASSWORD }))
            .send()
            .await
            .expect("request")
    }

    /// Registers `username` and logs in with a proof of `key`: a session bound to it.
    pub async fn register_and_login_bound(&self, username: &str, key: &DpopKey) -> Tokens {
        let r = self.register(username, PASSWORD).await;
        assert_eq!(r.status(), StatusCode::CREATED, "register");
        self.login_bound(username, key).await
    }

    /// A login of an existing user with a proof of `key`, which must succeed.
    pub async fn login_bound(&self, username: &str, key: &DpopKey) -> Tokens {
        let proof = self.proof(key, "/v1/login");
        tokens_ok(self.login_with_proof(username, &proof).await, "login").await
    }

    /// A refresh with the `DPoP` header `proof`.
    pub async fn refresh_with_proof(&self, refresh_token: &str, proof: &str) -> Response {
        self.request(reqwest::Method::POST, "/v1/refresh")
            .header("dpop", proof)
            .json(&json!({ "refresh_token": refresh_token }))
            .send()
            .await
            .expect("request")
    }

    /// A refresh with a fresh proof of `key`, which must succeed.
    pub async fn refresh_bound_ok(&self, refresh_token: &str, key: &DpopKey) -> Tokens {
        let proof = self.proof(key, "/v1/refresh");
        tokens_ok(
            self.refresh_with_proof(refresh_token, &proof).await,
            "refresh",
        )
        .await
    }

    /// `method path` with `Authorization: DPoP <access_token>` and a fresh proof of `key`
    /// for it.
    pub async fn send_dpop(
        &self,
        method: reqwest::Method,
        path: &str,
        access_token: &str,
        key: &DpopKey,
    ) -> Response {
        let proof = key.proof_for_token(
            method.as_str(),
            &self.htu(path),
            self.now_secs(),
            access_token,
        );
        self.request(method, path)
            .header("authorization", format!("DPoP {access_token}"))
            .header("dpop", proof)
            .send()
            .await
            .expect("request")
    }

    /// The DPoP key thumbprint the session is bound to, straight from the store.
    pub async fn session_binding(&self, user_id: &str, sid: &str) -> Option<String> {
        self.auth
            .sessions_of(user_id)
            .await
            .expect("list sessions")
            .into_iter()
            .find(|s| s.sid == sid)
            .unwrap_or_else(|| panic!("no session {sid}"))
            .dpop_jkt
    }
}

// ---- clients behind a proxy (the refresh policy's network and user-agent tests) ----

/// An app behind a trusted proxy (the test client, 127.0.0.1), so `X-Forwarded-For` sets
/// the client IP as a real proxy would.
pub async fn proxied_app(backend: Backend, tweak: impl FnOnce(&mut Config)) -> TestApp {
    spawn_app_with(backend, |c| {
        c.trusted_proxies =
            vec![auth_center::domain::client_ip::IpRange::parse("127.0.0.1").expect("range")];
        tweak(c);
    })
    .await
}

/// `POST path` from the client `ip` (forwarded) with user agent `agent`.
pub fn post_from(
    app: &TestApp,
    path: &str,
    ip: Option<&str>,
    agent: Option<&str>,
) -> reqwest::RequestBuilder {
    let mut request = app.request(reqwest::Method::POST, path);
    if let Some(ip) = ip {
        request = request.header("x-forwarded-for", ip);
    }
    if let Some(agent) = agent {
        request = request.header("user-agent", agent);
    }
    request
}

/// A Prometheus text exposition: each series (name and labels, as written) with its value.
pub struct Scrape {
    text: String,
    values: std::collections::HashMap<String, f64>,
}

impl Scrape {
    pub fn parse(text: &str) -> Self {
        let values = text
            .lines()
            .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
            .map(|line| {
                let (series, value) = line.rsplit_once(' ').expect("a series and its value");
                (series.to_string(), value.parse().expect("a number"))
            })
            .collect();
        Self {
            text: text.to_string(),
            values,
        }
    }

    /// Whether the text contains `needle` anywhere.
    pub fn text_contains(&self, needle: &str) -> bool {
        self.text.contains(needle)
    }

    /// The sum of every series of the metric `name`, whatever its labels (0 when none).
    pub fn sum(&self, name: &str) -> f64 {
        self.values
            .iter()
            .filter(|(series, _)| {
                series
                    .strip_prefix(name)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('{'))
            })
            .map(|(_, value)| value)
            .sum()
    }

    /// The value of `series` (`name{label="value",...}`); a missing series fails the test.
    pub fn value(&self, series: &str) -> f64 {
        *self
            .values
            .get(series)
            .unwrap_or_else(|| panic!("no {series} in\n{}", self.text))
    }
}
