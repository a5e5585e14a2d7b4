//! The `authsome` binary. `main` stays synchronous: only commands that need
//! network I/O build an async runtime, so `--version` and friends stay instant.

fn main() {
    std::process::exit(authsome::cli::main());
}
