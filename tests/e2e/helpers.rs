//! Spawning the real auth-center and the real demo-service in-process (port 0) on a shared
//! Redis with a private key prefix, plus typed HTTP helpers and bounded polling.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use auth_center::config::RedisConfig;
use auth_center::domain::AuthService;
use auth_center::{Application, Config};
use demo_service::Settings;
use reqwest::{Method, Response, StatusCode};
use secrecy::SecretString;
use serde_json::{Value, json};
use verifier::contract::{RedisConnection, RedisOptions, SessionKeys};
use verifier::settings::VerifierSettings;
use verifier::{Clock, RedisTarget, RevocationMode, SystemClock};

pub const PASSWORD: &str = "correct horse battery staple";
pub const ISSUER: &str = "http://auth.test";
pub const AUDIENCE: &str = "api";

/// Upper bound of every poll (never reached when things work).
pub const POLL_BOUND: Duration = Duration::from_secs(5);
/// Pause between two polls.
pub const POLL_STEP: Duration = Duration::from_millis(1);
/// Requests that must all give the same answer once a state change has been seen.
pub const STAYS_FOR: usize = 20;
/// How long a restarted Redis (cluster: slots re-learnt) may take to serve the apps again.
pub const RECOVERY_BOUND: Duration = Duration::from_secs(20);

/// Which shared Redis topology a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    Standalone,
    Cluster,
}

impl Store {
    /// The shared instance of this topology (started by `scripts/test.sh`).
    pub fn shared_target(self) -> RedisTarget {
        match self {
            Store::Standalone => RedisTarget::Standalone(test_support::shared_redis_url()),
            Store::Cluster => RedisTarget::Cluster(test_support::shared_cluster_urls()),
        }
    }
}

/// One `#[tokio::test]` per Redis topology for each listed body `async fn name(store: Store,
/// extra args...)`: `standalone::name` and `cluster::name`.
#[macro_export]
macro_rules! on_standalone_and_cluster {
    ($($name:ident $(($($arg:expr),* $(,)?))?),* $(,)?) => {
        mod standalone {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Store::Standalone $($(, $arg)*)?).await
                }
            )*
        }
        mod cluster {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Store::Cluster $($(, $arg)*)?).await
                }
            )*
        }
    };
}

pub use test_support::{DpopKey, Tokens};

/// The tests' HTTP client: no proxy from the environment, a 10 s timeout.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("http client")
}

