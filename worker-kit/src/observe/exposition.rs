//! The two text formats `/metrics` speaks. `prometheus-client` writes OpenMetrics, which a
//! Prometheus server asks for first; tools that read only the older Prometheus text format
//! (`promtool check metrics`, many sidecars and curl-and-grep scripts) would take an
//! OpenMetrics counter's `_total` samples for a metric without help or type. For them the
//! same exposition is served with the counter families renamed to their sample names and
//! the OpenMetrics-only lines (`# UNIT`, `# EOF`) left out.

use std::collections::HashSet;

/// The content type of OpenMetrics 1.0.
pub(crate) const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The content type of the Prometheus text format 0.0.4.
pub(crate) const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Whether a request's `Accept` header asks for OpenMetrics.
pub(crate) fn wants_openmetrics(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| a.contains("application/openmetrics-text"))
}

/// `openmetrics` in the Prometheus text format 0.0.4.
pub(crate) fn to_prometheus_text(openmetrics: &str) -> String {
    let counters: HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        match renamed {
            Some(l) => out.push_str(l.trim_end()),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_take_their_sample_names_and_openmetrics_lines_go() {
        let om = "# HELP a_seconds Time.\n# TYPE a_seconds histogram\n# UNIT a_seconds seconds\na_seconds_count 1\n# HELP b Things.\n# TYPE b counter\nb_total{x=\"1\"} 2\n# EOF\n";
        assert_eq!(
            to_prometheus_text(om),
            "# HELP a_seconds Time.\n# TYPE a_seconds histogram\na_seconds_count 1\n# HELP b_total Things.\n# TYPE b_total counter\nb_total{x=\"1\"} 2\n"
        );
    }

    #[test]
    fn openmetrics_only_when_asked() {
        assert!(wants_openmetrics(Some(
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
        )));
        assert!(!wants_openmetrics(Some("*/*")));
        assert!(!wants_openmetrics(None));
    }
}
