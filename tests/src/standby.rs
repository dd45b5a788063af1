//! Streaming replication for tests: a standby of this machine's PostgreSQL cluster
//! ([`Standby::start`]), or a primary cluster of a test's own ([`Cluster`]), which a test may stop
//! as an outage would, with a standby of it ([`Standby::of`]). Standbys are made with
//! `pg_basebackup -R` as the `postgres` user (tools/setup allows the machine cluster's replication
//! connection) and started on a free port, hot standby. Every database of the primary is
//! replicated; each cluster is stopped and removed when dropped.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

#[derive(Debug)]
pub struct Standby {
    pub port: u16,
    dir: PathBuf,
    pg_ctl: PathBuf,
}

fn as_postgres(program: &Path, args: &[&str]) -> anyhow::Result<std::process::Output> {
    let out = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(program)
        .args(args)
        .output()
        .with_context(|| format!("runuser -u postgres -- {}", program.display()))?;
    if !out.status.success() {
        bail!("{} {args:?}: {}", program.display(), String::from_utf8_lossy(&out.stderr));
    }
    Ok(out)
}

/// The newest PostgreSQL's programs.
fn postgres_bin() -> anyhow::Result<PathBuf> {
    std::fs::read_dir("/usr/lib/postgresql")
        .context("PostgreSQL's programs (/usr/lib/postgresql)")?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .max()
        .context("no PostgreSQL version in /usr/lib/postgresql")
}

/// A free port, and an empty data directory for it that only `postgres` may enter (PostgreSQL
/// starts on no other).
fn data_directory(kind: &str) -> anyhow::Result<(u16, PathBuf)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let dir = std::env::temp_dir().join(format!("landdb-{kind}-{}-{port}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Command::new("chown").args(["postgres:postgres"]).arg(&dir).status()?;
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    Ok((port, dir))
}

/// Starts the cluster of `dir`, waiting until it takes connections.
fn start(pg_ctl: &Path, dir: &Path) -> anyhow::Result<()> {
    Command::new("chown").args(["-R", "postgres:postgres"]).arg(dir).status()?;
    let log = dir.join("server.log").display().to_string();
    as_postgres(pg_ctl, &["-D", &dir.display().to_string(), "-l", &log, "-w", "-t", "60", "start"]).map(|_| ())
}

/// Stops the cluster of `dir` at once, as a crash would.
fn stop(pg_ctl: &Path, dir: &Path) -> anyhow::Result<()> {
    as_postgres(pg_ctl, &["-D", &dir.display().to_string(), "-m", "immediate", "-w", "stop"]).map(|_| ())
}

/// A primary PostgreSQL cluster of one test's own, on a free port of the loopback (trust
/// authentication, replication allowed), with an empty database `landdb` the store migrates: a
/// test may stop it and start it again.
#[derive(Debug)]
pub struct Cluster {
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
}

impl Cluster {
    pub fn start() -> anyhow::Result<Cluster> {
        let bin = postgres_bin()?;
        let (port, dir) = data_directory("primary")?;
        let data = dir.display().to_string();
        as_postgres(&bin.join("initdb"), &["-D", &data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])?;
        let mut conf = std::fs::OpenOptions::new().append(true).open(dir.join("postgresql.conf"))?;
        std::io::Write::write_all(
            &mut conf,
            format!(
                "port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '/var/run/postgresql'\n\
                 wal_level = replica\nmax_wal_senders = 10\nshared_buffers = 64MB\nmax_connections = 200\nfsync = off\n"
            )
            .as_bytes(),
        )?;
        let cluster = Cluster { port, dir, bin };
        cluster.start_again()?;
        as_postgres(&cluster.bin.join("createdb"), &["-h", "127.0.0.1", "-p", &port.to_string(), "landdb"])?;
        Ok(cluster)
    }

    /// The URL of its database `landdb`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/landdb", self.port)
    }

    /// Stops it at once, as a crash or a pulled cable would.
    pub fn stop(&self) -> anyhow::Result<()> {
        stop(&self.bin.join("pg_ctl"), &self.dir)
    }

    /// Starts it (again), waiting until it takes connections.
    pub fn start_again(&self) -> anyhow::Result<()> {
        start(&self.bin.join("pg_ctl"), &self.dir)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Standby {
    /// A standby of the cluster serving 127.0.0.1:5432 (this machine's), replaying from it.
    pub fn start() -> anyhow::Result<Standby> {
        let bin = postgres_bin()?;
        let (port, dir) = data_directory("standby")?;
        let data = dir.display().to_string();
        as_postgres(&bin.join("pg_basebackup"), &["-D", &data, "-R", "-X", "stream", "-c", "fast"])?;
        // Debian keeps the configuration outside the data directory: the standby gets its own,
        // with the primary's access rules.
        let hba = Command::new("runuser")
            .args(["-u", "postgres", "--", "psql", "-tAc", "SHOW hba_file"])
            .output()
            .context("psql")?;
        let hba = String::from_utf8_lossy(&hba.stdout).trim().to_owned();
        std::fs::copy(&hba, dir.join("pg_hba.conf")).with_context(|| format!("copy {hba}"))?;
        std::fs::write(dir.join("pg_ident.conf"), "")?;
        std::fs::write(
            dir.join("postgresql.conf"),
            format!(
                "port = {port}\nlisten_addresses = '127.0.0.1'\nhot_standby = on\nunix_socket_directories = '/var/run/postgresql'\n\
                 shared_buffers = 64MB\nmax_connections = 100\n"
            ),
        )?;
        let pg_ctl = bin.join("pg_ctl");
        start(&pg_ctl, &dir)?;
        Ok(Standby { port, dir, pg_ctl })
    }

    /// A standby of a test's own cluster, replaying from it (and going on serving reads while it
    /// is stopped).
    pub fn of(primary: &Cluster) -> anyhow::Result<Standby> {
        let (port, dir) = data_directory("standby")?;
        let data = dir.display().to_string();
        let from = primary.port.to_string();
        as_postgres(
            &primary.bin.join("pg_basebackup"),
            &["-h", "127.0.0.1", "-p", &from, "-U", "postgres", "-D", &data, "-R", "-X", "stream", "-c", "fast"],
        )?;
        // The primary's configuration came with the copy: the standby's own port after it.
        let mut conf = std::fs::OpenOptions::new().append(true).open(dir.join("postgresql.conf"))?;
        std::io::Write::write_all(&mut conf, format!("port = {port}\nhot_standby = on\n").as_bytes())?;
        let pg_ctl = primary.bin.join("pg_ctl");
        start(&pg_ctl, &dir)?;
        Ok(Standby { port, dir, pg_ctl })
    }

    /// The URL of `url`'s database on the standby.
    pub fn url_of(&self, url: &str) -> String {
        let mut u = url::Url::parse(url).expect("a database URL");
        u.set_port(Some(self.port)).expect("a port");
        u.to_string()
    }

    /// Stops it at once, as a crash would.
    pub fn stop(&self) -> anyhow::Result<()> {
        stop(&self.pg_ctl, &self.dir)
    }
}

impl Drop for Standby {
    fn drop(&mut self) {
        let _ = self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
