//! The real gateway on port 0, with an issuer of our own (an Ed25519 key, its JWKS served over
//! HTTP), session records written straight into the shared Redis under a fresh key prefix,
//! and typed requests in each proxy's dialect.

use std::net::SocketAddr;
use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
use axum::Json;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gateway::Settings;
use reqwest::header::HeaderMap;
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use verifier::settings::VerifierSettings;
use verifier::{Clock as _, RedisTarget, RevocationMode, SystemClock};

pub const ISSUER: &str = "http://auth.test";
pub const AUDIENCE: &str = "api";
const KID: &str = "gateway-test-key";

/// Upper bound of every poll (never reached when things work).
pub const POLL_BOUND: Duration = Duration::from_secs(20);

/// A proxy's way of asking the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// nginx `auth_request`.
    AuthRequest,
    /// Traefik `ForwardAuth`.
    ForwardAuth,
    /// Envoy `ext_authz`.
    ExtAuthz,
}

pub const DIALECTS: [Dialect; 3] = [
    Dialect::AuthRequest,
    Dialect::ForwardAuth,
    Dialect::ExtAuthz,
];

impl Dialect {
    /// The metrics label.
    pub fn label(self) -> &'static str {
        match self {
            Dialect::AuthRequest => "auth_request",
            Dialect::ForwardAuth => "forward_auth",
            Dialect::ExtAuthz => "ext_authz",
        }
    }
}

/// A rule: `prefix` needs `role`.
pub fn role_rule(prefix: &str, role: &str) -> gateway::Rule {
    gateway::Rule {
        prefix: prefix.into(),
        role: Some(role.into()),
        ..gateway::Rule::default()
    }
}

/// A rule: `prefix` is anonymous.
pub fn anonymous_rule(prefix: &str) -> gateway::Rule {
    gateway::Rule {
        prefix: prefix.into(),
        anonymous: true,
        ..gateway::Rule::default()
    }
}

/// Signs access tokens with one Ed25519 key and serves its JWKS.
pub struct Issuer {
    pkcs8: Vec<u8>,
    public_key: Vec<u8>,
}

impl Issuer {
    pub fn new() -> Self {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("a key");
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("the key");
        Self {
            pkcs8: pkcs8.as_ref().to_vec(),
            public_key: pair.public_key().as_ref().to_vec(),
        }
    }

    fn jwks(&self) -> Value {
        json!({ "keys": [{
            "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": KID,
            "x": URL_SAFE_NO_PAD.encode(&self.public_key),
        }]})
    }

