//! Where a copy is kept: a PostGIS database or a GeoPackage. Each applies a page's plan and
//! keeps the page's token in one transaction, so a copy killed at any point goes on from the
//! last page it kept, neither missing nor doubling a change.

mod geopackage;
mod postgis;

use std::path::PathBuf;

use anyhow::Result;

pub use geopackage::GeopackageCopy;
pub use postgis::PostgisCopy;

use crate::plan::Plan;

/// A copy, by where it is kept.
#[derive(Debug)]
pub enum Copy {
    Postgis(PostgisCopy),
    Geopackage(GeopackageCopy),
}

impl Copy {
    /// The copy `target` names: a `postgres://` URL (the parcels in `table`) or a `.gpkg` path.
    pub async fn open(target: &str, table: &str) -> Result<Copy> {
        if target.starts_with("postgres://") || target.starts_with("postgresql://") {
            return Ok(Copy::Postgis(PostgisCopy::open(target, table).await?));
        }
        if target.ends_with(".gpkg") {
            let path = PathBuf::from(target);
            return Ok(Copy::Geopackage(tokio::task::spawn_blocking(move || GeopackageCopy::open(&path)).await??));
        }
        anyhow::bail!("--into {target}: give a postgres:// URL (a PostGIS database) or a path ending in .gpkg")
    }

    pub async fn resume(&self, source: &str) -> Result<Option<String>> {
        match self {
            Copy::Postgis(c) => c.resume(source).await,
            Copy::Geopackage(c) => tokio::task::block_in_place(|| c.resume(source)),
        }
    }

    pub async fn apply(&self, source: &str, plan: &Plan, next: &str) -> Result<()> {
        match self {
            Copy::Postgis(c) => c.apply(source, plan, next).await,
            Copy::Geopackage(c) => tokio::task::block_in_place(|| c.apply(source, plan, next)),
        }
    }

    pub async fn count(&self) -> Result<u64> {
        match self {
            Copy::Postgis(c) => c.count().await,
            Copy::Geopackage(c) => tokio::task::block_in_place(|| c.count()),
        }
    }
}
