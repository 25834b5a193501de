//! The build sandbox as a program of its own, for this crate's tests and for embedders that
//! do not ship the `sluice` binary (which has it as `sluice rust-build-sandbox`).

fn main() -> std::process::ExitCode {
    sluice_builder::sandbox_main(std::env::args_os().skip(1))
}
