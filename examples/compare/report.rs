//! Measurements, their medians, ratios to runlog, and the two outputs: a
//! markdown table and JSON lines.

use serde_json::json;

/// The workloads, in the order the table lists them.
const WORKLOADS: [&str; 5] = [
    "durable-1-writer",
    "durable-1-writer-4k",
    "durable-16-writers",
    "cold-start",
    "disk-bytes",
];

/// Which way a metric improves; it decides which way a ratio is taken so
/// that a ratio above 1 always means runlog is ahead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Better {
    /// Throughput: the ratio is runlog's over the other's.
    Higher,
    /// Time or bytes: the ratio is the other's over runlog's.
    Lower,
}

/// All the values one (workload, system, metric) got, one per round.
pub struct Measure {
    pub workload: &'static str,
    pub system: &'static str,
    pub metric: &'static str,
    pub unit: &'static str,
    pub better: Better,
    pub values: Vec<f64>,
}

impl Measure {
    /// The median of the rounds' values (the mean of the middle two when
    /// there is an even number).
    pub fn median(&self) -> f64 {
        let mut v = self.values.clone();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        match n {
            0 => f64::NAN,
            _ if n % 2 == 1 => v[n / 2],
            _ => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        }
    }
}

/// Every measurement of one run of the harness.
#[derive(Default)]
pub struct Results {
    pub measures: Vec<Measure>,
}

impl Results {
    /// Records one round's value.
    pub fn add(
        &mut self,
        workload: &'static str,
        system: &'static str,
        metric: &'static str,
        unit: &'static str,
        better: Better,
        value: f64,
    ) {
        match self
            .measures
            .iter_mut()
            .find(|m| m.workload == workload && m.system == system && m.metric == metric)
        {
            Some(m) => m.values.push(value),
            None => self.measures.push(Measure {
                workload,
                system,
                metric,
                unit,
                better,
                values: vec![value],
            }),
        }
    }

    /// The median of one measurement, if it was taken.
    pub fn median(&self, workload: &str, system: &str, metric: &str) -> Option<f64> {
        self.measures
            .iter()
            .find(|m| m.workload == workload && m.system == system && m.metric == metric)
            .map(Measure::median)
    }

    /// The measurement's ratio to runlog's median of the same workload and
    /// metric: above 1 means runlog is ahead.
    pub fn ratio(&self, m: &Measure) -> Option<f64> {
        let runlog = self.median(m.workload, "runlog", m.metric)?;
        let other = m.median();
        let r = match m.better {
            Better::Higher => runlog / other,
            Better::Lower => other / runlog,
        };
        r.is_finite().then_some(r)
    }

    /// One JSON object per measurement, one per line.
    pub fn json_lines(&self) -> String {
        let mut out = String::new();
        for m in &self.measures {
            let line = json!({
                "workload": m.workload,
                "system": m.system,
                "metric": m.metric,
                "value": m.median(),
                "unit": m.unit,
                "ratio_vs_runlog": self.ratio(m),
                "rounds": m.values.len(),
            });
            out.push_str(&line.to_string());
            out.push('\n');
        }
        out
    }

    /// A markdown table: one row per (workload, metric), one column per
    /// system; each cell the median and, for the others, the ratio.
    pub fn markdown(&self, systems: &[&'static str]) -> String {
        let mut out = String::from("| workload | metric |");
        for s in systems {
            out.push_str(&format!(" {s} |"));
        }
        out.push_str("\n|---|---|");
        for _ in systems {
            out.push_str("---:|");
        }
        out.push('\n');
        let mut rows: Vec<(&str, &str, &str)> = Vec::new();
        for m in &self.measures {
            if !rows.iter().any(|r| r.0 == m.workload && r.1 == m.metric) {
                rows.push((m.workload, m.metric, m.unit));
            }
        }
        // Workloads in the order, metrics in the order measured.
        rows.sort_by_key(|r| WORKLOADS.iter().position(|w| *w == r.0));
        for (workload, metric, unit) in rows {
            out.push_str(&format!("| {workload} | {metric} ({unit}) |"));
            for s in systems {
                let m = self
                    .measures
                    .iter()
                    .find(|m| m.workload == workload && m.metric == metric && m.system == *s);
                let cell = match m {
                    None => "—".to_string(),
                    Some(m) => match (*s, self.ratio(m)) {
                        ("runlog", _) | (_, None) => number(m.median()),
                        (_, Some(r)) => format!("{} ({r:.2}x)", number(m.median())),
                    },
                };
                out.push_str(&format!(" {cell} |"));
            }
            out.push('\n');
        }
        out
    }
}

/// A number with as many digits as it deserves.
fn number(v: f64) -> String {
    if v >= 100.0 {
        // Thousands separated for readability.
        let s = format!("{v:.0}");
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        out
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}
