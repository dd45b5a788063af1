//! landdb's VN-2000 → WGS84 transformation agrees with PROJ's command line (`cs2cs`, given the
//! zone's definition with the EPSG:6960 shift) to 1 mm, on a grid of points in every zone of the
//! reference data.

use std::io::Write;
use std::process::{Command, Stdio};

use geo::Coord;
use landdb_crs::Transformer;
use landdb_model::ReferenceData;

/// About 1 mm in degrees at these latitudes.
const MM_DEG: f64 = 1e-8;

#[test]
fn every_zone_agrees_with_cs2cs_to_a_millimetre() {
    let reference = ReferenceData::embedded().expect("reference");
    let zones = reference.zones();
    assert!(zones.len() >= 15, "{} zones", zones.len());
    for zone in zones {
        let grid: Vec<Coord<f64>> = (0..6)
            .flat_map(|i| {
                (0..6).map(move |j| Coord {
                    x: 380_000.0 + 48_000.0 * f64::from(i),
                    y: 950_000.0 + 280_000.0 * f64::from(j),
                })
            })
            .collect();
        let input: String = grid.iter().map(|c| format!("{} {}\n", c.x, c.y)).collect();
        let mut child = Command::new("cs2cs")
            .args(["-f", "%.10f", &zone.proj_string(), "+to", "+proj=longlat +datum=WGS84 +no_defs"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("cs2cs (proj-bin) is installed by tools/setup");
        child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write");
        let out = child.wait_with_output().expect("cs2cs output");
        let text = String::from_utf8(out.stdout).expect("text");
        let ours = Transformer::zone_to_wgs84(&zone).expect("transformer");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), grid.len());
        for (c, line) in grid.iter().zip(lines) {
            let mut v = line.split_whitespace().map(|t| t.parse::<f64>().expect("number"));
            let (lon, lat) = (v.next().expect("lon"), v.next().expect("lat"));
            let p = ours.coord(*c).expect("transform");
            assert!(
                (p.x - lon).abs() < MM_DEG && (p.y - lat).abs() < MM_DEG,
                "{}: {c:?} → {p:?}, cs2cs {lon} {lat}",
                zone.crs_name()
            );
        }
    }
}
