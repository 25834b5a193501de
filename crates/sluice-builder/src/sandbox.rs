//! The build sandbox: a small program that restricts itself, then runs cargo.
//!
//! `sandbox_main` runs in a fresh, single-threaded process (the `sluice rust-build-sandbox`
//! subcommand, or the `sluice-builder-sandbox` binary in this crate's tests), so that the
//! restrictions, which apply to the calling thread and everything it starts, cover cargo and
//! every compiler it runs:
//!
//! ```text
//! PROGRAM [--read DIR]... [--write DIR]... --cpu-seconds N --data-bytes N -- cargo ARGS...
//! ```

use std::ffi::OsString;
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Command, ExitCode};

use landlock::{
    ABI, Access, AccessFs, AccessNet, CompatLevel, Compatible, PathBeneath, PathFd, Ruleset,
    RulesetAttr, RulesetCreatedAttr, RulesetStatus,
};
use rustix::process::{Resource, Rlimit, setrlimit};

/// The exit code of the sandbox when it could not set itself up (cargo never ran).
pub const SANDBOX_FAILED_EXIT: i32 = 125;

/// System paths a build reads: the system linker (`cc`, for the build scripts of the SDK's
/// dependencies, which run on the host) with its libraries, the dynamic loader's cache, and
/// `/dev/null`. Nothing under `/proc`, `/sys`, `/home`, `/etc` (but the loader's cache) or the
/// service's data directory.
pub(crate) const SYSTEM_READ_PATHS: &[&str] = &[
    "/usr/bin",
    "/bin",
    "/usr/libexec",
    "/usr/lib",
    "/usr/lib64",
    "/lib",
    "/lib64",
    "/etc/ld.so.cache",
    "/dev/null",
];

/// The landlock ABI whose rights are handled: filesystem and TCP.
const LANDLOCK_ABI: ABI = ABI::V4;

#[derive(Debug, Default)]
struct Options {
    read: Vec<PathBuf>,
    write: Vec<PathBuf>,
    cpu_seconds: u64,
    data_bytes: u64,
    command: Vec<OsString>,
}

fn parse(args: impl Iterator<Item = OsString>) -> Result<Options, String> {
    let mut options = Options::default();
    let mut args = args;
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.to_str() {
            Some("--read") => options.read.push(value("--read")?.into()),
            Some("--write") => options.write.push(value("--write")?.into()),
            Some("--cpu-seconds") => {
                options.cpu_seconds = number(&value("--cpu-seconds")?, "--cpu-seconds")?;
            }
            Some("--data-bytes") => {
                options.data_bytes = number(&value("--data-bytes")?, "--data-bytes")?;
            }
            Some("--") => {
                options.command = args.collect();
                break;
            }
            _ => return Err(format!("unexpected argument {arg:?}")),
        }
    }
    if options.command.is_empty() {
        return Err("no command after --".into());
    }
    if options.cpu_seconds == 0 || options.data_bytes == 0 {
        return Err("--cpu-seconds and --data-bytes are required".into());
    }
    Ok(options)
}

fn number(value: &OsString, name: &str) -> Result<u64, String> {
    value
        .to_str()
        .and_then(|v| v.parse().ok())
        .ok_or(format!("{name}: {value:?} is not a number"))
}

/// The sandbox program: arguments from the command line, then limits, landlock, and `exec`
/// of the command. Returns only on failure ([`SANDBOX_FAILED_EXIT`]).
pub fn sandbox_main(args: impl Iterator<Item = OsString>) -> ExitCode {
    let failed = |message: String| {
        eprintln!("build sandbox: {message}");
        ExitCode::from(SANDBOX_FAILED_EXIT as u8)
    };
    let options = match parse(args) {
        Ok(options) => options,
        Err(message) => return failed(message),
    };
    if let Err(message) = set_limits(&options) {
        return failed(message);
    }
    if let Err(message) = restrict(&options) {
        return failed(message);
    }
    let error = Command::new(&options.command[0])
        .args(&options.command[1..])
        .exec();
    failed(format!("cannot run {:?}: {error}", options.command[0]))
}

fn set_limits(options: &Options) -> Result<(), String> {
    let limit = |resource, value: u64, name: &str| {
        setrlimit(
            resource,
            Rlimit {
                current: Some(value),
                maximum: Some(value),
            },
        )
        .map_err(|e| format!("cannot set {name}: {e}"))
    };
    limit(Resource::Cpu, options.cpu_seconds, "RLIMIT_CPU")?;
    limit(Resource::Data, options.data_bytes, "RLIMIT_DATA")?;
    limit(Resource::Fsize, 1 << 30, "RLIMIT_FSIZE")?;
    limit(Resource::Core, 0, "RLIMIT_CORE")
}

/// Landlock: read (and execute) under `read`, everything under `write`, no TCP. Refuses to go
/// on when the kernel enforces none of it.
fn restrict(options: &Options) -> Result<(), String> {
    let all = AccessFs::from_all(LANDLOCK_ABI);
    let read = AccessFs::from_read(LANDLOCK_ABI);
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(all)
        .and_then(|r| r.handle_access(AccessNet::from_all(LANDLOCK_ABI)))
        .and_then(|r| r.create())
        .map_err(|e| format!("landlock: {e}"))?;
    for (paths, access) in [(&options.read, read), (&options.write, all)] {
        for path in paths {
            let fd = PathFd::new(path).map_err(|e| format!("landlock: {}: {e}", path.display()))?;
            // A file (not a directory) takes only the rights that apply to files.
            let access = if path.is_dir() {
                access
            } else {
                access & AccessFs::from_file(LANDLOCK_ABI)
            };
            ruleset = ruleset
                .add_rule(PathBeneath::new(fd, access))
                .map_err(|e| format!("landlock: {}: {e}", path.display()))?;
        }
    }
    let status = ruleset
        .restrict_self()
        .map_err(|e| format!("landlock: {e}"))?;
    if status.ruleset == RulesetStatus::NotEnforced {
        return Err(format!(
            "this kernel does not enforce landlock ({:?}); builds would be able to read any file the service can",
            status.landlock
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> impl Iterator<Item = OsString> {
        list.iter()
            .map(OsString::from)
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn the_options_are_parsed_and_checked() {
        let options = parse(args(&[
            "--read",
            "/a",
            "--write",
            "/b",
            "--cpu-seconds",
            "5",
            "--data-bytes",
            "100",
            "--",
            "cargo",
            "--read",
        ]))
        .expect("parses");
        assert_eq!(options.read, vec![PathBuf::from("/a")]);
        assert_eq!(options.write, vec![PathBuf::from("/b")]);
        assert_eq!((options.cpu_seconds, options.data_bytes), (5, 100));
        assert_eq!(
            options.command,
            vec![OsString::from("cargo"), "--read".into()]
        );

        for (bad, says) in [
            (
                vec!["--cpu-seconds", "5", "--data-bytes", "1"],
                "no command",
            ),
            (vec!["--read"], "needs a value"),
            (vec!["--cpu-seconds", "x", "--", "c"], "not a number"),
            (vec!["--", "cargo"], "required"),
            (vec!["--bogus"], "unexpected"),
        ] {
            let error = parse(args(&bad)).expect_err("refused");
            assert!(error.contains(says), "{bad:?}: {error}");
        }
    }
}
