//! `runlog timeline`: one job as an SVG picture. Runs are bars on a time
//! axis (delegated runs nested under their parents), checkpoints are ticks,
//! waits for input and for children are marked, failures and interrupts
//! are flagged, and the job's cumulative tokens are a line below.

use super::fail::Failure;
use super::out::{self, num};
use runlog::{AsOf, Change, JobId, Query, RunId, RunNode, Timestamp};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

const WIDTH: f64 = 1200.0;
const LABEL_X: f64 = 16.0;
const PLOT_X0: f64 = 300.0;
const PLOT_X1: f64 = 1170.0;
const TOP: f64 = 96.0;
const ROW: f64 = 30.0;
const BAR: f64 = 14.0;
const CHART: f64 = 150.0;

/// What a stretch of a run's life was.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Working,
    AwaitingInput,
    WaitingOnChild,
    Stopped,
}

struct Segment {
    from: u64,
    to: u64,
    kind: Kind,
}

enum Mark {
    Failed(String),
    Interrupted(String),
    Completed,
    Resumed,
}

#[derive(Default)]
struct Lane {
    segments: Vec<Segment>,
    open: Option<(u64, Kind)>,
    marks: Vec<(u64, Mark)>,
    ticks: Vec<u64>,
}

impl Lane {
    fn switch(&mut self, at: u64, kind: Kind) {
        if let Some((from, k)) = self.open.take() {
            self.segments.push(Segment {
                from,
                to: at,
                kind: k,
            });
        }
        self.open = Some((at, kind));
    }

