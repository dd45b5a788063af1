//! Reading provincial files: every layer of every file GDAL can open (Shapefile loose or zipped,
//! GeoPackage, GeoJSON, Esri JSON, DXF, DGN, MapInfo TAB, KML, CSV with WKT) as plain
//! [`SourceRecord`]s: attributes as values, geometry as raw rings in the source CRS. Nothing is
//! judged here; the normaliser does that.

pub mod dbf;
pub mod geojson;
pub mod labels;

use std::path::{Path, PathBuf};

use gdal::vector::{FieldValue, Geometry, LayerAccess, OGRwkbGeometryType};
use gdal::{Dataset, DatasetOptions, GdalOpenFlags};
use geo::Coord;

use crate::SourceError;

/// An attribute value as the source had it.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    Null,
    Text(String),
    Integer(i64),
    Real(f64),
}

impl AttrValue {
    /// Text as the canonical model wants it: numbers without a spurious `.0`, blanks as `None`.
    pub fn text(&self) -> Option<String> {
        let s = match self {
            Self::Null => return None,
            Self::Text(s) => s.trim().to_owned(),
            Self::Integer(i) => i.to_string(),
            Self::Real(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{f:.0}"),
            Self::Real(f) => f.to_string(),
        };
        (!s.is_empty()).then_some(s)
    }

    /// A number, from a number or numeric text (decimal comma accepted).
    pub fn number(&self) -> Result<Option<f64>, String> {
        match self {
            Self::Null => Ok(None),
            Self::Integer(i) => Ok(Some(*i as f64)),
            Self::Real(f) => Ok(Some(*f)),
            Self::Text(s) if s.trim().is_empty() => Ok(None),
            Self::Text(s) => s.trim().replace(',', ".").parse().map(Some).map_err(|_| format!("{s:?} is not a number")),
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Self::Null => serde_json::Value::Null,
            Self::Text(s) => serde_json::Value::String(s.clone()),
            Self::Integer(i) => serde_json::json!(i),
            Self::Real(f) => serde_json::json!(f),
        }
    }
}

/// One polygon's rings as the file has them (exterior first), unclosed or clockwise if so.
pub type RawPolygon = Vec<Vec<Coord<f64>>>;

#[derive(Debug, Clone, PartialEq)]
pub enum SourceGeometry {
    Null,
    /// Polygons, multipolygons, and closed lines (CAD files draw parcels as closed polylines).
    Polygons(Vec<RawPolygon>),
    /// A point: in CAD files, where a label is drawn.
    Point(Coord<f64>),
    /// Anything else: the type's name.
    NotPolygon(String),
}

/// One feature of a source layer.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceRecord {
    /// 1-based position in the layer.
    pub feature: usize,
    pub attributes: Vec<(String, AttrValue)>,
    pub geometry: SourceGeometry,
}

impl SourceRecord {
    pub fn attribute(&self, name: &str) -> Option<&AttrValue> {
        self.attributes.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }
}

/// What a layer says about its coordinates.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeclaredCrs {
    /// PROJ.4 rendering of the layer's SRS, if it has one.
    pub proj4: Option<String>,
    pub wkt: Option<String>,
    /// Authority code if the SRS names one (`EPSG:5899`).
    pub epsg: Option<i32>,
}

/// The text encoding found for a Shapefile's attributes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EncodingFound {
    pub encoding: String,
    /// What the `.cpg` said, if there was one.
    pub cpg: Option<String>,
    /// `cpg`, `detected`, `detected (cpg disagreed)` or `ascii`.
    pub basis: String,
}

/// One layer of one file, ready to be read.
#[derive(Debug, Clone)]
pub struct SourceLayer {
    pub file: PathBuf,
    pub layer: String,
    pub driver: String,
    pub crs: DeclaredCrs,
    pub encoding: Option<EncodingFound>,
    pub features: u64,
}

/// File extensions landdb reads (others in a directory are side files or not cadastral).
pub const EXTENSIONS: [&str; 11] = ["shp", "gpkg", "geojson", "json", "dxf", "dgn", "tab", "kml", "csv", "zip", "mif"];

