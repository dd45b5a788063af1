//! A copy kept in a GeoPackage (through GDAL): a `parcels` layer (the usual properties as
//! columns, every property as the feed sent it in `properties`, the boundary) and a
//! `landdb_sync` table with the token to resume from, written in the same transaction as the
//! page it follows. QGIS and ArcGIS open it as it is.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use gdal::vector::{Feature, Geometry, LayerAccess, LayerOptions, OGRFieldType, OGRwkbGeometryType};
use gdal::{Dataset, DatasetOptions, DriverManager, GdalOpenFlags};

use crate::plan::Plan;

const LAYER: &str = "parcels";
/// The properties kept as columns of their own (every one is in `properties` too).
const TEXT_COLUMNS: [&str; 4] = ["national_id", "commune", "sheet", "number"];

#[derive(Debug)]
pub struct GeopackageCopy {
    path: PathBuf,
}

fn open(path: &Path) -> Result<Dataset> {
    Dataset::open_ex(
        path,
        DatasetOptions {
            open_flags: GdalOpenFlags::GDAL_OF_UPDATE | GdalOpenFlags::GDAL_OF_VECTOR,
            ..Default::default()
        },
    )
    .with_context(|| format!("cannot open {} as a GeoPackage", path.display()))
}

/// Text as an SQL literal.
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn sql(dataset: &Dataset, statement: &str) -> Result<()> {
    dataset
        .execute_sql(statement, None, gdal::vector::sql::Dialect::DEFAULT)
        .with_context(|| format!("GeoPackage statement failed: {statement}"))?;
    Ok(())
}

impl GeopackageCopy {
    /// The copy in the GeoPackage at `path`, made if there is none.
    pub fn open(path: &Path) -> Result<GeopackageCopy> {
        if !path.exists() {
            let driver = DriverManager::get_driver_by_name("GPKG")?;
            let mut dataset = driver
                .create_vector_only(path)
                .with_context(|| format!("cannot create the GeoPackage {}", path.display()))?;
            let srs = gdal::spatial_ref::SpatialRef::from_epsg(4326)?;
            let layer = dataset.create_layer(LayerOptions {
                name: LAYER,
                srs: Some(&srs),
                ty: OGRwkbGeometryType::wkbMultiPolygon,
                options: None,
            })?;
            let mut columns = vec![("version", OGRFieldType::OFTInteger64)];
            columns.extend(TEXT_COLUMNS.map(|c| (c, OGRFieldType::OFTString)));
            columns.extend([
                ("area_m2", OGRFieldType::OFTReal),
                ("properties", OGRFieldType::OFTString),
                ("generation", OGRFieldType::OFTInteger64),
            ]);
            layer.create_defn_fields(&columns)?;
            let state = dataset.create_layer(LayerOptions {
                name: "landdb_sync",
                srs: None,
                ty: OGRwkbGeometryType::wkbNone,
                options: None,
            })?;
            state.create_defn_fields(&[
                ("source", OGRFieldType::OFTString),
                ("token", OGRFieldType::OFTString),
                ("generation", OGRFieldType::OFTInteger64),
            ])?;
            sql(&dataset, "CREATE UNIQUE INDEX parcels_version ON parcels (version)")?;
        }
        open(path)?;
        Ok(GeopackageCopy { path: path.to_owned() })
    }

    /// The token to go on from, when the copy follows `source`.
    pub fn resume(&self, source: &str) -> Result<Option<String>> {
        let dataset = open(&self.path)?;
        let mut state = dataset.layer_by_name("landdb_sync")?;
        let Some(row) = state.features().next() else { return Ok(None) };
        let followed = row.field_as_string(row.field_index("source")?)?.unwrap_or_default();
        if followed != source {
            bail!("{} is a copy of {followed}, not of {source}: give another file", self.path.display());
        }
        Ok(row.field_as_string(row.field_index("token")?)?)
    }

    /// Applies `plan` and keeps `next` with it, in one transaction.
    pub fn apply(&self, source: &str, plan: &Plan, next: &str) -> Result<()> {
        let mut dataset = open(&self.path)?;
        let tx = dataset.start_transaction()?;
        let generation: i64 = {
            let mut state = tx.layer_by_name("landdb_sync")?;
            let held = state
                .features()
                .next()
                .and_then(|f| f.field_index("generation").ok().and_then(|i| f.field_as_integer64(i).ok().flatten()));
            held.unwrap_or(0) + i64::from(plan.reset)
        };
        // The removals, and the versions about to be written again.
        let gone: Vec<String> =
            plan.removals.iter().chain(plan.upserts.iter().map(|(v, _)| v)).map(i64::to_string).collect();
        for chunk in gone.chunks(500) {
            sql(&tx, &format!("DELETE FROM parcels WHERE version IN ({})", chunk.join(",")))?;
        }
        {
            let layer = tx.layer_by_name(LAYER)?;
            for (version, feature) in &plan.upserts {
                let mut f = Feature::new(layer.defn())?;
                let geometry = Geometry::from_geojson(&feature["geometry"].to_string())
                    .with_context(|| format!("the boundary of version {version}"))?;
                f.set_geometry(geometry)?;
                f.set_field_integer64(f.field_index("version")?, *version)?;
                let properties = &feature["properties"];
                for column in TEXT_COLUMNS {
                    if let Some(v) = properties[column].as_str() {
                        f.set_field_string(f.field_index(column)?, v)?;
                    }
                }
                if let Some(a) = properties["area_m2"].as_f64() {
                    f.set_field_double(f.field_index("area_m2")?, a)?;
                }
                f.set_field_string(f.field_index("properties")?, &properties.to_string())?;
                f.set_field_integer64(f.field_index("generation")?, generation)?;
                f.create(&layer).with_context(|| format!("cannot write version {version}"))?;
            }
        }
        if plan.sweep {
            sql(&tx, &format!("DELETE FROM parcels WHERE generation < {generation}"))?;
        }
        sql(&tx, "DELETE FROM landdb_sync")?;
        sql(
            &tx,
            &format!(
                "INSERT INTO landdb_sync (source, token, generation) VALUES ({}, {}, {generation})",
                literal(source),
                literal(next)
            ),
        )?;
        tx.commit().map_err(|e| anyhow!("cannot commit the page to {}: {e}", self.path.display()))?;
        Ok(())
    }

    /// Parcels in the copy.
    pub fn count(&self) -> Result<u64> {
        let dataset = open(&self.path)?;
        let layer = dataset.layer_by_name(LAYER)?;
        Ok(layer.feature_count())
    }
}
