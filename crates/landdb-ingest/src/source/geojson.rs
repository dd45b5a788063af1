//! GeoJSON FeatureCollections read by landdb itself, streaming: features are handed on in chunks
//! as they are parsed, so a file of any size is read in bounded memory and never parsed twice.
//! GDAL's driver first parses the whole file to learn its schema, then again to read it, which
//! made it the largest cost of an import. Other JSON (Esri JSON, a lone Feature, GeoJSON
//! sequences) still goes through GDAL.
//!
//! The legacy `crs` member (`{"type": "name", "properties": {"name": "EPSG:5899"}}`, from before
//! RFC 7946) is honoured: provinces export VN-2000 coordinates that way.
//!
//! The whole text must be one FeatureCollection: anything after it (a second collection, stray
//! text) refuses the file, naming the byte where it starts, since reading only the first part
//! would lose the rest without a word. So does a second `features` member, or a `type` other
//! than `FeatureCollection`. Property values keep their JSON type (booleans, arrays and objects
//! are not turned into numbers or text): the field profile decides what each field accepts.

use std::fmt;
use std::io::{BufReader, Read, Seek};
use std::path::Path;

use geo::Coord;
use serde::Deserializer as _;
use serde::de::{self, Deserialize, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::{AttrValue, DeclaredCrs, SourceGeometry, SourceRecord};
use crate::SourceError;

/// Whether `file` is a GeoJSON FeatureCollection this reader takes (sniffed from its first bytes).
pub fn handles(file: &Path) -> bool {
    let Ok(mut f) = std::fs::File::open(file) else { return false };
    let mut head = vec![0; 64 * 1024];
    let n = f.read(&mut head).unwrap_or(0);
    let head = String::from_utf8_lossy(&head[..n]);
    head.trim_start_matches(BOM).trim_start().starts_with('{') && head.contains("\"FeatureCollection\"")
}

/// A byte-order mark, which some Windows tools put before UTF-8 text (JSON parsers refuse it).
const BOM: char = '\u{feff}';

/// What the collection says about itself.
#[derive(Debug, Default)]
pub struct Collection {
    pub name: Option<String>,
    pub crs: DeclaredCrs,
    pub features: u64,
}

/// The collection's `name` and legacy `crs` members, found in the text before its features
/// (where every writer puts them), so that the CRS is known before the first chunk is judged.
/// Without a `crs` member the coordinates are WGS84 (RFC 7946).
pub fn head(file: &Path) -> Result<Collection, SourceError> {
    let mut f = std::fs::File::open(file).map_err(|source| SourceError::Read { file: file.to_owned(), source })?;
    let mut bytes = vec![0; 64 * 1024];
    let n = f.read(&mut bytes).map_err(|source| SourceError::Read { file: file.to_owned(), source })?;
    let text = String::from_utf8_lossy(&bytes[..n]);
    let head = text.find("\"features\"").map_or(&*text, |end| &text[..end]);
    let (crs_text, rest) = match head.find("\"crs\"") {
        Some(start) => {
            let end = object_end(&head[start..]).map_or(head.len(), |e| start + e);
            (Some(&head[start..end]), format!("{}{}", &head[..start], &head[end..]))
        }
        None => (None, head.to_owned()),
    };
    let crs = crs_text.and_then(|c| string_member(c, "name")).unwrap_or_else(|| "EPSG:4326".into());
    let name = string_member(&rest, "name").map(|n| crate::fields::without_controls(&n).into_owned());
    Ok(Collection { name, crs: declared_crs(&crs), features: 0 })
}

/// Where the object that starts after `text`'s first `{` closes (byte offset just past it).
fn object_end(text: &str) -> Option<usize> {
    let start = text.find('{')?;
    let mut depth = 0;
    let mut in_string = false;
    let mut escaped = false;
    for (i, c) in text[start..].char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_string => escaped = true,
            '"' => in_string = !in_string,
            '{' if !in_string => depth += 1,
            '}' if !in_string => {
                depth -= 1;
                if depth == 0 {
                    return Some(start + i + 1);
                }
            }
            _ => {}
        }
    }
    None
}

