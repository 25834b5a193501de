//! Starting and stopping broker processes.

use crate::{BrokerError, free_port};
use std::fs::{self, File};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// How long a broker may take to accept its first TCP connection.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause between readiness checks.
const READY_POLL: Duration = Duration::from_millis(20);
/// How often a start is retried when the chosen port was taken in the meantime.
const START_ATTEMPTS: usize = 3;
/// How many log lines an error shows.
const LOG_TAIL_LINES: usize = 30;

/// A running `mosquitto` MQTT broker on 127.0.0.1, stopped when dropped.
#[derive(Debug)]
pub struct Mosquitto {
    process: BrokerProcess,
}

impl Mosquitto {
    /// Starts mosquitto on a free loopback port with anonymous access, no persistence and
    /// queues large enough for load tests, and waits until it accepts connections.
    pub fn start() -> Result<Self, BrokerError> {
        let binary = find_binary("mosquitto", &["/usr/sbin"], MOSQUITTO_INSTALL)?;
        let process = BrokerProcess::start("mosquitto", |dir, port| {
            let log = dir.join("mosquitto.log");
            let config = dir.join("mosquitto.conf");
            // `user root` only matters when running as root: mosquitto would otherwise switch
            // to the `mosquitto` user, which cannot write into our private tempdir. As any
            // other user the option has no effect.
            let text = format!(
                "user root\n\
                 listener {port} 127.0.0.1\n\
                 allow_anonymous true\n\
                 persistence false\n\
                 max_inflight_messages 1000\n\
                 max_queued_messages 1000000\n\
                 max_queued_bytes 0\n\
                 log_dest file {log}\n\
                 log_type error\n\
                 log_type warning\n\
                 log_type notice\n\
                 log_type information\n\
                 log_timestamp true\n",
                log = log.display(),
            );
            fs::write(&config, text)?;
            let mut command = Command::new(&binary);
            command.arg("-c").arg(&config);
            Ok(Launch { command, log })
        })?;
        Ok(Self { process })
    }

    /// The TCP port the broker listens on.
    pub fn port(&self) -> u16 {
        self.process.port
    }

    /// The broker address as `mqtt://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.process.port)
    }

    /// The broker's log file, useful when a test fails.
    pub fn log_path(&self) -> &Path {
        &self.process.log
    }

    /// Kills the broker (SIGKILL: clients see their connections drop) and starts it again on
    /// the same port with the same configuration. Sessions do not survive (no persistence).
    pub fn restart(&mut self) -> Result<(), BrokerError> {
        self.process.restart()
    }
}

/// A running `nats-server` with JetStream on 127.0.0.1, stopped when dropped.
#[derive(Debug)]
pub struct NatsServer {
    process: BrokerProcess,
}

impl NatsServer {
    /// Starts nats-server on a free loopback port with JetStream stored in its tempdir and
    /// monitoring off, and waits until it accepts connections.
    pub fn start() -> Result<Self, BrokerError> {
        let binary = find_binary("nats-server", &["/usr/sbin", "/usr/bin"], NATS_INSTALL)?;
        let process = BrokerProcess::start("nats-server", |dir, port| {
            let log = dir.join("nats-server.log");
            let store = dir.join("js");
            fs::create_dir_all(&store)?;
            let mut command = Command::new(&binary);
            // No `-m`: the HTTP monitoring endpoint stays off.
            command
                .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
                .arg(&store)
                .arg("-l")
                .arg(&log);
            Ok(Launch { command, log })
        })?;
        Ok(Self { process })
    }

    /// The TCP port the server listens on.
    pub fn port(&self) -> u16 {
        self.process.port
    }

    /// The server address as `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.process.port)
    }

    /// The server's log file, useful when a test fails.
    pub fn log_path(&self) -> &Path {
        &self.process.log
    }
}

const MOSQUITTO_INSTALL: &str = "apt-get install -y mosquitto";
const NATS_INSTALL: &str = "apt-get install -y nats-server";

/// How to run one attempt: the command and the log file it writes.
struct Launch {
    command: Command,
    log: PathBuf,
}

/// A child broker process and the tempdir it works in. Field order matters: the process is
/// killed in `Drop::drop`, then the directory is removed.
#[derive(Debug)]
struct BrokerProcess {
    name: &'static str,
    child: Child,
    /// The program and arguments the broker was started with, for [`Self::restart`].
    program: PathBuf,
    args: Vec<std::ffi::OsString>,
    port: u16,
    log: PathBuf,
    _dir: TempDir,
}