    /// Serves the JWKS on a free port; its URL.
    async fn serve_jwks(&self) -> String {
        let jwks = self.jwks();
        let app = axum::Router::new().route(
            "/.well-known/jwks.json",
            get(move || async move { Json(jwks) }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the JWKS server");
        let addr = listener.local_addr().expect("address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}/.well-known/jwks.json")
    }

    /// An access token with `claims` (over the defaults of `session`).
    pub fn token(&self, session: &Session, claims: Value) -> String {
        let now = SystemClock.now_secs();
        let mut all = json!({
            "iss": ISSUER, "sub": session.sub, "aud": AUDIENCE, "exp": now + 600, "iat": now,
            "jti": uuid::Uuid::new_v4().to_string(), "sid": session.sid,
            "roles": ["user"], "client_id": "first-party",
        });
        for (name, value) in claims.as_object().into_iter().flatten() {
            if value.is_null() {
                all.as_object_mut().map(|all| all.remove(name));
            } else {
                all[name] = value.clone();
            }
        }
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        header.typ = Some("at+jwt".into());
        header.kid = Some(KID.into());
        jsonwebtoken::encode(
            &header,
            &all,
            &jsonwebtoken::EncodingKey::from_ed_der(&self.pkcs8),
        )
        .expect("a signed token")
    }
}

/// A session: its record exists in Redis until [`Env::end`].
#[derive(Debug, Clone)]
pub struct Session {
    pub sub: String,
    pub sid: String,
}

/// One test's world: an issuer with its JWKS, and a fresh key prefix in a Redis.
pub struct Env {
    pub issuer: Issuer,
    jwks_url: String,
    pub prefix: String,
    pub redis_url: String,
}

impl Env {
    /// On the shared Redis.
    pub async fn new() -> Self {
        Self::on(test_support::shared_redis_url()).await
    }

    /// On the Redis at `redis_url`.
    pub async fn on(redis_url: String) -> Self {
        let issuer = Issuer::new();
        let jwks_url = issuer.serve_jwks().await;
        Self {
            issuer,
            jwks_url,
            prefix: format!("gw{}", uuid::Uuid::new_v4().simple()),
            redis_url,
        }
    }

    /// Gateway settings for this world: tracked revocation, no rules, port 0.
    pub fn settings(&self) -> Settings {
        Settings {
            listen_addr: "127.0.0.1:0".parse().expect("addr"),
            verifier: VerifierSettings {
                jwks_url: self.jwks_url.clone(),
                issuer: ISSUER.into(),
                audience: AUDIENCE.into(),
                redis_prefix: self.prefix.clone(),
                revocation: RevocationMode::Tracked,
                ..VerifierSettings::default()
            }
            .with_redis(RedisTarget::Standalone(self.redis_url.clone())),
            ..Settings::default()
        }
    }

    /// A gateway with the settings of [`Env::settings`] changed by `tweak`.
    pub async fn gateway(&self, tweak: impl FnOnce(&mut Settings)) -> Gateway {
        let mut settings = self.settings();
        tweak(&mut settings);
        Gateway::spawn(settings).await
    }

    /// The session record's key, as the auth-center writes it (`<prefix>:s:{<sub>}:<sid>`,
    /// docs/operations.md).
    fn session_key(&self, session: &Session) -> String {
        format!("{}:s:{{{}}}:{}", self.prefix, session.sub, session.sid)
    }

    async fn redis(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.redis_url.as_str())
            .expect("a Redis URL")
            .get_multiplexed_async_connection()
            .await
            .expect("the test's own Redis connection")
    }

    /// A live session of `sub`.
    pub async fn session(&self, sub: &str) -> Session {
        let session = Session {
            sub: sub.into(),
            sid: uuid::Uuid::new_v4().simple().to_string(),
        };
        let mut redis = self.redis().await;
        let written: i64 = redis::cmd("HSET")
            .arg(self.session_key(&session))
            .arg("user")
            .arg(sub)
            .query_async(&mut redis)
            .await
            .expect("HSET");
        assert_eq!(written, 1);
        let expires: i64 = redis::cmd("PEXPIRE")
            .arg(self.session_key(&session))
            .arg(600_000)
            .query_async(&mut redis)
            .await
            .expect("PEXPIRE");
        assert_eq!(expires, 1);
        session
    }

    /// A live session of `sub` and a token of it with `claims`.
    pub async fn token(&self, sub: &str, claims: Value) -> String {
        let session = self.session(sub).await;
        self.issuer.token(&session, claims)
    }

    /// Ends `session` as an operator would: `DEL` of its key.
    pub async fn end(&self, session: &Session) {
        let mut redis = self.redis().await;
        let deleted: i64 = redis::cmd("DEL")
            .arg(self.session_key(session))
            .query_async(&mut redis)
            .await
            .expect("DEL");
        assert_eq!(deleted, 1, "the session existed");
    }
}

/// A running gateway.
pub struct Gateway {
    pub addr: SocketAddr,
    client: reqwest::Client,
}

impl Gateway {
    pub async fn spawn(settings: Settings) -> Self {
        let (addr, server) = gateway::bind(settings).await.expect("the gateway binds");
        tokio::spawn(server);
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("an HTTP client");
        Self { addr, client }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `GET path` at the gateway itself.
    pub async fn get(&self, path: &str) -> Answer {
        Answer::of(self.client.get(self.url(path))).await
    }

    /// A `method uri` request as the proxy of `dialect` asks about it, for the caller to
    /// finish (a token, more headers) and send with [`Ask::answer`].
    pub fn ask(&self, dialect: Dialect, method: &str, uri: &str) -> RequestBuilder {
        match dialect {
            Dialect::AuthRequest => self
                .client
                .get(self.url("/authz/auth-request"))
                .header("X-Original-Method", method)
                .header("X-Original-URI", uri),
            Dialect::ForwardAuth => self
                .client
                .get(self.url("/authz/forward-auth"))
                .header("X-Forwarded-Method", method)
                .header("X-Forwarded-Proto", "https")
                .header("X-Forwarded-Host", "api.example")
                .header("X-Forwarded-Uri", uri),
            Dialect::ExtAuthz => self.client.request(
                Method::from_bytes(method.as_bytes()).expect("a method"),
                self.url(&format!("/authz/ext-authz{uri}")),
            ),
        }
    }

    /// `GET uri` asked in `dialect`, with `token` as a bearer token.
    pub async fn with_token(&self, dialect: Dialect, uri: &str, token: &str) -> Answer {
        self.ask(dialect, "GET", uri)
            .bearer_auth(token)
            .answer()
            .await
    }

    /// Sends `request` byte for byte (no client normalises its target) and returns the
    /// status: how an Envoy check request with a crafted path arrives.
    pub async fn raw_status(&self, request_line: &str, headers: &[(&str, &str)]) -> u16 {
        let mut stream = tokio::net::TcpStream::connect(self.addr)
            .await
            .expect("connect");
        let mut request = format!("{request_line}\r\nHost: gateway\r\nConnection: close\r\n");
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut response = String::new();
        stream.read_to_string(&mut response).await.expect("read");
        response
            .split(' ')
            .nth(1)
            .and_then(|status| status.parse().ok())
            .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"))
    }
}

/// Sending a request and reading its answer.
pub trait Ask {
    fn answer(self) -> impl std::future::Future<Output = Answer>;
}

impl Ask for RequestBuilder {
    fn answer(self) -> impl std::future::Future<Output = Answer> {
        Answer::of(self)
    }
}

/// A response, read.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// JSON, or the text as a JSON string; `Null` when empty.
    pub body: Value,
}

impl Answer {
    pub async fn of(request: RequestBuilder) -> Self {
        let response = request.send().await.expect("a response from the gateway");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("a body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Self {
            status,
            headers,
            body,
        }
    }

