//! Running `sluice serve` as a user does: a real process on a free port, driven over HTTP.

#![allow(dead_code)]

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// A running `sluice serve`.
pub struct Service {
    pub child: Child,
    pub base: String,
    pub data_dir: PathBuf,
    pub stdout: mpsc::Receiver<String>,
    stderr_path: PathBuf,
}

impl Service {
    /// Starts `sluice serve --listen 127.0.0.1:0 --data-dir DATA_DIR ARGS` and waits until it
    /// listens.
    pub fn start(data_dir: &Path, args: &[&str]) -> Self {
        let stderr_path = data_dir.with_extension("stderr.log");
        let stderr = std::fs::File::create(&stderr_path).expect("stderr file");
        let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(data_dir)
            .args(args)
            .env_remove("RUST_LOG")
            .env_remove("SLUICE_CONFIG")
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("sluice serve starts");
        let out = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let base = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(addr) = line.strip_prefix("sluice: listening on ") {
                        break addr.trim().to_string();
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    panic!(
                        "sluice serve did not start:\n{}",
                        std::fs::read_to_string(&stderr_path).unwrap_or_default()
                    );
                }
            }
        };
        Self {
            child,
            base,
            data_dir: data_dir.to_path_buf(),
            stdout: rx,
            stderr_path,
        }
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    pub fn token(&self, file: &str) -> String {
        std::fs::read_to_string(self.data_dir.join(file))
            .expect("token file")
            .trim()
            .to_string()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends a signal to the process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Waits for the process to exit; returns its exit code.
    pub fn wait(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "sluice serve did not exit in {timeout:?}:\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A blocking HTTP call with a bearer token; returns the status and the JSON body (or the
/// text as a JSON string).
pub fn http(method: &str, url: &str, token: Option<&str>, body: Option<&Value>) -> (u16, Value) {
    // A tenant's first Rust build compiles the SDK's dependencies before the server answers.
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(900))
        .build()
        .expect("client");
    let mut request = client.request(method.parse().expect("method"), url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let response = request.send().expect("request");
    let status = response.status().as_u16();
    let text = response.text().expect("body");
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

/// Polls `check` until it returns `Some`, for at most `timeout`.
pub fn eventually<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Creates tenant `id` with the service's admin token and returns a new tenant token.
pub fn create_tenant(service: &Service, id: &str) -> String {
    let admin = service.token("admin-token");
    let (status, body) = http(
        "POST",
        &service.url("/v1/tenants"),
        Some(&admin),
        Some(&serde_json::json!({ "id": id, "name": id })),
    );
    assert_eq!(status, 201, "{body}");
    let (status, body) = http(
        "POST",
        &service.url(&format!("/v1/tenants/{id}/tokens")),
        Some(&admin),
        Some(&serde_json::json!({ "scope": "tenant" })),
    );
    assert_eq!(status, 201, "{body}");
    body["secret"].as_str().expect("secret").to_string()
}

/// Uploads `bytes` as the next version of codec `name` (created if needed), activates it and
/// returns the version.
pub fn upload_codec(service: &Service, token: &str, name: &str, bytes: &[u8]) -> u64 {
    use base64::Engine as _;
    let component = base64::engine::general_purpose::STANDARD.encode(bytes);
    upload_and_activate(
        service,
        token,
        name,
        &serde_json::json!({ "component_base64": component }),
    )
}

/// Uploads `upload` (the members of `POST /v1/modules/{name}/versions`: a component or a
/// source, vectors...) as the next version of codec `name` (created if needed), activates it
/// and returns the version.
pub fn upload_and_activate(service: &Service, token: &str, name: &str, upload: &Value) -> u64 {
    let (status, _) = http(
        "POST",
        &service.url("/v1/modules"),
        Some(token),
        Some(&serde_json::json!({ "name": name, "world": "codec" })),
    );
    assert!(status == 201 || status == 409, "create module: {status}");
    let (status, body) = http(
        "POST",
        &service.url(&format!("/v1/modules/{name}/versions")),
        Some(token),
        Some(upload),
    );
    // 201 for a new version; 200 when these exact bytes are already a version.
    assert!(status == 201 || status == 200, "{status}: {body}");
    let version = body["version"].as_u64().expect("version");
    let (status, body) = http(
        "POST",
        &service.url(&format!("/v1/modules/{name}/versions/{version}/activate")),
        Some(token),
        None,
    );
    assert_eq!(status, 200, "{body}");
    version
}

/// Creates a binding from `spec` (the body of `POST /v1/bindings`).
pub fn create_binding(service: &Service, token: &str, spec: &Value) {
    let (status, body) = http(
        "POST",
        &service.url("/v1/bindings"),
        Some(token),
        Some(spec),
    );
    assert_eq!(status, 201, "{body}");
}