/// The string value of the first member `key` in `text` (`"key": "value"`).
fn string_member(text: &str, key: &str) -> Option<String> {
    let pattern = format!("\"{key}\"");
    let mut from = 0;
    while let Some(at) = text[from..].find(&pattern) {
        let after = text[from + at + pattern.len()..].trim_start();
        from += at + pattern.len();
        let Some(value) = after.strip_prefix(':') else { continue };
        let value = value.trim_start();
        let mut de = serde_json::Deserializer::from_str(value).into_iter::<String>();
        if let Some(Ok(s)) = de.next() {
            return Some(s);
        }
    }
    None
}

/// Reads the collection in `file`, handing records to `sink` in chunks of `chunk`.
pub fn read<E: From<SourceError>>(
    file: &Path,
    chunk: usize,
    sink: &mut dyn FnMut(Vec<SourceRecord>) -> Result<(), E>,
) -> Result<Collection, E> {
    let bad = |reason: String| SourceError::Unreadable { file: file.to_owned(), reason };
    let mut f = std::fs::File::open(file).map_err(|source| SourceError::Read { file: file.to_owned(), source })?;
    let mut bom = [0u8; 3];
    let bom_len = match f.read_exact(&mut bom) {
        Ok(()) if bom == [0xEF, 0xBB, 0xBF] => 3,
        _ => 0,
    };
    f.seek(std::io::SeekFrom::Start(bom_len)).map_err(|source| SourceError::Read { file: file.to_owned(), source })?;
    // Offsets count from the start of the file, the mark included.
    let consumed = std::cell::Cell::new(bom_len);
    let mut failure: Option<E> = None;
    let mut collection = Collection::default();
    let reader = Counted { inner: BufReader::with_capacity(1 << 20, f), consumed: &consumed };
    let mut de = serde_json::Deserializer::from_reader(reader);
    let visitor =
        CollectionVisitor { chunk, sink, failure: &mut failure, collection: &mut collection, seen: Vec::new() };
    let parsed = (&mut de).deserialize_map(visitor);
    if let Some(e) = failure {
        return Err(e);
    }
    // serde_json has read one byte past where it stopped: the byte it stopped at.
    let at = || consumed.get().saturating_sub(1);
    parsed.map_err(|e| {
        bad(if e.is_eof() {
            format!(
                "not valid GeoJSON: the text ends at byte {} inside the collection (a truncated file?)",
                consumed.get()
            )
        } else {
            format!("not valid GeoJSON at byte {}: {e}", at())
        })
    })?;
    de.end().map_err(|e| {
        bad(format!(
            "not valid GeoJSON: more text after the FeatureCollection, from byte {} ({e}); a file must hold exactly \
             one FeatureCollection (two collections one after the other are two files)",
            at()
        ))
    })?;
    Ok(collection)
}

/// A reader that counts the bytes taken from it (serde_json's errors give lines and columns).
struct Counted<'a, R> {
    inner: R,
    consumed: &'a std::cell::Cell<u64>,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.consumed.set(self.consumed.get() + n as u64);
        Ok(n)
    }
}

/// A legacy `crs` member: an EPSG code in any of its spellings, or another definition GDAL knows.
fn declared_crs(name: &str) -> DeclaredCrs {
    let upper = name.to_ascii_uppercase();
    let epsg = upper
        .rsplit([':', '/'])
        .next()
        .filter(|_| upper.contains("EPSG"))
        .and_then(|code| code.parse::<i32>().ok())
        .or_else(|| upper.contains("CRS84").then_some(4326));
    let srs = match epsg {
        Some(code) => u32::try_from(code).ok().and_then(|c| gdal::spatial_ref::SpatialRef::from_epsg(c).ok()),
        None => gdal::spatial_ref::SpatialRef::from_definition(name).ok(),
    };
    DeclaredCrs {
        proj4: srs.as_ref().and_then(|s| s.to_proj4().ok()),
        wkt: srs.as_ref().and_then(|s| s.to_wkt().ok()),
        epsg: epsg.or_else(|| srs.as_ref().and_then(|s| s.auth_code().ok())),
    }
}

struct CollectionVisitor<'a, E> {
    chunk: usize,
    sink: &'a mut dyn FnMut(Vec<SourceRecord>) -> Result<(), E>,
    failure: &'a mut Option<E>,
    collection: &'a mut Collection,
    /// The members read so far (one of each is allowed).
    seen: Vec<String>,
}

