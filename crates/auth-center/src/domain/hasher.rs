//! Argon2id password hashing off the async runtime, with bounded concurrency.
//!
//! The hashes run on a fixed pool of `slots` threads (named `argon2-<n>`), never on tokio's
//! blocking pool: at most `slots` hashes run at once, whatever happens to the requests. A
//! caller first takes one of [`PERMITS_PER_SLOT`] × `slots` permits, waiting at most the
//! queue wait: one per hash running and one per hash queued behind it, so that a thread
//! that finishes a hash under load finds the next one waiting instead of idling while the
//! runtime hands it over. The permit then travels with the job, and comes back with the
//! answer once the hash is done, for the caller to free (or is freed by the hashing thread
//! when the caller has gone). Cancelling the caller (a request timeout, a client that hangs
//! up) thus never frees a permit early: what waits for a hashing thread stays bounded. A job
//! whose caller is already gone when a thread picks it up is skipped. The hashing threads
//! share no lock with the runtime's workers on the way back (the reply is a lock-free
//! oneshot), so a low-priority thread preempted mid-way never stalls a worker.
//!
//! The hashing threads lower their own priority when they start: the `SCHED_IDLE` policy
//! (`passwords.hashing_idle`, on by default) and nice 19 (`passwords.hashing_nice`, the nice
//! value of each thread; what counts when `SCHED_IDLE` is off). A login flood then takes the
//! CPU that requests leave over instead of delaying refreshes and checks. Nice 19 alone is
//! not enough: the kernel (EEVDF) lets a running nice-19 thread finish its time slice before
//! a woken request thread runs, which put 2-3x on the p99 of `/me` and of refreshes on the
//! same cores during a flood (docs/benchmarks.md); a `SCHED_IDLE` thread is preempted at
//! once. The price: under a request load that keeps every core busy, a `SCHED_IDLE` hash
//! gets weight 3 against 1024 for a request thread (nice 19: 15), so a hash holding a slot
//! takes about five times longer to finish than at nice 19, and the logins queued behind it
//! run into the queue wait (`503 overloaded`) sooner. Requests come first either way.
//!
//! Each hashing thread allocates its Argon2 working memory (`memory_kib`) on its first hash
//! and reuses it for every later one, so the process holds at most `slots` × `memory_kib`
//! for hashing, however many hashes it has done. (Allocating and freeing 19 MiB per hash
//! left glibc's per-thread arenas holding hundreds of MiB after a login flood.) Verifying
//! therefore parses the PHC string itself and compares the outputs in constant time.
//!
//! Passwords are NFKC-normalised before hashing (NIST 800-63B §5.1.1.2), so the same
//! password typed composed or decomposed, or with compatibility characters, is the same
//! password. A hash stored before that, from a password that was not in NFKC, still
//! verifies: when the normalised form does not match, the raw form is tried, and a match
//! asks for a rehash (which stores the normalised form).

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use argon2::password_hash::phc::{Output, ParamsString, Salt};
use argon2::{Algorithm, Argon2, Block, Params, PasswordHash, Version};
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq as _;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
use unicode_normalization::is_nfkc;

use super::crypto::random_bytes;
use super::error::AuthError;
use super::metrics::HashMetrics;
use crate::config::PasswordConfig;

/// The outcome of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordCheck {
    /// The password matched.
    pub valid: bool,
    /// The stored hash uses older parameters, or was made from the password before NFKC
    /// normalisation, and should be replaced.
    pub needs_rehash: bool,
}

/// Argon2id hashing on `slots` dedicated threads, so a login flood cannot exhaust memory or
/// starve the runtime; a caller that finds every slot busy for longer than the queue wait
/// gets [`AuthError::Overloaded`].
#[derive(Clone)]
pub struct PasswordHasher {
    params: Params,
    dummy_hash: Arc<str>,
    pool: Arc<Pool>,
}

/// What the hasher is doing, for tests and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HasherStats {
    /// Hashes allowed at once (hashing threads).
    pub slots: usize,
    /// Hashes running right now.
    pub running: usize,
    /// The most hashes that ever ran at once (a high-water mark).
    pub peak_running: usize,
    /// Callers refused because no slot came free within the queue wait.
    pub refused: u64,
    /// Jobs skipped because their caller had gone before a thread picked them up.
    pub abandoned: u64,
}

/// Counts the hashes that are running, and the most that ever ran at once; and exports
/// them.
struct Gauge {
    running: AtomicUsize,
    peak: AtomicUsize,
    refused: AtomicU64,
    abandoned: AtomicU64,
    metrics: HashMetrics,
}

impl Gauge {
    fn new(metrics: HashMetrics) -> Self {
        Self {
            running: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            refused: AtomicU64::new(0),
            abandoned: AtomicU64::new(0),
            metrics,
        }
    }

    /// Marks one hash as running until the guard is dropped.
    fn enter(self: &Arc<Self>) -> Running {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        let peak = self.peak.fetch_max(now, Ordering::SeqCst).max(now);
        self.metrics.running.increment(1.0);
        self.metrics.peak.set(peak as f64);
        Running(self.clone())
    }

