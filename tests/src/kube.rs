//! A private Kubernetes control plane per test: a real etcd and kube-apiserver (built by
//! `scripts/k8s-tools.sh` from the Go module proxy), on free loopback ports, in a temp dir.
//!
//! Set up as controller-runtime's envtest does: a CA of its own (openssl) signs the apiserver's
//! serving certificate and an admin client certificate (group `system:masters`); a service
//! account signing key lets `kubectl create token` mint tokens for RBAC-checked identities;
//! authorization is RBAC only. No controller-manager, scheduler or kubelet runs: nothing creates
//! the `default` ServiceAccounts, so the ServiceAccount admission plugin is off (Pods would be
//! rejected), namespaces are never finalized after a delete, and Pods are only what tests write.
//!
//! Dropping a [`KubeCluster`] stops both daemons and removes the dir, also while a test panics;
//! [`crate::cleanup_stale`] removes what a killed test process left.

use std::fs;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Once, OnceLock};
use std::time::{Duration, Instant};

use crate::names::{cleanup_stale, tagged_name, tmp_base, SANDBOX_PREFIX};
use crate::util::{describe, poll, run, stop_child, tail};

/// Start-up waits: an apiserver needs seconds on an idle machine, far more on 2 busy cores.
const START_TIMEOUT: Duration = Duration::from_secs(180);
/// How long a SIGTERM'd daemon gets to exit before SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(10);
/// Tries with fresh ports when another process took one between probe and bind.
const PORT_TRIES: usize = 3;

/// Paths of the binaries `scripts/k8s-tools.sh` builds.
#[derive(Debug, Clone)]
pub struct KubeTools {
    pub kube_apiserver: PathBuf,
    pub kubectl: PathBuf,
    pub etcd: PathBuf,
}

/// The repository root (this crate lives in `<root>/tests`).
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
}

impl KubeTools {
    /// Asks `scripts/k8s-tools.sh --paths` (the one place that knows the pinned versions and
    /// the cache dir). Panics, saying to run scripts/setup.sh, when they are not built.
    pub fn get() -> &'static KubeTools {
        static TOOLS: OnceLock<KubeTools> = OnceLock::new();
        TOOLS.get_or_init(|| {
            let script = repo_root().join("scripts/k8s-tools.sh");
            let out = Command::new(&script)
                .arg("--paths")
                .output()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
            let stdout = String::from_utf8_lossy(&out.stdout);
            let find = |name: &str| -> PathBuf {
                stdout
                    .lines()
                    .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
                    .map(PathBuf::from)
                    .unwrap_or_else(|| panic!("{} printed no {name}= line", script.display()))
            };
            let tools = KubeTools {
                kube_apiserver: find("kube-apiserver"),
                kubectl: find("kubectl"),
                etcd: find("etcd"),
            };
            if !out.status.success() {
                panic!(
                    "kube-apiserver, kubectl and etcd are not built ({}): run scripts/setup.sh \
                     (it runs scripts/k8s-tools.sh, which builds them once per machine)",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            tools
        })
    }
}

/// A running etcd + kube-apiserver pair owned by one test.
#[derive(Debug)]
pub struct KubeCluster {
    dir: PathBuf,
    etcd: Option<Child>,
    apiserver: Option<Child>,
    etcd_port: u16,
    apiserver_port: u16,
    server_url: String,
    admin_kubeconfig: PathBuf,
    started_in: Duration,
}

impl KubeCluster {
    /// Starts etcd and the apiserver and waits until `/readyz` answers `ok`. Panics (with the
    /// daemons' log tails) when they cannot start.
    pub fn start() -> KubeCluster {
        static STALE: Once = Once::new();
        STALE.call_once(cleanup_stale);
        let tools = KubeTools::get();
        let t0 = Instant::now();

        let dir = tmp_base().join(tagged_name(SANDBOX_PREFIX));
        fs::create_dir(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        // From here on, Drop undoes whatever part of the start-up succeeded.
        let mut cluster = KubeCluster {
            admin_kubeconfig: dir.join("admin.kubeconfig"),
            dir,
            etcd: None,
            apiserver: None,
            etcd_port: 0,
            apiserver_port: 0,
            server_url: String::new(),
            started_in: Duration::ZERO,
        };
        cluster.make_certs();

        let mut tries = 0;
        loop {
            tries += 1;
            match cluster.start_etcd(tools) {
                Ok(()) => break,
                Err(e) if tries < PORT_TRIES => eprintln!("kube harness: etcd: {e}; retrying"),
                Err(e) => panic!("etcd did not start: {e}"),
            }
        }
        let mut tries = 0;
        loop {
            tries += 1;
            cluster.apiserver_port = free_port();
            cluster.server_url = format!("https://127.0.0.1:{}", cluster.apiserver_port);
            cluster.write_admin_kubeconfig();
            match cluster.spawn_apiserver() {
                Ok(()) => break,
                Err(e) if tries < PORT_TRIES => {
                    eprintln!("kube harness: kube-apiserver: {e}; retrying")
                }
                Err(e) => panic!("kube-apiserver did not start: {e}"),
            }
        }
        cluster.started_in = t0.elapsed();
        eprintln!(
            "kube harness: etcd + kube-apiserver ready at {} in {} ms ({})",
            cluster.server_url,
            cluster.started_in.as_millis(),
            cluster.dir.display()
        );
        cluster
    }

    /// Kubeconfig of the admin identity (client certificate, group `system:masters`).
    pub fn admin_kubeconfig(&self) -> &Path {
        &self.admin_kubeconfig
    }

    /// `https://127.0.0.1:<port>`.
    pub fn server_url(&self) -> &str {
        &self.server_url
    }

    /// The private temp dir: certs, kubeconfigs, etcd data, the daemons' logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The CA that signed the apiserver's serving certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("certs/ca.crt")
    }

