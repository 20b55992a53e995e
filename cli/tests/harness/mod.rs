//! Helpers for the tests that run the `portcullis` binary and real proxies: temp dirs,
//! free loopback ports, processes killed on drop, a small HTTP/1.1 client, an upstream that
//! echoes the headers it got, and Prometheus text parsing.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_portcullis");
pub const SECRET: &str = "0123456789abcdef0123456789abcdef";

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "portcullis-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).expect("write temp file");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A free loopback port (bound and released: a tiny race, fine on a test machine).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A child process, killed (and reaped) on drop.
pub struct Proc {
    pub child: Child,
    pub name: String,
    /// Everything it wrote to stderr so far (when captured).
    pub stderr: Arc<Mutex<String>>,
}

impl Proc {
    pub fn stderr_text(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Drop for Proc {
    /// SIGTERM first, so that a master process (nginx) stops its workers too; SIGKILL if
    /// it has not exited within 5 s.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let pid = self.child.id().to_string();
            let _ = Command::new("kill")
                .args(["-TERM", &pid])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where a program is, searching PATH and the sbin directories.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// The program, or `None` after printing that the test is skipped; with
/// `PORTCULLIS_STRICT_TESTS=1` a missing program fails the test instead.
pub fn require(program: &str, package: &str) -> Option<PathBuf> {
    match which(program) {
        Some(p) => Some(p),
        None if std::env::var("PORTCULLIS_STRICT_TESTS").as_deref() == Ok("1") => panic!(
            "{program} not installed (apt-get install -y {package}); PORTCULLIS_STRICT_TESTS=1 makes this a failure"
        ),
        None => {
            eprintln!("skipped: {program} not installed (apt-get install -y {package})");
            None
        }
    }
}

/// Waits until something accepts connections on the port.
pub fn wait_port(port: u16, what: &str, proc: Option<&mut Proc>) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut proc = proc;
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Some(p) = proc.as_deref_mut()
            && let Ok(Some(status)) = p.child.try_wait()
        {
            panic!("{what} exited with {status}: {}", p.stderr_text());
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("{what} did not listen on 127.0.0.1:{port} within 20 s");
}

/// Spawns `cmd` with stderr captured into a buffer (a thread drains it).
pub fn spawn(name: &str, mut cmd: Command) -> Proc {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
    let buf = Arc::new(Mutex::new(String::new()));
    let err = child.stderr.take().expect("stderr");
    let sink = buf.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if let Ok(mut b) = sink.lock() {
                b.push_str(&line);
                b.push('\n');
            }
        }
    });
    Proc {
        child,
        name: name.to_owned(),
        stderr: buf,
    }
}

/// `portcullis serve` on a free port, with `args` and `env`; returns it and its address
/// (read from its "listening on" log line).
pub fn serve(args: &[&str], env: &[(&str, &str)]) -> (Proc, SocketAddr) {
    let mut cmd = Command::new(BIN);
    cmd.arg("serve")
        .arg("--listen")
        .arg("127.0.0.1:0")
        .args(args);
    cmd.env_remove("PORTCULLIS_POLICY_FILE");
    cmd.env_remove("PORTCULLIS_FEDN_POLICY");
    // serve needs a policy: FEDn's built-in one unless the test names a file.
    let names_policy = args
        .iter()
        .any(|a| *a == "--policy" || *a == "--fedn-policy")
        || env
            .iter()
            .any(|(k, _)| *k == "PORTCULLIS_POLICY_FILE" || *k == "PORTCULLIS_FEDN_POLICY");
    if !names_policy {
        cmd.arg("--fedn-policy");
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("start portcullis serve");
    let err = child.stderr.take().expect("stderr");
    let buf = Arc::new(Mutex::new(String::new()));
    let sink = buf.clone();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("listening on ").nth(1)
                && let Some(addr) = rest.split(' ').next()
                && let Ok(a) = addr.parse::<SocketAddr>()
            {
                let _ = tx.send(a);
            }
            if let Ok(mut b) = sink.lock() {
                b.push_str(&line);
                b.push('\n');
            }
        }
    });
    let mut proc = Proc {
        child,
        name: "portcullis serve".into(),
        stderr: buf,
    };
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(addr) => (proc, addr),
        Err(_) => {
            let status = proc.child.try_wait();
            panic!(
                "portcullis serve did not start ({status:?}): {}",
                proc.stderr_text()
            )
        }
    }
}

