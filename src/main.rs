//! The `aimem` binary; all of it lives in the library so tests can reach it.

fn main() -> std::process::ExitCode {
    aimem::main()
}