    /// `http://127.0.0.1:<port>`, etcd's client URL.
    pub fn etcd_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.etcd_port)
    }

    /// How long [`KubeCluster::start`] took until `/readyz`.
    pub fn started_in(&self) -> Duration {
        self.started_in
    }

    /// The apiserver's pid, while it runs.
    pub fn apiserver_pid(&self) -> Option<u32> {
        self.apiserver.as_ref().map(Child::id)
    }

    /// The last `lines` of `etcd.log` or `kube-apiserver.log`.
    pub fn log_tail(&self, daemon: &str, lines: usize) -> String {
        tail(&self.dir.join(format!("{daemon}.log")), lines)
    }

    /// A kubectl command for `kubeconfig`, with its discovery cache inside the cluster's dir
    /// (random ports would otherwise litter ~/.kube/cache).
    pub fn kubectl_command(&self, kubeconfig: &Path) -> Command {
        let mut cmd = Command::new(&KubeTools::get().kubectl);
        cmd.arg("--kubeconfig")
            .arg(kubeconfig)
            .arg("--cache-dir")
            .arg(self.dir.join("kubectl-cache"));
        cmd
    }

    /// Runs kubectl as admin.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_as(&self.admin_kubeconfig, args)
    }

    /// Runs kubectl as admin; panics with its stderr when it fails; returns its stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        if !out.status.success() {
            panic!(
                "`kubectl {}` failed ({}): {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `kubectl apply -f -` as admin; panics when it fails.
    pub fn apply(&self, yaml: &str) {
        let out = self.kubectl_stdin(&self.admin_kubeconfig, &["apply", "-f", "-"], yaml);
        if !out.status.success() {
            panic!(
                "`kubectl apply` failed ({}): {}\n--- input ---\n{yaml}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }

    /// Runs kubectl as the identity of `kubeconfig` (e.g. a
    /// [`KubeCluster::service_account_kubeconfig`]).
    pub fn kubectl_as(&self, kubeconfig: &Path, args: &[&str]) -> Output {
        let mut cmd = self.kubectl_command(kubeconfig);
        cmd.args(args);
        cmd.output()
            .unwrap_or_else(|e| panic!("cannot run `{}`: {e}", describe(&cmd)))
    }

    /// Runs kubectl as the identity of `kubeconfig` with `input` on its stdin.
    pub fn kubectl_stdin(&self, kubeconfig: &Path, args: &[&str], input: &str) -> Output {
        let mut cmd = self.kubectl_command(kubeconfig);
        cmd.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run `{}`: {e}", describe(&cmd)));
        let mut stdin = child.stdin.take().expect("piped stdin");
        // Write from a thread: kubectl may answer (and fill its pipes) before reading all input.
        let input = input.to_owned();
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(input.as_bytes());
        });
        let out = child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("`{}` failed: {e}", describe(&cmd)));
        let _ = writer.join();
        out
    }

    /// Applies `deploy/crds/` and waits until every CRD there is Established.
    pub fn install_crds(&self) {
        let dir = repo_root().join("deploy/crds");
        let dir = dir.to_str().expect("UTF-8 path");
        let names = self.kubectl_ok(&["apply", "-f", dir, "-o", "name"]);
        let names: Vec<&str> = names.split_whitespace().collect();
        assert!(!names.is_empty(), "{dir} holds no CRDs");
        let mut args = vec!["wait", "--for=condition=Established", "--timeout=60s"];
        args.extend(&names);
        self.kubectl_ok(&args);
    }

    /// Applies `deploy/rbac.yaml` (the kovs-agent ServiceAccount, ClusterRole and binding).
    pub fn install_rbac(&self) {
        let file = repo_root().join("deploy/rbac.yaml");
        self.kubectl_ok(&["apply", "-f", file.to_str().expect("UTF-8 path")]);
    }

    /// Writes a kubeconfig holding a fresh token (`kubectl create token`, 24 h) of the
    /// ServiceAccount `namespace/name`, so its requests go through RBAC as that account's.
    pub fn service_account_kubeconfig(&self, namespace: &str, name: &str) -> PathBuf {
        let token = self.kubectl_ok(&["create", "token", name, "-n", namespace, "--duration=24h"]);
        let token = token.trim();
        assert!(!token.is_empty(), "kubectl create token printed nothing");
        let path = self.dir.join(format!("sa-{namespace}-{name}.kubeconfig"));
        let user = format!("system:serviceaccount:{namespace}:{name}");
        let body = self.kubeconfig(&user, &format!("    token: {token}\n"));
        write_private(&path, &body);
        path
    }

    /// Stops the apiserver (SIGTERM, then SIGKILL after a grace period); etcd keeps running,
    /// so its data survives for [`KubeCluster::start_apiserver`].
    pub fn stop_apiserver(&mut self) {
        if let Some(mut child) = self.apiserver.take() {
            stop_child(&mut child, TERM_GRACE);
        }
    }

    /// Starts the apiserver again: same port, etcd, certs and keys (so issued tokens stay
    /// valid); waits for `/readyz`.
    pub fn start_apiserver(&mut self) {
        assert!(
            self.apiserver.is_none(),
            "kube-apiserver is already running"
        );
        if let Err(e) = self.spawn_apiserver() {
            panic!("kube-apiserver did not restart: {e}");
        }
    }

    /// Compacts etcd's history up to its current revision (etcd's JSON gateway), so a watch
    /// from an older resourceVersion that the apiserver passes to etcd gets 410 Gone. Returns
    /// the revision compacted to.
    pub fn compact_etcd(&self) -> u64 {
        // Any key's range answers with the store's current revision in its header.
        let range = etcd_post(self.etcd_port, "/v3/kv/range", r#"{"key":"AA=="}"#)
            .unwrap_or_else(|e| panic!("etcd range: {e}"));
        let revision = json_string_field(&range, "revision")
            .and_then(|r| r.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no revision in etcd's answer: {range}"));
        let body = format!(r#"{{"revision":"{revision}","physical":true}}"#);
        etcd_post(self.etcd_port, "/v3/kv/compaction", &body)
            .unwrap_or_else(|e| panic!("etcd compaction to {revision}: {e}"));
        revision
    }

    /// POSTs `body` (JSON) to etcd's gRPC-JSON gateway at `path` (e.g. `/v3/kv/range`);
    /// the answer's body, or an error carrying etcd's message.
    pub fn etcd_request(&self, path: &str, body: &str) -> io::Result<String> {
        etcd_post(self.etcd_port, path, body)
    }

    fn kubeconfig(&self, user: &str, credentials: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: kovs-test\n  cluster:\n    \
             server: {server}\n    certificate-authority: {ca}\nusers:\n- name: {user}\n  \
             user:\n{credentials}contexts:\n- name: kovs-test\n  context:\n    cluster: \
             kovs-test\n    user: {user}\ncurrent-context: kovs-test\n",
            server = self.server_url,
            ca = self.ca_file().display(),
        )
    }

    fn write_admin_kubeconfig(&self) {
        let certs = self.dir.join("certs");
        let creds = format!(
            "    client-certificate: {}\n    client-key: {}\n",
            certs.join("admin.crt").display(),
            certs.join("admin.key").display()
        );
        write_private(
            &self.admin_kubeconfig,
            &self.kubeconfig("kovs-admin", &creds),
        );
    }

    /// A CA, the apiserver's serving certificate (127.0.0.1, localhost), the admin client
    /// certificate, and the service-account signing key pair: all P-256, made with openssl.
    fn make_certs(&self) {
        let certs = self.dir.join("certs");
        fs::create_dir(&certs).unwrap_or_else(|e| panic!("mkdir {}: {e}", certs.display()));
        let cnf = certs.join("openssl.cnf");
        // Our own config: the system's may add extensions (a CA flag on leaves) rustls rejects.
        write_private(
            &cnf,
            "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = unused\n\
             [ca]\nbasicConstraints = critical,CA:TRUE\n\
             keyUsage = critical,keyCertSign,cRLSign,digitalSignature\n\
             subjectKeyIdentifier = hash\n\
             [server]\nbasicConstraints = critical,CA:FALSE\n\
             keyUsage = critical,digitalSignature,keyEncipherment\n\
             extendedKeyUsage = serverAuth\n\
             subjectAltName = IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\n\
             authorityKeyIdentifier = keyid\n\
             [client]\nbasicConstraints = critical,CA:FALSE\n\
             keyUsage = critical,digitalSignature,keyEncipherment\n\
             extendedKeyUsage = clientAuth\nauthorityKeyIdentifier = keyid\n",
        );
        let openssl = |args: &[&str]| {
            let mut cmd = Command::new("openssl");
            cmd.current_dir(&certs).args(args);
            if let Err(e) = run(&mut cmd) {
                panic!("{e} (openssl comes with scripts/setup.sh)");
            }
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        let mut ca = vec![
            "req",
            "-x509",
            "-config",
            "openssl.cnf",
            "-extensions",
            "ca",
        ];
        ca.extend(ec);
        ca.extend([
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "3650",
            "-subj",
            "/CN=kovs-test-ca",
        ]);
        openssl(&ca);
        for (name, subject, ext) in [
            ("apiserver", "/CN=kube-apiserver", "server"),
            ("admin", "/O=system:masters/CN=kovs-admin", "client"),
        ] {
            let (key, csr, crt) = (
                format!("{name}.key"),
                format!("{name}.csr"),
                format!("{name}.crt"),
            );
            let mut req = vec!["req", "-new", "-config", "openssl.cnf"];
            req.extend(ec);
            req.extend(["-keyout", &key, "-out", &csr, "-subj", subject]);
            openssl(&req);
            openssl(&[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "3650",
                "-extfile",
                "openssl.cnf",
                "-extensions",
                ext,
                "-out",
                &crt,
            ]);
        }
        let sa = [
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "sa.key",
        ];
        openssl(&sa);
        openssl(&["pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub"]);
    }

    fn start_etcd(&mut self, tools: &KubeTools) -> io::Result<()> {
        self.etcd_port = free_port();
        let peer_port = free_port();
        let data = self.dir.join("etcd");
        // A failed try may have left a half-initialised member: start from nothing.
        let _ = fs::remove_dir_all(&data);
        let client = format!("http://127.0.0.1:{}", self.etcd_port);
        let peer = format!("http://127.0.0.1:{peer_port}");
        let mut cmd = Command::new(&tools.etcd);
        cmd.arg("--name=kovs")
            .arg(format!("--data-dir={}", data.display()))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=kovs={peer}"))
            // Test data need no durability; fsync dominates etcd's latency on shared disks.
            .arg("--unsafe-no-fsync")
            .arg("--log-level=warn");
        let mut child = self.spawn_logged(cmd, "etcd")?;
        let port = self.etcd_port;
        let healthy = poll(START_TIMEOUT, || {
            if let Some(status) = child.try_wait()? {
                return Err(io::Error::other(format!(
                    "etcd exited ({status}):\n{}",
                    self.log_tail("etcd", 20)
                )));
            }
            Ok(etcd_get(port, "/health")
                .ok()
                .filter(|b| b.contains(r#""health":"true""#))
                .map(|_| ()))
        });
        match healthy {
            Ok(Some(())) => {
                self.etcd = Some(child);
                Ok(())
            }
            Ok(None) => {
                stop_child(&mut child, TERM_GRACE);
                Err(io::Error::other(format!(
                    "etcd not healthy after {START_TIMEOUT:?}:\n{}",
                    self.log_tail("etcd", 20)
                )))
            }
            Err(e) => {
                stop_child(&mut child, TERM_GRACE);
                Err(e)
            }
        }
    }

    /// Spawns the apiserver with the cluster's fixed arguments and waits for `/readyz`.
    fn spawn_apiserver(&mut self) -> io::Result<()> {
        let tools = KubeTools::get();
        let certs = self.dir.join("certs");
        let c = |f: &str| certs.join(f).display().to_string();
        let mut cmd = Command::new(&tools.kube_apiserver);
        cmd.arg(format!("--etcd-servers={}", self.etcd_url()))
            .arg("--bind-address=127.0.0.1")
            .arg("--advertise-address=127.0.0.1")
            .arg(format!("--secure-port={}", self.apiserver_port))
            .arg(format!("--cert-dir={}", c("")))
            .arg(format!("--tls-cert-file={}", c("apiserver.crt")))
            .arg(format!("--tls-private-key-file={}", c("apiserver.key")))
            .arg(format!("--client-ca-file={}", c("ca.crt")))
            .arg("--service-cluster-ip-range=10.96.0.0/12")
            .arg("--service-account-issuer=https://kubernetes.default.svc.cluster.local")
            .arg(format!("--service-account-key-file={}", c("sa.pub")))
            .arg(format!(
                "--service-account-signing-key-file={}",
                c("sa.key")
            ))
            .arg("--authorization-mode=RBAC")
            // No controller-manager creates `default` ServiceAccounts: with this plugin on,
            // every Pod would be rejected.
            .arg("--disable-admission-plugins=ServiceAccount")
            .arg("--allow-privileged=true");
        let mut child = self.spawn_logged(cmd, "kube-apiserver")?;
        let ready = poll(START_TIMEOUT, || {
            if let Some(status) = child.try_wait()? {
                return Err(io::Error::other(format!(
                    "kube-apiserver exited ({status}):\n{}",
                    self.log_tail("kube-apiserver", 30)
                )));
            }
            let out = self.kubectl(&["get", "--raw", "/readyz", "--request-timeout=5s"]);
            let ok = out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "ok";
            if !ok {
                // kubectl itself takes ~50 ms; don't hammer a starting apiserver.
                std::thread::sleep(Duration::from_millis(100));
            }
            Ok(ok.then_some(()))
        });
        match ready {
            Ok(Some(())) => {
                self.apiserver = Some(child);
                Ok(())
            }
            Ok(None) => {
                stop_child(&mut child, TERM_GRACE);
                Err(io::Error::other(format!(
                    "kube-apiserver not ready after {START_TIMEOUT:?}:\n{}",
                    self.log_tail("kube-apiserver", 30)
                )))
            }
            Err(e) => {
                stop_child(&mut child, TERM_GRACE);
                Err(e)
            }
        }
    }

    /// Spawns `cmd` with stdout and stderr appended to `DIR/<daemon>.log`, and its pid in
    /// `DIR/<daemon>.pid` for [`crate::cleanup_stale`].
    fn spawn_logged(&self, mut cmd: Command, daemon: &str) -> io::Result<Child> {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("{daemon}.log")))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .map_err(|e| {
                io::Error::new(e.kind(), format!("cannot run `{}`: {e}", describe(&cmd)))
            })?;
        fs::write(
            self.dir.join(format!("{daemon}.pid")),
            child.id().to_string(),
        )?;
        Ok(child)
    }
}

impl Drop for KubeCluster {
    fn drop(&mut self) {
        if let Some(mut child) = self.apiserver.take() {
            stop_child(&mut child, TERM_GRACE);
        }
        if let Some(mut child) = self.etcd.take() {
            stop_child(&mut child, TERM_GRACE);
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A loopback port nobody listened on a moment ago (the kernel's pick for port 0).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("cannot bind a loopback port: {e}"))
}

/// Writes `body` readable by the owner only (kubeconfigs hold credentials).
fn write_private(path: &Path, body: &str) {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    f.write_all(body.as_bytes())
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

fn etcd_get(port: u16, path: &str) -> io::Result<String> {
    etcd_http(
        port,
        &format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"),
    )
}

fn etcd_post(port: u16, path: &str, body: &str) -> io::Result<String> {
    etcd_http(
        port,
        &format!(
            "POST {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
}

/// One plain HTTP/1.0 exchange with etcd (no client crate needed); the body of a 200 answer.
fn etcd_http(port: u16, request: &str) -> io::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(request.as_bytes())?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)?;
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
        return Err(io::Error::other(format!(
            "etcd answered {}: {body}",
            head.lines().next().unwrap_or("")
        )));
    }
    Ok(body.to_owned())
}

/// The value of the first `"field":"value"` in a JSON text (etcd's gateway quotes int64s).
fn json_string_field(json: &str, field: &str) -> Option<String> {
    let at = json.find(&format!("\"{field}\":\""))? + field.len() + 4;
    let end = json[at..].find('"')?;
    Some(json[at..at + end].to_owned())
}
