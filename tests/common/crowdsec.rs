//! A real CrowdSec LAPI for the fleet tests and benchmark: Debian's crowdsec 1.4.6 run as
//! `crowdsec -c CONFIG -no-cs` (the LAPI alone) inside a test namespace, with a test-made
//! config dir, its SQLite database in a temp dir, no Central API (no `online_client`), so
//! nothing tries to reach the internet. Machines and bouncers come from `cscli -c CONFIG`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What else a LAPI is started with.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// crowdsec's `db_config:` block (None: SQLite in the temp dir).
    pub db_config: Option<String>,
    /// Serve its Prometheus metrics here (inside its namespace).
    pub metrics: Option<std::net::SocketAddr>,
    /// With https: TLS client certificates too (`api.server.tls`).
    pub client_certs: Option<ClientCerts>,
}

/// The LAPI's client-certificate settings (crowdsec 1.4.6 `api.server.tls`; the default
/// `client_verification: VerifyClientCertIfGiven` keeps passwords and API keys working).
#[derive(Debug, Clone)]
pub struct ClientCerts {
    /// `ca_cert_path`: the CA client certificates must come from.
    pub ca: PathBuf,
    /// `crl_path`: revoked serials (PEM CRL).
    pub crl: PathBuf,
    /// `agents_allowed_ou`.
    pub agents_ou: String,
    /// `bouncers_allowed_ou`.
    pub bouncers_ou: String,
}

pub struct Lapi {
    pub ns: String,
    pub listen: String,
    /// `http`, or `https` when started with [`Lapi::start_tls`].
    pub scheme: &'static str,
    pub dir: tempfile::TempDir,
    child: Option<Child>,
}

/// True when crowdsec and cscli are installed (else the caller fails loudly under CI).
pub fn installed() -> bool {
    Command::new("crowdsec").arg("-version").output().is_ok()
        && Command::new("cscli").arg("version").output().is_ok()
}

impl Lapi {
    /// Writes the config and starts the LAPI in `ns`, listening on `listen` (`ADDR:PORT`).
    pub fn start(ns: &str, listen: &str) -> Lapi {
        Lapi::start_with(ns, listen, None, &Options::default())
    }

    /// As [`Lapi::start`], serving https with this certificate and key (PEM files). cscli
    /// itself skips the certificate check (`api.client.insecure_skip_verify`); the machines
    /// under test do not.
    pub fn start_tls(ns: &str, listen: &str, cert: &Path, key: &Path) -> Lapi {
        Lapi::start_with(ns, listen, Some((cert, key)), &Options::default())
    }

    /// As [`Lapi::start`], with these options (the database, metrics).
    pub fn start_opts(ns: &str, listen: &str, o: &Options) -> Lapi {
        Lapi::start_with(ns, listen, None, o)
    }

    /// As [`Lapi::start_tls`], with these options (client certificates).
    pub fn start_tls_opts(ns: &str, listen: &str, cert: &Path, key: &Path, o: &Options) -> Lapi {
        Lapi::start_with(ns, listen, Some((cert, key)), o)
    }

    fn start_with(ns: &str, listen: &str, tls: Option<(&Path, &Path)>, o: &Options) -> Lapi {
        let (scheme, server_tls, skip_verify) = match tls {
            Some((cert, key)) => (
                "https",
                format!(
                    "    tls:\n      cert_file: {}\n      key_file: {}\n{}",
                    cert.display(),
                    key.display(),
                    o.client_certs.as_ref().map_or(String::new(), |c| format!(
                        "      ca_cert_path: {}\n      crl_path: {}\n      agents_allowed_ou:\n        - {}\n      bouncers_allowed_ou:\n        - {}\n",
                        c.ca.display(),
                        c.crl.display(),
                        c.agents_ou,
                        c.bouncers_ou
                    ))
                ),
                true,
            ),
            None => ("http", String::new(), false),
        };
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        let db = o.db_config.clone().unwrap_or_else(|| {
            format!("db_config:\n  log_level: info\n  type: sqlite\n  db_path: {d}/data/crowdsec.db\n  use_wal: true\n")
        });
        let prometheus = match &o.metrics {
            Some(addr) => format!(
                "prometheus:\n  enabled: true\n  level: full\n  listen_addr: {}\n  listen_port: {}\n",
                addr.ip(),
                addr.port()
            ),
            None => "prometheus:\n  enabled: false\n".to_string(),
        };
        for sub in ["data", "hub", "log", "notifications"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        std::fs::write(
            dir.path().join("config.yaml"),
            format!(
                "common:\n  daemonize: false\n  log_media: file\n  log_level: info\n  log_dir: {d}/log/\n  working_dir: .\n\
                 config_paths:\n  config_dir: {d}/\n  data_dir: {d}/data/\n  simulation_path: {d}/simulation.yaml\n  hub_dir: {d}/hub/\n  index_path: {d}/hub/.index.json\n  notification_dir: {d}/notifications/\n  plugin_dir: /usr/lib/crowdsec/plugins/\n\
                 cscli:\n  output: human\n\
                 {db}\
                 api:\n  client:\n    insecure_skip_verify: {skip_verify}\n    credentials_path: {d}/local_api_credentials.yaml\n  server:\n    log_level: info\n    listen_uri: {listen}\n    profiles_path: {d}/profiles.yaml\n{server_tls}    trusted_ips:\n      - 127.0.0.1\n\
                 {prometheus}"
            ),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("profiles.yaml"),
            "name: default_ip_remediation\nfilters:\n - Alert.Remediation == true && Alert.GetScope() == \"Ip\"\ndecisions:\n - type: ban\n   duration: 4h\non_success: break\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("simulation.yaml"), "simulation: false\n").unwrap();
        std::fs::write(dir.path().join("hub/.index.json"), "{}").unwrap();
        let mut l = Lapi {
            ns: ns.to_string(),
            listen: listen.to_string(),
            scheme,
            dir,
            child: None,
        };
        l.resume();
        // cscli itself logs in as a machine: its credentials file, as crowdsec's postinst makes it.
        let cred = format!("{d}/local_api_credentials.yaml");
        let url = l.url();
        l.cscli(&[
            "machines",
            "add",
            "cscli-test",
            "--auto",
            "-f",
            &cred,
            "--url",
            &url,
        ]);
        l
    }

    /// The LAPI's pid while it runs (`ip netns exec` execs crowdsec).
    pub fn pid(&self) -> Option<i32> {
        self.child.as_ref().map(|c| c.id() as i32)
    }

    /// The URL machines and bouncers use: `SCHEME://LISTEN`.
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.listen)
    }

