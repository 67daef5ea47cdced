//! A Redis Cluster master crashes under load and its replica takes over: every answer of the
//! auth-center and the demo-service is a 2xx, a 401 or the fail-closed 503 with `Retry-After`,
//! never a 500, and both serve again once the replica is promoted, without a restart.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use reqwest::{Method, StatusCode};
use serde_json::json;
use test_support::{ClusterOptions, RedisCluster, RedisSentinel};
use verifier::{RedisTarget, RevocationMode};

use crate::helpers::*;

/// Pause between two requests of one load worker.
const PACE: Duration = Duration::from_millis(10);
/// Most rounds (one to three requests each) one load worker runs.
const MAX_ROUNDS_PER_WORKER: usize = 2_000;
/// How long the apps may take to serve again once the replica is promoted.
const RECOVERY_BOUND: Duration = Duration::from_secs(30);
/// Answers each worker must have seen before the master is killed (a warm load).
const WARM_UP: usize = 5;

/// Every answer of the load, by request and status, and the ones that break the rule.
#[derive(Default)]
struct Tally {
    counts: BTreeMap<(&'static str, u16), usize>,
    /// Answers other than 2xx, 401 and 503-with-Retry-After, or transport failures.
    bad: Vec<String>,
}

impl Tally {
    fn total(&self) -> usize {
        self.counts.values().sum()
    }

    fn print(&self) {
        let mut by_request: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for ((request, status), n) in &self.counts {
            by_request
                .entry(request)
                .or_default()
                .push(format!("{status}×{n}"));
        }
        for (request, statuses) in by_request {
            eprintln!(
                "observation: failover: {request:<36} {}",
                statuses.join(" ")
            );
        }
    }
}

/// A bounded load on one app pair, recording every answer.
#[derive(Clone)]
struct Load {
    client: reqwest::Client,
    center: String,
    tracked: String,
    every_request: String,
    tally: Arc<Mutex<Tally>>,
    stop: Arc<AtomicBool>,
}

impl Load {
    /// Sends one request and records its answer under `label`.
    async fn ask(
        &self,
        label: &'static str,
        method: Method,
        url: String,
        bearer: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> Option<Answer> {
        let mut request = self.client.request(method, url);
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer = match request.send().await {
            Ok(response) => Answer::of(response).await,
            Err(e) => {
                self.record_bad(format!("{label}: transport error {e}"));
                return None;
            }
        };
        let acceptable = answer.status.is_success()
            || answer.status == StatusCode::UNAUTHORIZED
            || answer.is_503();
        let mut tally = self.tally.lock().unwrap();
        *tally
            .counts
            .entry((label, answer.status.as_u16()))
            .or_default() += 1;
        if !acceptable {
            tally.bad.push(format!("{label}: {answer:?}"));
        }
        Some(answer)
    }

    fn record_bad(&self, what: String) {
        self.tally.lock().unwrap().bad.push(what);
    }

    async fn get(&self, label: &'static str, url: String, bearer: &str) -> Option<Answer> {
        self.ask(label, Method::GET, url, Some(bearer), None).await
    }

    async fn login(&self, username: &str) -> Option<Tokens> {
        let answer = self.login_answer(username).await?;
        tokens_of(answer)
    }

    async fn login_answer(&self, username: &str) -> Option<Answer> {
        let body = json!({ "username": username, "password": PASSWORD });
        let url = format!("{}/v1/login", self.center);
        self.ask("POST /v1/login", Method::POST, url, None, Some(body))
            .await
    }

    async fn refresh(&self, refresh_token: &str) -> Option<Answer> {
        let body = json!({ "refresh_token": refresh_token });
        let url = format!("{}/v1/refresh", self.center);
        self.ask("POST /v1/refresh", Method::POST, url, None, Some(body))
            .await
    }
}

/// One load worker: rounds of a few requests, [`PACE`] apart, on a session of `username` that
/// it logs in when it has none.
struct Worker {
    load: Load,
    username: &'static str,
    tokens: Option<Tokens>,
    rounds: usize,
}

impl Worker {
    fn new(load: &Load, username: &'static str) -> Self {
        Self {
            load: load.clone(),
            username,
            tokens: None,
            rounds: 0,
        }
    }

