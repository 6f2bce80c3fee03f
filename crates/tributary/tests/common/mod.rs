//! The harness of the end-to-end tests: the real `tributary` binary serving on a temporary data
//! directory and a free port, driven over HTTP, and read back through its own
//! `stream stats --json` / `stream read --json` — what an operator would run.
//!
//! ```text
//!  Setup::new() ─ keys create ─▶ Setup::start() ──▶ Server ── post/get ──▶ Reply
//!                                 (waits for "listening on http://…")    │
//!                                 Server::stored() ◀── stream read --json ┘
//!                                 Server::stop(): SIGTERM, exit 0, "stream closed cleanly"
//! ```
//!
//! Signers are written here from the specifications (request HMAC, AWS SigV4), not imported
//! from the collector, so that a mistake shared by signer and verifier cannot hide.
// Each test binary that includes this module uses a subset of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use reqwest::blocking::{Client, RequestBuilder};
use reqwest::header::HeaderMap;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_tributary");

/// How long a server may take to log its address (a debug build on a busy machine).
const START_DEADLINE: Duration = Duration::from_secs(30);
/// How long a server may take to exit after SIGTERM.
const STOP_DEADLINE: Duration = Duration::from_secs(30);

/// The tenant every key of these tests is created for.
pub const TENANT: &str = "acme";

/// The binary with a clean environment: no `TRIBUTARY_*` or `RUST_LOG` from the caller, and a
/// working directory without a `tributary.toml`.
pub fn tributary(cwd: &Path) -> Command {
    let mut command = Command::new(BIN);
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("TRIBUTARY_") || name == "RUST_LOG" {
            command.env_remove(name.as_ref());
        }
    }
    command.current_dir(cwd);
    command
}

/// Bytes as text, for messages.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts the exit code, showing both outputs when it is another.
pub fn assert_exit(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        text(&output.stdout),
        text(&output.stderr)
    );
}

/// Runs a short command to completion and asserts it exited 0.
fn run_ok(command: &mut Command) -> Output {
    let output = command.output().unwrap();
    assert_exit(&output, 0);
    output
}

/// The last line of stdout as JSON.
fn json_stdout(output: &Output) -> Value {
    let stdout = text(&output.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

/// `tributary keys create --tenant acme --role write <extra>` on `data`; returns stdout's line:
/// the key, `AKID SECRET` with `--aws`, `KEY SIGNING_SECRET` with `--signed`.
pub fn create_key(cwd: &Path, data: &Path, extra: &[&str]) -> String {
    create_key_with(cwd, data, TENANT, "write", extra)
}

/// `tributary keys create --tenant <tenant> --role <role> <extra>` on `data`; returns stdout's
/// line.
pub fn create_key_with(
    cwd: &Path,
    data: &Path,
    tenant: &str,
    role: &str,
    extra: &[&str],
) -> String {
    let output = run_ok(
        tributary(cwd)
            .args(["keys", "create", "--tenant", tenant, "--role", role])
            .args(extra)
            .arg("--data")
            .arg(data),
    );
    let stdout = text(&output.stdout);
    let line = stdout.trim();
    assert!(!line.is_empty() && !line.contains('\n'), "{stdout:?}");
    line.to_string()
}

/// A data directory with its server configuration, before the server starts (so that keys
/// exist from the first request on).
pub struct Setup {
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
    args: Vec<String>,
}

impl Default for Setup {
    fn default() -> Self {
        Setup::new()
    }
}

impl Setup {
    /// A fresh temporary directory; the data directory is `<tmp>/data`.
    pub fn new() -> Setup {
        Setup {
            dir: tempfile::tempdir().unwrap(),
            env: Vec::new(),
            args: Vec::new(),
        }
    }

    /// Sets an environment variable of the server (`TRIBUTARY_COLLECTOR__…`).
    pub fn env(mut self, name: &str, value: &str) -> Setup {
        self.env.push((name.into(), value.into()));
        self
    }

    /// Removes an environment variable set with [`Setup::env`].
    pub fn without_env(mut self, name: &str) -> Setup {
        self.env.retain(|(key, _)| key != name);
        self
    }

    /// Adds a command-line argument of the server (`--config FILE`, …).
    pub fn arg(mut self, arg: impl Into<String>) -> Setup {
        self.args.push(arg.into());
        self
    }

    /// The temporary directory (working directory of every command).
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The data directory.
    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Creates a write key for [`TENANT`] (see [`create_key`] for `extra` and the output).
    pub fn key(&self, extra: &[&str]) -> String {
        create_key(self.root(), &self.data(), extra)
    }

    /// Starts `tributary serve --listen 127.0.0.1:0` and waits until it logs its address.
    pub fn start(self) -> Server {
        let data = self.data();
        let mut command = tributary(self.dir.path());
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(&data)
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (address_tx, address_rx) = mpsc::channel();
        let reader = {
            let log = Arc::clone(&log);
            // Drains stderr for the server's whole life, so that logging never blocks it.
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if let Some(address) = listening_address(&line) {
                        let _ = address_tx.send(address);
                    }
                    let mut log = log.lock().unwrap();
                    log.push_str(&line);
                    log.push('\n');
                }
            })
        };
        let mut server = Server {
            child: Some(child),
            reader: Some(reader),
            log,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            data,
            http: Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
            setup: Some(self),
        };
        match address_rx.recv_timeout(START_DEADLINE) {
            Ok(address) => server.addr = address,
            Err(e) => panic!(
                "tributary serve did not log its address ({e}); stderr:\n{}",
                server.log()
            ),
        }
        server
    }
}

