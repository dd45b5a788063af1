//! What sealing right holders costs (issue 21): the 79,496 Đà Nẵng parcels, each given one or two
//! synthetic right holders with citizen IDs, loaded into PostGIS through the store's bulk path
//! (holders sealed and blind-indexed) beside the same parcels without holders, in one run; then
//! lookups by citizen (`versions_held_by`: the data keys in use, then the blind index) beside the
//! same lookups on a table that keeps citizen IDs in clear under a B-tree (what an unprotected
//! design would cost).
//!
//! `cargo bench -p landdb-benches --bench holders` (needs ../shared/data/danang and tools/setup).

use std::time::Instant;

use landdb_benches::{machine, timed};
use landdb_ingest::load::{accepted_parcels, store_parcels};
use landdb_model::{CitizenId, ReferenceData, RightHolder};
use landdb_store::{AnyStore, DatabaseUrl, ParcelStore};
use landdb_tests::{PostgisDb, danang_files};

/// A citizen ID for holder `n`: Đà Nẵng births, years 1940–2005, a sequence from `n`.
fn citizen_id(n: usize) -> String {
    let year = 1940 + (n % 66);
    let century = if year >= 2000 { 2 } else { 0 } + n % 2;
    format!("048{century}{:02}{:06}", year % 100, n % 1_000_000)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Some(files) = danang_files()? else { return Ok(()) };
    let reference = ReferenceData::embedded()?;
    println!("machine: {}", machine());
    let (parcels, _) = timed(|| accepted_parcels(&reference, &files, &std::env::temp_dir()));
    let bare = parcels?;
    // One holder a parcel, a second on every third; every fifth holder holds a second parcel.
    let mut holders = 0;
    let with: Vec<_> = bare
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut p = p.clone();
            let owner = if i % 5 == 4 { i - 1 } else { i };
            p.right_holders.push(RightHolder {
                name: format!("Nguyễn Văn Chủ {owner}"),
                citizen_id: Some(citizen_id(owner)),
                birth_year: Some(1940 + (owner % 66) as i16),
                address: Some(format!("Số {} Trần Phú, Hải Châu", owner % 400)),
            });
            if i % 3 == 0 {
                p.right_holders.push(RightHolder {
                    name: format!("Trần Thị Đồng Chủ {i}"),
                    citizen_id: None,
                    birth_year: None,
                    address: None,
                });
            }
            holders += p.right_holders.len();
            p
        })
        .collect();

    const BARE: &str = "no right holders";
    const SEALED: &str = "right holders, sealed";
    const CLEAR: &str = "(peer) the same holders in clear, COPY into a table of the old layout, after the parcels";
    // landdb's own CPU for sealing, alone: every holder sealed and indexed on one core.
    let key = store_key().await?;
    let (_, sealing) = timed(|| {
        for (i, p) in with.iter().enumerate() {
            for (o, h) in p.right_holders.iter().enumerate() {
                std::hint::black_box(key.seal_holder(i as i64, o as i16, h));
            }
        }
    });
    let mut rows = Vec::new();
    for round in 0..2 {
        for (label, parcels) in [(BARE, &bare), (SEALED, &with)] {
            let db = PostgisDb::create().await?;
            let store = AnyStore::open(&DatabaseUrl::parse(&db.url)?).await?;
            let start = Instant::now();
            store_parcels(&store, "danang".into(), parcels, serde_json::json!({})).await?;
            let secs = start.elapsed().as_secs_f64();
            rows.push((round, label, secs));
            if round == 1 && label == SEALED {
                lookups(&store, &reference, &with).await?;
            }
            if label == BARE {
                // The peer: the same holders in clear, as right_holder held them before sealing
                // (a primary key and no other index), copied into the database that has the parcels.
                let secs = clear_holders(&store, &with).await?;
                rows.push((round, CLEAR, secs));
            }
        }
    }
    println!("{} parcels; {holders} right holders", with.len());
    println!("| load into PostGIS (store bulk path, COPY) | round | time |");
    println!("|---|---|---|");
    for (round, label, secs) in &rows {
        println!("| {label} | {} | {secs:.2} s |", round + 1);
    }
    let of = |round: usize, label: &str| rows.iter().find(|r| r.0 == round && r.1 == label).map_or(0.0, |r| r.2);
    for round in 0..2 {
        println!(
            "round {}: with sealed holders / without: {:.2}×, {:.1} µs a holder; holders in clear: {:.1} µs a holder",
            round + 1,
            of(round, SEALED) / of(round, BARE),
            (of(round, SEALED) - of(round, BARE)) * 1e6 / holders as f64,
            of(round, CLEAR) * 1e6 / holders as f64
        );
    }
    println!(
        "sealing and indexing alone (landdb's CPU, one core): {:.2} s, {:.1} µs a holder",
        sealing.as_secs_f64(),
        sealing.as_secs_f64() * 1e6 / holders as f64
    );
    Ok(())
}