    /// The session for the next round (logging in first if needed), or `None` once the load
    /// is stopped or the worker ran [`MAX_ROUNDS_PER_WORKER`] rounds.
    async fn next_round(&mut self) -> Option<Tokens> {
        loop {
            tokio::time::sleep(PACE).await;
            self.rounds += 1;
            if self.rounds > MAX_ROUNDS_PER_WORKER || self.load.stop.load(Ordering::Relaxed) {
                return None;
            }
            if self.tokens.is_none() {
                self.tokens = self.load.login(self.username).await;
            }
            if self.tokens.is_some() {
                return self.tokens.clone();
            }
        }
    }

    /// Forgets the session if `answer` says it ended (a 401): the next round logs in again.
    fn end_on_401(&mut self, answer: &Option<Answer>) {
        if answer
            .as_ref()
            .is_some_and(|a| a.status == StatusCode::UNAUTHORIZED)
        {
            self.tokens = None;
        }
    }
}

/// Refreshes one session over and over.
async fn refresher(mut worker: Worker) {
    while let Some(tokens) = worker.next_round().await {
        match worker.load.refresh(&tokens.refresh_token).await {
            Some(answer) if answer.is_ok() => worker.tokens = tokens_of(answer),
            answer => worker.end_on_401(&answer),
        }
    }
}

/// Checks one session at the auth-center and at both demo-services.
async fn checker(mut worker: Worker) {
    while let Some(tokens) = worker.next_round().await {
        let load = worker.load.clone();
        let checks = [
            ("GET /v1/me", format!("{}/v1/me", load.center)),
            ("GET demo /me (tracked)", format!("{}/me", load.tracked)),
            (
                "GET demo /me (every request)",
                format!("{}/me", load.every_request),
            ),
        ];
        for (label, url) in checks {
            let answer = load.get(label, url, &tokens.access_token).await;
            worker.end_on_401(&answer);
        }
    }
}

/// A session's whole life, over and over: login, the devices list, logout.
async fn lifecycle(mut worker: Worker) {
    while let Some(tokens) = worker.next_round().await {
        let load = worker.load.clone();
        let token = &tokens.access_token;
        load.get(
            "GET /v1/sessions",
            format!("{}/v1/sessions", load.center),
            token,
        )
        .await;
        let url = format!("{}/v1/logout", load.center);
        load.ask("POST /v1/logout", Method::POST, url, Some(token), None)
            .await;
        worker.tokens = None;
    }
}

/// An operator: an admin reading `user_id`'s sessions, and the readiness probe.
async fn operator(mut worker: Worker, user_id: String) {
    while let Some(tokens) = worker.next_round().await {
        let load = worker.load.clone();
        let url = format!("{}/v1/admin/users/{user_id}/sessions", load.center);
        let label = "GET /v1/admin/users/{id}/sessions";
        let answer = load.get(label, url, &tokens.access_token).await;
        worker.end_on_401(&answer);
        let url = format!("{}/readyz", load.center);
        load.ask("GET /readyz", Method::GET, url, None, None).await;
    }
}

/// Asks `request` until it answers a 2xx (every answer is recorded by the load); panics
/// after [`RECOVERY_BOUND`].
async fn until_served<F, Fut>(what: &str, request: F) -> Answer
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<Answer>>,
{
    let mut request = request;
    poll_until(
        what,
        RECOVERY_BOUND,
        || {
            let answer = request();
            async move { answer.await.expect("an HTTP answer") }
        },
        |answer| answer.status.is_success(),
    )
    .await
    .hit
}

/// The load workers on alice's sessions and the admin root's, running and warm.
struct Running {
    load: Load,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    async fn start(
        center: &AuthCenter,
        tracked: &Demo,
        every_request: &Demo,
        alice_id: &str,
    ) -> Self {
        let load = Load {
            client: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("http client"),
            center: center.address.clone(),
            tracked: tracked.address.clone(),
            every_request: every_request.address.clone(),
            tally: Arc::default(),
            stop: Arc::default(),
        };
        let workers = vec![
            tokio::spawn(refresher(Worker::new(&load, "alice"))),
            tokio::spawn(checker(Worker::new(&load, "alice"))),
            tokio::spawn(lifecycle(Worker::new(&load, "alice"))),
            tokio::spawn(operator(Worker::new(&load, "root"), alice_id.to_owned())),
        ];
        let warm = Instant::now() + RECOVERY_BOUND;
        while load.tally.lock().unwrap().total() < WARM_UP * workers.len() {
            assert!(Instant::now() < warm, "the load did not get going");
            tokio::time::sleep(PACE).await;
        }
        Self { load, workers }
    }

