//! A national load (issue 22): `landdb import` given the files of several provinces imports one
//! batch a province, several at once over connections of their own, with the change feed whole
//! (each batch's changes together, in commit order) and history kept. A province whose files
//! fail leaves the store without it while the others commit; the same command again imports
//! only what is missing.

use std::path::{Path, PathBuf};
use std::process::Command;

use landdb_tests::PostgisDb;
use landdb_tests::process::binary;
use sqlx::Connection;

/// Generated files of `province` (two communes of 150 parcels) written into `dir`.
fn generate(dir: &Path, province: &str) -> Vec<PathBuf> {
    landdb_tests::process::generate(dir, &["--province", province, "--communes", "2", "--parcels-per-commune", "150"])
}

/// The current parcels the batches of `province` wrote.
async fn current(conn: &mut sqlx::PgConnection, province: &str) -> Result<i64, sqlx::Error> {
    let sql = "SELECT count(*) FROM parcel_version v JOIN import_batch b ON b.id = v.batch_id \
               WHERE v.valid_to IS NULL AND b.province_code = $1";
    sqlx::query_scalar(sql).bind(province).fetch_one(conn).await
}

fn import(url: &str, keys: &Path, dir: &Path) -> std::process::Output {
    Command::new(binary("landdb"))
        .args(["--database", url, "--data-keys"])
        .arg(keys)
        .args(["import", "--connections", "2"])
        .arg(dir)
        .output()
        .expect("landdb runs")
}

/// Every committed batch: id, province, began, committed.
async fn batches(
    conn: &mut sqlx::PgConnection,
) -> Vec<(i64, Option<String>, chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>)> {
    sqlx::query_as(
        "SELECT id, province_code, started_at, committed_at FROM import_batch WHERE committed_at IS NOT NULL ORDER BY id",
    )
    .fetch_all(conn)
    .await
    .expect("batches")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_national_load_is_a_batch_a_province_several_at_once_and_resumes_after_a_failure() {
    let dir = std::env::temp_dir().join(format!("landdb-national-load-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let data = dir.join("deliveries");
    std::fs::create_dir_all(&data).expect("scratch");
    let keys = dir.join("data.keys");
    let mut files = Vec::new();
    for province in ["01", "48", "79"] {
        files.push(generate(&data, province));
    }

    // Three provinces, two at a time: a batch each, two of them open at once.
    let db = PostgisDb::create().await.expect("database");
    let out = import(&db.url, &keys, &data);
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{said}{}", String::from_utf8_lossy(&out.stderr));
    assert!(said.contains("3 provinces' deliveries, 2 at a time"), "{said}");
    let mut conn = sqlx::PgConnection::connect(&db.url).await.expect("connection");
    let all = batches(&mut conn).await;
    let provinces: Vec<&str> = all.iter().filter_map(|b| b.1.as_deref()).collect();
    assert_eq!(provinces.len(), 3, "{all:?}");
    let overlapping = all.iter().enumerate().any(|(i, a)| all[i + 1..].iter().any(|b| a.2 < b.3 && b.2 < a.3));
    assert!(overlapping, "two batches open at once, over two connections: {all:?}");
    for province in ["01", "48", "79"] {
        assert!(current(&mut conn, province).await.expect("count") >= 300, "{province}");
    }
    // The feed: a change for every version, each batch's changes together, in commit order.
    let feed: Vec<(i64, i64)> = sqlx::query_as("SELECT seq, batch_id FROM parcel_change ORDER BY seq")
        .fetch_all(&mut conn)
        .await
        .expect("feed");
    let versions: i64 =
        sqlx::query_scalar("SELECT count(*) FROM parcel_version").fetch_one(&mut conn).await.expect("count");
    assert_eq!(feed.len() as i64, versions, "a change for every version");
    let mut order: Vec<i64> = feed.iter().map(|f| f.1).collect();
    order.dedup();
    let mut by_commit = all.clone();
    by_commit.sort_by_key(|b| b.3);
    assert_eq!(
        order,
        by_commit.iter().map(|b| b.0).collect::<Vec<_>>(),
        "each batch's changes together, in commit order"
    );
    drop(conn);
    drop(db);

    // Ho Chi Minh City's second file cut short: its delivery fails whole, the others commit.
    let db = PostgisDb::create().await.expect("database");
    let cut = files[2][1].clone();
    let whole = std::fs::read(&cut).expect("the file");
    std::fs::write(&cut, &whole[..whole.len() / 2]).expect("cut");
    let out = import(&db.url, &keys, &data);
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "a failed province fails the command: {said}");
    assert!(said.contains("1 of 3 deliveries failed (province 79"), "{said}");
    assert!(said.contains(&cut.file_name().expect("name").to_string_lossy().into_owned()), "the file is named: {said}");
    let mut conn = sqlx::PgConnection::connect(&db.url).await.expect("connection");
    let provinces: Vec<Option<String>> = batches(&mut conn).await.into_iter().map(|b| b.1).collect();
    assert_eq!(provinces.len(), 2, "{provinces:?}");
    assert_eq!(current(&mut conn, "79").await.expect("count"), 0, "nothing of the failed province");

    // Mended, the same command again: the committed provinces are found by their content and
    // left as they are; only Ho Chi Minh City is imported.
    std::fs::write(&cut, &whole).expect("mend");
    let out = import(&db.url, &keys, &data);
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{said}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(said.matches("already imported").count(), 2, "{said}");
    assert!(current(&mut conn, "79").await.expect("count") >= 300);
    let _ = std::fs::remove_dir_all(&dir);
}
