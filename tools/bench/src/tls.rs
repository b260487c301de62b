//! TLS in front of DynamoDB Local, so that a function's first response pays for what the deployed
//! function pays for: a TLS handshake (and the random-number generator's first seeding) on its
//! first DynamoDB call.
//!
//! - [`ThrowawayPki::generate`]: a root CA, an intermediate CA and a server certificate for
//!   `127.0.0.1` / `localhost`, RSA-2048 like the chain DynamoDB presents (leaf ← Amazon RSA 2048
//!   intermediate ← Amazon Root CA 1), made with the `openssl` CLI in a fresh temporary folder per
//!   run and deleted with it. Only the root is handed to the function (`DYNAMODB_CA_BUNDLE`).
//! - [`TlsFront`]: a rustls (aws-lc) server on 127.0.0.1 that terminates TLS and copies bytes to
//!   DynamoDB Local's plain-HTTP port, on a thread of its own. Per connection it records when the
//!   TCP connection was accepted, when the client's first bytes (the ClientHello) arrived and when
//!   the handshake completed, so the bench can tell the client's time to build its ClientHello
//!   (where the first seeding of aws-lc's generator happens) from the handshake itself.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

/// A throwaway certificate chain in a temporary folder (removed on drop).
pub struct ThrowawayPki {
    dir: PathBuf,
    /// The root CA certificate (PEM): what the client is told to trust.
    pub ca: PathBuf,
    /// Server certificate followed by the intermediate (PEM).
    pub chain: PathBuf,
    pub key: PathBuf,
}

impl ThrowawayPki {
    pub fn generate() -> Result<Self> {
        let dir = std::env::temp_dir().join(format!(
            "bench-pki-{}-{}",
            std::process::id(),
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
        ));
        std::fs::create_dir_all(&dir)?;
        let pki = Self { ca: dir.join("root.pem"), chain: dir.join("chain.pem"), key: dir.join("leaf.key"), dir };
        pki.make().with_context(|| format!("throwaway certificates in {}", pki.dir.display()))?;
        Ok(pki)
    }