/// Runs blocking fixture code (starting/stopping Redis) without stalling the runtime.
pub fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// A running auth-center with its own SQLite file and Redis key prefix.
pub struct AuthCenter {
    pub address: String,
    /// `127.0.0.1:<port>` of the separate metrics listener, when `metrics_addr` was set.
    pub metrics_address: Option<String>,
    pub auth: Arc<AuthService>,
    pub prefix: String,
    pub target: RedisTarget,
    /// A connection of the test's own, for what an operator would type in redis-cli.
    pub redis: RedisConnection,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl AuthCenter {
    /// An auth-center on the shared Redis of `store`.
    pub async fn spawn(store: Store) -> Self {
        Self::spawn_on(store.shared_target()).await
    }

    /// An auth-center whose sessions live in `target`, under a fresh key prefix.
    pub async fn spawn_on(target: RedisTarget) -> Self {
        Self::spawn_with(target, |_| {}).await
    }

    /// [`AuthCenter::spawn_on`], with `tweak` applied to the configuration last.
    pub async fn spawn_with(target: RedisTarget, tweak: impl FnOnce(&mut Config)) -> Self {
        // The system clock: the demo-service checks `exp` against the real time too.
        Self::spawn_on_with_clock(target, Arc::new(SystemClock), tweak).await
    }

    /// An auth-center on the shared Redis of `store` whose time is `clock` (a verifier
    /// checking its tokens must then share the clock).
    pub async fn spawn_with_clock(store: Store, clock: Arc<dyn Clock>) -> Self {
        Self::spawn_on_with_clock(store.shared_target(), clock, |_| {}).await
    }

    #[allow(clippy::field_reassign_with_default)] // reads better as a list of overrides
    async fn spawn_on_with_clock(
        target: RedisTarget,
        clock: Arc<dyn Clock>,
        tweak: impl FnOnce(&mut Config),
    ) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let prefix = format!("e2e{}", uuid::Uuid::new_v4().simple());
        let mut config = Config::default();
        config.listen_addr = "127.0.0.1:0".parse().expect("addr");
        config.issuer = ISSUER.into();
        config.tokens.audience = vec![AUDIENCE.into()];
        config.database_url =
            SecretString::from(format!("sqlite:{}", dir.path().join("auth.db").display()));
        config.redis = match &target {
            RedisTarget::Standalone(url) => RedisConfig::standalone(url),
            RedisTarget::Cluster(urls) => RedisConfig::cluster(urls),
            RedisTarget::Sentinel { sentinels, master } => RedisConfig::sentinel(sentinels, master),
        }
        .expect("redis target");
        config.redis_prefix = prefix.clone();
        // OWASP's m=12 MiB, t=3 row: as strong as the default and quicker in debug builds.
        config.passwords.memory_kib = 12 * 1024;
        config.passwords.iterations = 3;
        // The outage tests poll logins while Redis comes back; rate limits have their own
        // tests in the auth-center.
        config.limits.login_ip_max = 10_000;
        tweak(&mut config);
        // The test's own connection reaches Redis as the auth-center does (TLS, user).
        let (own_target, own_options) = config
            .redis_connection(RedisOptions::default())
            .expect("redis settings")
            .expect("a Redis");

        let app = Application::build_with_clock(config, clock)
            .await
            .expect("auth-center builds");
        let address = format!("http://127.0.0.1:{}", app.port());
        let metrics_address = app.metrics_port().map(|port| format!("127.0.0.1:{port}"));
        let auth = app.auth();
        tokio::spawn(app.run_until_stopped());
        let redis = RedisConnection::connect(&own_target, own_options)
            .await
            .expect("test's own Redis connection");
        Self {
            address,
            metrics_address,
            auth,
            prefix,
            target,
            redis,
            client: http_client(),
            _dir: dir,
        }
    }

