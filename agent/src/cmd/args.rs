//! A small command-line parser: `--flag value`, `--flag=value`, repeated flags, and a flag
//! taking several values (`--state a b c`). Kept here to avoid a heavy dependency.

use std::collections::BTreeMap;

/// Parsed arguments of one subcommand.
#[derive(Debug, Default)]
pub struct Args {
    values: BTreeMap<String, Vec<String>>,
    pub positional: Vec<String>,
}

/// Flags that take several values until the next `--flag`.
const MULTI: &[&str] = &["state"];

impl Args {
    pub fn parse(argv: &[String], known: &[&str]) -> Result<Args, String> {
        let mut a = Args::default();
        let mut i = 0;
        while i < argv.len() {
            let arg = &argv[i];
            if let Some(flag) = arg.strip_prefix("--") {
                let (name, inline) = match flag.split_once('=') {
                    Some((n, v)) => (n.to_string(), Some(v.to_string())),
                    None => (flag.to_string(), None),
                };
                if !known.contains(&name.as_str()) {
                    return Err(format!(
                        "unknown flag --{name} (known: {})",
                        known
                            .iter()
                            .map(|k| format!("--{k}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                let entry = a.values.entry(name.clone()).or_default();
                if let Some(v) = inline {
                    entry.push(v);
                    i += 1;
                    continue;
                }
                i += 1;
                let start = i;
                while i < argv.len() && !argv[i].starts_with("--") {
                    entry.push(argv[i].clone());
                    i += 1;
                    if !MULTI.contains(&name.as_str()) {
                        break;
                    }
                }
                if i == start {
                    return Err(format!("--{name} needs a value"));
                }
            } else {
                a.positional.push(arg.clone());
                i += 1;
            }
        }
        Ok(a)
    }

    pub fn one(&self, name: &str) -> Option<&str> {
        self.values
            .get(name)
            .and_then(|v| v.last())
            .map(|s| s.as_str())
    }

    pub fn all(&self, name: &str) -> &[String] {
        self.values.get(name).map(|v| v.as_slice()).unwrap_or(&[])
    }

    /// The flag's value, else the environment variable, else the default.
    pub fn or_env(&self, name: &str, env: &str, default: &str) -> String {
        self.one(name)
            .map(|s| s.to_string())
            .or_else(|| std::env::var(env).ok().filter(|v| !v.is_empty()))
            .unwrap_or_else(|| default.to_string())
    }
}