/// The address in `… listening on http://127.0.0.1:PORT …`, if this is that line.
fn listening_address(line: &str) -> Option<SocketAddr> {
    let rest = &line[line.find("listening on http://")? + "listening on http://".len()..];
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '[' | ']')))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// A running `tributary serve`. Dropped without [`Server::stop`] (a failed test), it is killed.
pub struct Server {
    child: Option<Child>,
    reader: Option<JoinHandle<()>>,
    log: Arc<Mutex<String>>,
    addr: SocketAddr,
    data: PathBuf,
    http: Client,
    // Last: the directory is removed after the process is gone.
    setup: Option<Setup>,
}

/// An HTTP answer, read whole.
#[derive(Debug)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub text: String,
}

impl Reply {
    /// The body as JSON (panics with the body when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.text))
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the status, showing the body when it is another.
    pub fn expect(self, status: u16) -> Reply {
        assert_eq!(self.status, status, "{}", self.text);
        self
    }
}

/// One record read back from the stream, with its value parsed as an event.
#[derive(Debug, Clone)]
pub struct Stored {
    /// The shard it is in.
    pub shard: u64,
    /// Its sequence number there.
    pub seq: u64,
    /// Its partition key.
    pub key: String,
    /// Its value, an event in the DESIGN.md envelope.
    pub event: Value,
}

impl Server {
    /// `http://127.0.0.1:PORT`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT<path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The data directory.
    pub fn data(&self) -> &Path {
        &self.data
    }

