//! Upload jobs over real HTTP as agencies would send them: a commune-scoped uploader cannot change
//! another commune through `POST /jobs`, jobs and batches belong to the agency that uploaded them,
//! and nothing a job answers shows where the server keeps files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use landdb_api::jobs::JobLimits;
use landdb_api::jobs::worker::WorkerLimits;
use landdb_api::upload::UploadLimits;

use landdb_access::{Area, Role};
use landdb_model::CommuneCode;
use landdb_store::ParcelStore;
use landdb_tests::http::{Server, Setup, agency, client_with, policy, samples, server, server_with};
use serde_json::Value;

const COMMUNES: [&str; 3] = ["20194", "20197", "20200"];

async fn current_by_commune(s: &Server) -> BTreeMap<String, Vec<i64>> {
    let mut out = BTreeMap::new();
    for c in COMMUNES {
        let code = CommuneCode::parse(c).expect("code");
        let mut versions: Vec<i64> =
            s.store.current_in_communes(&[code]).await.expect("current").iter().map(|e| e.version.0).collect();
        versions.sort_unstable();
        out.insert(c.to_owned(), versions);
    }
    out
}

fn form(bytes: Vec<u8>, name: &str, mode: &str) -> reqwest::multipart::Form {
    reqwest::multipart::Form::new()
        .part("file", reqwest::multipart::Part::bytes(bytes).file_name(name.to_owned()))
        .text("mode", mode.to_owned())
}

/// Posts an upload; the answer, whatever it is.
async fn post(base: &str, client: &reqwest::Client, bytes: Vec<u8>, name: &str, mode: &str) -> reqwest::Response {
    client.post(format!("{base}/jobs")).multipart(form(bytes, name, mode)).send().await.expect("post")
}

/// Submits an upload; the job's id.
async fn submit(base: &str, client: &reqwest::Client, bytes: Vec<u8>, name: &str, mode: &str) -> String {
    let response = post(base, client, bytes, name, mode).await;
    assert_eq!(response.status().as_u16(), 202);
    let job: Value = response.json().await.expect("job");
    job["id"].as_str().expect("id").to_owned()
}

/// GET as `client`: status and body text.
async fn get_text(client: &reqwest::Client, url: &str) -> (u16, String) {
    let response = client.get(url).send().await.expect("get");
    (response.status().as_u16(), response.text().await.expect("body"))
}

async fn finished(base: &str, client: &reqwest::Client, id: &str) -> (Value, String) {
    let started = std::time::Instant::now();
    loop {
        let (status, text) = get_text(client, &format!("{base}/jobs/{id}")).await;
        assert_eq!(status, 200, "{text}");
        let job: Value = serde_json::from_str(&text).expect("json");
        if job["state"] == "succeeded" || job["state"] == "failed" {
            return (job, text);
        }
        assert!(started.elapsed() < Duration::from_secs(60), "job {id} still {}", job["state"]);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The server paths no answer may contain: the temp dir, and the job upload directory under it.
fn assert_no_server_path(text: &str) {
    let tmp = std::env::temp_dir();
    let tmp = tmp.to_string_lossy();
    let tmp = tmp.trim_end_matches('/');
    assert!(!text.contains(tmp), "a server path ({tmp}) in: {text}");
    assert!(!text.contains("landdb-import-") && !text.contains("landdb-uploads-"), "{text}");
}

fn features(path: &Path) -> Vec<Value> {
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).expect("file")).expect("json");
    doc["features"].as_array().expect("features").clone()
}

