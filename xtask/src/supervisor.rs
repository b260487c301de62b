//! The function instances of the local stack, and the watcher that rebuilds and restarts them.
//!
//! `cargo lambda watch --only-lambda-apis` serves the API and the Lambda Runtime API; this module
//! runs each function's binary (`target/debug/<name>`) as `instances` processes polling that
//! Runtime API. A thread looks, a few times a second, at the files each function is built from:
//! the workspace sources cargo's dep-info lists for its binary (`target/debug/<name>.d`: its own
//! crate, `shared`, any other path dependency), the manifests of those packages, the workspace
//! `Cargo.toml`, `Cargo.lock` and `.cargo/config.toml`. Any other file in the checkout (a new
//! untracked file, a test's output, `target/`) is never looked at.
//!
//! When files change it waits until they settle, runs one `cargo build` for the functions they
//! belong to while the running instances keep serving, and then restarts only those functions: the
//! front door holds the function's lane (new requests wait at most `--max-wait-secs`, then get the
//! 503 + `Retry-After` contract), the requests in flight finish, the old processes stop, the new
//! ones start, and the lane opens again. A failed build leaves the previous instances serving.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};

use crate::frontdoor::Lane;

/// How often the watcher looks at the sources.
pub const POLL: Duration = Duration::from_millis(250);
/// Changes are built once the files have not changed for this long (an editor's save is often
/// several writes).
const SETTLE: Duration = Duration::from_millis(500);
/// An instance that exits this soon after it started, this many times in a row, is not started
/// again until the next build.
const QUICK_EXIT: Duration = Duration::from_secs(2);
const QUICK_EXITS_ALLOWED: u32 = 3;

/// One function as the stack runs it.
#[derive(Clone)]
pub struct FunctionSpec {
    pub name: String,
    /// Processes polling the Runtime API at once.
    pub instances: usize,
    /// The front door's lane for it: held while the function restarts.
    pub lane: Arc<Lane>,
}

/// What every instance gets.
pub struct Config {
    pub functions: Vec<FunctionSpec>,
    /// `host:port` of `cargo lambda watch` (its Runtime API is under `/.rt/<function>`).
    pub runtime_api: String,
    /// Environment of every instance (the Lambda variables are added per function).
    pub env: Vec<(String, String)>,
    /// Runs the front door's futures (holding a lane).
    pub runtime: tokio::runtime::Handle,
    /// Longest wait for a function's requests in flight before it restarts anyway.
    pub drain_timeout: Duration,
    /// Drops the instances' standard output (the metrics lines, one per request).
    pub quiet_stdout: bool,
}

/// A rebuild and the functions it restarted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rebuild {
    /// The functions whose sources changed (and were built).
    pub functions: Vec<String>,
    /// Whether `cargo build` succeeded (only then were they restarted).
    pub built: bool,
}

/// Counters a test reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Process ids of the running instances, per function.
    pub pids: BTreeMap<String, Vec<u32>>,
    /// Instances started so far (first start, restarts, replacements), per function.
    pub started: BTreeMap<String, u64>,
    /// Every rebuild so far, in order.
    pub rebuilds: Vec<Rebuild>,
    /// Times the watcher has looked at the sources.
    pub scans: u64,
}

struct Instance {
    child: Child,
    started: Instant,
}

#[derive(Default)]
struct Running {
    instances: BTreeMap<String, Vec<Instance>>,
    started: BTreeMap<String, u64>,
    quick_exits: BTreeMap<String, u32>,
    rebuilds: Vec<Rebuild>,
}

struct Shared {
    config: Config,
    stop: AtomicBool,
    scans: AtomicU64,
    running: Mutex<Running>,
}

