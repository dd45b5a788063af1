//! The `landdb` program itself, as an operator runs it: commands that run to their end, and
//! `landdb serve` processes that a test talks to over HTTP and stops as a service manager would.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A program of the workspace, built beside the test (`cargo test --workspace` builds them).
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    // target/debug/deps/<test> → target/debug/<name>
    let dir = exe.parent().and_then(Path::parent).expect("target directory");
    let path = dir.join(name);
    assert!(path.exists(), "{} is not built: run `cargo build -p {name}` (tools/test builds it)", path.display());
    path
}

/// Runs the generator (`landdb-gen generate ARGS --format geojson --out DIR`): the GeoJSON files
/// it added to `dir`, in name order.
pub fn generate(dir: &Path, args: &[&str]) -> Vec<PathBuf> {
    let geojson = || -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> =
            std::fs::read_dir(dir).map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect()).unwrap_or_default();
        files.retain(|p| p.extension().is_some_and(|x| x == "geojson"));
        files.sort();
        files
    };
    let before = geojson();
    let status = Command::new(binary("landdb-gen"))
        .arg("generate")
        .args(args)
        .args(["--format", "geojson", "--out"])
        .arg(dir)
        .stderr(Stdio::null())
        .status()
        .expect("landdb-gen runs");
    assert!(status.success(), "landdb-gen generate {args:?}");
    geojson().into_iter().filter(|f| !before.contains(f)).collect()
}

/// Runs `landdb` with `args` to its end; its standard output, or a panic with what it said.
pub fn landdb(args: &[&str]) -> String {
    let out = Command::new(binary("landdb")).args(args).output().expect("landdb runs");
    assert!(
        out.status.success(),
        "landdb {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A `landdb serve` process on a free port of the loopback, killed if the test ends without
/// stopping it.
#[derive(Debug)]
pub struct Serving {
    pub base: String,
    child: Child,
}

impl Serving {
    /// Starts `landdb ARGS --listen …` (ARGS: the global options, `serve` and its own) and waits
    /// until it answers `/health`.
    pub async fn start(args: &[&str]) -> Serving {
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("port").port();
        let listen = format!("127.0.0.1:{port}");
        let log = std::env::temp_dir().join(format!("landdb-serve-{}-{port}.log", std::process::id()));
        let child = Command::new(binary("landdb"))
            .args(args)
            .args(["--listen", &listen])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("a log file"))
            .spawn()
            .expect("landdb serve starts");
        let mut serving = Serving { base: format!("http://{listen}"), child };
        let started = Instant::now();
        loop {
            if let Ok(r) = reqwest::get(format!("{}/health", serving.base)).await
                && r.status().is_success()
            {
                return serving;
            }
            if let Ok(Some(status)) = serving.child.try_wait() {
                panic!("landdb serve exited ({status}): {}", std::fs::read_to_string(&log).unwrap_or_default());
            }
            assert!(started.elapsed() < Duration::from_secs(60), "landdb serve never answered: {}", log.display());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops it as a service manager does (SIGTERM): it finishes its answers and writes what its
    /// audit log holds before it exits.
    pub async fn stop(mut self) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
        assert!(sent.success());
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("its status") {
                assert!(status.success(), "landdb serve exited with {status}");
                return;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "landdb serve did not stop within 30 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
