//! A PostgreSQL server of the test's own for the LAPI (issue 20): Debian's `postgresql`
//! binaries (`initdb`, `postgres`, from `/usr/lib/postgresql/<version>/bin`), a cluster
//! made by `initdb` in a temp dir owned by the `postgres` user, started inside the LAPI's
//! namespace listening on 127.0.0.1:5432 there (and on a socket in the temp dir), with a
//! role and a database for crowdsec. Nothing of the system's clusters is touched; the
//! server is stopped by pid (fast shutdown) and its directory removed on drop.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Role, database and password crowdsec uses.
pub const ROLE: &str = "crowdsec";
pub const DATABASE: &str = "crowdsec";
pub const PASSWORD: &str = "pg-test-3b1f0c";
/// Where it listens inside the LAPI's namespace.
pub const HOST: &str = "127.0.0.1";
pub const PORT: u16 = 5432;

/// The newest installed server's bin directory (`/usr/lib/postgresql/15/bin`).
pub fn bin_dir() -> Option<PathBuf> {
    let mut v: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let n: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((n, bin))
        })
        .collect();
    v.sort();
    v.pop().map(|x| x.1)
}

/// True when Debian's postgresql server and the `postgres` user are there.
pub fn installed() -> bool {
    bin_dir().is_some()
        && nix::unistd::User::from_name("postgres")
            .ok()
            .flatten()
            .is_some()
}

/// How the cluster is set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Debian's defaults (fsync on): for the benchmark's figures.
    Default,
    /// fsync and synchronous commit off: for the tests (same SQL, less waiting on disk).
    Fast,
}

