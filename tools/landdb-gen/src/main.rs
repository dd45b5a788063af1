//! `landdb-gen`: synthetic cadastral data that looks like what provinces deliver: a tessellated
//! fabric of parcels in a real province's VN-2000 TM-3 zone, with real commune codes, official
//! land-use codes, declared areas close to (not equal to) the geometric ones, synthetic right
//! holders, the field layouts and file formats seen in real deliveries, and defects on request,
//! each counted in a manifest. Deterministic for a seed; one commune in memory at a time.

mod dbf;
mod defects;
mod fabric;
mod layout;
mod people;
mod record;
mod stats;
mod write;

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use defects::{Defect, DefectPlan, Injected};
use fabric::{PieceKind, Setting};
use geo::Coord;
use landdb_crs::Transformer;
use landdb_model::{CommuneCode, ProvinceCode, ReferenceData};
use layout::Layout;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use record::Record;
use write::{Cpg, FileOptions, Format, Prj, TextEncoding};

#[derive(Debug, Clone, Copy, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
enum SettingArg {
    Urban,
    Rural,
    /// Urban and rural communes alternately.
    Mixed,
}

#[derive(Debug, Parser)]
#[command(name = "landdb-gen", version, about = "Synthetic cadastral data for landdb's tests, benchmarks and demo")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate communes of parcels into a directory, with a manifest.json.
    Generate(GenerateArgs),
    /// Statistics of GeoJSON parcel files (vertices per parcel, areas, shared vertices).
    Stats {
        /// GeoJSON files or directories of them (WGS84).
        paths: Vec<PathBuf>,
    },
}

#[derive(Debug, clap::Args, serde::Serialize)]
struct GenerateArgs {
    /// Province code (2025), e.g. 48 for Đà Nẵng, or `all` for communes of every province.
    #[arg(long, default_value = "48")]
    province: String,
    /// How many of the province's communes (in code order).
    #[arg(long, default_value_t = 3)]
    communes: usize,
    /// Parcels per commune (roads and rivers come on top).
    #[arg(long, default_value_t = 1000)]
    parcels_per_commune: usize,
    #[arg(long, value_enum, default_value_t = SettingArg::Mixed)]
    setting: SettingArg,
    /// Where the first commune's south-west corner lies (WGS84 lon,lat).
    #[arg(long, default_value = "108.17,16.02", value_parser = parse_lon_lat)]
    origin: (f64, f64),
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Output formats (each commune is written in every one).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "geojson")]
    format: Vec<Format>,
    #[arg(long, value_enum, default_value_t = Layout::Vbdlis)]
    layout: Layout,
    /// Text encoding of Shapefile attributes.
    #[arg(long, value_enum, default_value_t = TextEncoding::Utf8)]
    encoding: TextEncoding,
    /// What the Shapefile's .cpg says.
    #[arg(long, value_enum, default_value_t = Cpg::Correct)]
    cpg: Cpg,
    /// What the Shapefile's .prj says.
    #[arg(long, value_enum, default_value_t = Prj::Arcgis)]
    prj: Prj,
    /// Defects per commune: `self_intersection=3,null_geometry=2`, or `all=2`.
    #[arg(long, default_value = "", value_parser = DefectPlan::parse)]
    #[serde(skip)]
    defects: DefectPlan,
    /// Output directory.
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

/// What a generation produced, written as `manifest.json` beside the files.
#[derive(Debug, serde::Serialize)]
struct Manifest<'a> {
    generator: &'static str,
    arguments: &'a GenerateArgs,
    defects_per_commune: BTreeMap<Defect, usize>,
    /// Records per file (roads and rivers included).
    records: usize,
    files: Vec<ManifestFile>,
    /// Every injected defect with the keys (`commune/sheet/number`) of the records it touched.
    defects: BTreeMap<Defect, DefectEntry>,
}

#[derive(Debug, serde::Serialize)]
struct ManifestFile {
    path: String,
    commune: String,
    zone_epsg: u32,
    records: usize,
    options: FileOptions,
}

#[derive(Debug, serde::Serialize)]
struct DefectEntry {
    count: usize,
    keys: Vec<String>,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Generate(args) => generate(&args),
        Command::Stats { paths } => stats::print(&paths),
    }
}

