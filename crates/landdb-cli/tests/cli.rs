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
    for command in ["load", "status", "demo", "reference"] {
        assert!(stdout(&out).contains(command), "{command} missing from:\n{}", stdout(&out));
    }
}

#[test]
fn demo_works_with_no_database_and_only_once() {
    let dir = scratch_dir("demo");
    let samples = samples();
    let samples = samples.to_str().expect("utf-8 path");
    let first = landdb(&dir, &["demo", "--samples", samples]);
    assert!(first.status.success(), "{}", stderr(&first));
    let n = sample_feature_count();
    assert!(stdout(&first).contains(&format!("{n} of {n} records loaded")), "{}", stdout(&first));
    assert!(stdout(&first).contains(&format!("current parcels: {n}")), "{}", stdout(&first));
    assert!(dir.join("landdb.sqlite").exists(), "the embedded store is the default");

    let again = landdb(&dir, &["demo", "--samples", samples]);
    assert!(again.status.success());
    assert!(stdout(&again).contains("already loaded") && stdout(&again).contains(&format!("current parcels: {n}")));
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
async fn load_into_postgis_from_database_url() {
    let db = PostgisDb::create().await.expect("throwaway PostGIS");
    let dir = scratch_dir("postgis");
    let samples = samples();
    let out = Command::new(env!("CARGO_BIN_EXE_landdb"))
        .args(["load", samples.to_str().expect("utf-8")])
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