/// Issue 17's critical case over HTTP: Hải Vân's uploader sends its commune plus one parcel of
/// Liên Chiểu in replace-commune mode. The job fails with an error naming the file as uploaded,
/// the feature, the commune and the area; every commune's current parcels are as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commune_uploader_cannot_replace_another_commune() {
    let files: Vec<PathBuf> = COMMUNES.iter().map(|c| samples().join(format!("{c}.geojson"))).collect();
    let s = server(&files).await;
    let token = agency(
        &s,
        "hai-van-office",
        Role::Uploader,
        policy(Role::Uploader, Area::Communes { codes: vec!["20194".into()] }, false),
    )
    .await;
    let uploader = client_with(&token);
    let mut all = features(&samples().join("20194.geojson"));
    all.push(features(&samples().join("20197.geojson")).swap_remove(3));
    let body = serde_json::json!({ "type": "FeatureCollection", "features": all }).to_string().into_bytes();
    let before = current_by_commune(&s).await;
    let head = s.store.feed_head().await.expect("head");

    let id = submit(&s.base, &uploader, body, "Hải Vân thay thế.geojson", "replace-commune").await;
    let (job, text) = finished(&s.base, &uploader, &id).await;
    assert_eq!(job["state"], "failed", "{job}");
    let error = job["error"].as_str().expect("an error");
    for part in ["Hải Vân thay thế.geojson", &format!("feature {}", all.len()), "20197", "20194"] {
        assert!(error.contains(part), "{part} missing from: {error}");
    }
    assert_no_server_path(&text);
    assert_eq!(current_by_commune(&s).await, before, "nothing retired, nothing written");
    assert_eq!(s.store.feed_head().await.expect("head"), head);
}

/// The same bytes from two agencies are two jobs with two batches; B cannot read A's job, report
/// or quarantine (the answer is the one for a job that does not exist), and nothing either sees
/// names a server path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_and_batches_belong_to_the_agency_that_uploaded() {
    let s = server(&[samples().join("20197.geojson")]).await;
    let area = || Area::Communes { codes: vec!["20194".into()] };
    let a = client_with(&agency(&s, "agency-a", Role::Uploader, policy(Role::Uploader, area(), false)).await);
    let b = client_with(&agency(&s, "agency-b", Role::Uploader, policy(Role::Uploader, area(), false)).await);
    let dirty = std::fs::read(samples().join("../dirty-geojson/20194.geojson")).expect("sample");

    let job_a = submit(&s.base, &a, dirty.clone(), "20194.geojson", "append").await;
    let (done_a, text_a) = finished(&s.base, &a, &job_a).await;
    assert_eq!(done_a["state"], "succeeded", "{done_a}");
    let job_b = submit(&s.base, &b, dirty, "20194.geojson", "append").await;
    let (done_b, text_b) = finished(&s.base, &b, &job_b).await;
    assert_eq!(done_b["state"], "succeeded", "{done_b}");
    assert_ne!(job_a, job_b);
    assert_ne!(done_a["batch"]["id"], done_b["batch"]["id"], "B got a batch of its own");
    assert_eq!(done_b["batch"]["already_imported"], false, "{done_b}");

    for (client, id, status_text) in [(&a, &job_a, &text_a), (&b, &job_b, &text_b)] {
        assert_no_server_path(status_text);
        for what in ["report", "quarantine"] {
            let (status, text) = get_text(client, &format!("{}/jobs/{id}/{what}", s.base)).await;
            assert_eq!(status, 200, "{what}: {text}");
            assert_no_server_path(&text);
            assert!(text.contains("20194.geojson"), "{what} names the file as uploaded");
        }
    }

    // B asks for A's job as for one that does not exist: same status, same body but the id.
    let missing = "1000000000000001";
    for suffix in ["", "/report", "/quarantine"] {
        let (status, text) = get_text(&b, &format!("{}/jobs/{job_a}{suffix}", s.base)).await;
        let (none_status, none_text) = get_text(&b, &format!("{}/jobs/{missing}{suffix}", s.base)).await;
        assert_eq!((status, none_status), (404, 404), "{suffix}: {text}");
        assert_eq!(text.replace(&job_a, "ID"), none_text.replace(missing, "ID"), "{suffix}");
    }
}

// Hostile uploads (issue 18): every import runs in a worker process with limits of its own, and
// uploads are bounded as they arrive.

/// A point inside a current parcel, as a lookup URL.
fn lookup_url(s: &Server) -> String {
    let view = s.engine.snapshot();
    let parcel = view.parcels().next().expect("a parcel");
    let inside = landdb_model::national_id::interior_point(&parcel.geometry()).expect("interior");
    format!("{}/parcels/at?lon={}&lat={}", s.base, inside.x(), inside.y())
}