    /// The value of header `name`, if it came once.
    pub fn header(&self, name: &str) -> Option<&str> {
        let mut values = self.headers.get_all(name).iter();
        match (values.next(), values.next()) {
            (Some(value), None) => Some(value.to_str().expect("an ASCII header")),
            (None, _) => None,
            (Some(_), Some(_)) => panic!("{name} came more than once: {:?}", self.headers),
        }
    }

    /// The stable error code of an error body.
    pub fn code(&self) -> Option<&str> {
        self.body["error"].as_str()
    }

    /// `200`, with an empty body.
    #[track_caller]
    pub fn assert_allowed(&self) -> &Self {
        assert_eq!(self.status, StatusCode::OK, "{self:?}");
        assert_eq!(self.body, Value::Null, "{self:?}");
        self.assert_not_stored()
    }

    /// `Cache-Control: no-store`: every decision holds for its request only.
    #[track_caller]
    pub fn assert_not_stored(&self) -> &Self {
        assert_eq!(self.header("cache-control"), Some("no-store"), "{self:?}");
        self
    }

    /// `401` with `code` in the body and the `Bearer` challenge for `invalid_token`.
    #[track_caller]
    pub fn assert_401(&self, code: &str) -> &Self {
        assert_eq!(self.status, StatusCode::UNAUTHORIZED, "{self:?}");
        assert_eq!(self.code(), Some(code), "{self:?}");
        assert!(self.body["message"].is_string(), "{self:?}");
        let challenge = self.header("www-authenticate").unwrap_or_default();
        assert!(
            challenge.starts_with(r#"Bearer error="invalid_token", error_description=""#),
            "{self:?}"
        );
        self.assert_not_stored()
    }

    /// `400` with the common body.
    #[track_caller]
    pub fn assert_400(&self) -> &Self {
        assert_eq!(self.status, StatusCode::BAD_REQUEST, "{self:?}");
        assert_eq!(self.code(), Some("invalid_request"), "{self:?}");
        assert!(self.body["message"].is_string(), "{self:?}");
        self.assert_not_stored()
    }

    /// `503` with `Retry-After` and the common body (a decision's, or `/readyz`'s; only the
    /// former is marked [`Self::assert_not_stored`]).
    #[track_caller]
    pub fn assert_503(&self) -> &Self {
        assert_eq!(self.status, StatusCode::SERVICE_UNAVAILABLE, "{self:?}");
        assert_eq!(self.code(), Some("unavailable"), "{self:?}");
        assert!(self.header("retry-after").is_some(), "{self:?}");
        self
    }

    /// `403` with `code` in the body.
    #[track_caller]
    pub fn assert_403(&self, code: &str) -> &Self {
        assert_eq!(self.status, StatusCode::FORBIDDEN, "{self:?}");
        assert_eq!(self.code(), Some(code), "{self:?}");
        self.assert_not_stored()
    }

    /// No identity header at all.
    #[track_caller]
    pub fn assert_no_identity(&self) -> &Self {
        for name in [
            "x-auth-subject",
            "x-auth-session",
            "x-auth-roles",
            "x-auth-scope",
            "x-auth-client-id",
        ] {
            assert!(self.headers.get(name).is_none(), "{name}: {self:?}");
        }
        self
    }
}

/// Polls `probe` until `done` holds (at most [`POLL_BOUND`]); the last answer.
pub async fn poll_until<F, Fut>(what: &str, mut probe: F, done: impl Fn(&Answer) -> bool) -> Answer
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Answer>,
{
    #[allow(clippy::disallowed_methods)] // a bound on a poll, never a timing assertion
    let deadline = std::time::Instant::now() + POLL_BOUND;
    loop {
        let answer = probe().await;
        #[allow(clippy::disallowed_methods)] // a bound on a poll, never a timing assertion
        let late = std::time::Instant::now() > deadline;
        if done(&answer) || late {
            assert!(done(&answer), "{what}: still {answer:?}");
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
