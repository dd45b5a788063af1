//! Reading provincial files: every layer of every file GDAL can open (Shapefile loose or zipped,
//! GeoPackage, GeoJSON, Esri JSON, DXF, DGN, MapInfo TAB, KML, CSV with WKT) as plain
//! [`SourceRecord`]s: attributes as values, geometry as raw rings in the source CRS. Nothing is
//! judged here; the normaliser does that.

pub mod archive;
pub mod dbf;
pub mod geojson;
pub mod labels;

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use gdal::vector::{FieldValue, Geometry, LayerAccess, OGRwkbGeometryType};
use gdal::{Dataset, DatasetOptions, GdalOpenFlags};
use geo::Coord;

use crate::SourceError;

/// An attribute value as the source had it, with its type: nothing is coerced here. Which types a
/// field accepts is the profile's business ([`crate::profiles::FieldKind`]).
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    Null,
    Text(String),
    Integer(i64),
    Real(f64),
    Boolean(bool),
    /// An array or object (GeoJSON), or a list field (GDAL), as JSON.
    Compound(serde_json::Value),
}

/// Why a value cannot be what its field needs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// A value of the wrong type: a boolean, array or object where a code or number belongs, a
    /// number that is not whole, negative or too large for a code.
    #[error("{0}")]
    WrongType(String),
    /// Text that does not read as what the field needs.
    #[error("{0}")]
    Invalid(String),
}

/// The largest number read as a code (sheet, parcel, commune): past 2⁵³ a float no longer holds
/// every whole number, so `1e20` is no code.
const LARGEST_CODE: f64 = 9_007_199_254_740_992.0;