/// The files among `paths`: directories walked, zips extracted into `scratch`.
pub fn expand(
    paths: &[PathBuf],
    scratch: &Path,
    names: &crate::names::SourceNames,
) -> Result<Vec<PathBuf>, SourceError> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut inside: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|source| SourceError::Read { file: path.clone(), source })?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            inside.sort();
            files.extend(
                expand(&inside, scratch, names)?
                    .into_iter()
                    .filter(|f| f.file_name().is_some_and(|n| n != "manifest.json")),
            );
        } else if has_extension(path, &["zip"]) {
            let target = scratch.join(format!("zip-{}", files.len()));
            extract_zip(path, &target)?;
            names.extracted(path, &target);
            files.extend(expand(&[target], scratch, names)?);
        } else if has_extension(path, &EXTENSIONS) {
            files.push(path.clone());
        } else if !path.exists() {
            return Err(SourceError::Read {
                file: path.clone(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            });
        }
    }
    Ok(files)
}

fn has_extension(path: &Path, extensions: &[&str]) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| extensions.iter().any(|x| e.eq_ignore_ascii_case(x)))
}

fn extract_zip(path: &Path, target: &Path) -> Result<(), SourceError> {
    let bad = |reason: String| SourceError::Unreadable { file: path.to_owned(), reason };
    let file = std::fs::File::open(path).map_err(|source| SourceError::Read { file: path.to_owned(), source })?;
    let mut archive = zip::ZipArchive::new(file).map_err(|e| bad(e.to_string()))?;
    archive.extract(target).map_err(|e| bad(e.to_string()))
}

/// GDAL's own messages (unclosed rings, laundered names…) go to the log, not the terminal: what
/// matters reaches the report as reasons.
fn quiet_gdal() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        gdal::config::set_error_handler(|class, code, message| tracing::debug!(?class, code, message, "GDAL"))
    });
}

fn open(file: &Path) -> Result<Dataset, SourceError> {
    quiet_gdal();
    // Shapefile text is decoded by landdb from the raw DBF; keep GDAL from recoding it.
    let _ = gdal::config::set_thread_local_config_option("SHAPE_ENCODING", "");
    let options = DatasetOptions { open_flags: GdalOpenFlags::GDAL_OF_VECTOR, ..DatasetOptions::default() };
    Dataset::open_ex(file, options)
        .map_err(|e| SourceError::Unreadable { file: file.to_owned(), reason: e.to_string() })
}

/// The driver name of landdb's own GeoJSON reader (GDAL's is `GeoJSON`).
pub const OWN_GEOJSON: &str = "GeoJSON (landdb)";

/// The layers of a file.
pub fn layers(file: &Path) -> Result<Vec<SourceLayer>, SourceError> {
    if has_extension(file, &["geojson", "json"]) && geojson::handles(file) {
        let head = geojson::head(file)?;
        return Ok(vec![SourceLayer {
            file: file.to_owned(),
            layer: head
                .name
                .unwrap_or_else(|| file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()),
            driver: OWN_GEOJSON.into(),
            crs: head.crs,
            encoding: None,
            // Counted while reading.
            features: 0,
        }]);
    }
    let dataset = open(file)?;
    let driver = dataset.driver().short_name();
    let mut out = Vec::new();
    for layer in dataset.layers() {
        let crs = layer.spatial_ref().map_or_else(DeclaredCrs::default, |srs| DeclaredCrs {
            proj4: srs.to_proj4().ok(),
            wkt: srs.to_wkt().ok(),
            epsg: srs.auth_code().ok(),
        });
        out.push(SourceLayer {
            file: file.to_owned(),
            layer: layer.name(),
            driver: driver.clone(),
            crs,
            encoding: None,
            features: layer.feature_count(),
        });
    }
    if out.is_empty() {
        return Err(SourceError::Unreadable { file: file.to_owned(), reason: "no vector layer".into() });
    }
    Ok(out)
}