    /// `method path` at the auth-center, for the caller to finish and send.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.address))
    }

    pub fn jwks_url(&self) -> String {
        format!("{}/.well-known/jwks.json", self.address)
    }

    /// The published JWKS document.
    pub async fn jwks(&self) -> Value {
        self.client
            .get(self.jwks_url())
            .send()
            .await
            .expect("JWKS request")
            .json()
            .await
            .expect("JWKS JSON")
    }

    /// Demo-service settings matching this auth-center (tracked revocation, the defaults).
    pub fn demo_settings(&self) -> Settings {
        Settings {
            listen_addr: "127.0.0.1:0".parse().expect("addr"),
            verifier: self.verifier_settings(),
            ..Settings::default()
        }
    }

    /// Verifier settings matching this auth-center (tracked revocation, the defaults).
    pub fn verifier_settings(&self) -> VerifierSettings {
        VerifierSettings {
            jwks_url: self.jwks_url(),
            issuer: ISSUER.into(),
            audience: AUDIENCE.into(),
            redis_prefix: self.prefix.clone(),
            revocation: RevocationMode::Tracked,
            max_staleness: Duration::from_secs(5),
            max_stall: verifier::DEFAULT_MAX_STALL,
            jwks_cooldown: Duration::from_secs(10),
            ..VerifierSettings::default()
        }
        .with_redis(self.target.clone())
    }

    /// A demo-service sharing this auth-center's Redis and prefix, in `mode`.
    pub async fn demo(&self, mode: RevocationMode) -> Demo {
        let mut settings = self.demo_settings();
        settings.verifier.revocation = mode;
        Demo::spawn(settings).await
    }

    /// A tracked demo-service that may keep a session cached for 60 s, far beyond
    /// [`POLL_BOUND`] and [`RECOVERY_BOUND`]: within a test only Redis (an invalidation push,
    /// a dropped connection) can end a session it has cached.
    pub async fn demo_tracked_by_redis_alone(&self) -> Demo {
        let mut settings = self.demo_settings();
        settings.verifier.revocation = RevocationMode::Tracked;
        settings.verifier.max_staleness = Duration::from_secs(60);
        Demo::spawn(settings).await
    }

    async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.client
            .post(format!("{}{path}", self.address))
            .json(body)
            .send()
            .await
            .expect("request to the auth-center")
    }

    /// `POST /v1/refresh` with `tokens`' refresh token.
    pub async fn refresh(&self, tokens: &Tokens) -> Response {
        self.post_json(
            "/v1/refresh",
            &json!({ "refresh_token": tokens.refresh_token }),
        )
        .await
    }

    pub async fn login(&self, username: &str) -> Response {
        self.post_json(
            "/v1/login",
            &json!({ "username": username, "password": PASSWORD }),
        )
        .await
    }

    /// Logs in once the auth-center serves again after a Redis restart (within
    /// [`RECOVERY_BOUND`]).
    pub async fn login_after_restart(&self, username: &str) -> Tokens {
        poll_until(
            "login at the auth-center works again",
            RECOVERY_BOUND,
            || async { Answer::of(self.login(username).await).await },
            Answer::is_ok,
        )
        .await;
        self.login_ok(username).await
    }

    pub async fn login_ok(&self, username: &str) -> Tokens {
        let r = self.login(username).await;
        assert_eq!(
            r.status(),
            StatusCode::OK,
            "login: {}",
            r.text().await.unwrap_or_default()
        );
        r.json().await.expect("token body")
    }

    /// Registers `username` over REST with [`PASSWORD`] and logs in.
    pub async fn register_and_login(&self, username: &str) -> Tokens {
        let r = self
            .post_json(
                "/v1/register",
                &json!({ "username": username, "password": PASSWORD }),
            )
            .await;
        assert_eq!(
            r.status(),
            StatusCode::CREATED,
            "register: {}",
            r.text().await.unwrap_or_default()
        );
        self.login_ok(username).await
    }

    /// Creates `username` with the `admin` role (as the CLI would) and logs in over REST.
    pub async fn admin_login(&self, username: &str) -> Tokens {
        self.auth
            .create_user(username, SecretString::from(PASSWORD), vec!["admin".into()])
            .await
            .expect("create admin");
        self.login_ok(username).await
    }

    async fn post_bearer(&self, path: &str, access_token: &str) -> StatusCode {
        self.bearer(Method::POST, path, access_token).await.status
    }

    /// `method path` at the auth-center with `access_token`, whatever it answers.
    pub async fn bearer(&self, method: Method, path: &str, access_token: &str) -> Answer {
        let response = self
            .client
            .request(method, format!("{}{path}", self.address))
            .bearer_auth(access_token)
            .send()
            .await
            .expect("request to the auth-center");
        Answer::of(response).await
    }

    pub async fn logout(&self, tokens: &Tokens) {
        let status = self.post_bearer("/v1/logout", &tokens.access_token).await;
        assert!(status.is_success(), "logout: {status}");
    }

    pub async fn logout_all(&self, tokens: &Tokens) {
        let status = self
            .post_bearer("/v1/logout-all", &tokens.access_token)
            .await;
        assert!(status.is_success(), "logout-all: {status}");
    }

    /// The Redis key of a session, as the verifier derives it.
    pub fn session_key(&self, tokens: &Tokens) -> String {
        SessionKeys::new(self.prefix.clone())
            .session(&tokens.user_id(), &tokens.session_id)
            .expect("well-formed ids")
    }

    /// Runs `cmd key args...` on the test's own connection, as an operator would.
    pub async fn redis_on_key(&self, cmd: &str, key: &str, args: &[&str]) -> i64 {
        let mut conn = self.redis.clone();
        redis::cmd(cmd)
            .arg(key)
            .arg(args)
            .query_async(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{cmd} {key}: {e}"))
    }
}

