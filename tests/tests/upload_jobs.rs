//! Upload jobs over real HTTP as agencies would send them: a commune-scoped uploader cannot change
//! another commune through `POST /jobs`, jobs and batches belong to the agency that uploaded them,
//! and nothing a job answers shows where the server keeps files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use landdb_access::{Area, Role};
use landdb_model::CommuneCode;
use landdb_store::ParcelStore;
use landdb_tests::http::{Server, agency, client_with, policy, samples, server};
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

/// Submits an upload; the job's id.
async fn submit(base: &str, client: &reqwest::Client, bytes: Vec<u8>, name: &str, mode: &str) -> String {
    let response = client.post(format!("{base}/jobs")).multipart(form(bytes, name, mode)).send().await.expect("post");
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