/// Detects the encoding of a Shapefile's DBF (the `.cpg` is believed only when the bytes agree).
pub fn shapefile_encoding(dbf: &dbf::Dbf, shp: &Path) -> (landdb_text::Encoding, EncodingFound) {
    let cpg = std::fs::read_to_string(shp.with_extension("cpg")).ok().map(|s| s.trim().to_owned());
    let declared: Option<landdb_text::Encoding> = cpg.as_deref().and_then(|c| c.parse().ok());
    let samples = dbf.non_ascii_text(400);
    let found = |encoding: landdb_text::Encoding, basis: &str| EncodingFound {
        encoding: encoding.name().to_owned(),
        cpg: cpg.clone(),
        basis: basis.to_owned(),
    };
    if samples.is_empty() {
        let encoding = declared.unwrap_or(landdb_text::Encoding::Utf8);
        return (encoding, found(encoding, "ascii"));
    }
    let detection = landdb_text::detect(&samples);
    match declared {
        Some(d) if d == detection.encoding || !detection.confident => (d, found(d, "cpg")),
        Some(_) => (detection.encoding, found(detection.encoding, "detected (cpg disagreed)")),
        None => (detection.encoding, found(detection.encoding, "detected")),
    }
}

/// Reads a layer in chunks of `chunk` records, handing each to `sink` (GDAL objects stay on this
/// thread; the sink may fan the chunk out).
pub fn read_layer<E: From<SourceError>>(
    source: &SourceLayer,
    chunk: usize,
    mut sink: impl FnMut(Vec<SourceRecord>) -> Result<(), E>,
) -> Result<(), E> {
    if source.driver == OWN_GEOJSON {
        return geojson::read(&source.file, chunk, &mut sink).map(|_| ());
    }
    let dataset = open(&source.file)?;
    let mut layer = dataset
        .layer_by_name(&source.layer)
        .map_err(|e| SourceError::Unreadable { file: source.file.clone(), reason: e.to_string() })?;
    let dbf = if source.driver == "ESRI Shapefile" {
        let dbf = dbf::Dbf::open(&source.file.with_extension("dbf"))
            .map_err(|reason| SourceError::Unreadable { file: source.file.clone(), reason })?;
        let encoding = shapefile_encoding(&dbf, &source.file).0;
        Some((dbf, encoding))
    } else {
        None
    };
    let names: Vec<String> = layer.defn().fields().map(|f| f.name()).collect();
    let mut batch = Vec::with_capacity(chunk.min(65_536));
    for (i, feature) in layer.features().enumerate() {
        let attributes = match &dbf {
            Some((dbf, encoding)) => {
                dbf_attributes(dbf, *encoding, usize::try_from(feature.fid().unwrap_or(i as u64)).unwrap_or(i))
            }
            // By index: the `gdal` crate's field iterator skips types it does not know, which
            // would shift names against values.
            None => names
                .iter()
                .enumerate()
                .filter_map(|(idx, name)| {
                    let value = feature.field(idx).ok()?;
                    Some((name.clone(), if is_set(&feature, idx) { attr(value) } else { AttrValue::Null }))
                })
                .collect(),
        };
        let geometry = feature.geometry().filter(|g| g.has_gdal_ptr()).map_or(SourceGeometry::Null, raw_geometry);
        batch.push(SourceRecord { feature: i + 1, attributes, geometry });
        if batch.len() == chunk {
            sink(std::mem::replace(&mut batch, Vec::with_capacity(chunk.min(65_536))))?;
        }
    }
    if !batch.is_empty() {
        sink(batch)?;
    }
    Ok(())
}

fn dbf_attributes(dbf: &dbf::Dbf, encoding: landdb_text::Encoding, record: usize) -> Vec<(String, AttrValue)> {
    if record >= dbf.len() {
        return Vec::new();
    }
    dbf.fields
        .iter()
        .enumerate()
        .map(|(f, field)| {
            let raw = dbf.raw(record, f);
            // Shapelib writes a null number as a run of asterisks.
            let value = if raw.is_empty() || (field.kind != b'C' && raw.iter().all(|b| *b == b'*')) {
                AttrValue::Null
            } else if field.kind == b'N' || field.kind == b'F' {
                let text = String::from_utf8_lossy(raw);
                text.parse::<i64>()
                    .map(AttrValue::Integer)
                    .or_else(|_| text.parse::<f64>().map(AttrValue::Real))
                    .unwrap_or_else(|_| AttrValue::Text(text.into_owned()))
            } else {
                AttrValue::Text(landdb_text::decode(raw, encoding))
            };
            (field.name.clone(), value)
        })
        .collect()
}