/// Point lookups every 50 ms until `stop`: how many were asked, and the ones that did not answer
/// 200 with a parcel.
fn keep_looking_up(url: String, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<(usize, Vec<String>)> {
    tokio::spawn(async move {
        let client = landdb_tests::http::client();
        let (mut asked, mut failed) = (0, Vec::new());
        while !stop.load(Ordering::Relaxed) {
            asked += 1;
            match client.get(&url).timeout(Duration::from_secs(5)).send().await {
                Ok(r) if r.status() == 200 => {
                    let body: Value = r.json().await.unwrap_or(Value::Null);
                    if body["features"].as_array().is_none_or(Vec::is_empty) {
                        failed.push(format!("no parcel: {body}"));
                    }
                }
                Ok(r) => failed.push(format!("status {}", r.status())),
                Err(e) => failed.push(e.to_string()),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        (asked, failed)
    })
}

fn zipped(name: &str, bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut out = std::io::Cursor::new(Vec::new());
    let mut zip = zip::ZipWriter::new(&mut out);
    zip.start_file(name, zip::write::SimpleFileOptions::default()).expect("entry");
    zip.write_all(bytes).expect("write");
    zip.finish().expect("zip");
    out.into_inner()
}

fn job_dirs(s: &Server) -> Vec<PathBuf> {
    std::fs::read_dir(s.app.jobs.dir()).expect("jobs dir").map(|e| e.expect("entry").path()).collect()
}

/// Job `id` failed because its worker did (`why`), said so without a server path, wrote nothing,
/// and left no directory behind.
async fn failed_by_the_worker(
    s: &Server,
    client: &reqwest::Client,
    id: &str,
    why: &str,
    head: landdb_model::FeedPosition,
) {
    let (job, text) = finished(&s.base, client, id).await;
    assert_eq!(job["state"], "failed", "{job}");
    assert_eq!(job["cause"], "worker", "{job}");
    let error = job["error"].as_str().expect("error");
    assert!(error.contains(&format!("the import worker {why}")), "{error}");
    assert_no_server_path(&text);
    assert_eq!(s.store.feed_head().await.expect("head"), head, "nothing was written");
    assert!(job_dirs(s).is_empty(), "the job's directory is removed: {:?}", job_dirs(s));
}

/// A worker that passes a limit fails its job with the reason, and nothing else: the server
/// answers point lookups all along, the store is as before, the job's directory is gone, and the
/// next upload imports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_past_its_limits_fails_only_its_job() {
    let small_files =
        JobLimits { worker: WorkerLimits { file_bytes: 64 << 10, ..WorkerLimits::default() }, ..JobLimits::default() };
    let s = server_with(&[samples().join("20194.geojson")], Setup { limits: small_files, ..Setup::default() }).await;
    let stop = Arc::new(AtomicBool::new(false));
    let lookups = keep_looking_up(lookup_url(&s), Arc::clone(&stop));
    let head = s.store.feed_head().await.expect("head");
    let client = landdb_tests::http::client();

    // The zip's entry (about a megabyte) is more than the worker may write when it expands it.
    let geojson = std::fs::read(samples().join("20197.geojson")).expect("sample");
    let id = submit(&s.base, &client, zipped("20197.geojson", &geojson), "liên chiểu.zip", "append").await;
    failed_by_the_worker(&s, &client, &id, "tried to write a file larger than its limit of 64 KiB", head).await;

    // The same file not zipped needs no scratch file: it imports, and the engine, following the
    // store's feed, serves what the worker wrote.
    let before = s.engine.snapshot().len();
    let id = submit(&s.base, &client, geojson, "20197.geojson", "append").await;
    let (job, _) = finished(&s.base, &client, &id).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert!(job_dirs(&s).is_empty(), "{:?}", job_dirs(&s));
    let inserted = usize::try_from(job["changes"]["inserted"].as_u64().expect("inserted")).expect("count");
    let started = std::time::Instant::now();
    while s.engine.snapshot().len() != before + inserted {
        assert!(started.elapsed() < Duration::from_secs(5), "the engine did not follow the worker's batch");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    stop.store(true, Ordering::Relaxed);
    let (asked, failed) = lookups.await.expect("lookups");
    assert!(asked > 5, "only {asked} lookups");
    assert!(failed.is_empty(), "lookups failed while the worker did: {failed:?}");
}

/// A worker that spins past its CPU time is stopped by its own limit, and the job says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_past_its_cpu_time_fails_with_the_reason() {
    let one_second =
        JobLimits { worker: WorkerLimits { cpu_seconds: 1, ..WorkerLimits::default() }, ..JobLimits::default() };
    let s = server_with(&[samples().join("20194.geojson")], Setup { limits: one_second, ..Setup::default() }).await;
    let stop = Arc::new(AtomicBool::new(false));
    let lookups = keep_looking_up(lookup_url(&s), Arc::clone(&stop));
    let head = s.store.feed_head().await.expect("head");
    let client = landdb_tests::http::client();
    let id = submit(&s.base, &client, landdb_tests::http::many_parcels(5), "nặng.geojson", "append").await;
    failed_by_the_worker(&s, &client, &id, "used more than its 1 s of CPU time", head).await;
    stop.store(true, Ordering::Relaxed);
    let (_, failed) = lookups.await.expect("lookups");
    assert!(failed.is_empty(), "{failed:?}");
}

/// The head of a multipart upload of `name` (boundary `B`), and the body's opening.
fn upload_head(s: &Server, length: Option<u64>, name: &str) -> (String, Vec<u8>) {
    let host = s.base.trim_start_matches("http://");
    let framing = length.map_or_else(|| "Transfer-Encoding: chunked".to_owned(), |n| format!("Content-Length: {n}"));
    let head = format!(
        "POST /jobs HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {}\r\nContent-Type: multipart/form-data; boundary=B\r\n{framing}\r\n\r\n",
        landdb_tests::http::OPERATOR_KEY
    );
    let opening = format!(
        "--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    );
    (head, opening.into_bytes())
}

/// Reads an HTTP answer from `stream` for at most `within`: its status and text (0 for none).
async fn answer(stream: &mut (impl tokio::io::AsyncRead + Unpin), within: Duration) -> (u16, String) {
    use tokio::io::AsyncReadExt;
    let deadline = tokio::time::Instant::now() + within;
    let mut got = Vec::new();
    let mut chunk = [0_u8; 8192];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&chunk[..n]),
            _ => break,
        }
        let text = String::from_utf8_lossy(&got);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))
                .and_then(|v| v.parse::<usize>().ok());
            if length.is_some_and(|n| body.len() >= n) {
                break;
            }
        }
    }
    let text = String::from_utf8_lossy(&got).into_owned();
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, text)
}