impl<'de, E> Visitor<'de> for CollectionVisitor<'_, E> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a GeoJSON FeatureCollection")
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            if self.seen.contains(&key) {
                return Err(de::Error::custom(format!("the member {key:?} occurs twice in the collection")));
            }
            self.seen.push(key.clone());
            if key == "type" {
                let kind = map.next_value::<String>()?;
                if kind != "FeatureCollection" {
                    return Err(de::Error::custom(format!("a GeoJSON {kind:?}, not a FeatureCollection")));
                }
            } else if key == "features" {
                map.next_value_seed(FeaturesSeed {
                    chunk: self.chunk,
                    sink: &mut *self.sink,
                    failure: &mut *self.failure,
                    count: &mut self.collection.features,
                })?;
            } else {
                // `name` and `crs` were taken by `head`.
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

struct FeaturesSeed<'a, E> {
    chunk: usize,
    sink: &'a mut dyn FnMut(Vec<SourceRecord>) -> Result<(), E>,
    failure: &'a mut Option<E>,
    count: &'a mut u64,
}

impl<'de, E> DeserializeSeed<'de> for FeaturesSeed<'_, E> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, E> Visitor<'de> for FeaturesSeed<'_, E> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of GeoJSON features")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut batch = Vec::with_capacity(self.chunk.min(65_536));
        while let Some(feature) = seq.next_element::<RawFeature>()? {
            *self.count += 1;
            let number = usize::try_from(*self.count).unwrap_or(usize::MAX);
            batch.push(feature.into_record(number));
            if batch.len() == self.chunk {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(self.chunk.min(65_536)));
                if let Err(e) = (self.sink)(full) {
                    *self.failure = Some(e);
                    return Err(de::Error::custom("the import stopped"));
                }
            }
        }
        if !batch.is_empty()
            && let Err(e) = (self.sink)(batch)
        {
            *self.failure = Some(e);
            return Err(de::Error::custom("the import stopped"));
        }
        Ok(())
    }
}

#[derive(serde::Deserialize)]
struct RawFeature {
    #[serde(default)]
    geometry: Option<RawGeometry>,
    #[serde(default)]
    properties: Option<Properties>,
}

/// A feature's properties in their order, a repeated name kept twice (a JSON map would keep the
/// last one without a word; the normaliser refuses the record instead).
struct Properties(Vec<(String, serde_json::Value)>);

impl<'de> Deserialize<'de> for Properties {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Properties;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of properties")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Properties, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = map.next_entry::<String, serde_json::Value>()? {
                    out.push(entry);
                }
                Ok(Properties(out))
            }
        }
        d.deserialize_map(V)
    }
}

impl RawFeature {
    fn into_record(self, feature: usize) -> SourceRecord {
        let attributes = self
            .properties
            .map(|p| p.0)
            .unwrap_or_default()
            .into_iter()
            .map(|(name, value)| {
                let value = match value {
                    serde_json::Value::Null => AttrValue::Null,
                    serde_json::Value::String(s) => AttrValue::Text(s),
                    serde_json::Value::Bool(b) => AttrValue::Boolean(b),
                    serde_json::Value::Number(n) => {
                        n.as_i64().map_or_else(|| AttrValue::Real(n.as_f64().unwrap_or(f64::NAN)), AttrValue::Integer)
                    }
                    compound => AttrValue::Compound(compound),
                };
                (name, value)
            })
            .collect();
        let geometry = self.geometry.map_or(SourceGeometry::Null, RawGeometry::into_source);
        SourceRecord { feature, attributes, geometry }
    }
}

#[derive(serde::Deserialize)]
struct RawGeometry {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    coordinates: Option<Node>,
}

/// Nested coordinate arrays; a position is kept inline rather than as a list of two numbers.
#[derive(Debug)]
enum Node {
    Number,
    Position(Coord<f64>),
    List(Vec<Node>),
}

impl Node {
    fn ring(self) -> Option<Vec<Coord<f64>>> {
        match self {
            Self::List(points) => {
                points.into_iter().map(|p| if let Self::Position(c) = p { Some(c) } else { None }).collect()
            }
            _ => None,
        }
    }

    fn polygon(self) -> Option<Vec<Vec<Coord<f64>>>> {
        match self {
            Self::List(rings) => rings.into_iter().map(Self::ring).collect(),
            _ => None,
        }
    }

    fn multi_polygon(self) -> Option<Vec<Vec<Vec<Coord<f64>>>>> {
        match self {
            Self::List(polygons) => polygons.into_iter().map(Self::polygon).collect(),
            _ => None,
        }
    }
}

