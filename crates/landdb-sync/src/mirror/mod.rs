//! Where a copy is kept: a PostGIS database, a GeoPackage or landdb's embedded store. Each applies a page's plan and
//! keeps the page's token in one transaction, so a copy killed at any point goes on from the
//! last page it kept, neither missing nor doubling a change.

mod embedded;
mod geopackage;
mod postgis;

use std::path::PathBuf;

use anyhow::Result;

pub use embedded::EmbeddedCopy;
pub use geopackage::GeopackageCopy;
pub use postgis::PostgisCopy;

use crate::plan::Plan;

/// A copy, by where it is kept.
#[derive(Debug)]
pub enum Copy {
    Postgis(PostgisCopy),
    Geopackage(GeopackageCopy),
    Embedded(Box<EmbeddedCopy>),
}

impl Copy {
    /// The copy `target` names: a `postgres://` URL (the parcels in `table`), a `.gpkg` path, or
    /// an embedded store (`sqlite:FILE`, or a path ending in `.sqlite`).
    pub async fn open(target: &str, table: &str) -> Result<Copy> {
        if target.starts_with("postgres://") || target.starts_with("postgresql://") {
            return Ok(Copy::Postgis(PostgisCopy::open(target, table).await?));
        }
        if target.ends_with(".gpkg") {
            let path = PathBuf::from(target);
            return Ok(Copy::Geopackage(tokio::task::spawn_blocking(move || GeopackageCopy::open(&path)).await??));
        }
        if let Some(path) = target.strip_prefix("sqlite://").or_else(|| target.strip_prefix("sqlite:")) {
            return Ok(Copy::Embedded(Box::new(EmbeddedCopy::open(&PathBuf::from(path)).await?)));
        }
        if target.ends_with(".sqlite") {
            return Ok(Copy::Embedded(Box::new(EmbeddedCopy::open(&PathBuf::from(target)).await?)));
        }
        anyhow::bail!(
            "--into {target}: give a postgres:// URL (a PostGIS database), a path ending in .gpkg (a GeoPackage), or sqlite:FILE or a path ending in .sqlite (landdb's embedded store)"
        )
    }

    pub async fn resume(&self, source: &str) -> Result<Option<String>> {
        match self {
            Copy::Postgis(c) => c.resume(source).await,
            Copy::Geopackage(c) => tokio::task::block_in_place(|| c.resume(source)),
            Copy::Embedded(c) => c.resume(source).await,
        }
    }

    pub async fn apply(&self, source: &str, plan: &Plan, next: &str) -> Result<()> {
        match self {
            Copy::Postgis(c) => c.apply(source, plan, next).await,
            Copy::Geopackage(c) => tokio::task::block_in_place(|| c.apply(source, plan, next)),
            Copy::Embedded(c) => c.apply(source, plan, next).await,
        }
    }

    pub async fn count(&self) -> Result<u64> {
        match self {
            Copy::Postgis(c) => c.count().await,
            Copy::Geopackage(c) => tokio::task::block_in_place(|| c.count()),
            Copy::Embedded(c) => c.count().await,
        }
    }
}
