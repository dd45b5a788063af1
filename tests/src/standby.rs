//! A streaming standby of this machine's PostgreSQL cluster, for one test: made with
//! `pg_basebackup -R` as the `postgres` user (tools/setup allows its replication connection) and
//! started on a free port, hot standby. Every database of the primary, the test's own included,
//! is replicated to it; it is stopped and removed when dropped.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, bail};

#[derive(Debug)]
pub struct Standby {
    pub port: u16,
    dir: PathBuf,
    pg_ctl: PathBuf,
}

fn as_postgres(program: &std::path::Path, args: &[&str]) -> anyhow::Result<std::process::Output> {
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

impl Standby {
    /// A standby of the cluster serving 127.0.0.1:5432, replaying from it.
    pub fn start() -> anyhow::Result<Standby> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .context("PostgreSQL's programs (/usr/lib/postgresql)")?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .max()
            .context("no PostgreSQL version in /usr/lib/postgresql")?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let dir = std::env::temp_dir().join(format!("landdb-standby-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        Command::new("chown").args(["postgres:postgres"]).arg(&dir).status()?;
        // PostgreSQL starts only on a data directory its owner alone may enter.
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
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
        Command::new("chown").args(["-R", "postgres:postgres"]).arg(&dir).status()?;
        let pg_ctl = bin.join("pg_ctl");
        let log = dir.join("standby.log").display().to_string();
        as_postgres(&pg_ctl, &["-D", &data, "-l", &log, "-w", "-t", "60", "start"])?;
        Ok(Standby { port, dir, pg_ctl })
    }

    /// The URL of `url`'s database on the standby.
    pub fn url_of(&self, url: &str) -> String {
        let mut u = url::Url::parse(url).expect("a database URL");
        u.set_port(Some(self.port)).expect("a port");
        u.to_string()
    }

    /// Stops it at once (as a crash would), or brings it back.
    pub fn stop(&self) -> anyhow::Result<()> {
        as_postgres(&self.pg_ctl, &["-D", &self.dir.display().to_string(), "-m", "immediate", "-w", "stop"]).map(|_| ())
    }
}

impl Drop for Standby {
    fn drop(&mut self) {
        let _ = self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