/// A running demo-service.
pub struct Demo {
    pub address: String,
    client: reqwest::Client,
}

impl Demo {
    pub async fn spawn(settings: Settings) -> Self {
        let (addr, server) = demo_service::bind(settings)
            .await
            .expect("demo-service binds");
        tokio::spawn(server);
        Self {
            address: format!("http://{addr}"),
            client: http_client(),
        }
    }

    pub async fn get(&self, path: &str, access_token: Option<&str>) -> Response {
        let mut request = self.client.get(format!("{}{path}", self.address));
        if let Some(token) = access_token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("request to the demo-service")
    }

    pub async fn me(&self, tokens: &Tokens) -> Answer {
        Answer::of(self.get("/me", Some(&tokens.access_token)).await).await
    }

    /// `/handler/me`: `/me` with the layer on the handler instead of `route_layer`.
    pub async fn handler_me(&self, tokens: &Tokens) -> Answer {
        Answer::of(self.get("/handler/me", Some(&tokens.access_token)).await).await
    }

    /// `/verified/me`: `/me` verified by the `Verified` extractor instead of the layer.
    pub async fn verified_me(&self, tokens: &Tokens) -> Answer {
        Answer::of(self.get("/verified/me", Some(&tokens.access_token)).await).await
    }

    /// `method path` at the demo-service, for the caller to finish and send.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.address))
    }

    pub async fn admin(&self, tokens: &Tokens) -> Answer {
        Answer::of(self.get("/admin", Some(&tokens.access_token)).await).await
    }
}

/// A response, read: status, the headers that matter and the JSON body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub www_authenticate: Option<String>,
    pub retry_after: Option<String>,
    pub body: Value,
}

/// The tokens of a 200 token response, `None` for any other answer.
pub fn tokens_of(answer: Answer) -> Option<Tokens> {
    answer
        .is_ok()
        .then(|| serde_json::from_value(answer.body).expect("token body"))
}

impl Answer {
    pub async fn of(response: Response) -> Self {
        let status = response.status();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(String::from)
        };
        let www_authenticate = header("www-authenticate");
        let retry_after = header("retry-after");
        let text = response.text().await.expect("a body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Self {
            status,
            www_authenticate,
            retry_after,
            body,
        }
    }

    /// The stable error code of an error body.
    pub fn code(&self) -> Option<&str> {
        self.body["error"].as_str()
    }

    pub fn is_ok(&self) -> bool {
        self.status == StatusCode::OK
    }

    /// Whether this is the 401 with `code`, the RFC 6750 header and the common body.
    pub fn is_401(&self, code: &str) -> bool {
        self.status == StatusCode::UNAUTHORIZED
            && self.code() == Some(code)
            && self.has_message()
            && self.www_authenticate.as_deref() == Some(r#"Bearer error="invalid_token""#)
    }

    /// Whether this is the fail-closed 503: `Retry-After` and `unavailable`.
    pub fn is_503(&self) -> bool {
        self.status == StatusCode::SERVICE_UNAVAILABLE
            && self.code() == Some("unavailable")
            && self.has_message()
            && self
                .retry_after
                .as_deref()
                .is_some_and(|s| s.parse::<u64>().is_ok())
    }

    fn has_message(&self) -> bool {
        self.body["message"].as_str().is_some_and(|m| !m.is_empty())
    }

    #[track_caller]
    pub fn assert_401(&self, code: &str) {
        assert!(self.is_401(code), "expected 401 {code}, got {self:?}");
    }

    #[track_caller]
    pub fn assert_503(&self) {
        assert!(self.is_503(), "expected 503 with Retry-After, got {self:?}");
    }

    #[track_caller]
    pub fn assert_ok(&self) {
        assert!(self.is_ok(), "expected 200, got {self:?}");
    }
}

/// What a bounded poll saw before its condition held.
#[derive(Debug)]
pub struct Polled {
    /// Answers before the one that met the condition.
    pub before: Vec<Answer>,
    /// The first answer that met it.
    pub hit: Answer,
}

