//! `landdb-gen`: synthetic cadastral data that looks like what provinces deliver: a tessellated
//! fabric of parcels in a real province's VN-2000 TM-3 zone, with real commune codes, official
//! land-use codes, declared areas close to (not equal to) the geometric ones, and synthetic right
//! holders. Deterministic for a seed; one commune in memory at a time.

mod fabric;
mod people;

use std::io::{BufWriter, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use fabric::{PieceKind, Setting};
use geo::{Coord, MultiPolygon};
use landdb_crs::Transformer;
use landdb_model::{CommuneCode, ProvinceCode, ReferenceData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Map, Value, json};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum SettingArg {
    Urban,
    Rural,
    Mixed,
}

/// Generate synthetic cadastral parcels.
#[derive(Debug, Parser)]
#[command(name = "landdb-gen", version)]
struct Args {
    /// Province code (2025), e.g. 48 for Đà Nẵng.
    #[arg(long, default_value = "48")]
    province: String,
    /// How many of the province's communes (in code order).
    #[arg(long, default_value_t = 3)]
    communes: usize,
    /// Parcels per commune (roads come on top).
    #[arg(long, default_value_t = 1000)]
    parcels_per_commune: usize,
    #[arg(long, value_enum, default_value_t = SettingArg::Mixed)]
    setting: SettingArg,
    /// Where the first commune's south-west corner lies (WGS84 lon,lat).
    #[arg(long, default_value = "108.17,16.02", value_parser = parse_lon_lat)]
    origin: (f64, f64),
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Output directory: one GeoJSON file per commune, `<commune>.geojson`.
    #[arg(long)]
    out: PathBuf,
}

fn parse_lon_lat(raw: &str) -> Result<(f64, f64), String> {
    let (lon, lat) = raw.split_once(',').ok_or("expected lon,lat")?;
    Ok((lon.trim().parse().map_err(|_| "bad lon")?, lat.trim().parse().map_err(|_| "bad lat")?))
}

/// Land-use codes of ordinary parcels and their shares, by setting.
const URBAN_USE: [(&str, u32); 8] =
    [("ODT", 70), ("ODT+CLN", 6), ("TMD", 6), ("CLN", 5), ("SKC", 3), ("DGD", 2), ("DYT", 1), ("BHK", 7)];
const RURAL_USE: [(&str, u32); 8] =
    [("LUC", 35), ("ONT", 20), ("ONT+CLN", 8), ("CLN", 12), ("BHK", 10), ("NTS", 6), ("RSX", 7), ("DTL", 2)];

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let reference = ReferenceData::embedded()?;
    let province_code = ProvinceCode::parse(&args.province)?;
    let province = reference.province(&province_code).with_context(|| format!("no province {province_code}"))?;
    let mut communes: Vec<_> = reference.communes().filter(|c| c.province_code == province_code).collect();
    communes.sort_by(|a, b| a.code.cmp(&b.code));
    communes.truncate(args.communes);
    std::fs::create_dir_all(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;

    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let mut total = 0;
    for (i, commune) in communes.iter().enumerate() {
        let zone = reference
            .zone_of_commune(&commune.code)
            .with_context(|| format!("no VN-2000 zone for commune {}", commune.code))?;
        let to_zone = Transformer::wgs84_to_zone(&zone)?;
        let to_wgs84 = Transformer::zone_to_wgs84(&zone)?;
        let origin = to_zone.coord(Coord { x: args.origin.0, y: args.origin.1 })?;
        // Communes side by side, 4 to a row, 6 km apart.
        let origin = Coord { x: origin.x + (i % 4) as f64 * 6_000.0, y: origin.y + (i / 4) as f64 * 6_000.0 };
        let setting = match (args.setting, i % 2) {
            (SettingArg::Urban, _) | (SettingArg::Mixed, 0) => Setting::Urban,
            _ => Setting::Rural,
        };
        let pieces = fabric::commune(&mut rng, origin, setting, args.parcels_per_commune);
        let path = args.out.join(format!("{}.geojson", commune.code));
        let file = std::fs::File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
        let mut out = BufWriter::new(file);
        out.write_all(b"{\"type\":\"FeatureCollection\",\"features\":[\n")?;
        let mut sheet_numbers: std::collections::HashMap<usize, u32> = std::collections::HashMap::new();
        for (n, piece) in pieces.iter().enumerate() {
            let sheet = piece.block / 6 + 1;
            let number = sheet_numbers.entry(sheet).or_insert(0);
            *number += 1;
            let props =
                attributes(&mut rng, piece, setting, &commune.code, &commune.name, &province.name, sheet, *number);
            let geometry = to_wgs84.multi_polygon(&MultiPolygon(vec![piece.polygon.clone()]))?;
            let feature = json!({
                "type": "Feature",
                "properties": props,
                "geometry": geojson::Geometry::from(&geometry),
            });
            if n > 0 {
                out.write_all(b",\n")?;
            }
            serde_json::to_writer(&mut out, &feature)?;
        }
        out.write_all(b"\n]}\n")?;
        out.flush()?;
        total += pieces.len();
        eprintln!("{}: {} parcels ({:?}, zone EPSG:{})", path.display(), pieces.len(), setting, zone.epsg);
    }
    eprintln!("{total} parcels in {} communes", communes.len());
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn attributes<R: Rng>(
    rng: &mut R,
    piece: &fabric::Piece,
    setting: Setting,
    commune: &CommuneCode,
    commune_name: &str,
    province_name: &str,
    sheet: usize,
    number: u32,
) -> Map<String, Value> {
    let area = fabric::plane_area(&piece.polygon);
    // Declared areas: the surveyor's figure, within a few per mille of the geometry, to 0.1 m².
    let declared = (area * (1.0 + rng.gen_range(-0.004..0.004)) * 10.0).round() / 10.0;
    let land_use = match piece.kind {
        PieceKind::Road => "DGT",
        PieceKind::Parcel => {
            let table: &[(&str, u32)] = if setting == Setting::Urban { &URBAN_USE } else { &RURAL_USE };
            let total: u32 = table.iter().map(|t| t.1).sum();
            let mut pick = rng.gen_range(0..total);
            table
                .iter()
                .find(|t| {
                    pick < t.1 || {
                        pick -= t.1;
                        false
                    }
                })
                .map_or("ODT", |t| t.0)
        }
    };
    let mut props = Map::new();
    props.insert("MaXa".into(), json!(commune.as_str()));
    props.insert("SoHieuToBanDo".into(), json!(sheet));
    props.insert("SoThuTuThua".into(), json!(number));
    props.insert("DienTich".into(), json!(declared));
    props.insert("KyHieuMucDichSuDung".into(), json!(land_use));
    if piece.kind == PieceKind::Parcel {
        props.insert("DienTichPhapLy".into(), json!(if rng.gen_bool(0.8) { Some(declared.round()) } else { None }));
        props.insert("DiaChi".into(), json!(people::address(rng, commune_name, province_name)));
        props.insert("TenChu".into(), json!(people::name(rng)));
        props.insert("NamSinhC1".into(), json!(people::birth_year(rng)));
        if rng.gen_bool(0.3) {
            props.insert("TenChu2".into(), json!(people::name(rng)));
        }
        if rng.gen_bool(0.7) {
            props.insert(
                "SoHieuGCN".into(),
                json!(format!("C{}{:06}", if rng.gen_bool(0.5) { 'S' } else { 'D' }, rng.gen_range(0..1_000_000))),
            );
        }
    }
    props
}
