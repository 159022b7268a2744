//! What every mode prints: latency percentiles over a sorted sample, and a
//! report of named figures shown either as aligned tables (one per section) or
//! as one flat JSON object whose keys scripts can rely on.

use std::time::Duration;

use serde_json::{Map, Value as Json};

/// Latency samples, sorted once so that any percentile is an index.
#[derive(Debug, Clone, Default)]
pub struct Latencies {
    sorted: Vec<Duration>,
}

impl Latencies {
    pub fn new(mut samples: Vec<Duration>) -> Latencies {
        samples.sort_unstable();
        Latencies { sorted: samples }
    }

    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    /// The nearest-rank percentile: the smallest sample that at least `p`
    /// percent of the samples do not exceed. `None` without samples.
    pub fn percentile(&self, p: f64) -> Option<Duration> {
        if self.sorted.is_empty() {
            return None;
        }
        let n = self.sorted.len();
        let rank = ((p / 100.0) * n as f64).ceil() as usize;
        Some(self.sorted[rank.clamp(1, n) - 1])
    }

    pub fn max(&self) -> Option<Duration> {
        self.sorted.last().copied()
    }
}

/// One figure of a report.
#[derive(Debug, Clone, PartialEq)]
pub enum Figure {
    Count(u64),
    /// Shown and serialised with two decimals.
    Decimal(f64),
    /// Nothing to show (no samples, or not measured in this run).
    Missing,
}

impl Figure {
    /// Milliseconds of `d`, or missing.
    pub fn ms(d: Option<Duration>) -> Figure {
        match d {
            Some(d) => Figure::Decimal(d.as_secs_f64() * 1000.0),
            None => Figure::Missing,
        }
    }

    fn text(&self) -> String {
        match self {
            Figure::Count(n) => n.to_string(),
            Figure::Decimal(x) => format!("{x:.2}"),
            Figure::Missing => "-".to_owned(),
        }
    }

    fn json(&self) -> Json {
        match self {
            Figure::Count(n) => Json::from(*n),
            // Two decimals in JSON too, so the object matches the table.
            Figure::Decimal(x) => serde_json::Number::from_f64((x * 100.0).round() / 100.0)
                .map(Json::Number)
                .unwrap_or(Json::Null),
            Figure::Missing => Json::Null,
        }
    }
}

/// A figure with its JSON key and its column heading.
#[derive(Debug, Clone)]
pub struct Field {
    pub key: &'static str,
    pub label: &'static str,
    pub figure: Figure,
}

pub fn field(key: &'static str, label: &'static str, figure: Figure) -> Field {
    Field { key, label, figure }
}

/// Sections of figures; keys are unique across the whole report.
#[derive(Debug, Clone, Default)]
pub struct Report {
    sections: Vec<(&'static str, Vec<Field>)>,
}

impl Report {
    pub fn new() -> Report {
        Report::default()
    }

    pub fn section(mut self, title: &'static str, fields: Vec<Field>) -> Report {
        self.sections.push((title, fields));
        self
    }

    pub fn to_json(&self) -> Json {
        let mut object = Map::new();
        for (_, fields) in &self.sections {
            for f in fields {
                object.insert(f.key.to_owned(), f.figure.json());
            }
        }
        Json::Object(object)
    }

    /// Each section as a title line, a heading row and a row of figures, with
    /// every column as wide as its widest cell.
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        for (title, fields) in &self.sections {
            let cells: Vec<(String, String)> = fields
                .iter()
                .map(|f| (f.label.to_owned(), f.figure.text()))
                .collect();
            let widths: Vec<usize> = cells.iter().map(|(l, v)| l.len().max(v.len())).collect();
            let row = |pick: &dyn Fn(&(String, String)) -> String| {
                cells
                    .iter()
                    .zip(&widths)
                    .map(|(cell, w)| format!("{:<w$}", pick(cell), w = *w))
                    .collect::<Vec<_>>()
                    .join("  ")
                    .trim_end()
                    .to_owned()
            };
            out.push_str(title);
            out.push('\n');
            out.push_str(&row(&|c| c.0.clone()));
            out.push('\n');
            out.push_str(&row(&|c| c.1.clone()));
            out.push_str("\n\n");
        }
        out
    }

    /// Prints to standard output: the JSON object when `json`, else the tables.
    pub fn print(&self, json: bool) {
        if json {
            println!("{}", self.to_json());
        } else {
            print!("{}", self.to_table());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let samples = Latencies::new((1..=100).rev().map(ms).collect());
        assert_eq!(samples.percentile(50.0), Some(ms(50)));
        assert_eq!(samples.percentile(90.0), Some(ms(90)));
        assert_eq!(samples.percentile(99.0), Some(ms(99)));
        assert_eq!(samples.percentile(100.0), Some(ms(100)));
        assert_eq!(samples.percentile(0.0), Some(ms(1)));
        assert_eq!(samples.max(), Some(ms(100)));

        let few = Latencies::new(vec![ms(7), ms(3), ms(5)]);
        assert_eq!(few.percentile(50.0), Some(ms(5)));
        assert_eq!(few.percentile(99.0), Some(ms(7)));
        assert_eq!(Latencies::new(Vec::new()).percentile(50.0), None);
    }

    #[test]
    fn json_has_every_key_with_two_decimals_and_nulls() {
        let report = Report::new()
            .section(
                "load",
                vec![
                    field("requests", "requests", Figure::Count(12)),
                    field(
                        "p50_ms",
                        "p50 ms",
                        Figure::ms(Some(Duration::from_micros(1234))),
                    ),
                ],
            )
            .section(
                "memory",
                vec![field("idle_rss_kib", "idle KiB", Figure::Missing)],
            );
        let json = report.to_json();
        assert_eq!(json["requests"], 12);
        assert_eq!(json["p50_ms"], 1.23);
        assert!(json["idle_rss_kib"].is_null());
        assert_eq!(json.as_object().unwrap().len(), 3);
    }

    #[test]
    fn tables_align_headings_and_figures() {
        let report = Report::new().section(
            "query",
            vec![
                field("requests", "requests", Figure::Count(123456789)),
                field("req_s", "req/s", Figure::Decimal(2.5)),
            ],
        );
        let table = report.to_table();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], "query");
        assert_eq!(lines[1], "requests   req/s");
        assert_eq!(lines[2], "123456789  2.50");
    }
}