    fn refuse(&self) {
        self.refused.fetch_add(1, Ordering::SeqCst);
        self.metrics.refused.increment(1);
    }

    fn abandon(&self) {
        self.abandoned.fetch_add(1, Ordering::SeqCst);
        self.metrics.abandoned.increment(1);
    }
}

struct Running(Arc<Gauge>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
        self.0.metrics.running.decrement(1.0);
    }
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("params", &self.params)
            .field("slots", &self.pool.slots)
            .field("queue_wait", &self.pool.queue_wait)
            .finish()
    }
}

impl PasswordHasher {
    /// A hasher with the configured parameters, exporting to `metrics`. Starts the hashing
    /// threads and computes one dummy hash up front, used to spend the same time on unknown
    /// users as on known ones.
    pub fn new(config: &PasswordConfig, metrics: HashMetrics) -> Result<Self, AuthError> {
        let params = argon2_params(config)?;
        let slots = hashing_slots(config);
        let dummy = hash_phc(
            &params,
            b"dummy password for unknown users",
            &mut Scratch::new(params.block_count()),
        )?;
        let queue_wait = Duration::from_millis(config.queue_wait_ms);
        metrics.slots.set(slots as f64);
        Ok(Self {
            pool: Arc::new(Pool::start(
                slots,
                queue_wait,
                params.block_count(),
                config.hashing_nice,
                config.hashing_idle,
                metrics,
            )?),
            params,
            dummy_hash: dummy.into(),
        })
    }

    /// Hashes running now, the most that ever ran at once, and the refusals.
    pub fn stats(&self) -> HasherStats {
        let gauge = &self.pool.gauge;
        HasherStats {
            slots: self.pool.slots,
            running: gauge.running.load(Ordering::SeqCst),
            peak_running: gauge.peak.load(Ordering::SeqCst),
            refused: gauge.refused.load(Ordering::SeqCst),
            abandoned: gauge.abandoned.load(Ordering::SeqCst),
        }
    }

    /// Hashes the NFKC form of a password into a PHC string.
    pub async fn hash(&self, password: SecretString) -> Result<String, AuthError> {
        let params = self.params.clone();
        self.run(move |scratch| {
            let normalised = nfkc(&password);
            hash_phc(&params, normalised.expose_secret().as_bytes(), scratch)
        })
        .await
    }

    /// Checks a password against a stored PHC hash, or against a dummy hash when there is
    /// no user, so both cases cost the same. The NFKC form is tried first; a password that
    /// is not in NFKC is then tried as typed (a hash stored before normalisation), and a
    /// match that way asks for a rehash.
    pub async fn verify(
        &self,
        password: SecretString,
        stored: Option<String>,
    ) -> Result<PasswordCheck, AuthError> {
        let params = self.params.clone();
        let known = stored.is_some();
        let stored = stored.unwrap_or_else(|| self.dummy_hash.to_string());
        self.run(move |scratch| {
            let Ok(parsed) = PasswordHash::new(&stored) else {
                return Ok(PasswordCheck {
                    valid: false,
                    needs_rehash: false,
                });
            };
            let raw = password.expose_secret();
            let normalised = nfkc(&password);
            let normalised_valid =
                matches_phc(&parsed, normalised.expose_secret().as_bytes(), scratch);
            // For input that NFKC changes, the raw form (a hash from before normalisation) is
            // always checked too, whatever the first answer: a right and a wrong password
            // then cost the same, so the time does not tell them apart.
            let raw_valid = !is_nfkc(raw) && matches_phc(&parsed, raw.as_bytes(), scratch);
            let valid = normalised_valid || raw_valid;
            let legacy = raw_valid && !normalised_valid;
            let current = Params::try_from(&parsed).ok();
            let needs_rehash = legacy
                || parsed.algorithm != argon2::ARGON2ID_IDENT
                || current.is_none_or(|p| {
                    p.m_cost() != params.m_cost()
                        || p.t_cost() != params.t_cost()
                        || p.p_cost() != params.p_cost()
                });
            Ok(PasswordCheck {
                valid: valid && known,
                needs_rehash: valid && known && needs_rehash,
            })
        })
        .await
    }

    /// Runs `work` on a hashing thread once a slot is free, waiting at most the queue wait.
    /// The wait and the work are timed (real time: they are metrics, not domain time).
    #[allow(clippy::disallowed_methods)]
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Scratch) -> Result<T, AuthError> + Send + 'static,
    ) -> Result<T, AuthError> {
        let queued = std::time::Instant::now();
        let gauge = self.pool.gauge.clone();
        // The queue wait ends when the hash starts, or with a refusal (not recorded for a
        // job skipped because its caller had gone).
        let waited = move || queued.elapsed().as_secs_f64();
        let permit = self.pool.acquire().await.inspect_err(|_| {
            gauge.metrics.queue_wait.record(waited());
        })?;
        let (reply, answer) = oneshot::channel();
        self.pool.submit(Box::new(move |scratch| {
            // The permit stays taken until the hash is over, whatever became of the caller.
            // It goes back with the answer and the caller frees it: the semaphore's lock is
            // shared with the runtime's workers, and a SCHED_IDLE thread preempted while
            // holding it would stall them (priority inversion). Only when the caller is gone
            // does this thread free it.
            if reply.is_closed() {
                gauge.abandon();
                return;
            }
            gauge.metrics.queue_wait.record(waited());
            let outcome = {
                let _running = gauge.enter();
                let started = std::time::Instant::now();
                let outcome = work(scratch);
                gauge
                    .metrics
                    .duration
                    .record(started.elapsed().as_secs_f64());
                outcome
            };
            if let Err((_, permit)) = reply.send((outcome, permit)) {
                drop(permit);
            }
        }))?;
        let (outcome, permit) = answer
            .await
            .map_err(|e| AuthError::internal_because("a hashing job failed", e))?;
        drop(permit);
        outcome
    }
}

