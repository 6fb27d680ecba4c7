//! The subcommands of `kovs-agent`: each parses its flags (clap) into a configuration and calls
//! the library.
//!
//! Conventions every command line of kovs keeps: a usage error exits 1 (clap's own code is 2,
//! which `compile` uses for rejected objects), `--help` exits 0; a flag wins over its
//! environment variable, and an empty variable counts as unset.

use std::ffi::OsString;

use clap::{Parser, Subcommand};

pub mod compile;
pub mod controller;
pub mod flows;
pub mod install_cni;
pub mod run;

/// A flag's value kovs cannot use; the message names the flag (users and scripts see it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgError {
    #[error("--node is required (or KUBE_NODE_NAME)")]
    NoNode,
    #[error("--node is required")]
    NoCompileNode,
    #[error("--state needs at least one file or directory (or KOVS_STATE)")]
    NoStateOrEnv,
    #[error("--state needs at least one file or directory")]
    NoState,
    #[error("--state {0}: no such file or directory")]
    NoSuchState(String),
    #[error("--source {0}: expected file or kube")]
    Source(String),
    #[error("--state and the kube source exclude each other (--source kube, --kubeconfig)")]
    StateAndKube,
    #[error("--kubeconfig needs the kube source (not --source file)")]
    KubeconfigAndFile,
    #[error("--datapath {0}: expected system or netdev")]
    Datapath(String),
    #[error("--tunnel-type {0}: expected geneve, vxlan or stt")]
    TunnelType(String),
    #[error("--encap-ip {0}: not an IPv4 address")]
    EncapIp(String),
    #[error("--metrics-addr: {0}")]
    MetricsAddr(std::net::AddrParseError),
    #[error("--port {0}: expected IFACE_ID=OFPORT")]
    PortSyntax(String),
    #[error("--port {0}: OFPORT must be a port number (1..65279)")]
    PortNumber(String),
    #[error("--pod-nic-type {0}")]
    PodNicType(String),
}

/// The kovs node agent: programs Open vSwitch over OpenFlow 1.3 for a Kubernetes node.
#[derive(Debug, Parser)]
#[command(
    name = "kovs-agent",
    version,
    arg_required_else_help = true,
    args_override_self = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once per process: the size of its largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    // Each command's help is the doc comment of its arguments' struct.
    Run(run::RunArgs),
    Compile(compile::CompileArgs),
    #[command(name = "install-cni")]
    InstallCni(install_cni::InstallCniArgs),
    Flows(flows::FlowsArgs),
    Controller(controller::ControllerArgs),
}

/// `kovs-agent`'s entry point: `argv` starts with the program name; returns the exit code.
pub fn main(argv: impl IntoIterator<Item = impl Into<OsString> + Clone>) -> i32 {
    match parse::<Cli>(argv) {
        Ok(cli) => match cli.command {
            Command::Run(a) => run::run(a),
            Command::Compile(a) => compile::run(a),
            Command::InstallCni(a) => install_cni::run(a),
            Command::Flows(a) => flows::run(a),
            Command::Controller(a) => controller::run(a),
        },
        Err(code) => code,
    }
}

/// Parses a command line, with empty environment variables counting as unset. On `--help` or
/// `--version` prints to stdout and gives `Err(0)`; on a usage error prints to stderr and gives
/// `Err(1)`.
pub fn parse<P: Parser>(
    argv: impl IntoIterator<Item = impl Into<OsString> + Clone>,
) -> Result<P, i32> {
    unset_empty_env(P::command())
        .try_get_matches_from(argv)
        .and_then(|mut m| P::from_arg_matches_mut(&mut m))
        .map_err(|e| {
            let _ = e.print();
            if e.use_stderr() {
                1
            } else {
                0
            }
        })
}

/// Drops the environment fallback of every argument whose variable is set but empty (clap
/// would take the empty value), in the command and its subcommands.
fn unset_empty_env(mut cmd: clap::Command) -> clap::Command {
    let empty: Vec<clap::Id> = cmd
        .get_arguments()
        .filter(|a| {
            a.get_env()
                .and_then(std::env::var_os)
                .is_some_and(|v| v.is_empty())
        })
        .map(|a| a.get_id().clone())
        .collect();
    for id in empty {
        cmd = cmd.mut_arg(id, |a| a.env(None));
    }
    let subs: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .collect();
    for s in subs {
        cmd = cmd.mut_subcommand(s, unset_empty_env);
    }
    cmd
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn an_empty_variable_drops_the_fallback_only_when_empty() {
        // A variable name of this test only, so no other test sees it.
        #[derive(Debug, Parser)]
        struct T {
            #[arg(long, env = "KOVS_CMD_TEST_EMPTY", default_value = "d")]
            x: String,
        }
        std::env::set_var("KOVS_CMD_TEST_EMPTY", "");
        assert_eq!(parse::<T>(["t"]).unwrap().x, "d");
        assert_eq!(
            T::try_parse_from(["t"]).unwrap().x,
            "",
            "clap alone takes it"
        );
        std::env::set_var("KOVS_CMD_TEST_EMPTY", "v");
        assert_eq!(parse::<T>(["t"]).unwrap().x, "v");
        assert_eq!(parse::<T>(["t", "--x", "f"]).unwrap().x, "f");
        std::env::remove_var("KOVS_CMD_TEST_EMPTY");
    }
}