/// Lookups by citizen through the store (blind index) beside a clear B-tree in the same database.
async fn lookups(store: &AnyStore, reference: &ReferenceData, parcels: &[landdb_model::Parcel]) -> anyhow::Result<()> {
    let AnyStore::Postgres(pg) = store else { anyhow::bail!("a PostGIS store") };
    let pool = pg.pool();
    sqlx::query("CREATE TABLE clear_holder (version_id bigint NOT NULL, citizen_id text NOT NULL)")
        .execute(pool)
        .await?;
    // The same (version, citizen ID) pairs, in clear.
    let mut versions = Vec::new();
    let mut ids = Vec::new();
    let current = store.current_page(None, 1_000_000).await?;
    let by_key: std::collections::HashMap<_, _> = current.iter().map(|v| (v.parcel.key.clone(), v.id.0)).collect();
    for p in parcels {
        for h in &p.right_holders {
            if let (Some(id), Some(v)) = (&h.citizen_id, by_key.get(&p.key)) {
                versions.push(*v);
                ids.push(id.clone());
            }
        }
    }
    sqlx::query("INSERT INTO clear_holder SELECT * FROM unnest($1::bigint[], $2::text[])")
        .bind(&versions)
        .bind(&ids)
        .execute(pool)
        .await?;
    sqlx::query("CREATE INDEX ON clear_holder (citizen_id)").execute(pool).await?;
    sqlx::query("ANALYZE").execute(pool).await?;
    let asked: Vec<CitizenId> = (0..2_000)
        .map(|i| CitizenId::parse(&ids[(i * 7919) % ids.len()], reference, 2026))
        .collect::<Result<_, _>>()?;
    for round in 1..=2 {
        let start = Instant::now();
        let mut found = 0;
        for c in &asked {
            found += store.versions_held_by(c).await?.len();
        }
        let sealed = start.elapsed().as_secs_f64();
        let start = Instant::now();
        let mut clear_found = 0;
        for c in &asked {
            let v: Vec<i64> =
                sqlx::query_scalar("SELECT version_id FROM clear_holder WHERE citizen_id = $1 ORDER BY version_id")
                    .bind(c.as_str())
                    .fetch_all(pool)
                    .await?;
            clear_found += v.len();
        }
        let clear = start.elapsed().as_secs_f64();
        anyhow::ensure!(found == clear_found, "both find the same parcels ({found} and {clear_found})");
        println!(
            "lookups by citizen, round {round} ({} IDs, {found} versions found): blind index {:.0} µs each, clear B-tree {:.0} µs each, ratio {:.2}",
            asked.len(),
            sealed * 1e6 / asked.len() as f64,
            clear * 1e6 / asked.len() as f64,
            sealed / clear
        );
    }
    Ok(())
}

/// The key a fresh embedded store seals under (the user's keyring's newest).
async fn store_key() -> anyhow::Result<landdb_store::data_keys::DataKey> {
    Ok(landdb_store::data_keys::Keyring::located()?.newest()?)
}

/// Copies `parcels`' holders in clear (text COPY) into a table laid out as `right_holder` was
/// before sealing; returns the seconds it took.
async fn clear_holders(store: &AnyStore, parcels: &[landdb_model::Parcel]) -> anyhow::Result<f64> {
    let AnyStore::Postgres(pg) = store else { anyhow::bail!("a PostGIS store") };
    let pool = pg.pool();
    sqlx::query(
        "CREATE TABLE clear_right_holder (version_id bigint NOT NULL, ordinal smallint NOT NULL, name text NOT NULL, \
         citizen_id text, birth_year smallint, address text, PRIMARY KEY (version_id, ordinal))",
    )
    .execute(pool)
    .await?;
    let escape = |v: &str| v.replace('\\', "\\\\").replace('\t', "\\t").replace('\n', "\\n");
    let opt = |v: &Option<String>| v.as_deref().map_or("\\N".to_owned(), escape);
    let start = Instant::now();
    let mut text = String::new();
    for (i, p) in parcels.iter().enumerate() {
        for (o, h) in p.right_holders.iter().enumerate() {
            let year = h.birth_year.map_or("\\N".to_owned(), |y| y.to_string());
            text.push_str(&format!(
                "{i}\t{o}\t{}\t{}\t{year}\t{}\n",
                escape(&h.name),
                opt(&h.citizen_id),
                opt(&h.address)
            ));
        }
    }
    let mut conn = pool.acquire().await?;
    let mut sink = conn.copy_in_raw("COPY clear_right_holder FROM STDIN").await?;
    sink.send(text.as_bytes()).await?;
    sink.finish().await?;
    Ok(start.elapsed().as_secs_f64())
}