    fn make(&self) -> Result<()> {
        let d = &self.dir;
        let p = |name: &str| d.join(name).to_string_lossy().into_owned();
        std::fs::write(
            d.join("ca.ext"),
            "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n",
        )?;
        std::fs::write(
            d.join("leaf.ext"),
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n",
        )?;
        let rsa = ["-newkey", "rsa:2048", "-nodes"];
        openssl(&[
            &["req", "-x509"],
            &rsa[..],
            &[
                "-keyout",
                &p("root.key"),
                "-out",
                &p("root.pem"),
                "-subj",
                "/CN=bench throwaway root CA",
                "-days",
                "2",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        ])?;
        openssl(&[
            &["req"],
            &rsa[..],
            &["-keyout", &p("int.key"), "-out", &p("int.csr"), "-subj", "/CN=bench throwaway intermediate CA"],
        ])?;
        openssl(&[&[
            "x509",
            "-req",
            "-in",
            &p("int.csr"),
            "-CA",
            &p("root.pem"),
            "-CAkey",
            &p("root.key"),
            "-CAcreateserial",
            "-out",
            &p("int.pem"),
            "-days",
            "2",
            "-extfile",
            &p("ca.ext"),
        ]])?;
        openssl(&[&["req"], &rsa[..], &["-keyout", &p("leaf.key"), "-out", &p("leaf.csr"), "-subj", "/CN=127.0.0.1"]])?;
        openssl(&[&[
            "x509",
            "-req",
            "-in",
            &p("leaf.csr"),
            "-CA",
            &p("int.pem"),
            "-CAkey",
            &p("int.key"),
            "-CAcreateserial",
            "-out",
            &p("leaf.pem"),
            "-days",
            "2",
            "-extfile",
            &p("leaf.ext"),
        ]])?;
        let mut chain = std::fs::read(d.join("leaf.pem"))?;
        chain.extend(std::fs::read(d.join("int.pem"))?);
        std::fs::write(&self.chain, chain)?;
        Ok(())
    }
}

impl Drop for ThrowawayPki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn openssl(parts: &[&[&str]]) -> Result<()> {
    let args: Vec<&str> = parts.iter().flat_map(|p| p.iter().copied()).collect();
    let out = Command::new("openssl")
        .args(&args)
        .stdin(Stdio::null())
        .output()
        .context("run the openssl CLI (needed for the throwaway CA)")?;
    if !out.status.success() {
        bail!("openssl {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// One TLS connection as the terminator saw it.
#[derive(Debug, Clone, Copy)]
pub struct Handshake {
    /// TCP connection accepted.
    pub accepted: Instant,
    /// The client's first bytes (its ClientHello) readable.
    pub hello: Option<Instant>,
    /// Handshake complete (the client's Finished received).
    pub done: Option<Instant>,
}

/// A TLS terminator on 127.0.0.1 in front of a plain-HTTP upstream on 127.0.0.1.
pub struct TlsFront {
    pub port: u16,
    handshakes: Arc<Mutex<Vec<Handshake>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl TlsFront {
    /// Listens on a free loopback port and forwards to `upstream` (an `http://127.0.0.1:port` URL).
    pub fn start(pki: &ThrowawayPki, upstream: &str) -> Result<Self> {
        let upstream_port: u16 = upstream
            .strip_prefix("http://127.0.0.1:")
            .or_else(|| upstream.strip_prefix("http://localhost:"))
            .and_then(|p| p.trim_end_matches('/').parse().ok())
            .ok_or_else(|| anyhow!("TLS front: upstream `{upstream}` must be http://127.0.0.1:PORT"))?;
        let config = Arc::new(server_config(&pki.chain, &pki.key)?);
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let std_listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("bind TLS front")?;
        std_listener.set_nonblocking(true)?;
        let port = std_listener.local_addr()?.port();
        let handshakes = Arc::new(Mutex::new(Vec::new()));
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let record = handshakes.clone();
        let thread = std::thread::Builder::new().name("tls-front".into()).spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            rt.block_on(async move {
                let Ok(listener) = TcpListener::from_std(std_listener) else { return };
                loop {
                    let accepted = tokio::select! {
                        _ = &mut stopped => break,
                        a = listener.accept() => a,
                    };
                    let Ok((stream, _)) = accepted else { continue };
                    let at = Instant::now();
                    let _ = stream.set_nodelay(true);
                    let index = {
                        let mut h = record.lock().unwrap_or_else(|p| p.into_inner());
                        h.push(Handshake { accepted: at, hello: None, done: None });
                        h.len() - 1
                    };
                    let (acceptor, record) = (acceptor.clone(), record.clone());
                    tokio::spawn(async move {
                        let _ = relay(stream, acceptor, upstream_port, &record, index).await;
                    });
                }
            });
        })?;
        Ok(Self { port, handshakes, stop: Some(stop), thread: Some(thread) })
    }

    /// `https://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// The connections seen since the last call.
    pub fn take(&self) -> Vec<Handshake> {
        std::mem::take(&mut *self.handshakes.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn server_config(chain: &Path, key: &Path) -> Result<rustls::ServerConfig> {
    let certs = CertificateDer::pem_file_iter(chain)
        .with_context(|| format!("read {}", chain.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow!("certificate chain: {e}"))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| anyhow!("server key: {e}"))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| anyhow!("TLS versions: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| anyhow!("server certificate: {e}"))
}

async fn relay(
    stream: TcpStream,
    acceptor: tokio_rustls::TlsAcceptor,
    upstream_port: u16,
    record: &Mutex<Vec<Handshake>>,
    index: usize,
) -> Result<()> {
    let set = |f: &dyn Fn(&mut Handshake)| {
        if let Some(h) = record.lock().unwrap_or_else(|p| p.into_inner()).get_mut(index) {
            f(h);
        }
    };
    // `peek`, not `readable()`: a fresh socket can report itself readable before any byte arrived.
    let mut first = [0u8; 1];
    tokio::time::timeout(Duration::from_secs(30), stream.peek(&mut first)).await??;
    let hello = Instant::now();
    set(&|h| h.hello = Some(hello));
    let mut tls = tokio::time::timeout(Duration::from_secs(30), acceptor.accept(stream)).await??;
    let done = Instant::now();
    set(&|h| h.done = Some(done));
    let mut up = TcpStream::connect((Ipv4Addr::LOCALHOST, upstream_port)).await?;
    up.set_nodelay(true)?;
    let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
    let _ = tls.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// A client that trusts only the throwaway root reaches the upstream through the front, and
    /// the front records the handshake.
    #[test]
    fn the_front_terminates_tls_with_the_throwaway_chain_and_relays_bytes() {
        if Command::new("openssl").arg("version").output().is_err() {
            eprintln!("no openssl CLI: skipping");
            return;
        }
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let upstream = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
            let up_port = upstream.local_addr().unwrap().port();
            tokio::spawn(async move {
                let (mut s, _) = upstream.accept().await.unwrap();
                let mut buf = [0u8; 4];
                s.read_exact(&mut buf).await.unwrap();
                s.write_all(b"pong").await.unwrap();
            });
            let pki = ThrowawayPki::generate().unwrap();
            let front = TlsFront::start(&pki, &format!("http://127.0.0.1:{up_port}")).unwrap();
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(&pki.ca).unwrap() {
                roots.add(c.unwrap()).unwrap();
            }
            let config =
                rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
                    .with_safe_default_protocol_versions()
                    .unwrap()
                    .with_root_certificates(roots)
                    .with_no_client_auth();
            let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
            let tcp = TcpStream::connect((Ipv4Addr::LOCALHOST, front.port)).await.unwrap();
            // The client takes its time before the ClientHello (as a first seeding would).
            tokio::time::sleep(Duration::from_millis(60)).await;
            let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
            let mut tls = connector.connect(name, tcp).await.unwrap();
            tls.write_all(b"ping").await.unwrap();
            let mut buf = [0u8; 4];
            tls.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"pong");
            let seen = front.take();
            assert_eq!(seen.len(), 1);
            let h = seen[0];
            let wait = h.hello.map(|t| t - h.accepted);
            assert!(wait.is_some_and(|w| w >= Duration::from_millis(50)), "ClientHello wait {wait:?}");
            assert!(h.done.is_some_and(|d| Some(d) >= h.hello));
        });
    }
}