/// Whether the feature has a value for field `idx` at all. The `gdal` crate checks only for null,
/// so a property absent from a GeoJSON feature would read as 0 or "": a missing parcel number
/// must not become parcel 0.
#[allow(unsafe_code)]
fn is_set(feature: &gdal::vector::Feature<'_>, idx: usize) -> bool {
    let Ok(idx) = i32::try_from(idx) else { return false };
    // SAFETY: the handle is valid for as long as `feature` lives, and OGR_F_IsFieldSet only reads
    // it; an out-of-range index returns false.
    unsafe { gdal_sys::OGR_F_IsFieldSet(feature.c_feature(), idx) != 0 }
}

fn attr(value: Option<FieldValue>) -> AttrValue {
    match value {
        None => AttrValue::Null,
        Some(FieldValue::StringValue(s)) => AttrValue::Text(s),
        Some(FieldValue::IntegerValue(i)) => AttrValue::Integer(i64::from(i)),
        Some(FieldValue::Integer64Value(i)) => AttrValue::Integer(i),
        Some(FieldValue::RealValue(f)) => AttrValue::Real(f),
        Some(FieldValue::DateValue(d)) => AttrValue::Text(d.to_string()),
        Some(FieldValue::DateTimeValue(d)) => AttrValue::Text(d.to_rfc3339()),
        Some(other) => AttrValue::Text(format!("{other:?}")),
    }
}

fn ring(g: &Geometry) -> Vec<Coord<f64>> {
    let mut points = Vec::new();
    g.get_points(&mut points);
    points.into_iter().map(|(x, y, _)| Coord { x, y }).collect()
}

fn polygon(g: &Geometry) -> RawPolygon {
    (0..g.geometry_count()).map(|i| ring(&g.get_geometry(i))).collect()
}

/// The rings of a geometry exactly as stored.
pub fn raw_geometry(g: &Geometry) -> SourceGeometry {
    use OGRwkbGeometryType::{wkbLineString, wkbMultiLineString, wkbMultiPolygon, wkbPoint, wkbPolygon};
    if g.is_empty() {
        return SourceGeometry::Null;
    }
    match gdal::vector::geometry_type_flatten(g.geometry_type()) {
        t if t == wkbPolygon => SourceGeometry::Polygons(vec![polygon(g)]),
        t if t == wkbPoint => {
            let (x, y, _) = g.get_point(0);
            SourceGeometry::Point(Coord { x, y })
        }
        t if t == wkbMultiPolygon => {
            SourceGeometry::Polygons((0..g.geometry_count()).map(|i| polygon(&g.get_geometry(i))).collect())
        }
        t if t == wkbLineString => {
            let r = ring(g);
            if r.len() >= 4 && r.first() == r.last() {
                SourceGeometry::Polygons(vec![vec![r]])
            } else {
                SourceGeometry::NotPolygon("LineString".into())
            }
        }
        // DGN v7 stores a line of more than 101 vertices as a chain of parts.
        t if t == wkbMultiLineString => {
            let parts: Vec<Vec<Coord<f64>>> = (0..g.geometry_count()).map(|i| ring(&g.get_geometry(i))).collect();
            match chained(parts) {
                Some(r) if r.len() >= 4 && r.first() == r.last() => SourceGeometry::Polygons(vec![vec![r]]),
                _ => SourceGeometry::NotPolygon("MultiLineString".into()),
            }
        }
        _ => SourceGeometry::NotPolygon(g.geometry_name()),
    }
}

/// Lines joined end to start into one, if each part begins where the one before ends.
fn chained(parts: Vec<Vec<Coord<f64>>>) -> Option<Vec<Coord<f64>>> {
    let mut parts = parts.into_iter();
    let mut line = parts.next()?;
    for part in parts {
        if line.last() != part.first() {
            return None;
        }
        line.extend(part.into_iter().skip(1));
    }
    Some(line)
}