impl Shared {
    fn running(&self) -> MutexGuard<'_, Running> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn spec(&self, name: &str) -> Option<&FunctionSpec> {
        self.config.functions.iter().find(|f| f.name == name)
    }

    fn spawn(&self, name: &str) -> Result<Instance> {
        let binary = crate::target_dir().join("debug").join(name);
        let mut cmd = Command::new(&binary);
        cmd.current_dir(crate::root())
            .stdin(Stdio::null())
            .stdout(if self.config.quiet_stdout { Stdio::null() } else { Stdio::inherit() })
            .envs(self.config.env.iter().map(|(k, v)| (k, v)))
            .env("AWS_LAMBDA_RUNTIME_API", format!("http://{}/.rt/{name}", self.config.runtime_api))
            .env("AWS_LAMBDA_FUNCTION_NAME", name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "4096");
        // A group of its own: Ctrl-C in the terminal reaches xtask, which stops the instances
        // itself, rather than each instance at once (which would read as crashes).
        #[cfg(unix)]
        {
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
        }
        let child = cmd.spawn().with_context(|| format!("cannot start {}", binary.display()))?;
        *self.running().started.entry(name.to_owned()).or_default() += 1;
        Ok(Instance { child, started: Instant::now() })
    }

    /// Starts the function's instances (the ones it has are stopped first).
    fn start_function(&self, name: &str) -> Result<()> {
        let count = self.spec(name).map_or(1, |s| s.instances);
        let old = self.running().instances.remove(name).unwrap_or_default();
        stop_all(old);
        let mut fresh = Vec::with_capacity(count);
        for _ in 0..count {
            fresh.push(self.spawn(name)?);
        }
        let mut running = self.running();
        running.instances.insert(name.to_owned(), fresh);
        running.quick_exits.remove(name);
        Ok(())
    }

    /// Restarts `name` on its new binary with its lane held: requests in flight finish first, new
    /// ones wait in the front door's queue.
    fn restart(&self, name: &str) -> Result<()> {
        let lane = self.spec(name).map(|s| s.lane.clone());
        let held = match &lane {
            Some(lane) => {
                let limit = self.config.drain_timeout;
                match self.config.runtime.block_on(async { tokio::time::timeout(limit, lane.hold()).await }) {
                    Ok(()) => true,
                    Err(_) => {
                        eprintln!(
                            "xtask: {name}: requests still in flight after {} s; restarting anyway",
                            self.config.drain_timeout.as_secs()
                        );
                        false
                    }
                }
            }
            None => false,
        };
        let result = self.start_function(name);
        if let (true, Some(lane)) = (held, &lane) {
            lane.release();
        }
        result
    }

    /// Replaces instances that exited by themselves.
    fn replace_exited(&self) {
        let names: Vec<String> = self.running().instances.keys().cloned().collect();
        for name in names {
            let mut exited = Vec::new();
            {
                let mut running = self.running();
                let Some(list) = running.instances.get_mut(&name) else { continue };
                let mut i = 0;
                while i < list.len() {
                    if let Ok(Some(status)) = list[i].child.try_wait() {
                        let gone = list.remove(i);
                        exited.push((gone.child.id(), status, gone.started.elapsed()));
                    } else {
                        i += 1;
                    }
                }
            }
            for (pid, status, lived) in exited {
                let quick = {
                    let mut running = self.running();
                    let n = running.quick_exits.entry(name.clone()).or_default();
                    if lived < QUICK_EXIT {
                        *n += 1;
                    } else {
                        *n = 0;
                    }
                    *n
                };
                if quick > QUICK_EXITS_ALLOWED {
                    if quick == QUICK_EXITS_ALLOWED + 1 {
                        eprintln!(
                            "xtask: {name}: instances keep exiting at start ({status}); not starting more until its \
                             sources change"
                        );
                    }
                    continue;
                }
                eprintln!("xtask: {name}: instance {pid} exited ({status}); starting another");
                match self.spawn(&name) {
                    Ok(instance) => self.running().instances.entry(name.clone()).or_default().push(instance),
                    Err(e) => eprintln!("xtask: {name}: {e:#}"),
                }
            }
        }
    }
}

fn stop_all(instances: Vec<Instance>) {
    for mut instance in instances {
        let _ = instance.child.kill();
        let _ = instance.child.wait();
    }
}

/// The running instances and their watcher. Dropping it stops both.
pub struct Supervisor {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Supervisor {
    /// Starts every function's instances on the binaries in `target/debug` (build them first),
    /// then watches their sources.
    pub fn start(config: Config) -> Result<Self> {
        let names: Vec<String> = config.functions.iter().map(|f| f.name.clone()).collect();
        let mut sources = BTreeMap::new();
        for name in &names {
            sources.insert(name.clone(), Sources::of(name)?);
        }
        let shared = Arc::new(Shared {
            config,
            stop: AtomicBool::new(false),
            scans: AtomicU64::new(0),
            running: Mutex::default(),
        });
        // Owns the instances from the first one on: an error stops the ones already started.
        let mut supervisor = Self { shared: shared.clone(), thread: None };
        for name in &names {
            shared.start_function(name)?;
        }
        let thread = std::thread::Builder::new()
            .name("function-watcher".into())
            .spawn(move || watch(&shared, sources))
            .context("cannot start the watcher thread")?;
        supervisor.thread = Some(thread);
        Ok(supervisor)
    }

