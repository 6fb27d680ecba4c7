//! kovs-agent: the kovs node agent and its tools.

use kovs_agent::cmd;

const USAGE: &str = "usage: kovs-agent <command> [flags]

commands:
  run       keep this node's ovs-vswitchd in the desired state (the daemon)
  compile   print a node's flows for a state (ovs-ofctl syntax)
  flows     print the kovs flows installed on a bridge, grouped by pipeline
";

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let code = match argv.first().map(|s| s.as_str()) {
        Some("run") => cmd::run::run(&argv[1..]),
        Some("compile") => cmd::compile::run(&argv[1..]),
        Some("flows") => cmd::flows::run(&argv[1..]),
        Some("-h") | Some("--help") | Some("help") => {
            print!("{USAGE}");
            0
        }
        Some(other) => {
            eprintln!("kovs-agent: unknown command {other:?}\n{USAGE}");
            1
        }
        None => {
            eprint!("{USAGE}");
            1
        }
    };
    std::process::exit(code);
}
