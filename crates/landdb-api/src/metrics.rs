//! Prometheus metrics at `/metrics`: requests and their latency by route and status class, and
//! the state of the engine (parcels, feed position, memory) and of the upload jobs.
//!
//! Counted with plain atomics in a fixed table, one row a route: a lookup costs a few string
//! comparisons and no allocation, which matters at 50,000 requests a second on two cores (a
//! general metrics registry hashes a label set on every request).

use std::fmt::Write;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

#[derive(Debug, Default)]
struct RouteStats {
    by_class: [AtomicU64; 5],
    /// Requests at or under each bound (cumulative at rendering).
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    micros: AtomicU64,
}

/// The counters of every route.
#[derive(Debug, Default)]
pub struct Metrics {
    routes: RwLock<Vec<(&'static str, &'static RouteStats)>>,
}

impl Metrics {
    /// The row of a route, made on first use (rows live as long as the process).
    fn route(&self, route: &str) -> &'static RouteStats {
        let known = self.routes.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, stats)) = known.iter().find(|(r, _)| *r == route) {
            return stats;
        }
        drop(known);
        let mut routes = self.routes.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, stats)) = routes.iter().find(|(r, _)| *r == route) {
            return stats;
        }
        let stats: &'static RouteStats = Box::leak(Box::default());
        routes.push((Box::leak(route.to_owned().into_boxed_str()), stats));
        stats
    }

    /// Counts one answered request.
    pub fn observe(&self, route: &str, status: u16, elapsed: Duration) {
        let stats = self.route(route);
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        stats.by_class[class].fetch_add(1, Ordering::Relaxed);
        let seconds = elapsed.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| seconds <= *b) {
            stats.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        stats.count.fetch_add(1, Ordering::Relaxed);
        stats.micros.fetch_add(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// The request metrics in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let routes: Vec<(&'static str, &'static RouteStats)> =
            self.routes.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        out.push_str("# HELP landdb_http_requests_total Requests answered, by route and status class.\n");
        out.push_str("# TYPE landdb_http_requests_total counter\n");
        for (route, stats) in &routes {
            for (class, n) in CLASSES.iter().zip(&stats.by_class) {
                let n = n.load(Ordering::Relaxed);
                if n > 0 {
                    let _ = writeln!(out, "landdb_http_requests_total{{route=\"{route}\",status=\"{class}\"}} {n}");
                }
            }
        }
        out.push_str("# HELP landdb_http_request_duration_seconds Time to answer, by route.\n");
        out.push_str("# TYPE landdb_http_request_duration_seconds histogram\n");
        for (route, stats) in &routes {
            let mut cumulative = 0;
            for (bound, n) in BUCKETS.iter().zip(&stats.buckets) {
                cumulative += n.load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "landdb_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let count = stats.count.load(Ordering::Relaxed);
            let sum = stats.micros.load(Ordering::Relaxed) as f64 / 1e6;
            let _ =
                writeln!(out, "landdb_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {count}");
            let _ = writeln!(out, "landdb_http_request_duration_seconds_sum{{route=\"{route}\"}} {sum}");
            let _ = writeln!(out, "landdb_http_request_duration_seconds_count{{route=\"{route}\"}} {count}");
        }
    }
}

/// A gauge in the Prometheus text format.
pub fn gauge(out: &mut String, name: &str, help: &str, value: f64) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_route_class_and_bucket() {
        let m = Metrics::default();
        m.observe("/parcels/at", 200, Duration::from_micros(300));
        m.observe("/parcels/at", 200, Duration::from_millis(3));
        m.observe("/parcels/at", 400, Duration::from_millis(30));
        m.observe("/collections/{id}/items", 500, Duration::from_secs(9));
        let mut out = String::new();
        m.render(&mut out);
        assert!(out.contains("landdb_http_requests_total{route=\"/parcels/at\",status=\"2xx\"} 2\n"), "{out}");
        assert!(out.contains("landdb_http_requests_total{route=\"/parcels/at\",status=\"4xx\"} 1\n"));
        assert!(out.contains("route=\"/parcels/at\",le=\"0.0005\"} 1\n"));
        assert!(out.contains("route=\"/parcels/at\",le=\"0.005\"} 2\n"));
        assert!(out.contains("route=\"/parcels/at\",le=\"+Inf\"} 3\n"));
        // Slower than the last bound: only in +Inf.
        assert!(out.contains("route=\"/collections/{id}/items\",le=\"5\"} 0\n"));
        assert!(out.contains("landdb_http_request_duration_seconds_count{route=\"/collections/{id}/items\"} 1\n"));
    }
}