    /// Stops the load, prints what it saw after `summary`, and fails on any answer other than
    /// 2xx, 401 or 503 with `Retry-After`.
    async fn stop(self, summary: String) {
        self.load.stop.store(true, Ordering::Relaxed);
        for worker in self.workers {
            worker.await.expect("a load worker");
        }
        let tally = self.load.tally.lock().unwrap();
        eprintln!(
            "observation: failover: {summary}; {} answers:",
            tally.total()
        );
        tally.print();
        assert!(
            tally.bad.is_empty(),
            "{} answer(s) other than 2xx, 401 or 503 with Retry-After, e.g. {:#?}",
            tally.bad.len(),
            &tally.bad[..tally.bad.len().min(5)]
        );
    }
}

/// Every route serves again, for a fresh session, without a restart of either app.
async fn every_route_serves_again(load: &Load, alice_id: &str) {
    let url = |base: &str, path: &str| format!("{base}{path}");
    let fresh =
        tokens_of(until_served("login", || load.login_answer("alice")).await).expect("tokens");
    let admin =
        tokens_of(until_served("admin login", || load.login_answer("root")).await).expect("tokens");
    let token = fresh.access_token.as_str();
    until_served("refresh", || load.refresh(&fresh.refresh_token)).await;
    until_served("/v1/me", || {
        load.get("GET /v1/me", url(&load.center, "/v1/me"), token)
    })
    .await;
    until_served("/v1/sessions", || {
        load.get("GET /v1/sessions", url(&load.center, "/v1/sessions"), token)
    })
    .await;
    let sessions = format!("/v1/admin/users/{alice_id}/sessions");
    until_served("admin: alice's sessions", || {
        load.get(
            "GET /v1/admin/users/{id}/sessions",
            url(&load.center, &sessions),
            &admin.access_token,
        )
    })
    .await;
    until_served("/readyz", || {
        load.ask(
            "GET /readyz",
            Method::GET,
            url(&load.center, "/readyz"),
            None,
            None,
        )
    })
    .await;
    until_served("demo /me (tracked)", || {
        load.get("GET demo /me (tracked)", url(&load.tracked, "/me"), token)
    })
    .await;
    until_served("demo /me (every request)", || {
        load.get(
            "GET demo /me (every request)",
            url(&load.every_request, "/me"),
            token,
        )
    })
    .await;
    let logout = url(&load.center, "/v1/logout");
    until_served("logout", || {
        load.ask(
            "POST /v1/logout",
            Method::POST,
            logout.clone(),
            Some(token),
            None,
        )
    })
    .await;
}

/// Refreshes are not rate-limited here (the limiter has its own tests), nor are logins.
fn unlimited(config: &mut auth_center::config::Config) {
    config.limits.refresh_ip_max = 1_000_000;
    config.limits.login_ip_max = 1_000_000;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_failover_answers_503_never_500_and_every_route_recovers_without_a_restart() {
    let mut cluster = blocking(|| RedisCluster::start_with(ClusterOptions::FAST_FAILOVER))
        .expect("a cluster with replicas");
    let center = AuthCenter::spawn_with(RedisTarget::Cluster(cluster.urls()), unlimited).await;
    let tracked = center.demo(RevocationMode::Tracked).await;
    let every_request = center.demo(RevocationMode::EveryRequest).await;
    let alice = center.register_and_login("alice").await;
    center.admin_login("root").await;
    let alice_id = alice.user_id();
    let session_key = center.session_key(&alice);
    let running = Running::start(&center, &tracked, &every_request, &alice_id).await;

    // Crash the master that holds alice's sessions (every key of hers shares one slot).
    let master = blocking(|| cluster.master_of(&session_key)).expect("alice's master");
    let killed = Instant::now();
    blocking(|| cluster.kill(master)).expect("kill the master");
    let promoted = blocking(|| cluster.wait_for_promotion(&session_key, master))
        .expect("a replica takes over");
    let promoted_after = killed.elapsed();
    every_route_serves_again(&running.load, &alice_id).await;
    let recovered_after = killed.elapsed();
    running
        .stop(format!(
            "master {master} killed; replica {promoted} promoted after {promoted_after:?}; every \
             route served again {recovered_after:?} after the kill"
        ))
        .await;
}

/// Sessions created one after another right before the master is killed.
const LAST_MOMENT_SESSIONS: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_failover_answers_503_never_500_revokes_what_the_new_master_deletes_and_recovers_without_a_restart()
 {
    let mut sentinel = blocking(RedisSentinel::start).expect("a master, a replica, 3 sentinels");
    let target = RedisTarget::sentinel_from_csv(
        &sentinel.sentinel_urls().join(","),
        RedisSentinel::MASTER_NAME,
    );
    let center = AuthCenter::spawn_with(target, unlimited).await;
    let tracked = center.demo_tracked_by_redis_alone().await;
    let every_request = center.demo(RevocationMode::EveryRequest).await;
    let alice = center.register_and_login("alice").await;
    let bob = center.register_and_login("bob").await;
    center.register_and_login("carol").await;
    center.admin_login("root").await;
    let alice_id = alice.user_id();
    // Bob's session: cached by the tracked verifier from the old master, deleted on the new.
    tracked.me(&bob).await.assert_ok();
    every_request.me(&bob).await.assert_ok();
    let running = Running::start(&center, &tracked, &every_request, &alice_id).await;

    // Sessions written in the last moments before the crash: replication is asynchronous.
    let mut last_moment = Vec::new();
    for _ in 0..LAST_MOMENT_SESSIONS {
        last_moment.push(center.login_ok("carol").await);
    }
    let master = blocking(|| sentinel.master()).expect("the master");
    let killed = Instant::now();
    blocking(|| sentinel.kill(master)).expect("kill the master");
    let promoted = blocking(|| sentinel.wait_for_promotion(master)).expect("the replica promoted");
    let promoted_after = killed.elapsed();
    every_route_serves_again(&running.load, &alice_id).await;
    let recovered_after = killed.elapsed();

    // An operator deletes bob's session on the new master: every verifier refuses it at once,
    // the tracked one although it had it cached from the old master.
    let bob_key = center.session_key(&bob);
    let deleted: i64 = blocking(|| sentinel.query(promoted, redis::cmd("DEL").arg(&bob_key)))
        .expect("DEL on the new master");
    assert_eq!(
        deleted, 1,
        "bob's session was replicated long before the crash"
    );
    for (name, demo) in [("tracked", &tracked), ("every request", &every_request)] {
        let answer = until_decided(name, || demo.me(&bob)).await;
        assert_eq!(
            answer.status,
            StatusCode::UNAUTHORIZED,
            "{name}: {answer:?}"
        );
    }
    let me = format!("{}/v1/me", center.address);
    let answer = until_decided("/v1/me", || async {
        let answer = running
            .load
            .get("GET /v1/me", me.clone(), &bob.access_token);
        answer.await.expect("an HTTP answer")
    })
    .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{answer:?}");

    // How many of the last-moment sessions the new master has.
    let mut survived = 0;
    for tokens in &last_moment {
        let answer = until_decided("a last-moment session", || every_request.me(tokens)).await;
        match answer.status {
            StatusCode::OK => survived += 1,
            StatusCode::UNAUTHORIZED => {}
            _ => panic!("a last-moment session: {answer:?}"),
        }
    }
    running
        .stop(format!(
            "sentinel: master {master} killed; replica {promoted} promoted after \
             {promoted_after:?}; every route served again {recovered_after:?} after the kill; \
             {survived} of {LAST_MOMENT_SESSIONS} sessions created just before the kill survived"
        ))
        .await;
}

/// A master with one replica behind sentinels, and an auth-center that waits up to 200 ms for
/// one replica to acknowledge each new session.
async fn waiting_for_one_replica() -> (RedisSentinel, AuthCenter) {
    let sentinel = blocking(RedisSentinel::start).expect("a master, a replica, 3 sentinels");
    let target = RedisTarget::sentinel_from_csv(
        &sentinel.sentinel_urls().join(","),
        RedisSentinel::MASTER_NAME,
    );
    let center = AuthCenter::spawn_with(target, wait_for_one_replica).await;
    (sentinel, center)
}

/// A session is written only once a replica has acknowledged it, waiting at most 200 ms.
fn wait_for_one_replica(config: &mut auth_center::config::Config) {
    config.sessions.wait_replicas = 1;
    config.sessions.wait_timeout_ms = 200;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_wait_replicas_a_login_is_refused_with_503_when_no_replica_acknowledges_its_session() {
    let (mut sentinel, center) = waiting_for_one_replica().await;
    let tracked = center.demo(RevocationMode::Tracked).await;
    // The replica acknowledges: logins work as usual.
    let alice = center.register_and_login("alice").await;
    tracked.me(&alice).await.assert_ok();

    let replica = blocking(|| sentinel.data_ports())[1];
    blocking(|| sentinel.kill(replica)).expect("stop the replica");
    let refused = center.login("alice").await;
    let status = refused.status();
    let retry_after = refused.headers().get("retry-after").cloned();
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{:?}",
        refused.text().await
    );
    assert!(retry_after.is_some(), "a 503 says when to retry");
    // Sessions already written stay valid; only new ones wait for a replica.
    tracked.me(&alice).await.assert_ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_wait_replicas_a_login_is_refused_with_503_while_the_replica_is_connected_but_frozen()
{
    let (sentinel, center) = waiting_for_one_replica().await;
    let _alice = center.register_and_login("alice").await;

    // The master still counts a frozen replica as online, with the offset it acknowledged
    // last: only a WAIT on the connection that wrote the session sees that it lacks it.
    let replica = blocking(|| sentinel.data_ports())[1];
    blocking(|| sentinel.freeze(replica)).expect("freeze the replica");
    let refused = center.login("alice").await;
    let status = refused.status();
    let body = refused.text().await;
    blocking(|| sentinel.thaw(replica)).expect("thaw the replica");
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body:?}");

    // Thawed, the replica catches up and acknowledges again.
    let again = center.login("alice").await;
    assert_eq!(again.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_wait_replicas_on_a_cluster_a_login_is_refused_with_503_while_the_replica_of_its_slot_is_frozen()
 {
    let cluster = blocking(|| RedisCluster::start_with(ClusterOptions::WITH_REPLICAS))
        .expect("a cluster with replicas");
    let center =
        AuthCenter::spawn_with(RedisTarget::Cluster(cluster.urls()), wait_for_one_replica).await;
    let alice = center.register_and_login("alice").await;

    // Every key of alice's shares one slot: freeze the one replica of the master serving it.
    // Only a WAIT sent to that master, on the connection that wrote the session, sees that
    // the replica lacks it: another master's replicas acknowledge, and a WAIT on a fresh
    // connection counts the frozen replica as online.
    let session_key = center.session_key(&alice);
    let master = blocking(|| cluster.master_of(&session_key)).expect("alice's master");
    let replicas = blocking(|| cluster.replicas_of(master)).expect("its replicas");
    assert_eq!(replicas.len(), 1, "one replica per master: {replicas:?}");
    blocking(|| cluster.freeze(replicas[0])).expect("freeze the replica");
    let refused = center.login("alice").await;
    let status = refused.status();
    let retry_after = refused.headers().get("retry-after").cloned();
    let body = refused.text().await;
    blocking(|| cluster.thaw(replicas[0])).expect("thaw the replica");
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body:?}");
    assert!(retry_after.is_some(), "a 503 says when to retry");

    // Thawed, the replica catches up and acknowledges again.
    let again = center.login("alice").await;
    assert_eq!(again.status(), StatusCode::OK);
}

/// Bob's session, cached by a tracked verifier allowed 60 s of staleness, across a change of
/// the master serving his slot (`switch` makes it, given that master): both verifiers still
/// serve it afterwards, and its deletion on the new master is refused within the poll bound,
/// which only Redis can bring about.
async fn a_cached_session_across_a_change_of_master(
    mut cluster: RedisCluster,
    switch: impl FnOnce(&mut RedisCluster, u16) -> anyhow::Result<()>,
) {
    let center = AuthCenter::spawn_on(RedisTarget::Cluster(cluster.urls())).await;
    let tracked = center.demo_tracked_by_redis_alone().await;
    let every_request = center.demo(RevocationMode::EveryRequest).await;
    let bob = center.register_and_login("bob").await;
    tracked.me(&bob).await.assert_ok(); // cached, tracked on the old master's connection
    every_request.me(&bob).await.assert_ok();

    let key = center.session_key(&bob);
    let master = blocking(|| cluster.master_of(&key)).expect("bob's master");
    blocking(|| switch(&mut cluster, master)).expect("the change of master");
    let promoted =
        blocking(|| cluster.wait_for_promotion(&key, master)).expect("the replica took over");
    for (name, demo) in [("tracked", &tracked), ("every request", &every_request)] {
        let answer = until_decided(name, || demo.me(&bob)).await;
        assert_eq!(answer.status, StatusCode::OK, "{name}: {answer:?}");
    }

    // An operator deletes bob's session on the new master.
    let deleted: i64 = blocking(|| cluster.query(promoted, redis::cmd("DEL").arg(&key)))
        .expect("DEL on the new master");
    assert_eq!(deleted, 1, "bob's session was replicated before the change");
    becomes_revoked(&tracked, &bob, "tracked, after the DEL on the new master").await;
    every_request.me(&bob).await.assert_401("session_revoked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_cluster_master_crash_a_session_cached_from_the_old_master_and_deleted_on_the_new_one_is_refused_at_once()
 {
    let cluster = blocking(|| RedisCluster::start_with(ClusterOptions::FAST_FAILOVER))
        .expect("a cluster with replicas");
    // The connection to the old master drops: the tracked cache is flushed.
    a_cached_session_across_a_change_of_master(cluster, |cluster, master| {
        cluster.wait_replicated(master)?;
        cluster.kill(master)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_planned_cluster_failover_a_session_cached_from_the_old_master_and_deleted_on_the_new_one_is_refused_at_once()
 {
    let cluster = blocking(|| RedisCluster::start_with(ClusterOptions::WITH_REPLICAS))
        .expect("a cluster with replicas");
    // Maintenance: the replica takes over once it has caught up, and the old master stays up
    // as its replica, its connections open. (This passes with a verifier that ignores dropped
    // connections: Redis's invalidation itself reaches the verifier across the switch.)
    a_cached_session_across_a_change_of_master(cluster, |cluster, master| {
        let replicas = cluster.replicas_of(master)?;
        let replica = replicas.first().context("the master has no replica")?;
        cluster.fail_over_to(*replica)
    })
    .await;
}