    fn close(&mut self, at: u64) {
        if let Some((from, k)) = self.open.take()
            && k != Kind::Stopped
        {
            self.segments.push(Segment {
                from,
                to: at,
                kind: k,
            });
        }
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn flatten<'a>(nodes: &'a [RunNode], depth: usize, out: &mut Vec<(&'a RunNode, usize)>) {
    for n in nodes {
        out.push((n, depth));
        flatten(&n.children, depth + 1, out);
    }
}

/// A tick step giving 5 to 10 ticks over `span` milliseconds.
fn tick_step(span: u64) -> u64 {
    const STEPS: [u64; 12] = [
        1_000, 5_000, 10_000, 30_000, 60_000, 120_000, 300_000, 600_000, 900_000, 1_800_000,
        3_600_000, 7_200_000,
    ];
    STEPS
        .iter()
        .copied()
        .find(|s| span / s <= 10)
        .unwrap_or_else(|| (span / 10).max(1))
}

/// `runlog timeline`.
pub fn run(dir: &Path, job_id: &str, out_path: &Path) -> Result<u8, Failure> {
    let ro = out::open(dir, AsOf::Latest)?;
    let id = JobId::from(job_id);
    let fail = |e| Failure::engine(dir, e);
    let job = ro.job(&id).map_err(fail)?;
    let detail = job.detail().map_err(|e| fail(e.into()))?;
    let tree = ro.run_tree(&id).map_err(fail)?;
    let events = ro.job_events(&id).map_err(fail)?;

    let t0 = job.started_at.0;
    let t_end = events.last().map_or(t0, |(_, e)| e.at.0).max(t0 + 1000);
    let span = (t_end - t0) as f64;
    let x = |t: u64| PLOT_X0 + (t.saturating_sub(t0)) as f64 / span * (PLOT_X1 - PLOT_X0);

    let mut lanes: HashMap<RunId, Lane> = HashMap::new();
    let mut delegations: Vec<(u64, RunId, RunId)> = Vec::new();
    let mut waits_for_input: Vec<(u64, RunId, String)> = Vec::new();
    let mut resumes: Vec<(u64, RunId, runlog::CheckpointId)> = Vec::new();
    for (_, event) in &events {
        let at = event.at.0;
        match &event.change {
            Change::RunStarted {
                run,
                resume_from: Some(cp),
                ..
            } => {
                lanes
                    .entry(run.clone())
                    .or_default()
                    .switch(at, Kind::Working);
                resumes.push((at, run.clone(), cp.clone()));
            }
            Change::RunStarted { run, .. } => lanes
                .entry(run.clone())
                .or_default()
                .switch(at, Kind::Working),
            Change::StepRecorded { run, .. } => {
                lanes.entry(run.clone()).or_default().ticks.push(at)
            }
            Change::Delegated { run, child } => {
                lanes
                    .entry(run.clone())
                    .or_default()
                    .switch(at, Kind::WaitingOnChild);
                lanes
                    .entry(child.clone())
                    .or_default()
                    .switch(at, Kind::Working);
                delegations.push((at, run.clone(), child.clone()));
            }
            Change::ChildReturned { run, .. } | Change::InputProvided { run, .. } => {
                lanes
                    .entry(run.clone())
                    .or_default()
                    .switch(at, Kind::Working);
            }
            Change::InputRequested { run, prompt } => {
                lanes
                    .entry(run.clone())
                    .or_default()
                    .switch(at, Kind::AwaitingInput);
                waits_for_input.push((at, run.clone(), prompt.clone()));
            }
            Change::RunCompleted { run, .. } => {
                let lane = lanes.entry(run.clone()).or_default();
                lane.close(at);
                lane.marks.push((at, Mark::Completed));
            }
            Change::RunFailed { run, error, .. } => {
                let lane = lanes.entry(run.clone()).or_default();
                lane.close(at);
                lane.marks.push((at, Mark::Failed(error.clone())));
            }
            Change::RunInterrupted { run, reason } => {
                let lane = lanes.entry(run.clone()).or_default();
                lane.switch(at, Kind::Stopped);
                lane.marks
                    .push((at, Mark::Interrupted(format!("{reason:?}").to_lowercase())));
            }
            Change::RunResumed { run, .. } => {
                let lane = lanes.entry(run.clone()).or_default();
                lane.switch(at, Kind::Working);
                lane.marks.push((at, Mark::Resumed));
            }
            _ => {}
        }
    }
    for lane in lanes.values_mut() {
        lane.close(t_end);
    }

    let mut rows = Vec::new();
    flatten(&tree, 0, &mut rows);
    let row_y: HashMap<&RunId, f64> = rows
        .iter()
        .enumerate()
        .map(|(i, (n, _))| (&n.run.id, TOP + i as f64 * ROW))
        .collect();
    let chart_top = TOP + rows.len() as f64 * ROW + 40.0;
    let height = chart_top + CHART + 60.0;

    let mut s = String::new();
    let _ = writeln!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="ui-sans-serif, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif" font-size="12">"##
    );
    let _ = writeln!(
        s,
        r##"<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" fill="#fde68a"/><line x1="0" y1="0" x2="0" y2="6" stroke="#d97706" stroke-width="2"/></pattern></defs>"##
    );
    let _ = writeln!(s, r##"<rect width="100%" height="100%" fill="#ffffff"/>"##);
    let _ = writeln!(
        s,
        r##"<text x="{LABEL_X}" y="28" font-size="17" font-weight="600" fill="#111827">{} · {} · {}</text>"##,
        esc(job.id.as_str()),
        esc(&job.key),
        job.status.name()
    );
    let _ = writeln!(
        s,
        r##"<text x="{LABEL_X}" y="50" fill="#4b5563">{} steps · {} tokens ({} in, {} out) · {} · started {} UTC · {} runs</text>"##,
        num(job.total_steps),
        num(job.usage.total_tokens()),
        num(job.usage.input_tokens),
        num(job.usage.output_tokens),
        out::cost(job.usage.cost_micros),
        out::human_time(job.started_at),
        job.run_count()
    );
    // Legend.
    let legend_y = 68.0;
    let mut lx = PLOT_X0;
    for (fill, label) in [
        ("#2563eb", "working"),
        ("url(#hatch)", "awaiting input"),
        ("#bfdbfe", "waiting on child run"),
    ] {
        let _ = writeln!(
            s,
            r##"<rect x="{lx}" y="{}" width="22" height="10" rx="2" fill="{fill}" stroke="#93c5fd" stroke-width="0.5"/><text x="{}" y="{}" fill="#374151">{label}</text>"##,
            legend_y - 9.0,
            lx + 28.0,
            legend_y
        );
        lx += 40.0 + label.len() as f64 * 6.5;
    }
    let _ = writeln!(
        s,
        r##"<line x1="{lx}" y1="{}" x2="{lx}" y2="{}" stroke="#111827" stroke-width="1.5"/><text x="{}" y="{legend_y}" fill="#374151">checkpoint</text>"##,
        legend_y - 10.0,
        legend_y + 1.0,
        lx + 6.0
    );
    lx += 86.0;
    let _ = writeln!(
        s,
        r##"<circle cx="{}" cy="{}" r="5" fill="#dc2626"/><text x="{}" y="{legend_y}" fill="#374151">failed</text>"##,
        lx + 5.0,
        legend_y - 4.0,
        lx + 14.0
    );
    lx += 60.0;
    let _ = writeln!(
        s,
        r##"<rect x="{}" y="{}" width="8" height="8" transform="rotate(45 {} {})" fill="#f59e0b"/><text x="{}" y="{legend_y}" fill="#374151">interrupted</text>"##,
        lx + 1.0,
        legend_y - 8.0,
        lx + 5.0,
        legend_y - 4.0,
        lx + 14.0
    );

    // Time axis: grid lines through the lanes and the chart.
    let step = tick_step(t_end - t0);
    let first_tick = t0.div_ceil(step) * step;
    let mut t = first_tick;
    while t <= t_end {
        let tx = x(t);
        let _ = writeln!(
            s,
            r##"<line x1="{tx:.1}" y1="{}" x2="{tx:.1}" y2="{}" stroke="#e5e7eb"/><text x="{tx:.1}" y="{}" text-anchor="middle" fill="#6b7280" font-size="11">{}</text>"##,
            TOP - 12.0,
            chart_top + CHART,
            chart_top + CHART + 16.0,
            if step < 60_000 {
                out::clock_time(Timestamp(t))
            } else {
                out::clock_time(Timestamp(t))[..5].to_owned()
            }
        );
        t += step;
    }

    // Lanes.
    for (i, (node, depth)) in rows.iter().enumerate() {
        let r = &node.run;
        let y = TOP + i as f64 * ROW;
        if i % 2 == 0 {
            let _ = writeln!(
                s,
                r##"<rect x="0" y="{}" width="{WIDTH}" height="{ROW}" fill="#f9fafb"/>"##,
                y - ROW / 2.0
            );
        }
        let indent = *depth as f64 * 18.0;
        let prefix = if *depth > 0 { "↳ " } else { "" };
        let _ = writeln!(
            s,
            r##"<text x="{}" y="{}" fill="#111827">{prefix}{}</text><text x="{}" y="{}" fill="#6b7280" font-size="10.5">{} · {} steps · {} tok</text>"##,
            LABEL_X + indent,
            y - 1.0,
            esc(r.id.as_str()),
            LABEL_X + indent + if *depth > 0 { 14.0 } else { 0.0 },
            y + 11.0,
            r.status.name(),
            r.steps,
            num(r.usage.total_tokens())
        );
        let Some(lane) = lanes.get(&r.id) else {
            continue;
        };
        for seg in &lane.segments {
            if seg.kind == Kind::Stopped {
                let _ = writeln!(
                    s,
                    r##"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#9ca3af" stroke-width="1.5" stroke-dasharray="2 3"><title>interrupted {} → {}</title></line>"##,
                    x(seg.from),
                    y - 3.0,
                    x(seg.to),
                    y - 3.0,
                    out::clock_time(Timestamp(seg.from)),
                    out::clock_time(Timestamp(seg.to))
                );
                continue;
            }
            let (fill, stroke) = match seg.kind {
                Kind::Working => ("#2563eb", "#1d4ed8"),
                Kind::AwaitingInput => ("url(#hatch)", "#d97706"),
                Kind::WaitingOnChild | Kind::Stopped => ("#bfdbfe", "#93c5fd"),
            };
            let x0 = x(seg.from);
            let w = (x(seg.to) - x0).max(1.5);
            let _ = writeln!(
                s,
                r##"<rect x="{x0:.1}" y="{:.1}" width="{w:.1}" height="{BAR}" rx="2" fill="{fill}" stroke="{stroke}" stroke-width="0.6"><title>{} {} → {}</title></rect>"##,
                y - BAR / 2.0 - 3.0,
                match seg.kind {
                    Kind::Working => "working",
                    Kind::AwaitingInput => "awaiting input",
                    Kind::WaitingOnChild => "waiting on child run",
                    Kind::Stopped => "stopped",
                },
                out::clock_time(Timestamp(seg.from)),
                out::clock_time(Timestamp(seg.to))
            );
        }
        for &tick in &lane.ticks {
            let tx = x(tick);
            let _ = writeln!(
                s,
                r##"<line x1="{tx:.1}" y1="{:.1}" x2="{tx:.1}" y2="{:.1}" stroke="#111827" stroke-width="1.5"/>"##,
                y - BAR / 2.0 - 6.0,
                y + BAR / 2.0
            );
        }
        for (at, mark) in &lane.marks {
            let mx = x(*at);
            let my = y - 3.0;
            match mark {
                Mark::Failed(why) => {
                    let _ = writeln!(
                        s,
                        r##"<g><title>failed: {}</title><circle cx="{mx:.1}" cy="{my:.1}" r="6" fill="#dc2626"/><path d="M{:.1} {:.1} l6 6 M{:.1} {:.1} l-6 6" stroke="#fff" stroke-width="1.6"/></g>"##,
                        esc(why),
                        mx - 3.0,
                        my - 3.0,
                        mx + 3.0,
                        my - 3.0
                    );
                    let label: String = why.chars().take(48).collect();
                    let _ = writeln!(
                        s,
                        r##"<text x="{:.1}" y="{:.1}" fill="#b91c1c" font-size="10.5">{}</text>"##,
                        mx + 9.0,
                        my + 4.0,
                        esc(&label)
                    );
                }
                Mark::Interrupted(why) => {
                    let _ = writeln!(
                        s,
                        r##"<g><title>interrupted ({})</title><rect x="{:.1}" y="{:.1}" width="9" height="9" transform="rotate(45 {mx:.1} {my:.1})" fill="#f59e0b" stroke="#b45309"/></g>"##,
                        esc(why),
                        mx - 4.5,
                        my - 4.5
                    );
                }
                Mark::Resumed => {
                    let _ = writeln!(
                        s,
                        r##"<path d="M{:.1} {:.1} l7 5 l-7 5 z" fill="#059669"><title>resumed</title></path>"##,
                        mx,
                        my - 5.0
                    );
                }
                Mark::Completed => {
                    let _ = writeln!(
                        s,
                        r##"<circle cx="{mx:.1}" cy="{my:.1}" r="3.5" fill="#059669"><title>completed</title></circle>"##
                    );
                }
            }
        }
    }
    for (at, run, prompt) in &waits_for_input {
        if let Some(y) = row_y.get(run) {
            let _ = writeln!(
                s,
                r##"<text x="{:.1}" y="{:.1}" fill="#b45309" font-size="10.5">? {}</text>"##,
                x(*at) + 3.0,
                y + 13.0,
                esc(&prompt.chars().take(60).collect::<String>())
            );
        }
    }
    for (at, parent, child) in &delegations {
        if let (Some(py), Some(cy)) = (row_y.get(parent), row_y.get(child)) {
            let dx = x(*at);
            let _ = writeln!(
                s,
                r##"<path d="M{dx:.1} {:.1} V{:.1} h4" fill="none" stroke="#6b7280" stroke-dasharray="3 2"/>"##,
                py + BAR / 2.0 - 3.0,
                cy - 3.0
            );
        }
    }

    // A run started from a checkpoint: an arrow from that checkpoint.
    for (at, run, cp) in &resumes {
        let (Some(view), Some(ty)) = (detail.checkpoint(cp), row_y.get(run)) else {
            continue;
        };
        let Some(fy) = row_y.get(&view.run) else {
            continue;
        };
        let (fx, tx) = (x(view.at.0), x(*at));
        let (fy, ty) = (fy + BAR / 2.0 - 3.0, ty - BAR / 2.0 - 3.0);
        let _ = writeln!(
            s,
            r##"<path d="M{fx:.1} {fy:.1} C{fx:.1} {:.1}, {:.1} {ty:.1}, {:.1} {ty:.1}" fill="none" stroke="#059669" stroke-width="1.4" stroke-dasharray="4 2"/><path d="M{:.1} {:.1} l-5 -3 v6 z" fill="#059669"/><text x="{:.1}" y="{:.1}" fill="#047857" font-size="10.5">resumed from step {} ({})</text>"##,
            (fy + ty) / 2.0,
            tx - 20.0,
            tx - 5.0,
            tx,
            ty,
            tx + 4.0,
            ty - 3.0,
            view.step,
            esc(cp.as_str())
        );
    }

    // Cumulative tokens.
    let max_tokens = job.usage.total_tokens().max(1);
    let cy = |tokens: u64| chart_top + CHART - tokens as f64 / max_tokens as f64 * CHART;
    let _ = writeln!(
        s,
        r##"<text x="{LABEL_X}" y="{:.1}" fill="#111827" font-weight="600">cumulative tokens</text><text x="{LABEL_X}" y="{:.1}" fill="#6b7280" font-size="11">input + output, at each checkpoint</text>"##,
        chart_top + 14.0,
        chart_top + 30.0
    );
    let _ = writeln!(
        s,
        r##"<line x1="{PLOT_X0}" y1="{:.1}" x2="{PLOT_X1}" y2="{:.1}" stroke="#9ca3af"/><text x="{:.1}" y="{:.1}" text-anchor="end" fill="#6b7280" font-size="11">{}</text><text x="{:.1}" y="{:.1}" text-anchor="end" fill="#6b7280" font-size="11">0</text><line x1="{PLOT_X0}" y1="{chart_top:.1}" x2="{PLOT_X1}" y2="{chart_top:.1}" stroke="#e5e7eb" stroke-dasharray="4 3"/>"##,
        chart_top + CHART,
        chart_top + CHART,
        PLOT_X0 - 6.0,
        chart_top + 4.0,
        num(max_tokens),
        PLOT_X0 - 6.0,
        chart_top + CHART + 4.0
    );
    let mut path = format!("M{:.1} {:.1}", x(t0), cy(0));
    let mut last = 0u64;
    for c in detail.checkpoints() {
        let cx = x(c.at.0);
        let _ = write!(path, " H{cx:.1} V{:.1}", cy(c.usage.total_tokens()));
        last = c.usage.total_tokens();
    }
    let _ = write!(path, " H{:.1}", x(t_end));
    let area = format!("{path} V{:.1} Z", cy(0));
    let _ = writeln!(s, r##"<path d="{area}" fill="#dbeafe" opacity="0.6"/>"##);
    let _ = writeln!(
        s,
        r##"<path d="{path}" fill="none" stroke="#1d4ed8" stroke-width="2"/>"##
    );
    for c in detail.checkpoints() {
        let _ = writeln!(
            s,
            r##"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="#1d4ed8"><title>step {} ({}): {} tokens so far</title></circle>"##,
            x(c.at.0),
            cy(c.usage.total_tokens()),
            c.step,
            esc(c.id.as_str()),
            num(c.usage.total_tokens())
        );
    }
    let _ = writeln!(
        s,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="end" fill="#1d4ed8" font-size="11">{} tokens</text>"##,
        PLOT_X1,
        cy(last) - 6.0,
        num(last)
    );
    let _ = writeln!(
        s,
        r##"<text x="{PLOT_X1}" y="{:.1}" text-anchor="end" fill="#9ca3af" font-size="10.5">time (UTC) · runlog timeline</text>"##,
        height - 10.0
    );
    s.push_str("</svg>\n");
    std::fs::write(out_path, s).map_err(|e| Failure::io("write", out_path, &e))?;
    let mut w = out::stdout();
    use std::io::Write as _;
    writeln!(
        w,
        "wrote {} ({} runs, {} checkpoints)",
        out_path.display(),
        rows.len(),
        detail.checkpoints().len()
    )?;
    w.flush()?;
    Ok(0)
}
