//! Test support: throwaway PostGIS databases and embedded stores, each uniquely named and removed
//! when dropped, so a rerun never sees a previous run's state.
//!
//! PostGIS tests connect with `LANDDB_TEST_DATABASE_URL` (default
//! `postgres://landdb:landdb@127.0.0.1:5432/landdb`, the role `tools/setup` creates) and create
//! each database from the `landdb_template` template, which has PostGIS enabled.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::Context;
use sqlx::Connection;
use sqlx::postgres::PgConnection;

pub const DEFAULT_ADMIN_URL: &str = "postgres://landdb:landdb@127.0.0.1:5432/landdb";
pub const TEMPLATE: &str = "landdb_template";

pub mod http;
pub mod process;
pub mod proxy;
pub mod standby;

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn unique_name(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("{prefix}_{}_{nanos}_{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

pub fn admin_url() -> String {
    std::env::var("LANDDB_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned())
}

/// `url` with its database name replaced.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let prefix = base.rsplit_once('/').map_or(base, |(p, _)| p);
    match query {
        Some(q) => format!("{prefix}/{database}?{q}"),
        None => format!("{prefix}/{database}"),
    }
}

/// A PostGIS database that exists for one test.
#[derive(Debug)]
pub struct PostgisDb {
    pub url: String,
    name: String,
}

impl PostgisDb {
    pub async fn create() -> anyhow::Result<Self> {
        let admin = admin_url();
        let name = unique_name("landdb_test");
        let mut conn = PgConnection::connect(&admin).await.with_context(|| {
            format!("cannot connect to the test PostgreSQL ({admin}); run tools/setup or set LANDDB_TEST_DATABASE_URL")
        })?;
        let from_template =
            sqlx::query(&format!("CREATE DATABASE {name} TEMPLATE {TEMPLATE}")).execute(&mut conn).await;
        if from_template.is_err() {
            // No template: a superuser can still enable PostGIS in a fresh database.
            sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await?;
            let mut db = PgConnection::connect(&with_database(&admin, &name)).await?;
            sqlx::query("CREATE EXTENSION IF NOT EXISTS postgis")
                .execute(&mut db)
                .await
                .context("no landdb_template database and no right to enable PostGIS: run tools/setup")?;
        }
        Ok(Self { url: with_database(&admin, &name), name })
    }
}

impl Drop for PostgisDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs inside the test's runtime: use a thread with its own.
        let handle = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            rt.block_on(async {
                if let Ok(mut conn) = PgConnection::connect(&admin_url()).await {
                    let _ =
                        sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut conn).await;
                }
            });
        });
        let _ = handle.join();
    }
}

/// An embedded store file that exists for one test.
#[derive(Debug)]
pub struct EmbeddedDb {
    pub path: PathBuf,
}

impl EmbeddedDb {
    pub fn create() -> Self {
        Self { path: std::env::temp_dir().join(format!("{}.sqlite", unique_name("landdb_test"))) }
    }
}

impl Drop for EmbeddedDb {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut path = self.path.clone().into_os_string();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The Đà Nẵng development set, if `../shared` is beside the checkout; tests that need it skip
/// with a message otherwise.
pub fn danang_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/danang");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("skipped: {} is absent (the Đà Nẵng set is not shipped with landdb)", dir.display());
        None
    }
}

/// The Đà Nẵng GeoJSON files in name order, if the set is there (see [`danang_dir`]).
pub fn danang_files() -> std::io::Result<Option<Vec<PathBuf>>> {
    let Some(dir) = danang_dir() else { return Ok(None) };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "geojson"))
        .collect();
    files.sort();
    Ok(Some(files))
}

/// Parcels for tests: small, valid, with Vietnamese text in every text field.
pub mod fixtures {
    use geo::{Coord, LineString, MultiPolygon, Polygon};
    use landdb_model::area::geodesic_area_m2;
    use landdb_model::national_id::interior_point;
    use landdb_model::{CommuneCode, LandUseCode, NationalParcelId, Parcel, ParcelKey, ProvinceCode, RightHolder};