async fn connect(s: &Server) -> tokio::net::TcpStream {
    tokio::net::TcpStream::connect(s.base.trim_start_matches("http://")).await.expect("connect")
}

/// Sizes and times are held as the body arrives: a declared size over the limit is a 413 before
/// a byte of the body is sent; a body that passes the limit is a 413 as it passes (the client has
/// not finished); a stalled body is a 408 after the idle limit, a trickling one after the total
/// limit; nothing stays on disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_are_bounded_as_they_arrive() {
    use tokio::io::AsyncWriteExt;
    let limits = JobLimits {
        upload: UploadLimits { max_bytes: 1 << 20, idle: Duration::from_secs(1), total: Duration::from_secs(3) },
        ..JobLimits::default()
    };
    let s = server_with(&[samples().join("20194.geojson")], Setup { limits, ..Setup::default() }).await;

    // 5 GiB declared: refused from the head alone.
    let mut stream = connect(&s).await;
    let (head, _) = upload_head(&s, Some(5 << 30), "big.geojson");
    stream.write_all(head.as_bytes()).await.expect("head");
    let started = std::time::Instant::now();
    let (status, text) = answer(&mut stream, Duration::from_secs(5)).await;
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("larger than this server takes (1 MiB)"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(1), "answered at once");

    // No length declared: a 413 once the body passes 1 MiB, though the body goes on.
    let mut stream = connect(&s).await;
    let (head, opening) = upload_head(&s, None, "big.geojson");
    stream.write_all(head.as_bytes()).await.expect("head");
    let mut body = opening;
    body.extend(std::iter::repeat_n(b' ', (1 << 20) + 4096));
    stream.write_all(format!("{:x}\r\n", body.len()).as_bytes()).await.expect("chunk");
    stream.write_all(&body).await.expect("chunk");
    stream.write_all(b"\r\n").await.expect("chunk");
    let (status, text) = answer(&mut stream, Duration::from_secs(5)).await;
    assert_eq!(status, 413, "{text}");

    // A body that stops: 408 after the idle limit.
    let mut stream = connect(&s).await;
    let (head, opening) = upload_head(&s, Some(100_000), "slow.geojson");
    stream.write_all(head.as_bytes()).await.expect("head");
    stream.write_all(&opening).await.expect("opening");
    let started = std::time::Instant::now();
    let (status, text) = answer(&mut stream, Duration::from_secs(10)).await;
    assert_eq!(status, 408, "{text}");
    assert!(text.contains("no data for 1 s"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());

    // A body that trickles a byte every half second: 408 after the total limit.
    let mut stream = connect(&s).await;
    let (head, opening) = upload_head(&s, Some(100_000), "slow.geojson");
    stream.write_all(head.as_bytes()).await.expect("head");
    stream.write_all(&opening).await.expect("opening");
    let started = std::time::Instant::now();
    let (mut read, mut write) = stream.into_split();
    let trickle = tokio::spawn(async move {
        for _ in 0..40 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            if write.write_all(b" ").await.is_err() {
                break;
            }
        }
    });
    let (status, text) = answer(&mut read, Duration::from_secs(10)).await;
    trickle.abort();
    assert_eq!(status, 408, "{text}");
    assert!(text.contains("took longer than 3 s"), "{text}");
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(3) && took < Duration::from_secs(6), "{took:?}");

    assert!(job_dirs(&s).is_empty(), "nothing stays on disk: {:?}", job_dirs(&s));
}