/// Asks `request` until it answers something other than the fail-closed 503; panics after
/// [`RECOVERY_BOUND`].
pub async fn until_decided<F, Fut>(what: &str, request: F) -> Answer
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Answer>,
{
    poll_until(what, RECOVERY_BOUND, request, |answer| {
        answer.status != StatusCode::SERVICE_UNAVAILABLE
    })
    .await
    .hit
}

/// Polls `demo`'s `/me` with `tokens` until it answers 401 `session_revoked` (panics after
/// [`POLL_BOUND`]), with only 200s before it, and checks that it stays so.
pub async fn becomes_revoked(demo: &Demo, tokens: &Tokens, what: &str) {
    let polled = poll_until(
        what,
        POLL_BOUND,
        || demo.me(tokens),
        |a| a.is_401("session_revoked"),
    )
    .await;
    assert!(
        polled.before.iter().all(Answer::is_ok),
        "{what}: {:?}",
        polled.before
    );
    stays(what, || demo.me(tokens), |a| a.is_401("session_revoked")).await;
}

/// Asks `request` (with [`POLL_STEP`] pauses) until an answer satisfies `done`, for at most
/// `bound`; panics naming `what` when the bound passes.
pub async fn poll_until<F, Fut>(
    what: &str,
    bound: Duration,
    mut request: F,
    done: impl Fn(&Answer) -> bool,
) -> Polled
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Answer>,
{
    let deadline = Instant::now() + bound;
    let mut before = Vec::new();
    loop {
        let answer = request().await;
        if done(&answer) {
            return Polled {
                before,
                hit: answer,
            };
        }
        if Instant::now() >= deadline {
            panic!(
                "{what}: not seen within {bound:?}; {} answers, last {answer:?}",
                before.len() + 1
            );
        }
        before.push(answer);
        tokio::time::sleep(POLL_STEP).await;
    }
}

impl Polled {
    /// Asserts that every answer before the hit satisfies `expected`: `what` says which.
    #[track_caller]
    pub fn assert_before(&self, what: &str, expected: impl Fn(&Answer) -> bool) {
        assert!(
            self.before.iter().all(expected),
            "{what}: {:?}",
            self.before
        );
    }
}

/// Asks `request` [`STAYS_FOR`] more times; every answer must satisfy `expected`.
pub async fn stays<F, Fut>(what: &str, mut request: F, expected: impl Fn(&Answer) -> bool)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Answer>,
{
    for i in 0..STAYS_FOR {
        let answer = request().await;
        assert!(expected(&answer), "{what}: request {i} answered {answer:?}");
    }
}

/// A private Redis (standalone or a 3-master cluster) for tests that stop and restart it.
pub enum PrivateRedis {
    Standalone(test_support::RedisServer),
    Cluster(test_support::RedisCluster),
}

impl PrivateRedis {
    pub fn start(store: Store) -> Self {
        blocking(|| match store {
            Store::Standalone => {
                PrivateRedis::Standalone(test_support::RedisServer::start().expect("redis-server"))
            }
            Store::Cluster => {
                PrivateRedis::Cluster(test_support::RedisCluster::start().expect("redis cluster"))
            }
        })
    }

    pub fn target(&self) -> RedisTarget {
        match self {
            PrivateRedis::Standalone(server) => RedisTarget::Standalone(server.url()),
            PrivateRedis::Cluster(cluster) => RedisTarget::Cluster(cluster.urls()),
        }
    }

    /// Stops every node and waits until its port refuses connections.
    pub fn stop(&mut self) {
        blocking(|| match self {
            PrivateRedis::Standalone(server) => server.stop(),
            PrivateRedis::Cluster(cluster) => cluster.stop(),
        })
        .expect("stop redis");
    }

    /// Starts it again on the same port(s), empty, and waits until it serves.
    pub fn restart(&mut self) {
        blocking(|| match self {
            PrivateRedis::Standalone(server) => server.restart(),
            PrivateRedis::Cluster(cluster) => cluster.restart(),
        })
        .expect("restart redis");
    }
}