impl BrokerProcess {
    /// Starts the broker on a fresh port, retrying when the port was taken between choosing
    /// and binding it.
    fn start(
        name: &'static str,
        prepare: impl Fn(&Path, u16) -> std::io::Result<Launch>,
    ) -> Result<Self, BrokerError> {
        let mut attempt = 1;
        loop {
            match Self::start_once(name, &prepare) {
                Err(BrokerError::Exited { log_tail, .. })
                    if attempt < START_ATTEMPTS
                        && log_tail.to_lowercase().contains("address already in use") =>
                {
                    tracing::debug!(broker = name, attempt, "port taken, retrying");
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    fn start_once(
        name: &'static str,
        prepare: &impl Fn(&Path, u16) -> std::io::Result<Launch>,
    ) -> Result<Self, BrokerError> {
        let port = free_port()?;
        let work_dir = |source| BrokerError::WorkDir {
            broker: name,
            source,
        };
        let dir = tempfile::Builder::new()
            .prefix(&format!("sluice-{name}-"))
            .tempdir()
            .map_err(work_dir)?;
        let Launch { mut command, log } = prepare(dir.path(), port).map_err(work_dir)?;
        // Output before the log file is open (bad config, bind failures) lands here.
        let stdio_path = dir.path().join("stdio.log");
        let stdout = File::create(&stdio_path).map_err(work_dir)?;
        let stderr = stdout.try_clone().map_err(work_dir)?;
        command
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .current_dir(dir.path());
        let child = command.spawn().map_err(|source| BrokerError::Spawn {
            binary: PathBuf::from(command.get_program()),
            source,
        })?;
        tracing::debug!(broker = name, port, pid = child.id(), "started");
        let mut process = Self {
            name,
            child,
            program: PathBuf::from(command.get_program()),
            args: command.get_args().map(ToOwned::to_owned).collect(),
            port,
            log,
            _dir: dir,
        };
        process.wait_ready()?;
        Ok(process)
    }

    /// Kills the process and starts the same command again on the same port.
    fn restart(&mut self) -> Result<(), BrokerError> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let work_dir = |source| BrokerError::WorkDir {
            broker: self.name,
            source,
        };
        let dir = self._dir.path();
        let stdout = fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(dir.join("stdio.log"))
            .map_err(work_dir)?;
        let stderr = stdout.try_clone().map_err(work_dir)?;
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .current_dir(dir);
        // The old socket may linger for a moment: retry the bind briefly.
        let started = Instant::now();
        loop {
            self.child = command.spawn().map_err(|source| BrokerError::Spawn {
                binary: self.program.clone(),
                source,
            })?;
            match self.wait_ready() {
                Err(BrokerError::Exited { .. }) if started.elapsed() < READY_TIMEOUT => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                other => return other,
            }
        }
    }

    /// Waits until the port accepts TCP connections, the process exits, or the timeout passes.
    fn wait_ready(&mut self) -> Result<(), BrokerError> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let started = Instant::now();
        loop {
            let accepted = TcpStream::connect_timeout(&addr, Duration::from_millis(250)).is_ok();
            // Check the process even after a successful connect: someone else may own the port.
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    return Err(BrokerError::Exited {
                        broker: self.name,
                        port: self.port,
                        status: status.to_string(),
                        log_tail: self.log_tail(),
                    });
                }
                Ok(None) if accepted => return Ok(()),
                Ok(None) | Err(_) => {}
            }
            if started.elapsed() >= READY_TIMEOUT {
                return Err(BrokerError::NotReady {
                    broker: self.name,
                    port: self.port,
                    timeout_ms: READY_TIMEOUT.as_millis(),
                    log_tail: self.log_tail(),
                });
            }
            std::thread::sleep(READY_POLL);
        }
    }

    /// The last lines of the broker's log file and of its stdout/stderr.
    fn log_tail(&self) -> String {
        let stdio = self.log.with_file_name("stdio.log");
        let mut out = String::new();
        for path in [&self.log, &stdio] {
            let text = fs::read_to_string(path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
            out.push_str(&format!("--- {} ---\n", path.display()));
            for line in tail {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        // Errors mean the process is already gone; nothing more to do.
        let _ = self.child.kill();
        let _ = self.child.wait();
        tracing::debug!(broker = self.name, port = self.port, "stopped");
    }
}

/// Finds an executable on PATH, then in the given fixed directories.
fn find_binary(
    binary: &'static str,
    fallback_dirs: &[&str],
    install: &'static str,
) -> Result<PathBuf, BrokerError> {
    let path_dirs = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    path_dirs
        .into_iter()
        .chain(fallback_dirs.iter().map(PathBuf::from))
        .map(|dir| dir.join(binary))
        .find(|candidate| is_executable(candidate))
        .ok_or_else(|| BrokerError::BinaryNotFound {
            binary,
            searched: fallback_dirs.join(", "),
            install,
        })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_binary_error_says_how_to_install_it() {
        let error = find_binary(
            "sluice-no-such-broker",
            &["/nonexistent"],
            MOSQUITTO_INSTALL,
        )
        .expect_err("not installed");
        let message = error.to_string();
        assert!(
            message.contains("`sluice-no-such-broker` was not found"),
            "{message}"
        );
        assert!(
            message.contains("apt-get install -y mosquitto"),
            "{message}"
        );
    }

    #[test]
    fn brokers_are_found_on_path_or_in_sbin() {
        find_binary("mosquitto", &["/usr/sbin"], MOSQUITTO_INSTALL).expect("mosquitto");
        find_binary("nats-server", &["/usr/sbin", "/usr/bin"], NATS_INSTALL).expect("nats-server");
    }
}