    pub fn snapshot(&self) -> Snapshot {
        let running = self.shared.running();
        Snapshot {
            pids: running
                .instances
                .iter()
                .map(|(n, l)| (n.clone(), l.iter().map(|i| i.child.id()).collect()))
                .collect(),
            started: running.started.clone(),
            rebuilds: running.rebuilds.clone(),
            scans: self.shared.scans.load(Ordering::SeqCst),
        }
    }

    /// Whether the watcher still runs (it stops only with the stack, or on a bug).
    pub fn watching(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Instances running now, per function.
    pub fn instances(&self) -> BTreeMap<String, usize> {
        self.shared.running().instances.iter().map(|(n, l)| (n.clone(), l.len())).collect()
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let all = std::mem::take(&mut self.shared.running().instances);
        for (_, instances) in all {
            stop_all(instances);
        }
    }
}

/// The watcher: replaces exited instances, and rebuilds and restarts functions whose sources
/// changed.
fn watch(shared: &Shared, mut sources: BTreeMap<String, Sources>) {
    while !shared.stop.load(Ordering::SeqCst) {
        std::thread::sleep(POLL);
        shared.replace_exited();
        let mut stats = StatCache::default();
        let changed: Vec<String> =
            sources.iter().filter(|(_, s)| s.changed(&mut stats)).map(|(n, _)| n.clone()).collect();
        shared.scans.fetch_add(1, Ordering::SeqCst);
        if changed.is_empty() {
            continue;
        }
        // Wait until the files settle (bounded), then take the state that is built.
        let mut last = fingerprint_all(&sources, &changed);
        let settle_started = Instant::now();
        let mut still_since = Instant::now();
        while still_since.elapsed() < SETTLE && settle_started.elapsed() < Duration::from_secs(10) {
            if shared.stop.load(Ordering::SeqCst) {
                return;
            }
            std::thread::sleep(POLL);
            let now = fingerprint_all(&sources, &changed);
            if now != last {
                last = now;
                still_since = Instant::now();
            }
        }
        eprintln!("xtask: sources of {} changed: building", changed.join(", "));
        let started = Instant::now();
        let built = crate::cargo()
            .arg("build")
            .args(changed.iter().flat_map(|f| ["-p", f.as_str()]))
            .status()
            .is_ok_and(|s| s.success());
        for name in &changed {
            if let Some(s) = sources.get_mut(name) {
                s.rebase(built, &last[name]);
            }
        }
        if built {
            for name in &changed {
                if let Err(e) = shared.restart(name) {
                    eprintln!("xtask: {name}: {e:#}");
                }
            }
            eprintln!(
                "xtask: restarted {} on the new build ({:.1} s after the change was seen)",
                changed.join(", "),
                started.elapsed().as_secs_f64()
            );
        } else {
            eprintln!(
                "xtask: the build of {} failed; the previous build keeps serving until the sources change again",
                changed.join(", ")
            );
        }
        shared.running().rebuilds.push(Rebuild { functions: changed, built });
    }
}

type Stat = Option<(SystemTime, u64)>;

#[derive(Default)]
struct StatCache(HashMap<PathBuf, Stat>);

impl StatCache {
    fn stat(&mut self, path: &Path) -> Stat {
        *self.0.entry(path.to_owned()).or_insert_with(|| {
            let meta = std::fs::metadata(path).ok()?;
            Some((meta.modified().ok()?, meta.len()))
        })
    }
}

fn fingerprint_all(sources: &BTreeMap<String, Sources>, names: &[String]) -> BTreeMap<String, Vec<Stat>> {
    let mut stats = StatCache::default();
    names.iter().filter_map(|n| Some((n.clone(), sources.get(n)?.fingerprint(&mut stats)))).collect()
}

/// The files one function is built from, and their state at its last build.
struct Sources {
    function: String,
    files: Vec<PathBuf>,
    built: Vec<Stat>,
}

impl Sources {
    fn of(function: &str) -> Result<Self> {
        let files = build_inputs(function)?;
        let mut stats = StatCache::default();
        let built = files.iter().map(|f| stats.stat(f)).collect();
        Ok(Self { function: function.to_owned(), files, built })
    }

    fn fingerprint(&self, stats: &mut StatCache) -> Vec<Stat> {
        self.files.iter().map(|f| stats.stat(f)).collect()
    }

    fn changed(&self, stats: &mut StatCache) -> bool {
        self.fingerprint(stats) != self.built
    }