/// A response as read off the wire.
#[derive(Debug, Clone)]
pub struct Res {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Res {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The echo upstream's view: the headers it received (lowercased names).
    pub fn echoed(&self) -> BTreeMap<String, Vec<String>> {
        serde_json::from_str::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| serde_json::from_value(v["headers"].clone()).ok())
            .unwrap_or_else(|| panic!("not an echo: {}", self.body))
    }
}

/// One HTTP/1.1 request over a fresh connection (`Connection: close`), the raw target
/// sent as given.
pub fn http(port: u16, method: &str, target: &str, headers: &[(&str, &str)]) -> Res {
    http_body(port, method, target, headers, None)
}

/// [`http`] with a request body (sent with its `Content-Length`).
pub fn http_body(
    port: u16,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Res {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).ok();
    let mut req =
        format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        req.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    req.push_str("\r\n");
    req.push_str(body.unwrap_or(""));
    s.write_all(req.as_bytes()).expect("send");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read response");
    parse(&raw)
}

fn parse(raw: &[u8]) -> Res {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {text:?}"));
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    let body = if chunked {
        let mut out = String::new();
        let mut rest = body;
        while let Some((size, after)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 {
                break;
            }
            out.push_str(&after[..n.min(after.len())]);
            rest = after.get(n + 2..).unwrap_or("");
        }
        out
    } else {
        body.to_owned()
    };
    Res {
        status,
        headers,
        body,
    }
}

/// An upstream on a free loopback port that answers every request with 200 and a JSON
/// echo of its method, URI and headers.
pub fn echo_upstream() -> u16 {
    use axum::Router;
    use axum::http::{HeaderMap, Method, Uri};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind echo");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            let app = Router::new().fallback(|method: Method, uri: Uri, headers: HeaderMap| async move {
                let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
                for (k, v) in &headers {
                    map.entry(k.as_str().to_owned())
                        .or_default()
                        .push(String::from_utf8_lossy(v.as_bytes()).into_owned());
                }
                serde_json::json!({"method": method.as_str(), "uri": uri.to_string(), "headers": map})
                    .to_string()
            });
            let _ = axum::serve(listener, app).await;
        });
    });
    port
}

/// Prometheus text: every sample line, `name{labels}` to value.
pub fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect()
}

/// A sample's value (0 when absent). `labels` in the order the exporter prints them
/// (sorted as registered): pass them as they appear, e.g.
/// `portcullis_decisions_total{protocol="http",outcome="allowed",reason="public"}`.
pub fn value(samples: &BTreeMap<String, f64>, key: &str) -> f64 {
    samples.get(key).copied().unwrap_or(0.0)
}

/// Scrapes `/metrics` of the service at `addr`.
pub fn scrape(addr: SocketAddr) -> BTreeMap<String, f64> {
    let res = http(addr.port(), "GET", "/metrics", &[]);
    assert_eq!(res.status, 200, "{res:?}");
    samples(&res.body)
}

/// The differences between two scrapes, for samples that changed.
pub fn delta(
    before: &BTreeMap<String, f64>,
    after: &BTreeMap<String, f64>,
) -> BTreeMap<String, f64> {
    after
        .iter()
        .filter_map(|(k, v)| {
            let d = v - before.get(k).copied().unwrap_or(0.0);
            (d != 0.0).then(|| (k.clone(), d))
        })
        .collect()
}

/// An HS256 token from `claims` (exp added when missing), minted by the binary.
pub fn token(sub: &str, roles: &str, extra: &[&str]) -> String {
    let mut cmd = Command::new(BIN);
    cmd.args(["mint", "--secret", SECRET, "--sub", sub, "--exp", "1h"]);
    if !roles.is_empty() {
        cmd.args(["--role", roles]);
    }
    for e in extra {
        cmd.args(["--claim", e]);
    }
    let out = cmd.output().expect("mint");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf8")
        .trim()
        .to_owned()
}