    /// The temporary directory (working directory of every command).
    pub fn root(&self) -> &Path {
        self.setup.as_ref().unwrap().root()
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// A `POST` to `path`, to be completed and [`send`]t.
    pub fn post(&self, path: &str) -> RequestBuilder {
        self.http.post(self.url(path))
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> Reply {
        send(self.http.get(self.url(path)))
    }

    /// `POST path` with a JSON body and `Authorization: Bearer <key>`.
    pub fn post_json(&self, path: &str, key: &str, body: &Value) -> Reply {
        send(
            self.post(path)
                .bearer_auth(key)
                .header("content-type", "application/json")
                .body(serde_json::to_vec(body).unwrap()),
        )
    }

    /// Creates a key while the server runs (see [`create_key`]).
    pub fn create_key(&self, extra: &[&str]) -> String {
        create_key(self.root(), &self.data, extra)
    }

    /// `tributary stream stats --json`, beside the running server.
    pub fn stats(&self) -> Value {
        json_stdout(&run_ok(
            tributary(self.root())
                .args(["stream", "stats", "--json", "--data"])
                .arg(&self.data),
        ))
    }

    /// Records in the stream, from `stream stats --json`.
    pub fn record_count(&self) -> u64 {
        self.stats()["records"].as_u64().unwrap()
    }

    /// Every record of every shard, through `tributary stream read --json`; checks the count
    /// against `stream stats --json`.
    pub fn stored(&self) -> Vec<Stored> {
        let stats = self.stats();
        let shards = stats["shards"].as_array().unwrap().len();
        let mut all = Vec::new();
        for shard in 0..shards {
            let read = json_stdout(&run_ok(
                tributary(self.root())
                    .args(["stream", "read", "--from", "oldest", "--limit", "100000"])
                    .args(["--json", "--shard", &shard.to_string(), "--data"])
                    .arg(&self.data),
            ));
            for record in read["records"].as_array().unwrap() {
                let value = record["value"].as_str().unwrap();
                all.push(Stored {
                    shard: shard as u64,
                    seq: record["seq"].as_u64().unwrap(),
                    key: record["key"].as_str().unwrap().to_string(),
                    event: serde_json::from_str(value)
                        .unwrap_or_else(|e| panic!("record is not JSON ({e}): {value}")),
                });
            }
        }
        assert_eq!(
            all.len() as u64,
            stats["records"].as_u64().unwrap(),
            "stream read and stream stats disagree: {stats}"
        );
        all
    }

    /// SIGTERM, then asserts a clean exit (code 0, stream closed cleanly); returns the log.
    pub fn stop(mut self) -> String {
        self.stop_cleanly()
    }

    /// Like [`Server::stop`], returning the setup to run commands on (or start a server again
    /// on) the same data directory.
    pub fn stop_keeping_data(mut self) -> Setup {
        self.stop_cleanly();
        self.setup.take().unwrap()
    }

    fn stop_cleanly(&mut self) -> String {
        let mut child = self.child.take().unwrap();
        sigterm(&child);
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > STOP_DEADLINE {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "tributary serve did not exit within {STOP_DEADLINE:?} of SIGTERM; \
                     stderr:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        let log = self.log();
        assert_eq!(status.code(), Some(0), "stderr:\n{log}");
        assert!(log.contains("stream closed cleanly"), "stderr:\n{log}");
        log
    }
}

impl Server {
    /// SIGKILL: the process dies at once, requests in flight and all. Returns its setup, to
    /// start a server again on the same data directory.
    pub fn kill(mut self) -> Setup {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        self.setup.take().unwrap()
    }
}

impl Server {
    /// Waits for the process to exit on its own (a crash point aborted it) and returns its
    /// setup, to start a server again on the same data directory.
    pub fn wait_for_exit(mut self, deadline: Duration) -> Setup {
        let mut child = self.child.take().unwrap();
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(!status.success(), "expected a crash, got {status}");
                break;
            }
            if started.elapsed() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the server did not exit within {deadline:?}; stderr:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        self.setup.take().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn sigterm(child: &Child) {
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: kill(2) with a pid we spawned and still own (not yet reaped); no memory involved.
    let result = unsafe { libc::kill(pid, libc::SIGTERM) };
    assert_eq!(result, 0, "kill failed");
}

/// Sends a request and reads the whole answer.
pub fn send(request: RequestBuilder) -> Reply {
    let response = request.send().unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().unwrap();
    Reply {
        status,
        headers,
        text,
    }
}

/// Polls `check` every 50 ms until it returns `Some` or `deadline` passes.
pub fn wait_for<T>(deadline: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let started = Instant::now();
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if started.elapsed() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The stored records whose event has `event_id`.
pub fn with_id<'a>(stored: &'a [Stored], event_id: &str) -> Vec<&'a Stored> {
    stored
        .iter()
        .filter(|s| s.event["event_id"] == event_id)
        .collect()
}

/// The one stored record whose event has `event_id`.
pub fn one_with_id<'a>(stored: &'a [Stored], event_id: &str) -> &'a Stored {
    let found = with_id(stored, event_id);
    assert_eq!(found.len(), 1, "{event_id} stored {} times", found.len());
    found[0]
}

/// `Authorization: Basic base64(<key>:)`, Segment's write-key convention.
pub fn basic_auth(key: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{key}:"));
    format!("Basic {encoded}")
}

/// Unix seconds now.
pub fn unix_now() -> i64 {
    Utc::now().timestamp()
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// `X-Tributary-Signature`'s value: `v1=` + hex HMAC-SHA256(secret, "<timestamp>.<body>").
pub fn tributary_signature(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mut message = format!("{timestamp}.").into_bytes();
    message.extend_from_slice(body);
    format!(
        "v1={}",
        hex::encode(hmac_sha256(secret.as_bytes(), &message))
    )
}

/// The media type of the Kinesis API.
pub const AMZ_JSON: &str = "application/x-amz-json-1.1";

/// A Kinesis `POST /` signed with AWS SigV4 the way botocore signs it: headers content-type,
/// host, x-amz-date and x-amz-target, the body's SHA-256 as payload hash, region us-east-1.
pub fn kinesis_request(
    server: &Server,
    (access_key_id, secret): (&str, &str),
    operation: &str,
    body: &Value,
    at: DateTime<Utc>,
) -> RequestBuilder {
    let body = serde_json::to_vec(body).unwrap();
    let host = server.addr().to_string();
    let amz_date = at.format("%Y%m%dT%H%M%SZ").to_string();
    let date = &amz_date[..8];
    let target = format!("Kinesis_20131202.{operation}");
    let signed_headers = "content-type;host;x-amz-date;x-amz-target";
    let canonical_request = format!(
        "POST\n/\n\ncontent-type:{AMZ_JSON}\nhost:{host}\nx-amz-date:{amz_date}\n\
         x-amz-target:{target}\n\n{signed_headers}\n{}",
        hex::encode(Sha256::digest(&body))
    );
    let scope = format!("{date}/us-east-1/kinesis/aws4_request");
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    );
    let signing_key = ["us-east-1", "kinesis", "aws4_request"].iter().fold(
        hmac_sha256(format!("AWS4{secret}").as_bytes(), date.as_bytes()),
        |key, part| hmac_sha256(&key, part.as_bytes()),
    );
    let signature = hex::encode(hmac_sha256(&signing_key, string_to_sign.as_bytes()));
    server
        .post("/")
        .header("host", host)
        .header("content-type", AMZ_JSON)
        .header("x-amz-target", target)
        .header("x-amz-date", amz_date)
        .header(
            "authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential={access_key_id}/{scope}, \
                 SignedHeaders={signed_headers}, Signature={signature}"
            ),
        )
        .body(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_line_is_parsed() {
        let line = "2026-01-01T00:00:00Z  INFO tributary::serve: listening on \
                    http://127.0.0.1:41234 dir=./data/stream shards=4";
        assert_eq!(
            listening_address(line),
            Some(SocketAddr::from(([127, 0, 0, 1], 41234)))
        );
        assert_eq!(listening_address("keys loaded"), None);
    }
}
