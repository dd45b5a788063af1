//! The `landdb` binary as an operator runs it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use landdb_tests::PostgisDb;

fn landdb(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_landdb"))
        .args(args)
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .output()
        .expect("landdb runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn samples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data-samples/geojson")
}

/// How many features the sample files hold, counted independently of landdb.
fn sample_feature_count() -> usize {
    std::fs::read_dir(samples())
        .expect("samples")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "geojson"))
        .map(|e| std::fs::read_to_string(e.path()).expect("readable").matches("\"type\":\"Feature\"").count())
        .sum()
}

fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("landdb-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

#[test]
fn help_lists_the_subcommands() {
    let out = landdb(&std::env::temp_dir(), &["--help"]);
    assert!(out.status.success());
    for command in ["import", "validate", "status", "demo", "reference", "serve", "export"] {
        assert!(stdout(&out).contains(command), "{command} missing from:\n{}", stdout(&out));
        let sub = landdb(&std::env::temp_dir(), &[command, "--help"]);
        assert!(sub.status.success(), "{command} --help: {}", stderr(&sub));
    }
}

/// `landdb demo` loads the samples and changes one parcel (a second version, nothing retired)
/// once; run again, it changes nothing. It ends with commands that run when pasted into a shell.
#[test]
fn demo_works_with_no_database_and_only_once() {
    let dir = scratch_dir("demo");
    let samples = samples();
    let samples = samples.to_str().expect("utf-8 path");
    let first = landdb(&dir, &["demo", "--samples", samples]);
    assert!(first.status.success(), "{}", stderr(&first));
    let n = sample_feature_count();
    assert!(stdout(&first).contains(&format!("{n} of {n} records imported, 0 quarantined")), "{}", stdout(&first));
    assert!(stdout(&first).contains("1 updated") && stdout(&first).contains("0 retired"), "{}", stdout(&first));
    assert!(stdout(&first).contains(&format!("current parcels: {n}")), "{}", stdout(&first));
    assert!(dir.join("landdb.sqlite").exists(), "the embedded store is the default");
    // The samples' changes, and one parcel superseded (two changes).
    let feed = |out: &Output| stdout(out).lines().find(|l| l.starts_with("feed position:")).map(str::to_owned);
    assert_eq!(feed(&first), Some(format!("feed position:   {}", n + 2)), "{}", stdout(&first));

    let again = landdb(&dir, &["demo", "--samples", samples]);
    assert!(again.status.success());
    assert!(stdout(&again).contains("already loaded") && stdout(&again).contains(&format!("current parcels: {n}")));
    assert!(!stdout(&again).contains("committed"), "{}", stdout(&again));
    assert_eq!(feed(&again), feed(&first), "nothing changed");

    let out = stdout(&again);
    let tries: Vec<&str> = out.lines().skip_while(|l| *l != "try this:").skip(1).map(str::trim).collect();
    assert!(tries.iter().any(|l| l.contains(" demo --serve")), "{out}");
    let exported = tries.iter().find(|l| l.contains(" export ")).unwrap_or_else(|| panic!("no export in {out}"));
    for line in tries.iter().filter(|l| !l.contains("--serve")) {
        let ran =
            Command::new("sh").args(["-c", line]).current_dir(&dir).env_remove("DATABASE_URL").output().expect("sh");
        assert!(ran.status.success(), "{line}: {}", stderr(&ran));
    }
    let file = exported.split_whitespace().skip_while(|w| *w != "--out").nth(1).expect("--out FILE");
    assert!(std::fs::metadata(dir.join(file)).is_ok_and(|m| m.len() > 0), "{exported} wrote nothing");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A plain HTTP GET (HTTP/1.0, so the server closes the connection): status line and body.
fn http_get(address: &str, path: &str, key: &str) -> (String, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).expect("connect");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\nAuthorization: Bearer {key}\r\n\r\n").expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    (head.lines().next().unwrap_or_default().to_owned(), body.to_owned())
}

type Lines = std::io::Lines<std::io::BufReader<std::process::ChildStdout>>;

/// `landdb demo --serve` in `dir` on a free port with `args`: the process, the rest of its
/// output, and everything it printed up to the line that says it is serving.
fn demo_server_printing(dir: &Path, args: &[&std::ffi::OsStr]) -> (std::process::Child, Lines, Vec<String>) {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_landdb"))
        .args(["demo", "--serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("landdb runs");
    let mut lines = std::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut printed = Vec::new();
    for line in lines.by_ref().map_while(Result::ok) {
        let serving = line.starts_with("stop with Ctrl-C");
        printed.push(line);
        if serving {
            break;
        }
    }
    (child, lines, printed)
}

/// `landdb demo --serve` in `dir` on a free port with `args`: the process, the rest of its
/// output, its address and the demo key it printed.
fn demo_server(dir: &Path, args: &[&std::ffi::OsStr]) -> (std::process::Child, Lines, String, String) {
    let (child, lines, printed) = demo_server_printing(dir, args);
    let (address, key) = address_and_key(&printed);
    (child, lines, address, key)
}

/// The server's address (host:port) and the demo key, from what `landdb demo --serve` printed.
fn address_and_key(printed: &[String]) -> (String, String) {
    let printed_as =
        |label: &str| printed.iter().find_map(|l| l.trim().strip_prefix(label).map(|v| v.trim().to_owned()));
    let landing = printed_as("landing page:").unwrap_or_else(|| panic!("no landing page address in {printed:#?}"));
    let key = printed_as("demo key:").unwrap_or_else(|| panic!("no demo key in {printed:#?}"));
    (landing.trim_start_matches("http://").trim_end_matches('/').to_owned(), key)
}

/// The quick start: `landdb demo --serve` on a machine with no database server serves the
/// samples over HTTP to the demo key it prints, and a SIGTERM stops it cleanly, writing its
/// snapshot and every audit entry.
#[test]
fn demo_serves_the_samples_from_the_embedded_store_and_stops_cleanly() {
    let dir = scratch_dir("serve");
    let samples = samples();
    let (mut child, lines, address, key) =
        demo_server(&dir, &["--snapshot".as_ref(), "engine.snap".as_ref(), "--samples".as_ref(), samples.as_os_str()]);
    let (status, _) = http_get(&address, "/collections/parcels/items?limit=2", "not-a-key");
    assert!(status.contains("401"), "{status}");
    let (status, body) = http_get(&address, "/collections/parcels/items?limit=2", &key);
    assert!(status.contains("200"), "{status}: {body}");
    let page: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(page["numberMatched"].as_u64(), Some(sample_feature_count() as u64));
    assert_eq!(page["features"].as_array().map(Vec::len), Some(2));
    let (status, _) = http_get(&address, "/collections/parcels/items?limit=2&colour=red", &key);
    assert!(status.contains("400"), "{status}");

    let stopped = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(stopped.success());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let exit = child.wait().expect("exits");
    assert!(exit.success(), "{exit:?}");
    assert!(rest.iter().any(|l| l.contains("snapshot written")), "{rest:?}");
    assert!(dir.join("engine.snap").exists());
    // Both requests of the demo key are on record, in an intact chain.
    let verified = landdb(&dir, &["audit", "verify"]);
    assert!(verified.status.success(), "{}", stderr(&verified));
    assert!(stdout(&verified).contains("intact: 2 entries"), "{}", stdout(&verified));
    let shown = stdout(&landdb(&dir, &["audit", "show", "--agency", "demo"]));
    assert_eq!(shown.lines().count(), 2, "{shown}");
    assert!(shown.contains("\"status\":400") && shown.contains("\"parcels\":2"), "{shown}");
    // An entry edited behind the log's back (its trigger dropped first) is named.
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let url = format!("sqlite://{}", dir.join("landdb.sqlite").display());
        let db = sqlx::SqlitePool::connect(&url).await.expect("open the store file");
        let edit = "UPDATE audit_entry SET parcels = 0 WHERE seq = 1";
        assert!(sqlx::query(edit).execute(&db).await.is_err(), "the log is append-only");
        sqlx::query("DROP TRIGGER audit_entry_no_update").execute(&db).await.expect("drop the trigger");
        sqlx::query(edit).execute(&db).await.expect("edit");
        db.close().await;
    });
    let broken = landdb(&dir, &["audit", "verify"]);
    assert!(!broken.status.success());
    assert!(stderr(&broken).contains("audit entry 1: its content does not match its hash"), "{}", stderr(&broken));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every address `landdb demo --serve` prints answers 200 to the key it prints, and every one that
/// asks for parcels finds some: the lookups (a point in WGS84 and in the samples' TM-3 zone, a
/// national ID, a natural key) find the parcel whose history is printed, the history has two
/// versions, the "try this" lines are ones a shell takes as they are.
#[test]
fn every_address_the_demo_prints_answers_with_parcels() {
    let dir = scratch_dir("addresses");
    let samples = samples();
    let (child, _lines, printed) = demo_server_printing(&dir, &["--samples".as_ref(), samples.as_os_str()]);
    let mut server = Server(child);
    let (address, key) = address_and_key(&printed);
    // Every http:// address on every line, as a shell would read it (quotes are not part of it).
    let urls: Vec<&str> = printed
        .iter()
        .flat_map(|l| l.match_indices("http://").map(move |(at, _)| &l[at..]))
        .map(|from| from.split(|c: char| c.is_whitespace() || c == '\'').next().unwrap_or(from))
        .collect();
    for wanted in ["/parcels/at?lon=", "/parcels/at?x=", "/parcels/national-id/", "/parcels/key/", "/history"] {
        assert!(urls.iter().any(|u| u.contains(wanted)), "no {wanted} address in {printed:#?}");
    }
    // The "try this" lines as a shell reads them: the key in curl's header, an address printed.
    let tries: Vec<&str> = printed.iter().filter_map(|l| l.trim_start().strip_prefix("curl ")).collect();
    assert!(!tries.is_empty(), "no curl line in {printed:#?}");
    for args in tries {
        let words = Command::new("sh").args(["-c", &format!("printf '%s\\n' {args}")]).output().expect("sh runs");
        let words: Vec<String> = stdout(&words).lines().map(str::to_owned).collect();
        let header = format!("Authorization: Bearer {key}");
        assert!(words.windows(2).any(|w| w[0] == "-H" && w[1] == header), "curl {args}: {words:?}");
        assert!(words.iter().any(|w| urls.contains(&w.as_str())), "curl {args}: {words:?}");
    }

    let mut parcel_of_history = None;
    let mut found_by_lookups = Vec::new();
    for url in &urls {
        let path = url.strip_prefix(&format!("http://{address}")).unwrap_or_else(|| panic!("{url} is not {address}"));
        // The fragment stays in the browser (the map keeps the key from it).
        let path = path.split('#').next().unwrap_or(path);
        let (status, body) = http_get(&address, path, &key);
        assert!(status.contains("200"), "{url}: {status}: {body}");
        if ["/", "/map", "/upload", "/api"].contains(&path) {
            continue;
        }
        let answer: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{url}: {e}: {body}"));
        if path.ends_with("/history") {
            let versions = answer["versions"].as_array().map_or(0, Vec::len);
            assert!(versions >= 2, "{url}: {versions} versions: {answer}");
            parcel_of_history = path.split('/').nth(4).and_then(|v| v.parse::<u64>().ok());
            continue;
        }
        let features = answer["features"].as_array().cloned().unwrap_or_default();
        assert!(!features.is_empty(), "{url} answers no feature: {answer}");
        if path.starts_with("/parcels/") {
            found_by_lookups.push((url, features.iter().filter_map(|f| f["id"].as_u64()).collect::<Vec<_>>()));
        }
    }
    let parcel = parcel_of_history.expect("the history was read");
    for (url, found) in &found_by_lookups {
        assert!(found.contains(&parcel), "{url} finds {found:?}, not version {parcel} whose history is printed");
    }

    let stopped = Command::new("kill").args(["-TERM", &server.0.id().to_string()]).status().expect("kill");
    assert!(stopped.success());
    assert!(server.0.wait().expect("exits").success());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A server process, killed when dropped: a failing test leaves none running.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A multipart upload (HTTP/1.0, so the server closes the connection): status line and body.
fn http_upload(address: &str, key: &str, name: &str, content: &[u8]) -> (String, String) {
    use std::io::{Read, Write};
    let mut body = format!(
        "--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(content);
    body.extend_from_slice(b"\r\n--B--\r\n");
    let mut stream = std::net::TcpStream::connect(address).expect("connect");
    write!(
        stream,
        "POST /jobs HTTP/1.0\r\nHost: {address}\r\nAuthorization: Bearer {key}\r\nContent-Type: multipart/form-data; boundary=B\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .expect("send");
    stream.write_all(&body).expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    (head.lines().next().unwrap_or_default().to_owned(), body.to_owned())
}

/// Uploads run in `landdb job-run`, a process of their own: through `landdb demo --serve` on the
/// embedded store (which the worker writes across processes while the server reads it), an
/// upload imports, the server's engine serves its parcels, and the job's directory is gone.
#[test]
fn an_upload_imports_in_a_worker_process_and_is_served() {
    let dir = scratch_dir("worker");
    let jobs = dir.join("jobs");
    let first_commune = samples().join("20194.geojson");
    let (mut child, _lines, address, key) =
        demo_server(&dir, &["--samples".as_ref(), first_commune.as_os_str(), "--jobs-dir".as_ref(), jobs.as_os_str()]);
    let matched = || {
        let (_, body) = http_get(&address, "/collections/parcels/items?limit=1", &key);
        serde_json::from_str::<serde_json::Value>(&body).expect("JSON")["numberMatched"].as_u64().expect("count")
    };
    let before = matched();
    let upload = std::fs::read(samples().join("20200.geojson")).expect("sample");
    let added = String::from_utf8_lossy(&upload).matches("\"type\":\"Feature\"").count() as u64;
    let (status, body) = http_upload(&address, &key, "20200.geojson", &upload);
    assert!(status.contains("202"), "{status}: {body}");
    let id = serde_json::from_str::<serde_json::Value>(&body).expect("JSON")["id"].as_str().expect("id").to_owned();
    let started = std::time::Instant::now();
    let job = loop {
        let (_, body) = http_get(&address, &format!("/jobs/{id}"), &key);
        let job: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        if job["state"] == "succeeded" || job["state"] == "failed" {
            break job;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(120), "{job}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["changes"]["inserted"].as_u64(), Some(added), "{job}");
    // The engine follows the store's feed: the worker's parcels are served within seconds.
    let started = std::time::Instant::now();
    while matched() != before + added {
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "{} of {}", matched(), before + added);
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let left: Vec<_> = std::fs::read_dir(&jobs)
        .expect("jobs dir")
        .flat_map(|server| std::fs::read_dir(server.expect("entry").path()).expect("server dir"))
        .collect();
    assert!(left.is_empty(), "job directories left: {left:?}");

    let stopped = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(stopped.success());
    assert!(child.wait().expect("exits").success());
    let _ = std::fs::remove_dir_all(&dir);
}

/// The processes whose parent is `parent`, with their command lines.
fn children_of(parent: u32) -> Vec<(u32, String)> {
    std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let ppid: u32 = stat.rsplit_once(") ")?.1.split(' ').nth(1)?.parse().ok()?;
            let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).ok()?.replace('\0', " ");
            (ppid == parent).then_some((pid, cmdline))
        })
        .collect()
}

/// Whether `pid` has ended (gone, or a zombie nobody has reaped yet).
fn ended(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_or(true, |stat| stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z')))
}

/// A server killed with SIGKILL in the middle of an import: its worker stops on its own (nobody
/// would read its outcome; the batch rolls back), and the next server removes the job
/// directories the dead one left.
#[test]
fn a_killed_servers_worker_stops_and_its_job_directory_is_swept() {
    let dir = scratch_dir("killed-server");
    let jobs = dir.join("jobs");
    let first_commune = samples().join("20194.geojson");
    let args = ["--samples".as_ref(), first_commune.as_os_str(), "--jobs-dir".as_ref(), jobs.as_os_str()];
    let (mut server, _lines, address, key) = demo_server(&dir, &args);
    let (status, body) = http_upload(&address, &key, "nhiều.geojson", &landdb_tests::http::many_parcels(5));
    assert!(status.contains("202"), "{status}: {body}");
    let started = std::time::Instant::now();
    let worker = loop {
        if let Some((pid, _)) = children_of(server.id()).into_iter().find(|(_, cmd)| cmd.contains("job-run")) {
            break pid;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(20), "no worker started");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let left = || std::fs::read_dir(&jobs).expect("jobs dir").count();
    assert_eq!(left(), 1, "the server's job directories");
    let killed = Command::new("kill").args(["-KILL", &server.id().to_string()]).status().expect("kill");
    assert!(killed.success());
    let _ = server.wait();
    let started = std::time::Instant::now();
    while !ended(worker) {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "the worker outlived its server: {}",
            std::fs::read_to_string(format!("/proc/{worker}/stat")).unwrap_or_default()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(left(), 1, "a killed server cannot clean up after itself");

    let (mut next, _lines, address, key) = demo_server(&dir, &args);
    // Serving (and so listening for SIGTERM) before it is asked to stop.
    assert!(http_get(&address, "/ready", &key).0.contains("200"));
    let directories: Vec<_> = std::fs::read_dir(&jobs).expect("jobs dir").map(|e| e.expect("entry").path()).collect();
    assert_eq!(directories.len(), 1, "only the new server's: {directories:?}");
    assert!(
        directories[0].file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(&format!("{}-", next.id()))),
        "{directories:?}"
    );
    let stopped = Command::new("kill").args(["-TERM", &next.id().to_string()]).status().expect("kill");
    assert!(stopped.success());
    assert!(next.wait().expect("exits").success());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Agencies and keys from the command line: a key printed alone on the last line (for scripts),
/// listed without its secret, revoked; bad areas and unknown agencies refused by name.
#[test]
fn agencies_keys_and_audit_from_the_command_line() {
    let dir = scratch_dir("access");
    let added = landdb(
        &dir,
        &[
            "agency",
            "add",
            "tax-danang",
            "--title",
            "Cục Thuế",
            "--role",
            "reader",
            "--communes",
            "20194,20197",
            "--features-per-day",
            "5000",
            "--purpose",
            "Luật Quản lý thuế",
        ],
    );
    assert!(added.status.success(), "{}", stderr(&added));
    let refused = landdb(
        &dir,
        &["agency", "add", "x", "--title", "X", "--role", "reader", "--communes", "99999", "--purpose", "p"],
    );
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("99999"), "{}", stderr(&refused));
    let created = landdb(&dir, &["key", "create", "tax-danang"]);
    assert!(created.status.success(), "{}", stderr(&created));
    let out = stdout(&created);
    let key = out.lines().last().expect("a line").to_owned();
    assert_eq!(out.lines().count(), 1, "the key alone on standard output: {out}");
    let id = key.strip_prefix("landdb_").and_then(|r| r.split('_').next()).expect("a landdb key").to_owned();
    assert_eq!(key.len(), "landdb_".len() + 16 + 1 + 64);
    let listed = stdout(&landdb(&dir, &["key", "list"]));
    assert!(listed.contains(&id) && !listed.contains(&key[24..]), "{listed}");
    assert!(landdb(&dir, &["key", "revoke", &id]).status.success());
    assert!(stdout(&landdb(&dir, &["key", "list", "tax-danang"])).contains("\"usable\":false"));
    let missing = landdb(&dir, &["key", "create", "no-such-agency"]);
    assert!(!missing.status.success() && stderr(&missing).contains("no-such-agency"));
    let listed = stdout(&landdb(&dir, &["agency", "list"]));
    assert!(listed.contains("\"features_per_day\":5000"), "{listed}");
}

/// `landdb export` writes a commune's parcels, and all of them, as GeoJSON, GeoPackage, DXF and
/// zipped Shapefile files that GDAL reads with the right feature counts.
#[test]
fn export_writes_geojson_that_gdal_reads() {
    let dir = scratch_dir("export");
    let samples = samples();
    assert!(landdb(&dir, &["demo", "--samples", samples.to_str().expect("utf-8")]).status.success());
    let in_file = |name: &str| {
        std::fs::read_to_string(samples.join(name)).expect("sample").matches("\"type\":\"Feature\"").count()
    };
    for (args, expected) in [
        (vec!["export", "--out", "one.geojson", "--commune", "20194"], in_file("20194.geojson")),
        (vec!["export", "--out", "all.geojson"], sample_feature_count()),
        (vec!["export", "--out", "one.gpkg", "--commune", "20194"], in_file("20194.geojson")),
        (vec!["export", "--out", "one.dxf", "--commune", "20194", "--crs", "EPSG:9210"], in_file("20194.geojson")),
        (vec!["export", "--out", "one.zip", "--commune", "20194", "--format", "shp"], in_file("20194.geojson")),
    ] {
        let out = landdb(&dir, &args);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(stdout(&out).contains(&format!("{expected} parcels")), "{}", stdout(&out));
        let source = if args[2].ends_with(".zip") {
            std::ffi::OsString::from(format!("/vsizip/{}/parcels.shp", dir.join(args[2]).display()))
        } else {
            dir.join(args[2]).into_os_string()
        };
        let info = Command::new("ogrinfo").args(["-ro", "-so", "-al"]).arg(&source).output().expect("ogrinfo");
        assert!(stdout(&info).contains(&format!("Feature Count: {expected}")), "{}", stdout(&info));
    }
    let bad = landdb(&dir, &["export", "--out", "x.geojson", "--bbox", "1,2,3"]);
    assert!(!bad.status.success() && stderr(&bad).contains("bbox=1,2,3"), "{}", stderr(&bad));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_down_database_gets_one_clear_error_without_its_password() {
    let out = landdb(&std::env::temp_dir(), &["status", "--database", "postgres://landdb:s3cret@127.0.0.1:1/landdb"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("cannot reach PostgreSQL") && err.contains("tools/setup"), "{err}");
    assert!(!err.contains("s3cret"), "{err}");
}

#[test]
fn reference_data_can_be_replaced_by_an_operator() {
    let dir = scratch_dir("reference");
    std::fs::write(dir.join("provinces.csv"), "code,name\n48,Thành phố Đà Nẵng\n").expect("write");
    let out = landdb(&dir, &["reference", "--reference-dir", "."]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("provinces:       1"), "{}", stdout(&out));
    assert!(stdout(&out).contains("communes:        3321"), "{}", stdout(&out));
    std::fs::write(dir.join("communes.csv"), "code,name,province_code\n123456,Bad,48\n").expect("write");
    let out = landdb(&dir, &["reference", "--reference-dir", "."]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("communes.csv, line 2"), "{}", stderr(&out));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn import_into_postgis_from_database_url() {
    let db = PostgisDb::create().await.expect("throwaway PostGIS");
    let dir = scratch_dir("postgis");
    let samples = samples();
    let out = Command::new(env!("CARGO_BIN_EXE_landdb"))
        .args(["import", samples.to_str().expect("utf-8")])
        .env("DATABASE_URL", &db.url)
        .current_dir(&dir)
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", stderr(&out));
    let status =
        Command::new(env!("CARGO_BIN_EXE_landdb")).arg("status").env("DATABASE_URL", &db.url).output().expect("runs");
    let n = sample_feature_count();
    assert!(
        stdout(&status).contains("postgis") && stdout(&status).contains(&format!("current parcels: {n}")),
        "{}",
        stdout(&status)
    );
    assert!(!dir.join("landdb.sqlite").exists(), "no embedded store when a database is given");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A large upload: the demo communes repeated with other sheet numbers.
fn large_upload(dir: &Path, copies: u32) -> PathBuf {
    let original = samples().join("20194.geojson");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(original).expect("sample")).expect("JSON");
    let mut features = Vec::new();
    for copy in 0..copies {
        for f in doc["features"].as_array().expect("features") {
            let mut f = f.clone();
            let sheet = f["properties"]["SoHieuToBanDo"].as_u64().expect("sheet");
            f["properties"]["SoHieuToBanDo"] = (sheet + 100 * u64::from(copy)).into();
            features.push(f);
        }
    }
    let path = dir.join("20194.geojson");
    std::fs::write(&path, serde_json::json!({ "type": "FeatureCollection", "features": features }).to_string())
        .expect("write");
    path
}

/// `landdb import` of a large upload into a throwaway PostGIS, once it is seen loading: the
/// database (kept alive), the scratch folder, a connection to the database, and the process (its
/// error output piped).
async fn large_import_loading(name: &str) -> (PostgisDb, PathBuf, sqlx::PgConnection, std::process::Child) {
    use sqlx::Connection;
    let db = PostgisDb::create().await.expect("throwaway PostGIS");
    let dir = scratch_dir(name);
    let upload = large_upload(&dir, 12);
    let mut conn = sqlx::PgConnection::connect(&db.url).await.expect("connect");
    let mut child = Command::new(env!("CARGO_BIN_EXE_landdb"))
        .args(["import", upload.to_str().expect("utf-8")])
        .env("DATABASE_URL", &db.url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("runs");
    assert!(seen_loading(&mut conn, &mut child).await, "the import was never seen loading");
    (db, dir, conn, child)
}

/// Whether `child`'s import was seen copying parcels into the database within two minutes.
async fn seen_loading(conn: &mut sqlx::PgConnection, child: &mut std::process::Child) -> bool {
    let started = std::time::Instant::now();
    while started.elapsed() < std::time::Duration::from_secs(120) {
        let copying: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'COPY parcel_version%'",
        )
        .fetch_one(&mut *conn)
        .await
        .expect("activity");
        if copying > 0 {
            return true;
        }
        if child.try_wait().expect("status").is_some() {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    false
}

/// The database connection lost in the middle of a load: the error is the database's, not blamed
/// on the file ("cannot open …/20194.geojson: the import stopped"), and nothing remains.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_lost_mid_load_is_reported_as_such() {
    let (_db, dir, mut conn, child) = large_import_loading("terminated").await;
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .execute(&mut conn)
    .await
    .expect("terminate");
    let out = child.wait_with_output().expect("finishes");
    let message = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{message}");
    assert!(!message.contains("the import stopped") && !message.contains("cannot open"), "{message}");
    let parcels: i64 =
        sqlx::query_scalar("SELECT count(*) FROM parcel_version").fetch_one(&mut conn).await.expect("count");
    assert_eq!(parcels, 0, "nothing of the batch remains");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `kill -9` in the middle of the load: the store is as it was, and the same import then succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_killed_mid_load_leaves_nothing() {
    let (db, dir, mut conn, mut child) = large_import_loading("killed").await;
    child.kill().expect("kill -9");
    child.wait().expect("reaped");
    // The server notices the dead client and rolls its transaction back.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let (parcels, batches): (i64, i64) =
        sqlx::query_as("SELECT (SELECT count(*) FROM parcel_version), (SELECT count(*) FROM import_batch)")
            .fetch_one(&mut conn)
            .await
            .expect("counts");
    assert_eq!((parcels, batches), (0, 0), "nothing of the killed batch remains");

    let out = Command::new(env!("CARGO_BIN_EXE_landdb"))
        .args(["import", dir.join("20194.geojson").to_str().expect("utf-8")])
        .env("DATABASE_URL", &db.url)
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("committed"), "{}", stdout(&out));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `kill -9` in the middle of a load into the embedded store: SQLite's write-ahead log holds the
/// uncommitted batch, which is discarded when the file is opened again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_killed_mid_load_leaves_the_embedded_store_as_it_was() {
    let dir = scratch_dir("killed-embedded");
    let upload = large_upload(&dir, 12);
    let store = dir.join("landdb.sqlite");
    let wal = dir.join("landdb.sqlite-wal");
    // A first, small import that must survive.
    let first = landdb(&dir, &["import", samples().join("20197.geojson").to_str().expect("utf-8")]);
    assert!(first.status.success(), "{}", stderr(&first));
    let committed = std::fs::metadata(&wal).map_or(0, |m| m.len());

    let mut child = Command::new(env!("CARGO_BIN_EXE_landdb"))
        .args(["import", upload.to_str().expect("utf-8")])
        .current_dir(&dir)
        .env_remove("DATABASE_URL")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("runs");
    // Loading: the log has grown by some megabytes of uncommitted pages.
    let started = std::time::Instant::now();
    let mut loading = false;
    while started.elapsed() < std::time::Duration::from_secs(120) {
        if std::fs::metadata(&wal).is_ok_and(|m| m.len() > committed + 4_000_000) {
            loading = true;
            break;
        }
        if child.try_wait().expect("status").is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(loading, "the import was never seen loading");
    child.kill().expect("kill -9");
    child.wait().expect("reaped");

    let status = landdb(&dir, &["status"]);
    assert!(status.status.success(), "{}", stderr(&status));
    let url = format!("sqlite://{}", store.display());
    let store =
        landdb_store::AnyStore::open(&landdb_store::DatabaseUrl::parse(&url).expect("url")).await.expect("open");
    use landdb_store::ParcelStore;
    let before: u64 = store.count_current().await.expect("count");
    let expected =
        stdout(&first).split_whitespace().skip_while(|w| *w != "committed:").nth(1).and_then(|n| n.parse().ok());
    assert_eq!(Some(before), expected, "only the first import remains");
    assert!(store.batch(landdb_model::BatchId(2)).await.expect("batch").is_none(), "no trace of the killed batch");
    drop(store);

    let again = landdb(&dir, &["import", upload.to_str().expect("utf-8")]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(stdout(&again).contains("committed"), "{}", stdout(&again));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Checkpoints from the command line: a key made once (owner-only), the head signed into an
/// append-only file, verified against it; then the tail of the log cut and its head moved back
/// (consistent to the chain alone), which the checkpoint names; and an edited checkpoint line.
#[test]
fn audit_checkpoints_from_the_command_line() {
    use landdb_store::AccessStore;
    let dir = scratch_dir("checkpoints");
    let store_file = dir.join("landdb.sqlite");
    let database = format!("sqlite://{}", store_file.display());
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let event = |i: i64| landdb_access::AuditEvent {
        at: landdb_access::AuditEvent::new_at(chrono::Utc::now()),
        agency: "tax".into(),
        key_id: "0123456789abcdef".into(),
        method: "GET".into(),
        endpoint: "/parcels/at".into(),
        params: format!("lon={i}"),
        purpose: "Luật Đất đai 2024".into(),
        status: 200,
        parcels: 1,
        personal: Vec::new(),
        versions: vec![1000 + i],
        communes: vec![20_281],
    };
    let append = |range: std::ops::RangeInclusive<i64>| {
        runtime.block_on(async {
            let url = landdb_store::DatabaseUrl::Sqlite(store_file.clone());
            let store = landdb_store::AnyStore::open(&url).await.expect("store");
            store.append_audit(&range.map(event).collect::<Vec<_>>()).await.expect("entries");
        });
    };
    append(1..=3);
    let run = |args: &[&str]| {
        let mut all = vec!["--database", database.as_str()];
        all.extend_from_slice(args);
        landdb(&dir, &all)
    };

    let made = landdb(&dir, &["audit", "keygen", "--out", "signing.key"]);
    assert!(made.status.success(), "{}", stderr(&made));
    let public = stdout(&made).trim().to_owned();
    assert_eq!(public.len(), 64, "{public}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("signing.key")).expect("key").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the secret key is its owner's only");
    }
    let again = landdb(&dir, &["audit", "keygen", "--out", "signing.key"]);
    assert!(!again.status.success(), "an existing key is never replaced");

    let signed = run(&["audit", "checkpoint", "--key", "signing.key", "--to", "checkpoints.log"]);
    assert!(signed.status.success(), "{}", stderr(&signed));
    append(4..=6);
    let signed = run(&["audit", "checkpoint", "--key", "signing.key", "--to", "checkpoints.log"]);
    assert!(signed.status.success(), "{}", stderr(&signed));
    let file = std::fs::read_to_string(dir.join("checkpoints.log")).expect("checkpoints");
    assert_eq!(file.lines().count(), 2, "{file}");
    assert!(file.lines().nth(1).is_some_and(|l| l.starts_with("6 ")), "{file}");

    let verify = |public: &str| run(&["audit", "verify", "--checkpoints", "checkpoints.log", "--public-key", public]);
    let ok = verify(&public);
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert!(stdout(&ok).contains("intact: 6 entries") && stdout(&ok).contains("2 checkpoints hold"), "{}", stdout(&ok));
    let by_file = verify("signing.key.pub");
    assert!(by_file.status.success(), "the public key from its file: {}", stderr(&by_file));
    let shown = stdout(&run(&["audit", "show", "--parcel", "1005"]));
    assert!(shown.contains("\"agency\":\"tax\"") && shown.contains("\"endpoint\":\"/parcels/at\""), "{shown}");
    assert_eq!(shown.lines().count(), 1, "{shown}");

    // The administrator cuts entries 5 and 6 and moves the head back to entry 4.
    runtime.block_on(async {
        let db = sqlx::SqlitePool::connect(&database).await.expect("open the store file");
        for t in ["audit_entry_no_delete", "audit_disclosure_no_delete"] {
            sqlx::query(&format!("DROP TRIGGER {t}")).execute(&db).await.expect("drop the trigger");
        }
        sqlx::raw_sql(
            "DELETE FROM audit_entry WHERE seq > 4; DELETE FROM audit_disclosure WHERE seq > 4;
             UPDATE audit_head SET seq = 4, hash = (SELECT hash FROM audit_entry WHERE seq = 4)",
        )
        .execute(&db)
        .await
        .expect("rewind");
        db.close().await;
    });
    // Alone, the chain holds: nothing in the database remembers entries 5 and 6.
    assert!(run(&["audit", "verify"]).status.success());
    let caught = verify(&public);
    assert!(!caught.status.success());
    assert!(
        stderr(&caught).contains("checkpoint at line 2") && stderr(&caught).contains("now ends at entry 4"),
        "{}",
        stderr(&caught)
    );
    // The signer refuses to witness the rewound log.
    let refused = run(&["audit", "checkpoint", "--key", "signing.key", "--to", "checkpoints.log"]);
    assert!(
        !refused.status.success() && stderr(&refused).contains("behind the last checkpoint"),
        "{}",
        stderr(&refused)
    );

    // An edited checkpoint line, and a key that did not sign them.
    let lines: Vec<&str> = file.lines().collect();
    let edited = format!("{}\n{}\n", lines[0], lines[1].replacen("6 ", "4 ", 1));
    std::fs::write(dir.join("edited.log"), edited).expect("write");
    let edited = run(&["audit", "verify", "--checkpoints", "edited.log", "--public-key", &public]);
    assert!(!edited.status.success() && stderr(&edited).contains("line 2"), "{}", stderr(&edited));
    let other = landdb(&dir, &["audit", "keygen", "--out", "other.key"]);
    let wrong = verify(stdout(&other).trim());
    assert!(!wrong.status.success() && stderr(&wrong).contains("line 1: "), "{}", stderr(&wrong));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A file that cannot be read whole fails `validate` and `import` (exit status 1), the message
/// naming the file and why; nothing is imported. A file that is read, even with every record
/// rejected, is a report and success.
#[test]
fn validate_and_import_fail_on_a_file_that_cannot_be_read_whole() {
    let dir = scratch_dir("hostile");
    let hostile = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data-samples/hostile");
    for (file, says) in [
        ("two-collections.geojson", "more text after the FeatureCollection"),
        ("empty-collection.geojson", "no features could be read"),
        ("truncated.dxf", "the file is truncated"),
        ("symlink.zip", "is a symbolic link"),
        ("one-byte.gpkg", "not a readable GeoPackage file"),
    ] {
        let path = hostile.join(file);
        let path = path.to_str().expect("utf-8");
        for args in [vec!["validate", path], vec!["--database", "store.sqlite", "import", path]] {
            let out = landdb(&dir, &args);
            assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stdout(&out));
            assert!(stderr(&out).contains(file) && stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
        }
    }
    let status = landdb(&dir, &["--database", "store.sqlite", "status"]);
    assert!(stdout(&status).contains("current parcels: 0"), "{}", stdout(&status));
    let rejected = hostile.join("wrong-types.geojson");
    let out = landdb(&dir, &["validate", rejected.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("7 wrong_type"), "{}", stdout(&out));
    let _ = std::fs::remove_dir_all(&dir);
}
