//! kovs-agent: the kovs node agent and its tools (`run`, `compile`, `flows`).

fn main() {
    std::process::exit(kovs_agent::cmd::main(std::env::args_os()));
}
