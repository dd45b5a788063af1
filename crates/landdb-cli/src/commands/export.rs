//! `landdb export`: the parcels of a commune, a box, a polygon, a filter, or all, as one file —
//! GeoJSON (RFC 7946) written a chunk at a time, or a GeoPackage, zipped Shapefile or DXF through
//! GDAL: what the API's export endpoint sends, from the command line.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use futures::StreamExt;
use landdb_api::export::geojson_stream;
use landdb_api::features::Field;
use landdb_api::formats::Format;
use landdb_engine::Engine;
use landdb_model::CommuneCode;

use super::spinner;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The file to write (`-` for standard output).
    #[arg(long)]
    pub out: PathBuf,
    /// Only the parcels of this commune (5-digit code).
    #[arg(long)]
    pub commune: Option<String>,
    /// Only the parcels intersecting west,south,east,north (longitude, latitude).
    #[arg(long, allow_hyphen_values = true)]
    pub bbox: Option<String>,
    /// Only the parcels intersecting this polygon (WKT, in --filter-crs: longitude/latitude by
    /// default).
    #[arg(long)]
    pub polygon: Option<String>,
    /// Only the parcels matching this CQL2 text condition (as the API's `filter`).
    #[arg(long)]
    pub filter: Option<String>,
    /// The coordinate system of the geometries in --polygon and --filter, as --crs names them
    /// (a surveyor's polygon in a VN-2000 TM-3 zone, say); CRS84 without it.
    #[arg(long)]
    pub filter_crs: Option<String>,
    /// geojson, gpkg, shp (a zip) or dxf; from the extension of --out when not given.
    #[arg(long)]
    pub format: Option<String>,
    /// The coordinate system to write: `EPSG:n` of a VN-2000 TM-3 zone (what surveyors work in),
    /// 4756 (VN-2000 geographic), 4326, 32648, 32649; WGS84 longitude/latitude (CRS84) without it.
    #[arg(long)]
    pub crs: Option<String>,
}

pub async fn run(context: &crate::Context, args: &Args) -> anyhow::Result<()> {
    let commune = args
        .commune
        .as_deref()
        .map(|c| CommuneCode::parse(c).map_err(|_| anyhow::anyhow!("--commune {c}: give a 5-digit commune code")))
        .transpose()?;
    let bbox = args
        .bbox
        .as_deref()
        .map(|b| landdb_api::params::parse_bbox(b).map_err(|e| anyhow::anyhow!("--{e}")))
        .transpose()?;
    let access = landdb_api::access::Access::nation(false);
    let in_crs = match &args.filter_crs {
        Some(raw) => landdb_api::crs::OutputCrs::parse(raw, &context.reference()?)
            .map_err(|e| anyhow::anyhow!("--filter-{e}"))?,
        None => landdb_api::crs::OutputCrs::crs84(),
    };
    let text = landdb_api::filter::Language::Text;
    let filter = match (&args.filter, &args.polygon) {
        (Some(_), Some(_)) => anyhow::bail!("give --polygon or --filter, not both"),
        (Some(f), None) => Some(
            landdb_api::filter::Filter::parse_in(f, text, &access, &in_crs).map_err(|e| anyhow::anyhow!("--{e}"))?,
        ),
        (None, Some(p)) => Some(
            landdb_api::filter::Filter::intersecting(p, &access, &in_crs)
                .map_err(|_| anyhow::anyhow!("--polygon {p}: not a WKT polygon in {}", in_crs.uri))?,
        ),
        (None, None) => None,
    };
    let format = match &args.format {
        Some(f) => Format::parse(f).ok_or_else(|| anyhow::anyhow!("--format {f}: give geojson, gpkg, shp or dxf"))?,
        None => args.out.extension().and_then(|e| e.to_str()).and_then(Format::parse).unwrap_or(Format::GeoJson),
    };
    let store = context.store().await?;
    let engine = Engine::load(&store).await?;
    let sources = landdb_api::scope::Sources::new(Arc::new(engine), store);
    let scoped = sources.scoped(&access);
    // Public fields only: personal data leaves through the API, under its access rules.
    let fields = Field::visible(&access);
    let selection = scoped.select(commune.as_ref(), bbox, filter.as_ref());
    let released = scoped.release_selection(selection, &fields).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let count = released.len();
    let crs = match &args.crs {
        Some(raw) => {
            landdb_api::crs::OutputCrs::parse(raw, &context.reference()?).map_err(|e| anyhow::anyhow!("--{e}"))?
        }
        None => landdb_api::crs::OutputCrs::crs84(),
    };
    if format != Format::GeoJson {
        anyhow::ensure!(args.out.as_os_str() != "-", "--format {format:?} is written to a file: give --out FILE");
        let scratch = tempfile_dir(&args.out)?;
        let bar = spinner(&format!("writing {count} parcels as {format:?}"), "{spinner} {msg} ({elapsed})");
        let written =
            landdb_api::formats::write(&released, &fields, &crs, format, &scratch).map_err(|e| anyhow::anyhow!("{e}"));
        let moved = written.and_then(|path| {
            std::fs::rename(&path, &args.out)
                .or_else(|_| std::fs::copy(&path, &args.out).map(|_| ()))
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", args.out.display()))
        });
        bar.finish_and_clear();
        let _ = std::fs::remove_dir_all(&scratch);
        moved?;
        println!("{count} parcels written to {} ({format:?})", args.out.display());
        return Ok(());
    }
    let mut out: Box<dyn Write> = if args.out.as_os_str() == "-" {
        Box::new(std::io::BufWriter::new(std::io::stdout().lock()))
    } else {
        let file = std::fs::File::create(&args.out)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", args.out.display()))?;
        Box::new(std::io::BufWriter::with_capacity(1 << 20, file))
    };
    let mut stream = Box::pin(geojson_stream(released, fields, crs));
    let mut bytes = 0;
    let bar = spinner(&format!("{count} parcels"), "{spinner} {msg}: {bytes} written {bytes_per_sec}");
    while let Some(Ok(chunk)) = stream.next().await {
        out.write_all(&chunk).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", args.out.display()))?;
        bytes += chunk.len();
        bar.set_position(bytes as u64);
    }
    bar.finish_and_clear();
    out.flush()?;
    if args.out.as_os_str() != "-" {
        println!("{count} parcels, {bytes} bytes of GeoJSON written to {}", args.out.display());
    }
    Ok(())
}

/// A scratch directory beside the output (same file system, so the result is moved, not copied).
fn tempfile_dir(out: &std::path::Path) -> anyhow::Result<PathBuf> {
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    let dir = parent.join(format!(".landdb-export-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| anyhow::anyhow!("cannot write in {}: {e}", parent.display()))?;
    Ok(dir)
}