/// A job for a hashing thread, given that thread's working memory.
type Job = Box<dyn FnOnce(&mut Scratch) + Send>;

/// Permits per hashing thread: the hash it runs and one queued. With one (the permit
/// coming free only when the caller has taken the answer) a thread that finished a hash
/// waited for the runtime to take the answer, free the permit and submit the next job, and
/// its core sat idle meanwhile when the runtime ran on the other one. A queued job waits at
/// most about one hash.
pub const PERMITS_PER_SLOT: usize = 2;

/// `slots` hashing threads fed from one queue, and [`PERMITS_PER_SLOT`] permits per thread.
struct Pool {
    slots: usize,
    queue_wait: Duration,
    permits: Arc<Semaphore>,
    jobs: mpsc::Sender<Job>,
    gauge: Arc<Gauge>,
}

impl Pool {
    /// Starts the threads, each with room for `blocks` Argon2 blocks (allocated on its first
    /// hash), made `nice` nicer and, with `idle`, `SCHED_IDLE` before its first job. They stop
    /// when the pool is dropped (the queue closes).
    fn start(
        slots: usize,
        queue_wait: Duration,
        blocks: usize,
        nice: u8,
        idle: bool,
        metrics: HashMetrics,
    ) -> Result<Self, AuthError> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        let (warned, warned_idle) = (Arc::new(Once::new()), Arc::new(Once::new()));
        for n in 0..slots {
            let (queue, warned, warned_idle) = (queue.clone(), warned.clone(), warned_idle.clone());
            std::thread::Builder::new()
                .name(format!("argon2-{n}"))
                .spawn(move || {
                    // The policy first, then the nice value on top of the thread's own.
                    if idle && let Err(e) = become_idle() {
                        warned_idle.call_once(|| {
                            tracing::warn!(
                                error = %e,
                                "could not give the hashing threads the SCHED_IDLE policy: \
                                 a hash delays a woken request by up to a time slice"
                            );
                        });
                    }
                    if let Err(e) = lower_priority(nice) {
                        warned.call_once(|| {
                            tracing::warn!(
                                error = %e,
                                hashing_nice = nice,
                                "could not lower the hashing threads' priority: password \
                                 hashes compete with requests for the CPU"
                            );
                        });
                    }
                    work_loop(&queue, Scratch::new(blocks));
                })
                .map_err(|e| AuthError::internal_because("start a hashing thread", e))?;
        }
        Ok(Self {
            slots,
            queue_wait,
            permits: Arc::new(Semaphore::new(slots * PERMITS_PER_SLOT)),
            jobs,
            gauge: Arc::new(Gauge::new(metrics)),
        })
    }

    /// A permit, if one comes free within the queue wait (0: only if one is free now).
    async fn acquire(&self) -> Result<OwnedSemaphorePermit, AuthError> {
        let permits = self.permits.clone();
        let permit = if self.queue_wait.is_zero() {
            permits.try_acquire_owned().ok()
        } else {
            match tokio::time::timeout(self.queue_wait, permits.acquire_owned()).await {
                Ok(Ok(permit)) => Some(permit),
                Ok(Err(closed)) => {
                    return Err(AuthError::internal_because("the hasher is closed", closed));
                }
                Err(_elapsed) => None,
            }
        };
        permit.ok_or_else(|| {
            self.gauge.refuse();
            AuthError::Overloaded
        })
    }

    fn submit(&self, job: Job) -> Result<(), AuthError> {
        self.jobs
            .send(job)
            .map_err(|_| AuthError::internal("the hashing threads have stopped"))
    }
}

/// Makes the calling thread `increment` nicer (its nice value, capped at 19), as `nice -n`
/// does for a process: on Linux the nice value belongs to each thread, and `setpriority` on
/// a thread id changes that thread alone. Raising it needs no privilege.
#[cfg(target_os = "linux")]
fn lower_priority(increment: u8) -> std::io::Result<()> {
    use rustix::process::{getpriority_process, setpriority_process};
    if increment == 0 {
        return Ok(());
    }
    let me = Some(rustix::thread::gettid());
    let nice = getpriority_process(me)?;
    setpriority_process(me, nice.saturating_add(i32::from(increment)).min(19))?;
    Ok(())
}