impl RawGeometry {
    fn into_source(self) -> SourceGeometry {
        let Some(coordinates) = self.coordinates else { return SourceGeometry::Null };
        if matches!(&coordinates, Node::List(l) if l.is_empty()) {
            return SourceGeometry::Null;
        }
        let malformed = || SourceGeometry::NotPolygon(format!("{} with malformed coordinates", self.kind));
        match self.kind.as_str() {
            "Polygon" => coordinates.polygon().map_or_else(malformed, |p| SourceGeometry::Polygons(vec![p])),
            "MultiPolygon" => coordinates.multi_polygon().map_or_else(malformed, SourceGeometry::Polygons),
            "Point" => match coordinates {
                Node::Position(c) => SourceGeometry::Point(c),
                _ => malformed(),
            },
            // CAD-style exports draw parcels as closed lines.
            "LineString" => match coordinates.ring() {
                Some(r) if r.len() >= 4 && r.first() == r.last() => SourceGeometry::Polygons(vec![vec![r]]),
                Some(_) => SourceGeometry::NotPolygon("LineString".into()),
                None => malformed(),
            },
            other => SourceGeometry::NotPolygon(other.to_owned()),
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("GeoJSON coordinates")
    }

    fn visit_f64<E>(self, _: f64) -> Result<Node, E> {
        Ok(Node::Number)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Node, E> {
        Ok(Node::Number)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Node, E> {
        Ok(Node::Number)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        // A position: numbers, of which x and y are kept (a third, height, is dropped).
        let Some(first) = seq.next_element::<NumberOrNode>()? else { return Ok(Node::List(Vec::new())) };
        match first {
            NumberOrNode::Number(x) => {
                let y: f64 = seq.next_element()?.ok_or_else(|| de::Error::custom("a position needs x and y"))?;
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Node::Position(Coord { x, y }))
            }
            NumberOrNode::Node(node) => {
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(8));
                items.push(node);
                while let Some(node) = seq.next_element::<Node>()? {
                    items.push(node);
                }
                Ok(Node::List(items))
            }
        }
    }
}

/// The first element of a coordinate array: a number (so the array is a position) or deeper.
enum NumberOrNode {
    Number(f64),
    Node(Node),
}

impl<'de> Deserialize<'de> for NumberOrNode {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = NumberOrNode;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number or an array")
            }
            fn visit_f64<E>(self, v: f64) -> Result<NumberOrNode, E> {
                Ok(NumberOrNode::Number(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<NumberOrNode, E> {
                Ok(NumberOrNode::Number(v as f64))
            }
            fn visit_u64<E>(self, v: u64) -> Result<NumberOrNode, E> {
                Ok(NumberOrNode::Number(v as f64))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<NumberOrNode, A::Error> {
                NodeVisitor.visit_seq(seq).map(NumberOrNode::Node)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("landdb-geojson-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join(format!("t{}.geojson", text.len()));
        std::fs::write(&file, text).expect("write");
        file
    }

    fn read_str(text: &str) -> (Collection, Vec<SourceRecord>) {
        let file = write(text);
        let mut records = Vec::new();
        let collection = read::<SourceError>(&file, 2, &mut |chunk| {
            assert!(chunk.len() <= 2);
            records.extend(chunk);
            Ok(())
        })
        .expect("read");
        (collection, records)
    }

    #[test]
    fn reads_every_geometry_kind_and_property_type() {
        let (collection, records) = read_str(
            r#"{"type":"FeatureCollection","name":"x","features":[
            {"type":"Feature","properties":{"MaXa":"20203","SoThuTuThua":12,"DienTich":101.5,"Ghi":null,"B":true},
             "geometry":{"type":"Polygon","coordinates":[[[0,0],[1,0,5],[1,1],[0,0]]]}},
            {"type":"Feature","properties":{},"geometry":null},
            {"type":"Feature","properties":{},"geometry":{"type":"MultiPolygon","coordinates":[[[[0,0],[1,0],[1,1],[0,0]]],[[[2,2],[3,2],[3,3],[2,2]]]]}},
            {"type":"Feature","properties":{},"geometry":{"type":"Point","coordinates":[5.5,6]}},
            {"type":"Feature","properties":{},"geometry":{"type":"LineString","coordinates":[[0,0],[1,1]]}},
            {"type":"Feature","properties":{},"geometry":{"type":"Polygon","coordinates":[]}}
            ]}"#,
        );
        assert_eq!(collection.features, 6);
        assert_eq!(records.len(), 6);
        assert_eq!(records[0].attribute("MaXa"), Some(&AttrValue::Text("20203".into())));
        assert_eq!(records[0].attribute("SoThuTuThua"), Some(&AttrValue::Integer(12)));
        assert_eq!(records[0].attribute("DienTich"), Some(&AttrValue::Real(101.5)));
        assert_eq!(records[0].attribute("Ghi"), Some(&AttrValue::Null));
        assert_eq!(records[0].attribute("B"), Some(&AttrValue::Boolean(true)));
        let SourceGeometry::Polygons(p) = &records[0].geometry else { panic!("polygon") };
        assert_eq!(p[0][0][1], Coord { x: 1.0, y: 0.0 });
        assert_eq!(records[1].geometry, SourceGeometry::Null);
        assert!(matches!(&records[2].geometry, SourceGeometry::Polygons(p) if p.len() == 2));
        assert_eq!(records[3].geometry, SourceGeometry::Point(Coord { x: 5.5, y: 6.0 }));
        assert_eq!(records[4].geometry, SourceGeometry::NotPolygon("LineString".into()));
        assert_eq!(records[5].geometry, SourceGeometry::Null);
        assert_eq!(records.iter().map(|r| r.feature).collect::<Vec<_>>(), [1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn head_finds_the_name_and_legacy_crs() {
        let file = write(
            r#"{"type":"FeatureCollection","crs":{"type":"name","properties":{"name":"urn:ogc:def:crs:EPSG::5899"}},
            "name":"thua_dat","features":[{"type":"Feature","properties":{"name":"not this"},"geometry":null}]}"#,
        );
        let head = head(&file).expect("head");
        assert_eq!(head.name.as_deref(), Some("thua_dat"));
        assert_eq!(head.crs.epsg, Some(5899));
        assert!(head.crs.proj4.as_deref().is_some_and(|p| p.contains("+lon_0=107.75")), "{:?}", head.crs);
        let plain = write(r#"{"type":"FeatureCollection","features":[]}"#);
        let head = super::head(&plain).expect("head");
        assert_eq!((head.name, head.crs.epsg), (None, Some(4326)));
    }

    fn read_err(text: &str) -> String {
        let file = write(text);
        match read::<SourceError>(&file, 2, &mut |_| Ok(())) {
            Ok(c) => panic!("read {} features of {text:?}", c.features),
            Err(e) => e.to_string(),
        }
    }

    const ONE: &str =
        r#"{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"a":1},"geometry":null}]}"#;

    /// Two collections one after the other once read as the first alone, exit 0.
    #[test]
    fn anything_after_the_collection_refuses_the_file_naming_the_byte() {
        let e = read_err(&format!("{ONE}\n{ONE}"));
        assert!(e.contains(&format!("from byte {}", ONE.len() + 1)), "{e}");
        assert!(e.contains("exactly one FeatureCollection"), "{e}");
        let e = read_err(&format!("{ONE}  garbage"));
        assert!(e.contains(&format!("from byte {}", ONE.len() + 2)), "{e}");
        // Whitespace after the end is fine.
        let (c, records) = read_str(&format!("{ONE}\n\n  "));
        assert_eq!((c.features, records.len()), (1, 1));
    }

    #[test]
    fn a_second_features_member_or_another_type_is_refused() {
        let twice = r#"{"type":"FeatureCollection","features":[],"features":[{"type":"Feature","properties":{},"geometry":null}]}"#;
        assert!(read_err(twice).contains(r#"the member "features" occurs twice"#));
        let e = read_err(r#"{"type":"Topology","features":[]}"#);
        assert!(e.contains("not a FeatureCollection"), "{e}");
    }

    #[test]
    fn a_byte_order_mark_is_passed_over() {
        let file = write(&format!("\u{feff}{ONE}"));
        assert!(handles(&file));
        let mut n = 0;
        read::<SourceError>(&file, 2, &mut |chunk| {
            n += chunk.len();
            Ok(())
        })
        .expect("read");
        assert_eq!(n, 1);
        let e = read_err(&format!("\u{feff}{ONE}x"));
        assert!(e.contains(&format!("from byte {}", ONE.len() + 3)), "{e}");
    }

    #[test]
    fn a_truncated_file_says_so_and_where_it_ends() {
        let e = read_err(&ONE[..60]);
        assert!(e.contains("ends at byte 60"), "{e}");
    }

    #[test]
    fn broken_json_names_the_file() {
        let dir = std::env::temp_dir().join(format!("landdb-geojson-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("broken.geojson");
        std::fs::write(&file, r#"{"type":"FeatureCollection","features":[{"type":"Feature","geometry":"#).expect("w");
        let e = read::<SourceError>(&file, 10, &mut |_| Ok(())).expect_err("broken");
        assert!(e.to_string().contains("broken.geojson"), "{e}");
    }

    proptest::proptest! {
        /// Any bytes at all: features read or a refusal naming the file, never a panic; and a
        /// collection that parses whole is read whole, every feature once and in order.
        #[test]
        fn any_text_is_read_whole_or_refused(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
            let (_dir, file) = write_bytes(&bytes);
            let mut n = 0;
            match read::<SourceError>(&file, 3, &mut |chunk| { n += chunk.len(); Ok(()) }) {
                Ok(c) => proptest::prop_assert_eq!(c.features as usize, n),
                Err(e) => proptest::prop_assert!(e.to_string().contains("any.geojson"), "{}", e),
            }
        }

        /// A valid collection with bytes changed, inserted or removed anywhere: every record it
        /// yields has its 1-based number in order, or the file is refused; never a panic.
        #[test]
        fn a_mutated_collection_is_read_in_order_or_refused(
            edits in proptest::collection::vec((0usize..2000, 0u8..3, proptest::num::u8::ANY), 1..6),
        ) {
            let feature = r#"{"type":"Feature","properties":{"MaXa":"20194","SoThuTuThua":[1],"b":false},"geometry":{"type":"MultiPolygon","coordinates":[[[[0,0],[1e308,0],[1,1],[0,0]]]]}}"#;
            let mut bytes = format!(r#"{{"type":"FeatureCollection","name":"x","features":[{f},{f},{f}]}}"#, f = feature).into_bytes();
            for (at, kind, byte) in edits {
                let at = at % (bytes.len() + 1);
                match kind {
                    0 if at < bytes.len() => bytes[at] = byte,
                    1 => bytes.insert(at, byte),
                    _ if at < bytes.len() => { bytes.remove(at); }
                    _ => {}
                }
            }
            let mut numbers = Vec::new();
            let (_dir, file) = write_bytes(&bytes);
            let result = read::<SourceError>(&file, 2, &mut |chunk| {
                numbers.extend(chunk.iter().map(|r| r.feature));
                Ok(())
            });
            if result.is_ok() {
                let expected: Vec<usize> = (1..=numbers.len()).collect();
                proptest::prop_assert_eq!(numbers, expected);
            }
        }

        /// A valid collection cut anywhere, or with anything but whitespace after it, is refused;
        /// whole, all its features are read.
        #[test]
        fn a_collection_cut_or_extended_is_refused(
            features in 0usize..6,
            cut in proptest::option::of(0usize..1000),
            tail in "[ \n]*[^ \n\t\r]?[ -~]{0,20}",
        ) {
            let feature = r#"{"type":"Feature","properties":{"MaXa":"20194","x":[1,{"y":true}]},"geometry":{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0]]]}}"#;
            let whole = format!(r#"{{"type":"FeatureCollection","features":[{}]}}"#, vec![feature; features].join(","));
            let text = match cut {
                Some(at) if at < whole.len() => whole[..at].to_owned(),
                _ => format!("{whole}{tail}"),
            };
            let mut n = 0;
            let (_dir, file) = write_bytes(text.as_bytes());
            let result = read::<SourceError>(&file, 2, &mut |chunk| { n += chunk.len(); Ok(()) });
            if text.trim_end_matches([' ', '\n', '\t', '\r']) == whole {
                proptest::prop_assert!(result.is_ok(), "{:?}", result.err());
                proptest::prop_assert_eq!(n, features);
            } else {
                proptest::prop_assert!(result.is_err(), "{:?} read {} features", text, n);
            }
        }
    }

    /// `bytes` in a file of a folder of its own, removed with the folder when dropped.
    fn write_bytes(bytes: &[u8]) -> (crate::TestDir, std::path::PathBuf) {
        let dir = crate::TestDir::new("geojson-any");
        let file = dir.0.join("any.geojson");
        std::fs::write(&file, bytes).expect("write");
        (dir, file)
    }
}