/// An agency has at most its limit of uploads at once (429 with Retry-After past it, a place
/// again when one ends), and the same upload while it is being imported is a 409 naming the job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_at_once_are_limited_per_agency_and_never_doubled() {
    use tokio::io::AsyncWriteExt;
    let limits = JobLimits {
        upload: UploadLimits { idle: Duration::from_secs(30), ..UploadLimits::default() },
        per_agency: 2,
        workers: 1,
        ..JobLimits::default()
    };
    let s = server_with(&[samples().join("20194.geojson")], Setup { limits, ..Setup::default() }).await;
    let client = landdb_tests::http::client();
    let liên_chiểu = std::fs::read(samples().join("20197.geojson")).expect("sample");

    // The first import, and the same upload again while it is queued or running: 409.
    let first = submit(&s.base, &client, liên_chiểu.clone(), "20197.geojson", "append").await;
    let again = post(&s.base, &client, liên_chiểu.clone(), "20197.geojson", "append").await;
    assert_eq!(again.status().as_u16(), 409);
    let text = again.text().await.expect("body");
    assert!(text.contains(&format!("already being imported (job {first})")), "{text}");
    let (job, _) = finished(&s.base, &client, &first).await;
    assert_eq!(job["state"], "succeeded", "{job}");

    // Two uploads being received (stalled): the third is refused with when to come back.
    let mut stalled = Vec::new();
    for _ in 0..2 {
        let mut stream = connect(&s).await;
        let (head, opening) = upload_head(&s, Some(100_000), "stalled.geojson");
        stream.write_all(head.as_bytes()).await.expect("head");
        stream.write_all(&opening).await.expect("opening");
        stalled.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    // (A small body: the refusal comes before the server reads it, and a client still writing a
    // large one would see the connection closed instead of the answer.)
    let small = br#"{"type":"FeatureCollection","features":[]}"#.to_vec();
    let third = post(&s.base, &client, small.clone(), "again.geojson", "append").await;
    assert_eq!(third.status().as_u16(), 429);
    assert!(third.headers().get("retry-after").is_some(), "{:?}", third.headers());
    let text = third.text().await.expect("body");
    assert!(text.contains("2 uploads being received, queued or running"), "{text}");

    // One of them goes away: there is room again.
    drop(stalled.pop());
    let started = std::time::Instant::now();
    loop {
        let response = post(&s.base, &client, small.clone(), "again.geojson", "append").await;
        if response.status().as_u16() == 202 {
            break;
        }
        assert_eq!(response.status().as_u16(), 429);
        assert!(started.elapsed() < Duration::from_secs(5), "the place was not freed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The import workers of server `s` running now (tests run side by side: each server's workers
/// are children of this process working in that server's job directories).
fn workers(s: &Server) -> Vec<u32> {
    let me = std::process::id().to_string();
    let jobs = s.app.jobs.dir().to_owned();
    std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            // /proc/PID/stat: "pid (comm) state ppid …"
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
            let Some((comm, rest)) = stat.split_once(") ") else { return false };
            comm.ends_with("(landdb-job-work")
                && rest.split(' ').nth(1) == Some(me.as_str())
                && std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd.starts_with(&jobs))
        })
        .collect()
}