/// Elsewhere the nice value is the process's, not a thread's: the threads stay as they are.
#[cfg(not(target_os = "linux"))]
fn lower_priority(increment: u8) -> std::io::Result<()> {
    if increment == 0 {
        return Ok(());
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "a per-thread nice value needs Linux",
    ))
}

/// Gives the calling thread the `SCHED_IDLE` policy, which needs no privilege: the kernel
/// then preempts it as soon as a thread of any other policy wakes up on its core, instead
/// of letting it finish its time slice as it does a nice-19 thread. Its nice value no longer
/// counts while the policy holds, and is kept (the caller then adds `hashing_nice` to it).
#[cfg(target_os = "linux")]
fn become_idle() -> std::io::Result<()> {
    use rustix::process::{getpriority_process, setpriority_process};
    use thread_priority::{
        NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy,
        set_thread_priority_and_policy, thread_native_id, thread_schedule_policy,
    };
    let me = Some(rustix::thread::gettid());
    let nice = getpriority_process(me)?;
    let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
    let set = set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Min, idle);
    // The crate also asks for nice 0, the only "priority" it knows for SCHED_IDLE: put the
    // thread's own back (always allowed from 0 up; below 0 only where it was allowed before).
    if getpriority_process(me)? != nice {
        let _ = setpriority_process(me, nice);
    }
    match (thread_schedule_policy(), set) {
        (Ok(policy), _) if policy == idle => Ok(()),
        (Ok(_), Err(thread_priority::Error::OS(code))) => {
            Err(std::io::Error::from_raw_os_error(code))
        }
        (Ok(_), Err(e)) => Err(std::io::Error::other(format!("{e:?}"))),
        (Ok(_), Ok(())) => Err(std::io::Error::other("the policy did not change")),
        (Err(e), _) => Err(std::io::Error::other(format!("{e:?}"))),
    }
}

/// Elsewhere there is no `SCHED_IDLE`: the threads stay at their nice value.
#[cfg(not(target_os = "linux"))]
fn become_idle() -> std::io::Result<()> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "SCHED_IDLE needs Linux",
    ))
}

/// One hashing thread: runs jobs until the queue closes. A panicking job is contained, so
/// the pool never loses a thread.
fn work_loop(queue: &Mutex<mpsc::Receiver<Job>>, mut scratch: Scratch) {
    loop {
        let job = match queue.lock() {
            Ok(queue) => queue.recv(),
            Err(poisoned) => poisoned.into_inner().recv(),
        };
        let Ok(job) = job else { return };
        if std::panic::catch_unwind(AssertUnwindSafe(|| job(&mut scratch))).is_err() {
            tracing::error!("a password hashing job panicked");
        }
    }
}

/// A hashing thread's Argon2 working memory: allocated on first use, then reused.
struct Scratch {
    capacity: usize,
    blocks: Vec<Block>,
}

impl Scratch {
    fn new(capacity: usize) -> Self {
        Self {
            capacity,
            blocks: Vec::new(),
        }
    }

    /// Runs `argon2` into `out` in this memory. A hash that needs more than the configured
    /// memory (a stored hash from a larger `memory_kib`, upgraded on the next login) gets
    /// memory of its own for this once.
    fn hash_into(
        &mut self,
        argon2: &Argon2<'_>,
        password: &[u8],
        salt: &[u8],
        out: &mut [u8],
    ) -> Result<(), argon2::Error> {
        let needed = argon2.params().block_count();
        if needed > self.capacity {
            return argon2.hash_password_into(password, salt, out);
        }
        if self.blocks.is_empty() {
            let mut blocks = Vec::new();
            blocks
                .try_reserve_exact(self.capacity)
                .map_err(|_| argon2::Error::OutOfMemory)?;
            blocks.resize(self.capacity, Block::new());
            self.blocks = blocks;
        }
        let memory = self
            .blocks
            .get_mut(..needed)
            .ok_or(argon2::Error::MemoryTooLittle)?;
        argon2.hash_password_into_with_memory(password, salt, out, memory)
    }
}

/// The Argon2id parameters of the configuration (memory, iterations, lanes): the one place
/// they are made, for the hasher and for `passwords capacity`.
///
/// ```
/// use auth_center::config::PasswordConfig;
/// use auth_center::domain::hasher::argon2_params;
///
/// let params = argon2_params(&PasswordConfig::default())?;
/// assert_eq!((params.m_cost(), params.t_cost(), params.p_cost()), (19 * 1024, 2, 1));
/// let none = PasswordConfig { parallelism: 0, ..PasswordConfig::default() };
/// assert!(argon2_params(&none).is_err());
/// # Ok::<(), auth_center::domain::AuthError>(())
/// ```
pub fn argon2_params(config: &PasswordConfig) -> Result<Params, AuthError> {
    Params::new(
        config.memory_kib,
        config.iterations,
        config.parallelism,
        None,
    )
    .map_err(|e| AuthError::internal_because("invalid argon2 parameters", e))
}

