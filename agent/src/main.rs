//! kovs-agent: the kovs node agent and its tools.

mod cli;
mod compile_cmd;

const USAGE: &str = "usage: kovs-agent <command> [flags]

commands:
  compile   print a node's flows for a state (ovs-ofctl syntax)
";

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let code = match argv.first().map(|s| s.as_str()) {
        Some("compile") => compile_cmd::run(&argv[1..]),
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
