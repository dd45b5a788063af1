//! `landdb export`: the parcels of a commune, a box, or all, as one GeoJSON file (RFC 7946,
//! WGS84), written a chunk at a time: what the API's export endpoint streams, from the command
//! line.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use futures::StreamExt;
use landdb_api::export::{Selection, geojson_stream};
use landdb_api::features::Field;
use landdb_engine::Engine;
use landdb_model::CommuneCode;

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
    let store = context.store().await?;
    let engine = Engine::load(&store).await?;
    let view = engine.snapshot();
    let selection = Selection::of(&view, commune.as_ref(), bbox);
    let count = match &selection {
        Selection::All => view.len(),
        Selection::Versions(v) => v.len(),
    };
    // Public fields only: personal data leaves through the API, under its access rules.
    let fields = Field::visible(&landdb_api::access::Access::anonymous());
    let mut out: Box<dyn Write> = if args.out.as_os_str() == "-" {
        Box::new(std::io::BufWriter::new(std::io::stdout().lock()))
    } else {
        let file = std::fs::File::create(&args.out)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", args.out.display()))?;
        Box::new(std::io::BufWriter::with_capacity(1 << 20, file))
    };
    let crs = match &args.crs {
        Some(raw) => {
            landdb_api::crs::OutputCrs::parse(raw, &context.reference()?).map_err(|e| anyhow::anyhow!("--{e}"))?
        }
        None => landdb_api::crs::OutputCrs::crs84(),
    };
    let mut stream = Box::pin(geojson_stream(Arc::clone(&view), selection, fields, crs));
    let mut bytes = 0;
    while let Some(Ok(chunk)) = stream.next().await {
        out.write_all(&chunk).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", args.out.display()))?;
        bytes += chunk.len();
    }
    out.flush()?;
    if args.out.as_os_str() != "-" {
        println!("{count} parcels, {bytes} bytes of GeoJSON written to {}", args.out.display());
    }
    Ok(())
}
