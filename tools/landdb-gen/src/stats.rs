//! Statistics that say whether a fabric looks like the real thing: vertices per parcel, area
//! distribution, and how many vertices neighbours share.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use geo::{GeodesicArea, Geometry};

fn files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut inside: Vec<PathBuf> = std::fs::read_dir(p)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "geojson"))
                .collect();
            inside.sort();
            out.extend(inside);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

/// Figures for a set of WGS84 GeoJSON files.
#[derive(Debug)]
pub struct Stats {
    pub parcels: usize,
    pub vertices: Vec<f64>,
    pub areas: Vec<f64>,
    pub shared_vertex_ratio: f64,
}

pub fn compute(paths: &[PathBuf]) -> anyhow::Result<Stats> {
    let mut vertices = Vec::new();
    let mut areas = Vec::new();
    // Quantised to 1e-9° (0.1 mm): a vertex is shared when two parcels have it exactly.
    let mut seen: HashMap<(i64, i64), u32> = HashMap::new();
    for file in files(paths)? {
        let collection: geojson::FeatureCollection = std::fs::read_to_string(&file)?.parse()?;
        for feature in collection.features {
            let Some(geometry) = feature.geometry else { continue };
            let Ok(Geometry::Polygon(polygon)) = Geometry::<f64>::try_from(geometry.value) else { continue };
            let ring = &polygon.exterior().0;
            let distinct = &ring[..ring.len().saturating_sub(1)];
            vertices.push(distinct.len() as f64);
            areas.push(polygon.geodesic_area_unsigned());
            let mut mine: Vec<(i64, i64)> =
                distinct.iter().map(|c| ((c.x * 1e9).round() as i64, (c.y * 1e9).round() as i64)).collect();
            mine.sort_unstable();
            mine.dedup();
            for v in mine {
                *seen.entry(v).or_default() += 1;
            }
        }
    }
    vertices.sort_by(f64::total_cmp);
    areas.sort_by(f64::total_cmp);
    let shared = seen.values().filter(|n| **n > 1).count();
    Ok(Stats { parcels: areas.len(), vertices, areas, shared_vertex_ratio: shared as f64 / seen.len().max(1) as f64 })
}

pub fn print(paths: &[PathBuf]) -> anyhow::Result<()> {
    let s = compute(paths)?;
    let in_range = s.vertices.iter().filter(|v| (4.0..=40.0).contains(*v)).count() as f64 / s.parcels.max(1) as f64;
    println!("| what | {} |", paths.iter().map(|p| Path::new(p).display().to_string()).collect::<Vec<_>>().join(", "));
    println!("|---|---|");
    println!("| parcels | {} |", s.parcels);
    println!(
        "| vertices per parcel: p10 / median / p90 / max | {} / {} / {} / {} |",
        percentile(&s.vertices, 0.1),
        percentile(&s.vertices, 0.5),
        percentile(&s.vertices, 0.9),
        s.vertices.last().copied().unwrap_or(0.0)
    );
    println!("| parcels with 4–40 vertices | {:.1} % |", in_range * 100.0);
    println!(
        "| area m²: p10 / median / p90 | {:.0} / {:.0} / {:.0} |",
        percentile(&s.areas, 0.1),
        percentile(&s.areas, 0.5),
        percentile(&s.areas, 0.9)
    );
    println!("| vertices shared by two or more parcels | {:.1} % |", s.shared_vertex_ratio * 100.0);
    Ok(())
}