/// A worker killed from outside (the kernel's OOM killer, an operator) fails its job with the
/// signal; nothing was written, its directory is removed, the server goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_fails_its_job_with_the_signal() {
    let s = server(&[samples().join("20194.geojson")]).await;
    let stop = Arc::new(AtomicBool::new(false));
    let lookups = keep_looking_up(lookup_url(&s), Arc::clone(&stop));
    let head = s.store.feed_head().await.expect("head");
    let client = landdb_tests::http::client();
    let id = submit(&s.base, &client, landdb_tests::http::many_parcels(5), "nặng.geojson", "append").await;
    let started = std::time::Instant::now();
    let worker = loop {
        if let Some(pid) = workers(&s).first() {
            break *pid;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "no worker started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let killed = std::process::Command::new("kill").args(["-KILL", &worker.to_string()]).status().expect("kill");
    assert!(killed.success());
    failed_by_the_worker(&s, &client, &id, "was killed by signal 9 (SIGKILL)", head).await;
    stop.store(true, Ordering::Relaxed);
    let (_, failed) = lookups.await.expect("lookups");
    assert!(failed.is_empty(), "{failed:?}");
}

/// Two workers with the same upload at the same time (two servers, or a server and an operator):
/// one commits it, the other says so instead of a raw unique-constraint error, and the parcels are
/// imported once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_with_the_same_upload_import_it_once() {
    use landdb_api::jobs::worker::{Assignment, Cause};
    let s = server(&[samples().join("20194.geojson")]).await;
    let upload = landdb_tests::http::many_parcels(5);
    let runs: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|name| {
            let dir = std::env::temp_dir().join(format!("landdb-same-upload-{}-{name}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("dir");
            std::fs::write(dir.join("nhieu.geojson"), &upload).expect("upload");
            let assignment = Assignment {
                database: s.db.url.clone(),
                reference_dir: None,
                file: "nhieu.geojson".into(),
                shown: "nhiều.geojson".into(),
                agency: "operator".into(),
                mode: "append".into(),
                area: None,
                limits: WorkerLimits::default(),
                server: std::process::id(),
            };
            tokio::task::spawn_blocking(move || {
                let result = landdb_tests::http::job_worker().run(&assignment, &dir, &|_| {});
                let _ = std::fs::remove_dir_all(&dir);
                result
            })
        })
        .collect();
    // Either both are loading when the first commits (the second is refused, naming the other
    // job), or the second starts after it (and finds the batch): imported once either way.
    let (mut committed, mut found, mut refused) = (0, 0, Vec::new());
    for run in runs {
        match run.await.expect("worker") {
            Ok(finished) if finished.already_imported => found += 1,
            Ok(_) => committed += 1,
            Err(failure) => refused.push(failure),
        }
    }
    assert_eq!(committed, 1, "{refused:?}");
    assert_eq!(found + refused.len(), 1, "{refused:?}");
    for failure in &refused {
        assert_eq!(failure.cause, Cause::Input, "{refused:?}");
        assert!(failure.error.contains("by another job, which committed it first"), "{refused:?}");
    }
}
