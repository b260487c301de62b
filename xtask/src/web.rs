//! The storefront in `web/`: build it with npm, serve the built page on loopback, run its tests in
//! Debian's headless Chromium.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// Debian's package; a browser download (`npx playwright install`) is not possible here.
const CHROMIUM: &str = "/usr/bin/chromium";

fn npm(web: &Path) -> Command {
    let mut cmd = Command::new("npm");
    cmd.current_dir(web);
    cmd
}

/// Installs the locked packages when `node_modules` is missing or older than `package-lock.json`.
///
/// `npm install`, not `npm ci`: the registry reachable here lacks some of rollup's optional
/// per-platform packages (darwin, windows, …), so the lock file cannot list them and `npm ci`
/// refuses it as out of sync. `npm install` installs exactly the locked versions all the same.
fn ensure_node_modules(web: &Path) -> Result<()> {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let installed = modified(&web.join("node_modules/.package-lock.json"));
    if installed.is_none() || installed < modified(&web.join("package-lock.json")) {
        crate::run(npm(web).args(["install", "--no-audit", "--no-fund"]))?;
    }
    Ok(())
}

/// Installs the page's npm packages if needed, type-checks and builds it; returns `web/dist`.
pub fn ensure_built(root: &Path) -> Result<PathBuf> {
    let web = root.join("web");
    ensure_node_modules(&web)?;
    crate::run(npm(&web).args(["run", "build"]))?;
    Ok(web.join("dist"))
}

/// The page's unit tests (vitest): outcome messages, prices, countdowns.
pub fn unit_tests(root: &Path) -> Result<()> {
    let web = root.join("web");
    ensure_node_modules(&web)?;
    crate::run(npm(&web).args(["test"]))
}

/// Serves `dist` on `127.0.0.1:port` (0 picks a free port) from a background thread that lives as
/// long as the process, and returns the address. `index.html` gets `api_base` in its
/// `flash-sale-api` meta tag, so a page on this port calls the API on another (`cargo lambda
/// watch` answers with CORS headers). An empty `api_base` means the page's own origin.
pub fn serve(dist: &Path, port: u16, api_base: &str) -> Result<SocketAddr> {
    if !dist.join("index.html").is_file() {
        bail!("{} has no index.html: build the page first", dist.display());
    }
    let listener =
        TcpListener::bind(("127.0.0.1", port)).with_context(|| format!("cannot listen on 127.0.0.1:{port}"))?;
    let addr = listener.local_addr()?;
    let site = Arc::new(Site { dist: dist.to_path_buf(), api_base: html_attr(api_base) });
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let site = site.clone();
            // A thread per connection: a browser may hold an idle connection open.
            std::thread::spawn(move || {
                let _ = site.answer(stream);
            });
        }
    });
    Ok(addr)
}

struct Site {
    dist: PathBuf,
    api_base: String,
}

impl Site {
    fn answer(&self, mut stream: TcpStream) -> std::io::Result<()> {
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut reader = BufReader::new((&stream).take(64 * 1024));
        let mut request_line = String::new();
        reader.read_line(&mut request_line)?;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
                break;
            }
        }
        let mut parts = request_line.split_whitespace();
        let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or("/"));
        let (status, content_type, body) = match method {
            "GET" | "HEAD" => self.file(target),
            _ => (405, "text/plain; charset=utf-8", b"method not allowed\n".to_vec()),
        };
        let reason = match status {
            200 => "OK",
            404 => "Not Found",
            _ => "Method Not Allowed",
        };
        write!(
            stream,
            "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
             Cache-Control: no-cache\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n",
            body.len()
        )?;
        if method != "HEAD" {
            stream.write_all(&body)?;
        }
        stream.flush()
    }

    fn file(&self, target: &str) -> (u16, &'static str, Vec<u8>) {
        let not_found = (404, "text/plain; charset=utf-8", b"not found\n".to_vec());
        let path = target.split(['?', '#']).next().unwrap_or_default();
        let mut rel = path.trim_start_matches('/').to_owned();
        if rel.is_empty() || rel.ends_with('/') {
            rel.push_str("index.html");
        }
        // Vite's output has plain names: anything else (.., escapes, empty segments) is refused.
        if rel.split('/').any(|seg| seg.is_empty() || seg == "." || seg == "..") || rel.contains(['\\', '%', '\0']) {
            return not_found;
        }
        let Ok(bytes) = std::fs::read(self.dist.join(&rel)) else {
            return not_found;
        };
        let ext = rel.rsplit_once('.').map(|(_, e)| e).unwrap_or_default();
        if rel == "index.html" {
            let html = String::from_utf8_lossy(&bytes).replace(
                r#"name="flash-sale-api" content="""#,
                &format!(r#"name="flash-sale-api" content="{}""#, self.api_base),
            );
            return (200, "text/html; charset=utf-8", html.into_bytes());
        }
        (200, content_type(ext), bytes)
    }
}

fn content_type(ext: &str) -> &'static str {
    match ext {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn html_attr(text: &str) -> String {
    text.replace('&', "&amp;").replace('"', "&quot;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Installs Debian's Chromium when it is missing (CI starts from a fresh machine; needs root).
fn ensure_chromium() -> Result<()> {
    if Path::new(CHROMIUM).exists() {
        return Ok(());
    }
    eprintln!("xtask: installing Debian's chromium for the browser tests");
    let apt = |args: &[&str]| {
        let mut cmd = Command::new("apt-get");
        cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        crate::run(&mut cmd)
    };
    apt(&["update", "-q"])
        .and_then(|()| apt(&["install", "-y", "-q", "chromium"]))
        .context("cannot install chromium with apt-get (it needs root)")
}

/// Runs `web/tests/` (playwright-core driving headless Chromium) against a running local stack:
/// the page at `page_url`, the API at `api_url`, DynamoDB Local at `dynamodb_endpoint` (the tests
/// create their own sales with `flash-sale-admin` from the target folder, so that must be built). Fails on any
/// failed test. Screenshots go to `web/test-results/screenshots`, or to `SCREENSHOT_DIR` if set.
pub fn browser_tests(root: &Path, page_url: &str, api_url: &str, dynamodb_endpoint: &str) -> Result<()> {
    ensure_chromium()?;
    let web = root.join("web");
    ensure_node_modules(&web)?;
    let admin = crate::target_dir().join("debug/flash-sale-admin");
    if !admin.is_file() {
        bail!("{} is missing: run `cargo build -p flash-sale-admin` first", admin.display());
    }
    let mut cmd = npm(&web);
    cmd.args(["run", "test:browser"])
        .env("PAGE_URL", page_url)
        .env("API_URL", api_url)
        .env("FLASH_SALE_ADMIN", &admin)
        .env("CHROMIUM", CHROMIUM);
    crate::local_aws_env(&mut cmd, dynamodb_endpoint);
    crate::run(&mut cmd).context("browser tests failed")
}
