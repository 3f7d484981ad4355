//! The `cargo-ship` binary: a thin shell over the `cargo_ship` library.

fn main() {
    let code = cargo_ship::main_with(&mut cargo_ship::Context::from_process());
    std::process::exit(code);
}