    /// A square parcel about 20 m across with its south-west corner at (`lon`, `lat`), and an
    /// unremarkable but precise set of coordinates (17 significant digits) to test exact round trips.
    pub fn parcel(commune: &str, sheet: &str, number: &str, lon: f64, lat: f64) -> Parcel {
        let d = 0.000_183_716_492_817_3;
        let ring = |pts: &[(f64, f64)]| LineString(pts.iter().map(|&(x, y)| Coord { x, y }).collect());
        let outer = ring(&[(lon, lat), (lon + d, lat), (lon + d, lat + d), (lon, lat + d), (lon, lat)]);
        let h = d / 4.0;
        let hole =
            ring(&[(lon + h, lat + h), (lon + h, lat + 2.0 * h), (lon + 2.0 * h, lat + 2.0 * h), (lon + h, lat + h)]);
        let geometry = MultiPolygon(vec![Polygon::new(outer, vec![hole])]);
        with_geometry(commune, sheet, number, geometry)
    }

    pub fn with_geometry(commune: &str, sheet: &str, number: &str, geometry: MultiPolygon<f64>) -> Parcel {
        let commune_code = CommuneCode::parse(commune).expect("test commune code");
        let point = interior_point(&geometry).expect("non-empty geometry");
        let mut extra = serde_json::Map::new();
        extra.insert("TenChu2".into(), "Nguyễn Thị Hường\tvà \"bà\" Đặng".into());
        extra.insert("SoVaoSo".into(), serde_json::json!({ "so": 12, "quyen": ["A\\B", null] }));
        Parcel {
            national_id: NationalParcelId::from_wgs84(point).expect("valid point"),
            key: ParcelKey::new(commune_code, sheet, number),
            commune_code_received: commune.to_owned(),
            province: ProvinceCode::parse("48").expect("valid"),
            land_use: LandUseCode::parse_list("ODT+CLN").expect("valid"),
            legal_area_m2: Some(398.7),
            measured_area_m2: Some(401.25),
            geometry_area_m2: geodesic_area_m2(&geometry),
            address: Some("Tổ 12, phường Hải Châu, thành phố Đà Nẵng\nkiệt 34/5".into()),
            certificate_no: Some("CS 0123 ĐN".into()),
            geometry,
            source_crs: Some("EPSG:5899".into()),
            extra,
            right_holders: vec![
                RightHolder {
                    name: "Trần Văn Khương".into(),
                    citizen_id: Some("048090001234".into()),
                    birth_year: Some(1968),
                    address: Some("Kiệt 5 Ông Ích Khiêm, Hải Châu".into()),
                },
                RightHolder { name: "Lê Thị Ngọc Ánh".into(), citizen_id: None, birth_year: None, address: None },
            ],
        }
    }
}

/// What keeps a store's throwaway database alive: dropping it removes the database.
#[derive(Debug)]
pub enum StoreGuard {
    Postgis(#[allow(dead_code)] PostgisDb),
    Embedded(#[allow(dead_code)] EmbeddedDb),
}

/// One store of each kind (PostGIS, embedded), each over a fresh database.
pub async fn both_stores() -> Vec<(landdb_store::AnyStore, StoreGuard)> {
    use landdb_store::{AnyStore, DatabaseUrl};
    let pg = PostgisDb::create().await.expect("PostGIS");
    let pg_store = AnyStore::open(&DatabaseUrl::parse(&pg.url).expect("url")).await.expect("open");
    let file = EmbeddedDb::create();
    let file_store = AnyStore::open(&DatabaseUrl::Sqlite(file.path.clone())).await.expect("open");
    vec![(pg_store, StoreGuard::Postgis(pg)), (file_store, StoreGuard::Embedded(file))]
}
