//! `kovs-cni`: reads the call from the environment and stdin, prints the answer, exits 0 or 1.

use std::io::{IsTerminal, Read, Write};
use std::process::ExitCode;

fn main() -> ExitCode {
    let command = std::env::var("CNI_COMMAND").unwrap_or_default();
    // VERSION may come with no stdin at all, and a person trying the binary by hand without
    // CNI_COMMAND gets the about text: never wait on a terminal for those.
    let reads_no_config = command.is_empty() || command == "VERSION";
    let stdin = if reads_no_config && std::io::stdin().is_terminal() {
        Ok(Vec::new())
    } else {
        let mut bytes = Vec::new();
        std::io::stdin().read_to_end(&mut bytes).map(|_| bytes)
    };
    let outcome = kovs_cni::plugin::run(|key| std::env::var(key).ok(), stdin);
    // Nothing useful is left to do if the runtime closed our stdout or stderr.
    let _ = std::io::stdout().write_all(outcome.stdout.as_bytes());
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().write_all(outcome.stderr.as_bytes());
    ExitCode::from(outcome.exit_code)
}
