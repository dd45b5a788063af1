//! Exports in the formats surveyors' and GIS desktop tools open, written through GDAL: GeoPackage,
//! Shapefile (zipped, with a UTF-8 `.cpg` so that Vietnamese names survive), and DXF (CAD, the
//! boundaries only, one layer a commune). GeoJSON is streamed instead (`export`).
//!
//! A file is written whole to a scratch directory and then sent: GDAL writes files, not streams.

use std::io::Write;
use std::path::{Path, PathBuf};

use gdal::DriverManager;
use gdal::spatial_ref::{AxisMappingStrategy, SpatialRef};
use gdal::vector::{Feature, LayerAccess, LayerOptions, OGRFieldType, OGRwkbGeometryType, ToGdal};
use landdb_engine::{Parcel, View};

use crate::crs::OutputCrs;
use crate::export::Selection;
use crate::features::Field;
use crate::ogc::ApiError;
use crate::scope::ReleasedSelection;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    GeoJson,
    GeoPackage,
    Shapefile,
    Dxf,
}

impl Format {
    /// The format an `f` parameter (or a file extension) names.
    pub fn parse(raw: &str) -> Option<Format> {
        Some(match raw.to_ascii_lowercase().as_str() {
            "json" | "geojson" => Format::GeoJson,
            "gpkg" | "geopackage" => Format::GeoPackage,
            "shp" | "shapefile" | "zip" => Format::Shapefile,
            "dxf" => Format::Dxf,
            _ => return None,
        })
    }

    pub fn media_type(self) -> &'static str {
        match self {
            Format::GeoJson => "application/geo+json",
            Format::GeoPackage => "application/geopackage+sqlite3",
            Format::Shapefile => "application/zip",
            Format::Dxf => "image/vnd.dxf",
        }
    }

    /// The name of the file sent.
    pub fn file_name(self) -> &'static str {
        match self {
            Format::GeoJson => "parcels.geojson",
            Format::GeoPackage => "parcels.gpkg",
            Format::Shapefile => "parcels-shp.zip",
            Format::Dxf => "parcels.dxf",
        }
    }

    fn driver(self) -> &'static str {
        match self {
            Format::GeoJson => "GeoJSON",
            Format::GeoPackage => "GPKG",
            Format::Shapefile => "ESRI Shapefile",
            Format::Dxf => "DXF",
        }
    }
}

/// A field's name in the file: Shapefile names have at most ten characters.
fn column(field: Field, format: Format) -> &'static str {
    match (field, format) {
        (Field::NationalId, Format::Shapefile) => "nat_id",
        (f, _) => f.name(),
    }
}

fn failed(what: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(&format!("cannot write the export ({what}): {e}"))
}

/// The coordinate system of the file, as GDAL takes it.
fn spatial_ref(crs: &OutputCrs) -> Result<SpatialRef, ApiError> {
    let made = match crs.definition() {
        None => SpatialRef::from_epsg(4326),
        Some(d) => match d.strip_prefix("EPSG:").and_then(|c| c.parse::<u32>().ok()) {
            Some(code) => SpatialRef::from_epsg(code),
            None => SpatialRef::from_proj4(d),
        },
    };
    let mut srs = made.map_err(|e| failed("coordinate system", e))?;
    // Longitude (easting) first in the file, whatever the CRS's axis order.
    srs.set_axis_mapping_strategy(AxisMappingStrategy::TraditionalGisOrder);
    Ok(srs)
}

/// Writes the selected parcels to a file in `dir` and returns its path. Blocking: GDAL and PROJ
/// work on this thread.
pub fn write(
    released: &ReleasedSelection,
    fields: &[Field],
    crs: &OutputCrs,
    format: Format,
    dir: &Path,
) -> Result<PathBuf, ApiError> {
    let (view, selection) = (released.view(), released.selection());
    let transformer = crs.transformer()?;
    let srs = spatial_ref(crs)?;
    let driver = DriverManager::get_driver_by_name(format.driver()).map_err(|e| failed(format.driver(), e))?;
    let target = match format {
        Format::Shapefile => dir.join("parcels.shp"),
        other => dir.join(other.file_name()),
    };
    let mut dataset = driver.create_vector_only(&target).map_err(|e| failed("create", e))?;
    if format == Format::GeoPackage {
        // One transaction for the whole file: a GeoPackage is written many times faster so.
        let mut transaction = dataset.start_transaction().map_err(|e| failed("transaction", e))?;
        fill(&mut transaction, view, selection, fields, format, &srs, transformer.as_ref())?;
        transaction.commit().map_err(|e| failed("commit", e))?;
    } else {
        fill(&mut dataset, view, selection, fields, format, &srs, transformer.as_ref())?;
    }
    // Closing the dataset finishes the file.
    drop(dataset);
    if format == Format::Shapefile {
        return zip_shapefile(dir, &target);
    }
    Ok(target)
}