    pub fn config(&self) -> PathBuf {
        self.dir.path().join("config.yaml")
    }

    /// Starts the LAPI (again) and waits until it answers.
    pub fn resume(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("log/stdout.log")).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns, "crowdsec", "-c"])
            .arg(self.config())
            .arg("-no-cs")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("crowdsec");
        self.child = Some(child);
        let t0 = Instant::now();
        let url = format!("{}/v1/decisions", self.url());
        while t0.elapsed() < Duration::from_secs(30) {
            let out = Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &self.ns,
                    "curl",
                    "-s",
                    "-k",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                    &url,
                ])
                .output();
            if let Ok(o) = out
                && o.stdout != b"000"
                && !o.stdout.is_empty()
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "the LAPI did not start: {}",
            std::fs::read_to_string(self.dir.path().join("log/stdout.log")).unwrap_or_default()
        );
    }

    /// Stops the LAPI (SIGTERM to the process we started, by pid), waits for it.
    pub fn pause(&mut self) {
        if let Some(c) = self.child.take() {
            super::stop_child(
                c,
                nix::sys::signal::Signal::SIGTERM,
                Duration::from_secs(10),
            );
        }
    }

    /// `cscli -c CONFIG ARGS...` in the LAPI's namespace; its stdout (panics on failure).
    pub fn cscli(&self, args: &[&str]) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns, "cscli", "-c"])
            .arg(self.config())
            .args(args)
            .output()
            .expect("cscli");
        assert!(
            out.status.success(),
            "cscli {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The credentials file `cscli machines add NAME --password P -f FILE` writes, at `path`.
    pub fn machine(&self, name: &str, password: &str, path: &Path) {
        self.cscli(&[
            "machines",
            "add",
            name,
            "--password",
            password,
            "-f",
            &path.display().to_string(),
            "--url",
            &self.url(),
        ]);
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    /// `cscli bouncers add NAME -o raw`: the API key, also written (0600) to `path`.
    pub fn bouncer(&self, name: &str, path: &Path) -> String {
        let key = self
            .cscli(&["bouncers", "add", name, "-o", "raw"])
            .trim()
            .to_string();
        std::fs::write(path, format!("{key}\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
        key
    }

    /// Every alert, as `cscli alerts list -a -o json` gives it.
    pub fn alerts(&self) -> serde_json::Value {
        serde_json::from_str(&self.cscli(&["alerts", "list", "-a", "-l", "0", "-o", "json"]))
            .unwrap_or(serde_json::Value::Null)
    }

    /// Every decision in force (`cscli decisions list -a -o json`), as (value, scenario).
    pub fn decisions(&self) -> Vec<(String, String)> {
        let v: serde_json::Value = serde_json::from_str(&self.cscli(&[
            "decisions",
            "list",
            "-a",
            "-l",
            "0",
            "-o",
            "json",
        ]))
        .unwrap_or(serde_json::Value::Null);
        let mut out = Vec::new();
        for a in v.as_array().into_iter().flatten() {
            for d in a["decisions"].as_array().into_iter().flatten() {
                out.push((
                    d["value"].as_str().unwrap_or("").to_string(),
                    d["scenario"].as_str().unwrap_or("").to_string(),
                ));
            }
        }
        out
    }
}

impl Drop for Lapi {
    fn drop(&mut self) {
        self.pause();
    }
}