impl AttrValue {
    /// Text as a person would read it (numbers without a spurious `.0`, blanks as `None`), for
    /// display and for values of no particular type; the normaliser uses [`Self::code`],
    /// [`Self::number`] and [`Self::plain_text`], which refuse values of the wrong type.
    pub fn text(&self) -> Option<String> {
        let s = match self {
            Self::Null => return None,
            Self::Text(s) => s.trim().to_owned(),
            Self::Integer(i) => i.to_string(),
            Self::Real(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{f:.0}"),
            Self::Real(f) => f.to_string(),
            Self::Boolean(b) => b.to_string(),
            Self::Compound(v) => v.to_string(),
        };
        (!s.is_empty()).then_some(s)
    }

    /// A code (commune code, map sheet, parcel number): text, or a whole number from 0 to 2⁵³.
    pub fn code(&self) -> Result<Option<String>, ValueError> {
        match self {
            Self::Null => Ok(None),
            Self::Text(s) => Ok(Some(s.trim().to_owned()).filter(|s| !s.is_empty())),
            Self::Integer(i) if *i >= 0 => Ok(Some(i.to_string())),
            Self::Real(f) if f.fract() == 0.0 && (0.0..=LARGEST_CODE).contains(f) => Ok(Some(format!("{f:.0}"))),
            Self::Integer(_) | Self::Real(_) => Err(ValueError::WrongType(format!(
                "{} is not a code: a number here must be a whole number from 0 to 2^53",
                self.shown()
            ))),
            Self::Boolean(_) | Self::Compound(_) => {
                Err(ValueError::WrongType(format!("{} is a {}, not a code", self.shown(), self.type_name())))
            }
        }
    }

    /// A number, from a finite number or numeric text (decimal comma accepted).
    pub fn number(&self) -> Result<Option<f64>, ValueError> {
        match self {
            Self::Null => Ok(None),
            Self::Integer(i) => Ok(Some(*i as f64)),
            Self::Real(f) if f.is_finite() => Ok(Some(*f)),
            Self::Real(f) => Err(ValueError::WrongType(format!("{f} is not a finite number"))),
            Self::Text(s) if s.trim().is_empty() => Ok(None),
            Self::Text(s) => match s.trim().replace(',', ".").parse::<f64>() {
                Ok(f) if f.is_finite() => Ok(Some(f)),
                _ => Err(ValueError::Invalid(format!("{s:?} is not a number"))),
            },
            Self::Boolean(_) | Self::Compound(_) => {
                Err(ValueError::WrongType(format!("{} is a {}, not a number", self.shown(), self.type_name())))
            }
        }
    }

    /// Text for a text field (address, names, land use): text, or a number as written; never a
    /// boolean, array or object.
    pub fn plain_text(&self) -> Result<Option<String>, ValueError> {
        match self {
            Self::Boolean(_) | Self::Compound(_) => {
                Err(ValueError::WrongType(format!("{} is a {}, not text", self.shown(), self.type_name())))
            }
            _ => Ok(self.text()),
        }
    }

    /// The value as it would be written in JSON, shortened for a message.
    pub fn shown(&self) -> String {
        let json = self.to_json().to_string();
        match json.char_indices().nth(60) {
            Some((at, _)) => format!("{}…", &json[..at]),
            None => json,
        }
    }

    fn type_name(&self) -> &'static str {
        match self {
            Self::Null => "null",
            Self::Text(_) => "text",
            Self::Integer(_) | Self::Real(_) => "number",
            Self::Boolean(_) => "boolean",
            Self::Compound(serde_json::Value::Array(_)) => "list",
            Self::Compound(_) => "object",
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Self::Null => serde_json::Value::Null,
            Self::Text(s) => serde_json::Value::String(s.clone()),
            Self::Integer(i) => serde_json::json!(i),
            Self::Real(f) => serde_json::json!(f),
            Self::Boolean(b) => serde_json::Value::Bool(*b),
            Self::Compound(v) => v.clone(),
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

pub use archive::{ArchiveLimits, ArchiveProblem, expand, expand_with, units};

fn has_extension(path: &Path, extensions: &[&str]) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| extensions.iter().any(|x| e.eq_ignore_ascii_case(x)))
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
        .map_err(|e| SourceError::Unreadable { file: file.to_owned(), reason: not_readable(file, &e) })
}

/// Why a file is cut short, where its format can tell and GDAL would read what is there without
/// a word: a DXF ends with an `EOF` group; a Shapefile's `.shp` and `.shx` declare their length.
fn truncation(file: &Path) -> Option<String> {
    if has_extension(file, &["dxf"]) {
        let mut f = std::fs::File::open(file).ok()?;
        let len = f.metadata().ok()?.len();
        let mut head = [0u8; 18];
        let binary = f.read_exact(&mut head).is_ok() && &head == b"AutoCAD Binary DXF";
        let mut tail = Vec::new();
        f.seek(SeekFrom::Start(len.saturating_sub(1024))).ok()?;
        f.read_to_end(&mut tail).ok()?;
        let tail = String::from_utf8_lossy(&tail);
        let last = tail.lines().map(str::trim).rfind(|l| !l.is_empty() && *l != "\u{1a}");
        if !binary && !last.is_some_and(|l| l.eq_ignore_ascii_case("EOF")) {
            return Some("the drawing does not end with its EOF group: the file is truncated".into());
        }
    } else if has_extension(file, &["shp"]) {
        for part in [file.to_owned(), file.with_extension("shx")] {
            let Ok(mut f) = std::fs::File::open(&part) else { continue };
            let actual = f.metadata().ok()?.len();
            let mut header = [0u8; 28];
            if f.read_exact(&mut header).is_err() || header[..4] != 9994i32.to_be_bytes() {
                continue;
            }
            let declared = 2 * u64::from(u32::from_be_bytes([header[24], header[25], header[26], header[27]]));
            if actual < declared {
                let name = part.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                return Some(format!("{name} declares {declared} bytes but has {actual}: the file is truncated"));
            }
        }
    }
    None
}

/// GDAL's error in words an operator can act on: "GDAL method 'GDALOpenEx' returned a NULL
/// pointer. Error msg: ''" says only that the file is not what its name claims.
fn not_readable(file: &Path, error: &gdal::errors::GdalError) -> String {
    let kind = match file.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("shp") => "Shapefile",
        Some("gpkg") => "GeoPackage",
        Some("geojson") => "GeoJSON",
        Some("json") => "GeoJSON or Esri JSON",
        Some("dxf") => "DXF",
        Some("dgn") => "DGN",
        Some("tab" | "mif") => "MapInfo",
        Some("kml") => "KML",
        Some("csv") => "CSV",
        _ => "vector data",
    };
    let detail = match error {
        gdal::errors::GdalError::NullPointer { msg, .. } => msg.trim().to_owned(),
        other => other.to_string(),
    };
    if detail.is_empty() {
        format!("not a readable {kind} file (empty, truncated, damaged, or of another kind)")
    } else {
        format!("not a readable {kind} file: {detail}")
    }
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
    if let Some(reason) = truncation(file) {
        return Err(SourceError::Unreadable { file: file.to_owned(), reason });
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
            } else if field.kind == b'L' {
                // dBASE logicals: T/Y, F/N, and `?` for unset.
                match raw.first().map(u8::to_ascii_uppercase) {
                    Some(b'T' | b'Y') => AttrValue::Boolean(true),
                    Some(b'F' | b'N') => AttrValue::Boolean(false),
                    _ => AttrValue::Null,
                }
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
        Some(FieldValue::IntegerListValue(l)) => AttrValue::Compound(serde_json::json!(l)),
        Some(FieldValue::Integer64ListValue(l)) => AttrValue::Compound(serde_json::json!(l)),
        Some(FieldValue::RealListValue(l)) => AttrValue::Compound(serde_json::json!(l)),
        Some(FieldValue::StringListValue(l)) => AttrValue::Compound(serde_json::json!(l)),
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