/// The hashes computed at once: `max_concurrent_hashes`, or one per core when it is 0.
///
/// ```
/// use auth_center::config::PasswordConfig;
/// use auth_center::domain::hasher::hashing_slots;
///
/// let three = PasswordConfig { max_concurrent_hashes: 3, ..PasswordConfig::default() };
/// assert_eq!(hashing_slots(&three), 3);
/// assert!(hashing_slots(&PasswordConfig::default()) >= 1);
/// ```
pub fn hashing_slots(config: &PasswordConfig) -> usize {
    match config.max_concurrent_hashes {
        0 => std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2),
        n => n,
    }
}

/// What [`measure_capacity`] measured: raw Argon2id hashing, `slots` hashes at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HashCapacity {
    /// Threads hashing at once (the configured hashing slots).
    pub slots: usize,
    /// Argon2 memory per hash, KiB.
    pub memory_kib: u32,
    /// Argon2 iterations.
    pub iterations: u32,
    /// Argon2 lanes.
    pub parallelism: u32,
    /// How long the threads hashed, seconds (the longest of them: each finishes the hash it
    /// started before the end).
    pub seconds: f64,
    /// Hashes done in that time, all threads together.
    pub hashes: u64,
    /// Hashes per second, all threads together: the most logins per second these slots can
    /// check.
    pub hashes_per_second: f64,
    /// Milliseconds of one hash on one thread, on average.
    pub ms_per_hash: f64,
}

/// Hashes with the configured parameters on as many threads as the hasher has slots, for
/// about `duration`, and reports the rate: the ceiling of logins per second on this machine.
/// Raw: Argon2id directly (each thread with its memory allocated once, as the hashing
/// threads do), no queue and no HTTP, at the calling thread's priority. Each thread hashes
/// once to warm up (its memory), then times its own run; the rate adds up the threads'
/// rates. It blocks the calling thread until the threads are done.
///
/// ```
/// use std::time::Duration;
/// use auth_center::config::PasswordConfig;
/// use auth_center::domain::hasher::measure_capacity;
///
/// let tiny = PasswordConfig {
///     memory_kib: 64,
///     iterations: 1,
///     max_concurrent_hashes: 2,
///     ..PasswordConfig::default()
/// };
/// let capacity = measure_capacity(&tiny, Duration::from_millis(20))?;
/// assert_eq!(capacity.slots, 2);
/// assert!(capacity.hashes >= 2 && capacity.hashes_per_second > 0.0);
/// # Ok::<(), auth_center::domain::AuthError>(())
/// ```
// Real time: a measurement of this machine, not domain time.
#[allow(clippy::disallowed_methods)]
pub fn measure_capacity(
    config: &PasswordConfig,
    duration: Duration,
) -> Result<HashCapacity, AuthError> {
    let params = argon2_params(config)?;
    let slots = hashing_slots(config);
    let runs = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..slots)
            .map(|n| {
                let params = params.clone();
                std::thread::Builder::new()
                    .name(format!("capacity-{n}"))
                    .spawn_scoped(scope, move || {
                        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
                        let mut scratch = Scratch::new(argon2.params().block_count());
                        let salt = [0x5a_u8; argon2::RECOMMENDED_SALT_LEN];
                        let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
                        let mut hash =
                            |n: u64| scratch.hash_into(&argon2, &n.to_le_bytes(), &salt, &mut out);
                        hash(0)?;
                        let started = std::time::Instant::now();
                        let mut hashes = 0_u64;
                        while started.elapsed() < duration || hashes == 0 {
                            hashes += 1;
                            hash(hashes)?;
                        }
                        Ok::<_, argon2::Error>((hashes, started.elapsed()))
                    })
            })
            .collect();
        threads
            .into_iter()
            .map(|thread| match thread {
                Ok(thread) => thread
                    .join()
                    .map_err(|_| AuthError::internal("a capacity thread panicked"))?
                    .map_err(|e| AuthError::internal_because("argon2 hashing", e)),
                Err(e) => Err(AuthError::internal_because("start a capacity thread", e)),
            })
            .collect::<Result<Vec<_>, _>>()
    })?;
    let hashes: u64 = runs.iter().map(|(n, _)| n).sum();
    let busy: f64 = runs.iter().map(|(_, t)| t.as_secs_f64()).sum();
    Ok(HashCapacity {
        slots,
        memory_kib: params.m_cost(),
        iterations: params.t_cost(),
        parallelism: params.p_cost(),
        seconds: runs
            .iter()
            .map(|(_, t)| t.as_secs_f64())
            .fold(0.0, f64::max),
        hashes,
        hashes_per_second: runs.iter().map(|(n, t)| *n as f64 / t.as_secs_f64()).sum(),
        ms_per_hash: busy * 1000.0 / hashes as f64,
    })
}

/// The NFKC form of a password.
fn nfkc(password: &SecretString) -> SecretString {
    SecretString::from(super::credentials::normalise_password(
        password.expose_secret(),
    ))
}