pub struct Postgres {
    pub ns: String,
    pub dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Postgres {
    /// initdb, start in `ns`, wait until it answers, create the role and the database.
    pub fn start(ns: &str, d: Durability) -> Postgres {
        let bin = bin_dir().expect("postgresql installed");
        let user = nix::unistd::User::from_name("postgres")
            .unwrap()
            .expect("user postgres");
        let dir = tempfile::tempdir().unwrap();
        nix::unistd::chown(dir.path(), Some(user.uid), Some(user.gid)).unwrap();
        let data = dir.path().join("data");
        let as_pg = |program: &Path| {
            let mut c = Command::new("setpriv");
            c.args([
                "--reuid=postgres",
                "--regid=postgres",
                "--clear-groups",
                "--",
            ])
            .arg(program);
            c
        };
        let o = as_pg(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--no-sync",
                "--no-instructions",
            ])
            .output()
            .expect("initdb");
        assert!(
            o.status.success(),
            "initdb: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        let log = std::fs::File::create(dir.path().join("postgres.log")).unwrap();
        nix::unistd::chown(
            &dir.path().join("postgres.log"),
            Some(user.uid),
            Some(user.gid),
        )
        .unwrap();
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns, "setpriv"])
            .args([
                "--reuid=postgres",
                "--regid=postgres",
                "--clear-groups",
                "--",
            ])
            .arg(bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .args(["-c", &format!("listen_addresses={HOST}")])
            .args(["-c", &format!("port={PORT}")])
            .args([
                "-c",
                &format!("unix_socket_directories={}", dir.path().display()),
            ])
            // crowdsec's pool (max_open_conns 100) and cscli beside it.
            .args(["-c", "max_connections=200"]);
        if d == Durability::Fast {
            c.args(["-c", "fsync=off", "-c", "synchronous_commit=off"]);
        }
        let child = c
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("postgres");
        let pg = Postgres {
            ns: ns.to_string(),
            dir,
            child: Some(child),
        };
        let t0 = Instant::now();
        loop {
            let ok = Command::new(bin.join("pg_isready"))
                .args(["-q", "-h"])
                .arg(pg.dir.path())
                .args(["-p", &PORT.to_string()])
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "postgres did not start: {}",
                pg.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        pg.psql(&format!("CREATE ROLE {ROLE} LOGIN PASSWORD '{PASSWORD}'"));
        pg.psql(&format!("CREATE DATABASE {DATABASE} OWNER {ROLE}"));
        pg
    }

    /// `psql` as the superuser over the socket; its output (panics on failure).
    pub fn psql(&self, sql: &str) -> String {
        self.psql_in("postgres", sql)
    }

    /// `psql` in database `db` as the superuser.
    pub fn psql_in(&self, db: &str, sql: &str) -> String {
        let bin = bin_dir().unwrap();
        let o = Command::new(bin.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(self.dir.path())
            .args(["-p", &PORT.to_string(), "-U", "postgres", "-d", db])
            .args(["-c", sql])
            .output()
            .expect("psql");
        assert!(
            o.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// The postmaster's pid (`ip netns exec` and `setpriv` exec it).
    pub fn pid(&self) -> Option<i32> {
        self.child.as_ref().map(|c| c.id() as i32)
    }

    /// The crowdsec `db_config` for it.
    pub fn db_config(&self) -> String {
        format!(
            "db_config:\n  log_level: info\n  type: postgresql\n  user: {ROLE}\n  password: {PASSWORD}\n  db_name: {DATABASE}\n  host: {HOST}\n  port: {PORT}\n  sslmode: disable\n"
        )
    }

    /// Its log (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(c.id() as i32);
            // Fast shutdown; immediate if it takes too long.
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_secs(15) {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGQUIT);
            let _ = c.wait();
        }
    }
}

/// pgbouncer (Debian's `pgbouncer`) in front of a [`Postgres`], for the scale benchmark
/// (FLEET_PGBOUNCER=1): it listens on 127.0.0.1:6432 in the same namespace and keeps its
/// connections to the server (session pooling, over the server's socket), so the LAPI's
/// connections that come and go cost no server process each. Stopped by pid on drop.
pub struct PgBouncer {
    child: Option<Child>,
    dir: tempfile::TempDir,
}

/// Where pgbouncer listens inside the LAPI's namespace.
pub const BOUNCER_PORT: u16 = 6432;

impl PgBouncer {
    /// True when Debian's pgbouncer is installed.
    pub fn available() -> bool {
        Path::new("/usr/sbin/pgbouncer").is_file()
    }

    pub fn start(pg: &Postgres) -> PgBouncer {
        let user = nix::unistd::User::from_name("postgres")
            .unwrap()
            .expect("user postgres");
        let dir = tempfile::tempdir().unwrap();
        nix::unistd::chown(dir.path(), Some(user.uid), Some(user.gid)).unwrap();
        let d = dir.path().display().to_string();
        std::fs::write(
            dir.path().join("userlist.txt"),
            format!("\"{ROLE}\" \"{PASSWORD}\"\n"),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("pgbouncer.ini"),
            format!(
                "[databases]\n{DATABASE} = host={pgdir} port={PORT} dbname={DATABASE} user={ROLE}\n\
                 [pgbouncer]\nlisten_addr = {HOST}\nlisten_port = {BOUNCER_PORT}\n\
                 unix_socket_dir = {d}\nauth_type = trust\nauth_file = {d}/userlist.txt\n\
                 pool_mode = session\nmax_client_conn = 1000\ndefault_pool_size = 40\n\
                 ignore_startup_parameters = extra_float_digits\n\
                 logfile = {d}/pgbouncer.log\n",
                pgdir = pg.dir.path().display()
            ),
        )
        .unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &pg.ns, "setpriv"])
            .args([
                "--reuid=postgres",
                "--regid=postgres",
                "--clear-groups",
                "--",
                "/usr/sbin/pgbouncer",
            ])
            .arg(dir.path().join("pgbouncer.ini"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pgbouncer");
        let b = PgBouncer {
            child: Some(child),
            dir,
        };
        let t0 = Instant::now();
        while !std::fs::read_to_string(b.dir.path().join("pgbouncer.log"))
            .unwrap_or_default()
            .contains("process up")
        {
            assert!(
                t0.elapsed() < Duration::from_secs(15),
                "pgbouncer did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        b
    }

    pub fn pid(&self) -> Option<i32> {
        self.child.as_ref().map(|c| c.id() as i32)
    }

    /// The crowdsec `db_config` through it.
    pub fn db_config(&self) -> String {
        format!(
            "db_config:\n  log_level: info\n  type: postgresql\n  user: {ROLE}\n  password: {PASSWORD}\n  db_name: {DATABASE}\n  host: {HOST}\n  port: {BOUNCER_PORT}\n  sslmode: disable\n"
        )
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        if let Some(c) = self.child.take() {
            super::stop_child(c, nix::sys::signal::Signal::SIGINT, Duration::from_secs(10));
        }
    }
}