fn generate(args: &GenerateArgs) -> anyhow::Result<()> {
    let reference = ReferenceData::embedded()?;
    let province = match args.province.as_str() {
        "all" => None,
        code => Some(ProvinceCode::parse(code)?),
    };
    if let Some(code) = &province {
        reference.province(code).with_context(|| format!("no province {code}"))?;
    }
    let mut communes: Vec<_> =
        reference.communes().filter(|c| province.as_ref().is_none_or(|p| c.province_code == *p)).collect();
    communes.sort_by(|a, b| a.code.cmp(&b.code));
    communes.truncate(args.communes);
    // Communes on a square grid, far enough apart for the largest (rural) ones not to touch.
    let columns = (communes.len() as f64).sqrt().ceil().max(1.0) as usize;
    let spacing = (args.parcels_per_commune as f64 * 4_000.0).sqrt() * 1.6 + 500.0;
    std::fs::create_dir_all(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;

    let old_provinces: Vec<&str> =
        (1..100).filter_map(|n| reference.old_province(&format!("{n:02}"))).map(|p| p.code.as_str()).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let mut files = Vec::new();
    let mut injected = Injected::new();
    let mut total = 0;
    for (i, commune) in communes.iter().enumerate() {
        let zone = reference
            .zone_of_commune(&commune.code)
            .with_context(|| format!("no VN-2000 zone for commune {}", commune.code))?;
        let origin = Transformer::wgs84_to_zone(&zone)?.coord(Coord { x: args.origin.0, y: args.origin.1 })?;
        let origin =
            Coord { x: origin.x + (i % columns) as f64 * spacing, y: origin.y + (i / columns) as f64 * spacing };
        let setting = match (args.setting, i % 2) {
            (SettingArg::Urban, _) | (SettingArg::Mixed, 0) => Setting::Urban,
            _ => Setting::Rural,
        };
        let pieces = fabric::commune(&mut rng, origin, setting, args.parcels_per_commune);
        let province_name = reference.province(&commune.province_code).map_or("", |p| p.name.as_str());
        let mut records = records(&mut rng, &pieces, setting, &commune.code, &commune.name, province_name);
        let home = reference.old_province_of(&commune.code).map_or("48", |p| p.code.as_str());
        people::assign_citizen_ids(&mut records, args.seed, home, &old_provinces);
        let obsolete: Vec<String> = reference
            .old_codes_merged_into(&commune.code)
            .into_iter()
            .filter(|c| c != &commune.code && reference.commune(c).is_none())
            .map(|c| c.to_string())
            .collect();
        defects::inject(&mut rng, &mut records, &args.defects, &obsolete, &mut injected);
        for &format in &args.format {
            let options =
                FileOptions { format, layout: args.layout, encoding: args.encoding, cpg: args.cpg, prj: args.prj };
            let path = write::write(&args.out.join(commune.code.as_str()), &records, &zone, &options)?;
            files.push(ManifestFile {
                path: path.strip_prefix(&args.out).unwrap_or(&path).display().to_string(),
                commune: commune.code.to_string(),
                zone_epsg: zone.epsg,
                records: records.len(),
                options,
            });
        }
        total += records.len();
        eprintln!("{}: {} records ({setting:?}, zone EPSG:{})", commune.code, records.len(), zone.epsg);
    }
    let manifest = Manifest {
        generator: concat!("landdb-gen ", env!("CARGO_PKG_VERSION")),
        arguments: args,
        defects_per_commune: args.defects.0.clone(),
        records: total,
        files,
        defects: injected.into_iter().map(|(d, keys)| (d, DefectEntry { count: keys.len(), keys })).collect(),
    };
    let path = args.out.join("manifest.json");
    std::fs::write(&path, serde_json::to_string_pretty(&manifest)? + "\n")?;
    eprintln!("{total} records in {} communes; manifest {}", communes.len(), path.display());
    Ok(())
}

/// Attributes for every piece of a commune's fabric; sheets of six blocks, parcels numbered from 1
/// on each sheet.
fn records<R: Rng>(
    rng: &mut R,
    pieces: &[fabric::Piece],
    setting: Setting,
    commune: &CommuneCode,
    commune_name: &str,
    province_name: &str,
) -> Vec<Record> {
    let mut numbers: BTreeMap<u32, u32> = BTreeMap::new();
    pieces
        .iter()
        .map(|piece| {
            let sheet = u32::try_from(piece.block / 6 + 1).unwrap_or(u32::MAX);
            let number = numbers.entry(sheet).or_insert(0);
            *number += 1;
            let area = fabric::plane_area(&piece.polygon);
            // The surveyor's figure: within a few per mille of the geometry, to 0.1 m².
            let declared = (area * (1.0 + rng.gen_range(-0.004..0.004)) * 10.0).round() / 10.0;
            let land_use = match piece.kind {
                PieceKind::Road => "DGT",
                PieceKind::River => "SON",
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
            let private = piece.kind == PieceKind::Parcel;
            Record {
                commune_code: commune.to_string(),
                sheet,
                number: *number,
                land_use: land_use.to_owned(),
                area: declared,
                legal_area: (private && rng.gen_bool(0.8)).then(|| declared.round()),
                address: private.then(|| people::address(rng, commune_name, province_name)),
                owner: private.then(|| people::name(rng)),
                owner_birth_year: private.then(|| people::birth_year(rng)),
                owner_citizen_id: None,
                second_owner: (private && rng.gen_bool(0.3)).then(|| people::name(rng)),
                certificate: (private && rng.gen_bool(0.7)).then(|| {
                    format!("C{}{:06}", if rng.gen_bool(0.5) { 'S' } else { 'D' }, rng.gen_range(0..1_000_000))
                }),
                ring: Some(piece.polygon.exterior().0.clone()),
            }
        })
        .collect()
}
