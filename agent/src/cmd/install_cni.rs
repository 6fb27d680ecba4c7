//! `kovs-agent install-cni`: puts `kovs-cni` and its network configuration where the container
//! runtime looks for them, for a DaemonSet's init container. Both are written aside and renamed
//! into place, so a runtime never reads half a file.

use std::io;
use std::path::{Path, PathBuf};

use kovs_cni::protocol::DEFAULT_SERVER_SOCKET;

/// The conflist's file name: sorts before other networks (and podman's 87-podman-bridge).
pub const CONFLIST_NAME: &str = "01-kovs.conflist";

/// Install the CNI plugin and its configuration
///
/// Copies the kovs-cni binary into --bin-dir and writes a cniVersion 1.0.0 conflist naming
/// the agent's CNI socket into --conf-dir. Run it from the DaemonSet's init container.
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct InstallCniArgs {
    /// Where the runtime finds CNI plugins
    #[arg(long, value_name = "DIR", default_value = "/opt/cni/bin")]
    pub bin_dir: PathBuf,
    /// Where the runtime finds network configurations
    #[arg(long, value_name = "DIR", default_value = "/etc/cni/net.d")]
    pub conf_dir: PathBuf,
    /// The plugin binary to install [default: kovs-cni next to kovs-agent]
    #[arg(long, value_name = "PATH")]
    pub plugin: Option<PathBuf>,
    /// The agent's CNI socket, as `kovs-agent run --cni-socket` serves it
    #[arg(long, value_name = "PATH", default_value = DEFAULT_SERVER_SOCKET)]
    pub server_socket: String,
    /// The network's name in the conflist
    #[arg(long, value_name = "NAME", default_value = "kovs")]
    pub network_name: String,
}

/// The conflist kovs installs.
pub fn conflist(network_name: &str, server_socket: &str) -> String {
    let v = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": network_name,
        "plugins": [{"type": "kovs-cni", "server_socket": server_socket}],
    });
    serde_json::to_string_pretty(&v).unwrap_or_default() + "\n"
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename.
fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.kovs-tmp"));
    std::fs::write(&tmp, bytes)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

pub fn install(args: &InstallCniArgs) -> Result<(PathBuf, PathBuf), String> {
    let plugin = match &args.plugin {
        Some(p) => p.clone(),
        None => std::env::current_exe()
            .map_err(|e| format!("finding kovs-agent's own path: {e}"))?
            .with_file_name("kovs-cni"),
    };
    let binary =
        std::fs::read(&plugin).map_err(|e| format!("--plugin {}: {e}", plugin.display()))?;
    for dir in [&args.bin_dir, &args.conf_dir] {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let bin = args.bin_dir.join("kovs-cni");
    write_atomically(&bin, &binary, 0o755).map_err(|e| format!("{}: {e}", bin.display()))?;
    let conf = args.conf_dir.join(CONFLIST_NAME);
    let text = conflist(&args.network_name, &args.server_socket);
    write_atomically(&conf, text.as_bytes(), 0o644)
        .map_err(|e| format!("{}: {e}", conf.display()))?;
    Ok((bin, conf))
}

pub fn run(args: InstallCniArgs) -> i32 {
    match install(&args) {
        Ok((bin, conf)) => {
            println!("installed {} and {}", bin.display(), conf.display());
            0
        }
        Err(e) => {
            eprintln!("kovs-agent install-cni: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installs_the_plugin_and_a_1_0_0_conflist_and_replaces_them_atomically() {
        let dir = std::env::temp_dir().join(format!("kovs-install-cni-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let fake = dir.join("plugin-src");
        std::fs::write(&fake, b"#!/bin/sh\n").unwrap();
        let args = InstallCniArgs {
            bin_dir: dir.join("bin"),
            conf_dir: dir.join("net.d"),
            plugin: Some(fake.clone()),
            server_socket: "/run/kovs.sock".into(),
            network_name: "kovs".into(),
        };
        let (bin, conf) = install(&args).unwrap();
        assert_eq!(std::fs::read(&bin).unwrap(), b"#!/bin/sh\n");
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&conf).unwrap()).unwrap();
        assert_eq!(v["cniVersion"], "1.0.0");
        assert_eq!(v["plugins"][0]["type"], "kovs-cni");
        assert_eq!(v["plugins"][0]["server_socket"], "/run/kovs.sock");
        // Again: replaced, and no temporary file is left behind.
        install(&args).unwrap();
        let left: Vec<_> = std::fs::read_dir(dir.join("net.d"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, [std::ffi::OsString::from(CONFLIST_NAME)]);
        let missing = InstallCniArgs {
            plugin: Some(dir.join("nope")),
            ..args
        };
        assert!(install(&missing).unwrap_err().contains("--plugin"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