    /// After a build from the files as `seen`: a successful build re-reads the list (a module
    /// may have been added); either way, later changes are measured against `seen`.
    fn rebase(&mut self, built: bool, seen: &[Stat]) {
        let before: HashMap<PathBuf, Stat> = self.files.iter().cloned().zip(seen.iter().copied()).collect();
        if built {
            match build_inputs(&self.function) {
                Ok(files) => self.files = files,
                Err(e) => eprintln!("xtask: {}: {e:#}", self.function),
            }
        }
        let mut stats = StatCache::default();
        self.built = self.files.iter().map(|f| before.get(f).copied().unwrap_or_else(|| stats.stat(f))).collect();
    }
}

/// The files in the repository `function`'s binary is built from: the sources cargo's dep-info
/// lists, the manifest of each package they belong to, and the workspace's `Cargo.toml`,
/// `Cargo.lock` and `.cargo/config.toml`.
pub fn build_inputs(function: &str) -> Result<Vec<PathBuf>> {
    let root = crate::root();
    let dep_info = crate::target_dir().join("debug").join(format!("{function}.d"));
    let text = std::fs::read_to_string(&dep_info)
        .with_context(|| format!("cannot read {} (build {function} first)", dep_info.display()))?;
    let mut files = BTreeSet::new();
    for path in dep_info_paths(&text) {
        let path = PathBuf::from(path);
        if !path.starts_with(&root) || path.starts_with(crate::target_dir()) {
            continue;
        }
        // The package's manifest: the nearest Cargo.toml above the file, inside the repository.
        let mut dir = path.parent();
        while let Some(d) = dir.filter(|d| d.starts_with(&root) && *d != root) {
            if d.join("Cargo.toml").is_file() {
                files.insert(d.join("Cargo.toml"));
                break;
            }
            dir = d.parent();
        }
        files.insert(path);
    }
    if files.is_empty() {
        bail!("{} lists no source in {}", dep_info.display(), root.display());
    }
    for file in ["Cargo.toml", "Cargo.lock", ".cargo/config.toml"] {
        files.insert(root.join(file));
    }
    Ok(files.into_iter().collect())
}

/// The prerequisites of a Makefile-style dep-info file (`target: a b\ c`), unescaped.
fn dep_info_paths(text: &str) -> Vec<String> {
    let mut paths = Vec::new();
    for line in text.lines() {
        // `target: deps`; a line without deps (`file:`) lists a file on its own.
        let Some((_, deps)) = split_target(line) else { continue };
        let mut current = String::new();
        let mut chars = deps.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' if chars.peek().is_some_and(|n| *n == ' ' || *n == '\\' || *n == '#' || *n == ':') => {
                    current.push(chars.next().unwrap_or(' '));
                }
                ' ' | '\t' => {
                    if !current.is_empty() {
                        paths.push(std::mem::take(&mut current));
                    }
                }
                _ => current.push(c),
            }
        }
        if !current.is_empty() {
            paths.push(current);
        }
    }
    paths
}

/// Splits `target: deps` at the first unescaped `: `.
fn split_target(line: &str) -> Option<(&str, &str)> {
    let bytes = line.as_bytes();
    (0..bytes.len()).find_map(|i| {
        let escaped = i > 0 && bytes[i - 1] == b'\\';
        (bytes[i] == b':' && !escaped && bytes.get(i + 1).is_none_or(|b| *b == b' '))
            .then(|| (&line[..i], line.get(i + 1..).unwrap_or("")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dep_info_paths_are_unescaped_and_every_line_counts() {
        let text = "/r/target/debug/purchase: /r/functions/purchase/src/main.rs /r/shared/src/a\\ b.rs\n\n\
                    /r/target/debug/other: /r/x.rs\n/r/only-a-target:\n";
        assert_eq!(dep_info_paths(text), ["/r/functions/purchase/src/main.rs", "/r/shared/src/a b.rs", "/r/x.rs"]);
    }

    #[test]
    fn a_function_is_built_from_its_crate_shared_and_the_workspace_manifests_only() {
        // Needs the function built (`cargo xtask test` builds every function first).
        let root = crate::root();
        let files = build_inputs("purchase").unwrap();
        let has = |p: &str| files.contains(&root.join(p));
        for needed in [
            "functions/purchase/src/main.rs",
            "functions/purchase/Cargo.toml",
            "shared/src/lib.rs",
            "shared/Cargo.toml",
            "Cargo.toml",
            "Cargo.lock",
        ] {
            assert!(has(needed), "{needed} missing from {files:?}");
        }
        assert!(files.iter().all(|f| f.starts_with(&root) && !f.starts_with(crate::target_dir())), "{files:?}");
        assert!(!files.iter().any(|f| f.starts_with(root.join("functions/status"))), "{files:?}");
    }
}
