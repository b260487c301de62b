//! DynamoDB Local as a child process: start, readiness, port.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// Starts DynamoDB Local (in memory, one database for every access key). It has no bind-address
/// flag; clients reach it on 127.0.0.1 only.
pub fn start(jar: &Path, port: u16, quiet: bool) -> Result<Child> {
    let dir = jar.parent().context("DynamoDB Local jar has no folder")?;
    let mut cmd = Command::new("java");
    cmd.current_dir(dir)
        .arg("-Djava.library.path=./DynamoDBLocal_lib")
        .args(["-Xms256m", "-Xmx2g"])
        .args([
            "-jar",
            "DynamoDBLocal.jar",
            "-inMemory",
            "-sharedDb",
            "-disableTelemetry",
            "-port",
        ])
        .arg(port.to_string())
        .stdin(Stdio::null());
    if quiet {
        cmd.stdout(Stdio::null());
    }
    cmd.spawn().context("cannot start DynamoDB Local (java)")
}

/// True when a `ListTables` call on 127.0.0.1:`port` gets a 200. DynamoDB Local checks only the
/// shape of the signature, so a fixed one does.
pub fn answers(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(300)) else {
        return false;
    };
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

pub fn wait_ready(port: u16, limit: Duration) -> Result<()> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if answers(port) {
            eprintln!(
                "xtask: DynamoDB Local ready on 127.0.0.1:{port} after {:.1} s",
                started.elapsed().as_secs_f64()
            );
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!(
        "DynamoDB Local did not answer on 127.0.0.1:{port} within {} s",
        limit.as_secs()
    )
}