/// A new Argon2id hash of `password` with a random salt, as a PHC string.
fn hash_phc(params: &Params, password: &[u8], scratch: &mut Scratch) -> Result<String, AuthError> {
    let argon_error = |e: argon2::Error| AuthError::internal_because("argon2 hashing", e);
    let phc_error = |e: argon2::password_hash::phc::Error| {
        AuthError::internal_because("encoding an argon2 hash", e)
    };
    let salt = random_bytes::<{ argon2::RECOMMENDED_SALT_LEN }>()?;
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    scratch
        .hash_into(&argon2, password, &salt, &mut out)
        .map_err(argon_error)?;
    let hash = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params)
            .map_err(|e| AuthError::internal_because("encoding argon2 parameters", e))?,
        salt: Some(Salt::new(&salt).map_err(phc_error)?),
        hash: Some(Output::new(&out).map_err(phc_error)?),
    };
    Ok(hash.to_string())
}

/// Whether `password` hashes to the stored `parsed` hash, with the stored algorithm, version
/// and parameters; the outputs are compared in constant time. Anything unusable is `false`.
fn matches_phc(parsed: &PasswordHash, password: &[u8], scratch: &mut Scratch) -> bool {
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::new(parsed.algorithm.as_str()) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from).transpose() {
        Ok(version) => version.unwrap_or_default(),
        Err(_) => return false,
    };
    let Ok(params) = Params::try_from(parsed) else {
        return false;
    };
    let mut buffer = [0u8; Output::MAX_LENGTH];
    let Some(out) = buffer.get_mut(..expected.len()) else {
        return false;
    };
    let argon2 = Argon2::new(algorithm, version, params);
    scratch.hash_into(&argon2, password, salt, out).is_ok()
        && bool::from(out.ct_eq(expected.as_bytes()))
}

#[cfg(test)]
mod tests {
    use futures::FutureExt as _;

    use super::*;
    use crate::domain::metrics::AuthMetrics;

    const PASSWORD: &str = "correct horse battery staple";

    /// OWASP's 12 MiB, t = 3 row (as in the API tests), with `slots` hashes at once.
    fn config(slots: usize) -> PasswordConfig {
        PasswordConfig {
            memory_kib: 12 * 1024,
            iterations: 3,
            max_concurrent_hashes: slots,
            ..PasswordConfig::default()
        }
    }

    /// A job that holds one hashing slot until it is released; `release` then waits until
    /// the slot is free again.
    struct Occupied {
        release: std::sync::mpsc::Sender<()>,
        job: tokio::task::JoinHandle<Result<(), AuthError>>,
    }

    impl Occupied {
        /// A job that runs on a hashing thread until released.
        async fn start(hasher: &PasswordHasher) -> Self {
            let before = hasher.stats().running;
            Self::submit(hasher, |h| h.stats().running > before, "started").await
        }

        /// A job that holds a permit and waits in the queue behind the running ones (it
        /// occupies a thread once one comes free, until released).
        async fn queue(hasher: &PasswordHasher) -> Self {
            let before = hasher.pool.permits.available_permits();
            let took = |h: &PasswordHasher| h.pool.permits.available_permits() < before;
            Self::submit(hasher, took, "took its permit").await
        }