/// The parcels as features of one layer of `dataset`.
fn fill(
    dataset: &mut gdal::Dataset,
    view: &View,
    selection: &Selection,
    fields: &[Field],
    format: Format,
    srs: &SpatialRef,
    transformer: Option<&landdb_crs::Transformer>,
) -> Result<(), ApiError> {
    let options: &[&str] = match format {
        Format::Shapefile => &["ENCODING=UTF-8"],
        _ => &[],
    };
    let layer = dataset
        .create_layer(LayerOptions {
            name: "parcels",
            srs: Some(srs),
            ty: OGRwkbGeometryType::wkbMultiPolygon,
            options: Some(options),
        })
        .map_err(|e| failed("layer", e))?;
    if format != Format::Dxf {
        let mut columns = vec![("version", OGRFieldType::OFTInteger64)];
        columns.extend(fields.iter().map(|f| {
            (column(*f, format), if *f == Field::AreaM2 { OGRFieldType::OFTReal } else { OGRFieldType::OFTString })
        }));
        layer.create_defn_fields(&columns).map_err(|e| failed("fields", e))?;
    }
    let write_one = |p: &Parcel<'_>| -> Result<(), ApiError> {
        let mut geometry = p.geometry();
        if let Some(t) = transformer {
            geometry = t.multi_polygon(&geometry).map_err(|e| failed("reprojection", e))?;
        }
        let mut feature = Feature::new(layer.defn()).map_err(|e| failed("feature", e))?;
        feature
            .set_geometry(geometry.to_gdal().map_err(|e| failed("geometry", e))?)
            .map_err(|e| failed("geometry", e))?;
        let set = |feature: &mut Feature<'_>, name: &str, value: &str| -> Result<(), ApiError> {
            let i = feature.field_index(name).map_err(|e| failed(name, e))?;
            feature.set_field_string(i, value).map_err(|e| failed(name, e))
        };
        if format == Format::Dxf {
            // CAD layers by commune; the parcel's sheet/number as its text.
            let key = p.key();
            set(&mut feature, "Layer", &format!("thua_{}", key.commune))?;
            set(&mut feature, "Text", &format!("{}/{}", key.sheet, key.number))?;
        } else {
            let i = feature.field_index("version").map_err(|e| failed("version", e))?;
            feature.set_field_integer64(i, p.version().0).map_err(|e| failed("version", e))?;
            let key = p.key();
            for f in fields {
                let name = column(*f, format);
                match f {
                    Field::NationalId => set(&mut feature, name, p.national_id().as_str())?,
                    Field::Commune => set(&mut feature, name, p.commune().as_str())?,
                    Field::Sheet => set(&mut feature, name, &key.sheet)?,
                    Field::Number => set(&mut feature, name, &key.number)?,
                    Field::LandUse => {
                        let codes: Vec<String> = p.land_use().iter().map(|c| c.as_str().to_owned()).collect();
                        set(&mut feature, name, &codes.join("+"))?;
                    }
                    Field::AreaM2 => {
                        let i = feature.field_index(name).map_err(|e| failed(name, e))?;
                        feature.set_field_double(i, p.area_m2()).map_err(|e| failed(name, e))?;
                    }
                    Field::Address => {
                        if let Some(a) = p.address() {
                            set(&mut feature, name, &a)?;
                        }
                    }
                }
            }
        }
        feature.create(&layer).map_err(|e| failed("feature", e))
    };
    match selection {
        Selection::All => {
            for p in view.parcels() {
                write_one(&p)?;
            }
        }
        Selection::Versions(versions) => {
            for v in versions {
                if let Some(p) = view.by_version(*v) {
                    write_one(&p)?;
                }
            }
        }
    }
    Ok(())
}

/// The Shapefile's parts in one zip, beside them.
fn zip_shapefile(dir: &Path, shp: &Path) -> Result<PathBuf, ApiError> {
    let out = dir.join(Format::Shapefile.file_name());
    let file = std::fs::File::create(&out).map_err(|e| failed("zip", e))?;
    let mut zip = zip::ZipWriter::new(std::io::BufWriter::new(file));
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated).large_file(true);
    for extension in ["shp", "shx", "dbf", "prj", "cpg"] {
        let part = shp.with_extension(extension);
        if !part.exists() {
            continue;
        }
        zip.start_file(format!("parcels.{extension}"), options).map_err(|e| failed("zip", e))?;
        let mut input = std::fs::File::open(&part).map_err(|e| failed("zip", e))?;
        std::io::copy(&mut input, &mut zip).map_err(|e| failed("zip", e))?;
    }
    zip.finish().map_err(|e| failed("zip", e))?.flush().map_err(|e| failed("zip", e))?;
    Ok(out)
}
