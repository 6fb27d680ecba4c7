//! Connection targets (`unix:PATH`, `tcp:HOST[:PORT]`) and the boxed socket halves.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use tokio::io::{AsyncRead, AsyncWrite};

use super::Error;

/// The default OpenFlow port, used when a `tcp:` target has none.
pub const DEFAULT_OPENFLOW_PORT: u16 = 6653;

pub(crate) type BoxRead = Box<dyn AsyncRead + Send + Unpin>;
pub(crate) type BoxWrite = Box<dyn AsyncWrite + Send + Unpin>;

/// Where to connect, in OVS's syntax.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// `unix:PATH`, e.g. `unix:/var/run/openvswitch/br-int.mgmt`.
    Unix(PathBuf),
    /// `tcp:HOST:PORT` (`tcp:[v6addr]:PORT` for IPv6 literals; port defaults to 6653).
    Tcp { host: String, port: u16 },
}

impl FromStr for Target {
    type Err = Error;

    fn from_str(s: &str) -> Result<Target, Error> {
        let bad = || Error::BadTarget(s.to_string());
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(bad());
            }
            return Ok(Target::Unix(PathBuf::from(path)));
        }
        let Some(rest) = s.strip_prefix("tcp:") else {
            return Err(bad());
        };
        // [v6]:port | [v6] | host:port | host
        let (host, port) = if let Some(r) = rest.strip_prefix('[') {
            let (h, after) = r.split_once(']').ok_or_else(bad)?;
            match after {
                "" => (h, None),
                p => (h, Some(p.strip_prefix(':').ok_or_else(bad)?)),
            }
        } else {
            match rest.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (rest, None),
            }
        };
        if host.is_empty() || host.contains(':') && !rest.starts_with('[') {
            return Err(bad());
        }
        let port = match port {
            None => DEFAULT_OPENFLOW_PORT,
            Some(p) => p.parse::<u16>().map_err(|_| bad())?,
        };
        Ok(Target::Tcp {
            host: host.to_string(),
            port,
        })
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Unix(p) => write!(f, "unix:{}", p.display()),
            Target::Tcp { host, port } if host.contains(':') => write!(f, "tcp:[{host}]:{port}"),
            Target::Tcp { host, port } => write!(f, "tcp:{host}:{port}"),
        }
    }
}

impl Target {
    pub(crate) async fn connect(&self) -> Result<(BoxRead, BoxWrite), Error> {
        match self {
            Target::Unix(path) => {
                let s = tokio::net::UnixStream::connect(path).await?;
                let (r, w) = s.into_split();
                Ok((Box::new(r), Box::new(w)))
            }
            Target::Tcp { host, port } => {
                let s = tokio::net::TcpStream::connect((host.as_str(), *port)).await?;
                s.set_nodelay(true)?;
                let (r, w) = s.into_split();
                Ok((Box::new(r), Box::new(w)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_targets() {
        assert_eq!(
            "unix:/run/br-int.mgmt".parse::<Target>().unwrap(),
            Target::Unix("/run/br-int.mgmt".into())
        );
        assert_eq!(
            "tcp:127.0.0.1:6654".parse::<Target>().unwrap(),
            Target::Tcp {
                host: "127.0.0.1".into(),
                port: 6654
            }
        );
        assert_eq!(
            "tcp:switch1".parse::<Target>().unwrap(),
            Target::Tcp {
                host: "switch1".into(),
                port: 6653
            }
        );
        let v6 = "tcp:[::1]:6633".parse::<Target>().unwrap();
        assert_eq!(
            v6,
            Target::Tcp {
                host: "::1".into(),
                port: 6633
            }
        );
        assert_eq!(v6.to_string(), "tcp:[::1]:6633");
        for bad in [
            "",
            "unix:",
            "ssl:1.2.3.4:6653",
            "tcp:",
            "tcp:1.2.3.4:x",
            "tcp:::1",
            "tcp:[::1",
            "tcp:[::1]x",
            "tcp:h:70000",
        ] {
            assert!(bad.parse::<Target>().is_err(), "{bad}");
        }
    }
}