        /// Submits a job that waits to be released, and waits until `done` says it got
        /// where it should.
        async fn submit(
            hasher: &PasswordHasher,
            done: impl Fn(&PasswordHasher) -> bool,
            what: &str,
        ) -> Self {
            let (release, wait) = std::sync::mpsc::channel::<()>();
            let h = hasher.clone();
            let job = tokio::spawn(async move {
                h.run(move |_| {
                    let _ = wait.recv();
                    Ok(())
                })
                .await
            });
            for _ in 0..3000 {
                if done(hasher) {
                    return Self { release, job };
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            panic!("the occupying job never {what}");
        }

        async fn release(self) {
            drop(self.release);
            self.job.await.unwrap().unwrap();
        }
    }

    /// A hash made by the argon2 crate itself, as every hash was before the hashing threads
    /// had their own memory and before normalisation: of `password` as given.
    fn crate_hash(password: &str, m_kib: u32, t: u32) -> String {
        use argon2::PasswordHasher as _;
        let params = Params::new(m_kib, t, 1, None).unwrap();
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(password.as_bytes())
            .unwrap()
            .to_string()
    }

    async fn verify(hasher: &PasswordHasher, password: &str, stored: String) -> PasswordCheck {
        hasher.verify(secret(password), Some(stored)).await.unwrap()
    }

    fn outcome(valid: bool, needs_rehash: bool) -> PasswordCheck {
        PasswordCheck {
            valid,
            needs_rehash,
        }
    }

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_string())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cancelled_verifications_never_run_more_hashes_at_once_than_the_limit() {
        let hasher = PasswordHasher::new(&config(1), AuthMetrics::default().hashing).unwrap();
        let stored = hasher.hash(secret(PASSWORD)).await.unwrap();
        // Each verification is started (polled once, so it is waiting for or holding the
        // slot) and then dropped, as a request timeout or a client disconnect would.
        for _ in 0..16 {
            let started = hasher
                .verify(secret(PASSWORD), Some(stored.clone()))
                .now_or_never();
            assert!(started.is_none(), "a verification finished without hashing");
        }
        // One verification awaited to the end, then the high-water mark.
        let check = verify(&hasher, PASSWORD, stored).await;
        assert!(check.valid);
        let stats = hasher.stats();
        assert_eq!(stats.peak_running, 1, "{stats:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_verification_that_finds_every_slot_busy_for_the_queue_wait_is_refused_as_overloaded()
    {
        for queue_wait_ms in [0, 20] {
            let hasher = PasswordHasher::new(
                &PasswordConfig {
                    queue_wait_ms,
                    ..config(1)
                },
                AuthMetrics::default().hashing,
            )
            .unwrap();
            let stored = hasher.hash(secret(PASSWORD)).await.unwrap();
            let occupied = Occupied::start(&hasher).await;
            // The slot's queued place taken too, by a verification that waits behind it.
            let queued = tokio::spawn({
                let (hasher, stored) = (hasher.clone(), stored.clone());
                async move { verify(&hasher, PASSWORD, stored).await }
            });
            for _ in 0..3000 {
                if hasher.pool.permits.available_permits() == 0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            assert_eq!(hasher.pool.permits.available_permits(), 0);
            let refused = hasher.verify(secret(PASSWORD), Some(stored.clone())).await;
            assert!(
                matches!(refused, Err(AuthError::Overloaded)),
                "queue wait {queue_wait_ms} ms: {refused:?}"
            );
            assert_eq!(hasher.stats().refused, 1);
            // Once the slot is free again, the queued verification runs, and the same
            // verification goes through.
            occupied.release().await;
            assert!(queued.await.unwrap().valid);
            let check = verify(&hasher, PASSWORD, stored).await;
            assert!(check.valid);
            assert_eq!(hasher.stats().peak_running, 1);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_slot_admits_one_hash_queued_behind_the_one_it_runs_and_no_more() {
        let hasher = PasswordHasher::new(
            &PasswordConfig {
                queue_wait_ms: 0,
                ..config(2)
            },
            AuthMetrics::default().hashing,
        )
        .unwrap();
        assert_eq!(PERMITS_PER_SLOT, 2);
        let running = [
            Occupied::start(&hasher).await,
            Occupied::start(&hasher).await,
        ];
        let queued = [
            Occupied::queue(&hasher).await,
            Occupied::queue(&hasher).await,
        ];
        let refused = hasher.hash(secret(PASSWORD)).await;
        assert!(matches!(refused, Err(AuthError::Overloaded)), "{refused:?}");
        assert_eq!(hasher.stats().running, 2, "the queued jobs wait");
        for occupied in running {
            occupied.release().await;
        }
        for occupied in queued {
            occupied.release().await;
        }
        let stats = hasher.stats();
        assert_eq!((stats.peak_running, stats.refused), (2, 1), "{stats:?}");
    }

    #[tokio::test]
    async fn hashes_made_here_and_by_the_argon2_crate_verify_each_other() {
        use argon2::PasswordVerifier as _;

        let hasher = PasswordHasher::new(&config(1), AuthMetrics::default().hashing).unwrap();
        let ours = hasher.hash(secret(PASSWORD)).await.unwrap();
        assert!(
            ours.starts_with("$argon2id$v=19$m=12288,t=3,p=1$"),
            "{ours}"
        );
        let parsed = PasswordHash::new(&ours).unwrap();
        let crate_default = Argon2::default();
        assert!(
            crate_default
                .verify_password(PASSWORD.as_bytes(), &parsed)
                .is_ok()
        );
        assert!(crate_default.verify_password(b"wrong", &parsed).is_err());

        // Stored hashes made by the argon2 crate (all hashes before the hashing threads had
        // their own memory), with the current and with other parameters.
        for (m, t) in [(12 * 1024, 3), (16 * 1024, 2), (8 * 1024, 3)] {
            let theirs = crate_hash(PASSWORD, m, t);
            let current = (m, t) == (12 * 1024, 3);
            let right = verify(&hasher, PASSWORD, theirs.clone()).await;
            assert_eq!(right, outcome(true, !current), "m={m} t={t}");
            let wrong = verify(&hasher, "not the password", theirs).await;
            assert!(!wrong.valid && !wrong.needs_rehash, "m={m} t={t}");
        }
        // Unknown users and unusable stored hashes never verify.
        let unknown = hasher.verify(secret(PASSWORD), None).await.unwrap();
        assert!(!unknown.valid);
        for junk in ["", "$argon2id$v=19$m=12288,t=3,p=1$c2FsdHNhbHQ", "plain"] {
            let check = verify(&hasher, PASSWORD, junk.to_string()).await;
            assert!(!check.valid, "{junk:?}");
        }
    }

    /// Field `n` of the calling thread's `/proc/thread-self/stat`, counted after the name in
    /// parentheses (which may hold spaces).
    #[cfg(target_os = "linux")]
    fn thread_stat_field<T: std::str::FromStr>(n: usize) -> T
    where
        T::Err: std::fmt::Debug,
    {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        let (_, after_name) = stat.rsplit_once(')').unwrap();
        // Field 3 (the state) is the first after the name.
        after_name
            .split_whitespace()
            .nth(n - 3)
            .unwrap()
            .parse()
            .unwrap()
    }

    /// The calling thread's nice value (`stat` field 19).
    #[cfg(target_os = "linux")]
    fn thread_nice() -> i32 {
        thread_stat_field(19)
    }

    /// The calling thread's scheduling policy (`stat` field 41): 0 `SCHED_OTHER`, 5
    /// `SCHED_IDLE`.
    #[cfg(target_os = "linux")]
    fn thread_policy() -> u32 {
        thread_stat_field(41)
    }

    /// What `look` reads on each of the two threads of a hasher made with `config` (two
    /// slots): two jobs that each wait for the other hold both threads at once, so each
    /// thread answers once.
    #[cfg(target_os = "linux")]
    async fn on_both_threads<T: Send + 'static>(config: PasswordConfig, look: fn() -> T) -> Vec<T> {
        assert_eq!(config.max_concurrent_hashes, 2);
        let hasher = PasswordHasher::new(&config, AuthMetrics::default().hashing).unwrap();
        let both = Arc::new(std::sync::Barrier::new(2));
        let job = || {
            let both = both.clone();
            hasher.run(move |_| {
                let name = std::fs::read_to_string("/proc/thread-self/comm").unwrap();
                let seen = look();
                both.wait();
                Ok((name.trim_end().to_string(), seen))
            })
        };
        let (a, b) = futures::join!(job(), job());
        let ((name_a, a), (name_b, b)) = (a.unwrap(), b.unwrap());
        assert_ne!(name_a, name_b, "one thread ran both jobs");
        for name in [&name_a, &name_b] {
            assert!(name.starts_with("argon2-"), "{name}");
        }
        vec![a, b]
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn the_hashing_threads_run_as_sched_idle_so_a_woken_request_thread_preempts_them_at_once()
    {
        assert_eq!(on_both_threads(config(2), thread_policy).await, vec![5, 5]);
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn with_hashing_idle_off_the_hashing_threads_keep_the_normal_policy() {
        let config = PasswordConfig {
            hashing_idle: false,
            ..config(2)
        };
        // The policy of the thread that made them: this one's.
        let inherited = thread_policy();
        assert_eq!(
            on_both_threads(config, thread_policy).await,
            vec![inherited, inherited]
        );
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn the_hashing_threads_run_at_the_configured_nice_and_0_leaves_them_at_the_processes() {
        // The hashing threads start from the thread that makes the hasher: this one.
        let base = thread_nice();
        for (hashing_nice, expected) in [
            (19, (base + 19).min(19)),
            (5, (base + 5).min(19)),
            (0, base),
        ] {
            let config = PasswordConfig {
                hashing_nice,
                ..config(2)
            };
            assert_eq!(
                on_both_threads(config, thread_nice).await,
                vec![expected, expected],
                "hashing_nice {hashing_nice}"
            );
        }
    }

    #[test]
    fn the_capacity_is_measured_on_as_many_threads_as_there_are_slots() {
        let capacity = measure_capacity(&config(2), Duration::from_millis(10)).unwrap();
        assert_eq!(capacity.slots, 2);
        assert_eq!(
            (
                capacity.memory_kib,
                capacity.iterations,
                capacity.parallelism
            ),
            (12 * 1024, 3, 1)
        );
        assert!(capacity.hashes >= 2, "{capacity:?}");
        assert!(capacity.hashes_per_second > 0.0, "{capacity:?}");
        assert!(capacity.ms_per_hash > 0.0, "{capacity:?}");
        assert!(capacity.seconds > 0.0, "{capacity:?}");
    }

    /// "café crème brûlée" composed (NFC) and decomposed (NFD).
    const NFC: &str = "caf\u{e9} cr\u{e8}me br\u{fb}l\u{e9}e";
    const NFD: &str = "cafe\u{301} cre\u{300}me bru\u{302}le\u{301}e";

    #[tokio::test]
    async fn a_password_typed_in_nfd_verifies_against_a_hash_made_from_nfc_input() {
        let hasher = PasswordHasher::new(&config(1), AuthMetrics::default().hashing).unwrap();
        let from_nfc = hasher.hash(secret(NFC)).await.unwrap();
        let check = verify(&hasher, NFD, from_nfc).await;
        assert_eq!(check, outcome(true, false));
        let from_nfd = hasher.hash(secret(NFD)).await.unwrap();
        assert!(verify(&hasher, NFC, from_nfd).await.valid);
        // NFKC also folds compatibility forms: a ligature and full-width letters.
        let folded = hasher
            .hash(secret("\u{fb01}ne \u{ff50}\u{ff41}\u{ff53}\u{ff53}phrase"))
            .await
            .unwrap();
        assert!(verify(&hasher, "fine passphrase", folded).await.valid);
    }

    #[tokio::test]
    async fn a_legacy_hash_of_a_non_normalised_password_still_verifies_and_asks_for_a_rehash() {
        let hasher = PasswordHasher::new(&config(1), AuthMetrics::default().hashing).unwrap();
        // Made before normalisation, from the raw NFD bytes, with the current parameters.
        let legacy = crate_hash(NFD, 12 * 1024, 3);
        let check = verify(&hasher, NFD, legacy.clone()).await;
        assert_eq!(check, outcome(true, true));
        let wrong = verify(&hasher, "cafe\u{301} au lait", legacy).await;
        assert_eq!(wrong, outcome(false, false));
    }
}
