//! Reading an evaluation: per scenario detected or missed (≥ medium) with the factors, recall
//! overall and per tactic, benign false positives; printed for a person and written as
//! docs/detection-coverage.md.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use sentinel::model::{Anomaly, Level};

use super::spec::{As, Kind};
use super::{Evaluation, Outcome};

/// The anomalies that make an outcome count (≥ medium).
pub fn loud(o: &Outcome) -> impl Iterator<Item = &Anomaly> {
    o.anomalies.iter().filter(|a| a.level >= Level::Medium)
}

pub fn detected(o: &Outcome) -> bool {
    loud(o).next().is_some()
}

/// Highest level said about the session, if anything.
pub fn top_level(o: &Outcome) -> Option<Level> {
    o.anomalies.iter().map(|a| a.level).max()
}

/// One of the scenario's expected detections is among the factors of its session.
pub fn expected_named(o: &Outcome) -> bool {
    o.anomalies.iter().any(|a| {
        a.factors
            .iter()
            .any(|f| o.scenario.expect.contains(&f.detection))
    })
}

/// A benign anomaly ≥ medium not explained by the workload's known false positives: without
/// the known-fp factors, would it still be ≥ medium?
pub fn unexplained_fp(o: &Outcome, a: &Anomaly) -> bool {
    let rest: Vec<_> = a
        .factors
        .iter()
        .filter(|f| !o.scenario.known_fp.iter().any(|(d, _)| *d == f.detection))
        .cloned()
        .collect();
    Anomaly::score_of(&rest).1 >= Level::Medium
}

fn factors(a: &Anomaly) -> String {
    a.factors
        .iter()
        .map(|f| format!("{} +{}: {}", f.detection, f.weight, f.reason))
        .collect::<Vec<_>>()
        .join("; ")
}

type Tally = (BTreeMap<String, (usize, usize)>, (usize, usize));

/// (scenarios for which `pred` holds, in scope) per tactic, and overall.
fn tally(e: &Evaluation, pred: impl Fn(&Outcome) -> bool) -> Tally {
    let mut per: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut all = (0, 0);
    for o in e.outcomes.iter().filter(|o| o.scenario.in_scope()) {
        let d = pred(o) as usize;
        let t = per.entry(o.scenario.tactic.clone()).or_default();
        t.0 += d;
        t.1 += 1;
        all.0 += d;
        all.1 += 1;
    }
    (per, all)
}

/// Detected (>= medium), per tactic and overall.
pub fn recall(e: &Evaluation) -> Tally {
    tally(e, detected)
}

/// Detected and named by one of the expected detections.
pub fn named_recall(e: &Evaluation) -> Tally {
    tally(e, |o| detected(o) && expected_named(o))
}

fn pct((d, n): (usize, usize)) -> String {
    if n == 0 {
        "-".into()
    } else {
        format!("{d}/{n} ({:.0}%)", 100.0 * d as f64 / n as f64)
    }
}

/// The console report.
pub fn text(e: &Evaluation) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\n== attack scenarios (detected = an anomaly >= medium in its session)"
    );
    for o in e
        .outcomes
        .iter()
        .filter(|o| o.scenario.kind == Kind::Attack)
    {
        let sc = &o.scenario;
        let verdict = if sc.out_of_scope.is_some() {
            "out-of-scope"
        } else if detected(o) {
            "DETECTED"
        } else {
            "missed"
        };
        let _ = writeln!(
            s,
            "{verdict:>12}  {}  [{}] expect {}{}{}",
            sc.id,
            top_level(o).map(|l| l.as_str()).unwrap_or("none"),
            sc.expect.join("|"),
            if expected_named(o) { " (named)" } else { "" },
            if sc.known_miss.is_some() {
                "  known-miss"
            } else {
                ""
            },
        );
        for a in &o.anomalies {
            let _ = writeln!(s, "              {} {}: {}", a.level, a.score, factors(a));
        }
        for p in &o.ran.problems {
            let _ = writeln!(s, "              PROBLEM: {p}");
        }
    }
    let _ = writeln!(
        s,
        "\n== benign workloads (anomalies >= medium are false positives)"
    );
    for o in e
        .outcomes
        .iter()
        .filter(|o| o.scenario.kind == Kind::Benign)
    {
        let n = loud(o).count();
        let _ = writeln!(s, "{:>12}  {}", format!("{n} FP"), o.scenario.id);
        for a in loud(o) {
            let _ = writeln!(
                s,
                "              {} {}{}: {}",
                a.level,
                a.score,
                if unexplained_fp(o, a) { "" } else { " (known)" },
                factors(a)
            );
        }
        for p in &o.ran.problems {
            let _ = writeln!(s, "              PROBLEM: {p}");
        }
    }
    let (per, all) = recall(e);
    let _ = writeln!(
        s,
        "\n== recall (in-scope attack scenarios detected >= medium)"
    );
    for (t, r) in &per {
        let _ = writeln!(s, "  {t:<22} {}", pct(*r));
    }
    let _ = writeln!(s, "  {:<22} {}", "overall", pct(all));
    let _ = writeln!(
        s,
        "  named by an expected detection: {}",
        pct(named_recall(e).1)
    );
    let fps: usize = e
        .outcomes
        .iter()
        .filter(|o| o.scenario.kind == Kind::Benign)
        .map(|o| loud(o).count())
        .sum();
    let _ = writeln!(s, "  benign false positives (>= medium): {fps}");
    let _ = writeln!(
        s,
        "  commit {}, {}, {:.0} s",
        e.commit,
        e.date,
        e.elapsed.as_secs_f64()
    );
    s
}

fn md_escape(t: &str) -> String {
    t.replace('|', "\\|").replace('\n', " ")
}

/// docs/detection-coverage.md.
pub fn markdown(e: &Evaluation, filter: Option<&str>) -> String {
    let mut s = String::new();
    let attacks: Vec<&Outcome> = e
        .outcomes
        .iter()
        .filter(|o| o.scenario.kind == Kind::Attack)
        .collect();
    let benign: Vec<&Outcome> = e
        .outcomes
        .iter()
        .filter(|o| o.scenario.kind == Kind::Benign)
        .collect();
    let (per, all) = recall(e);
    let _ = writeln!(s, "# Detection coverage\n");
    let _ = writeln!(
        s,
        "Measured by `cargo xtask eval` on {} at commit {} ({:.0} s). Generated: edit \
         tests/corpus, not this file.\n",
        e.date,
        e.commit,
        e.elapsed.as_secs_f64()
    );
    let _ = writeln!(
        s,
        "What was covered: {} attack scenarios ({} in scope) over {} tactics and {} benign \
         workloads{}, each played by a throw-away user in its own login session and an empty \
         network namespace against the real agent (`sentinel learn` while the benign workloads \
         and every user's habits ran once, then `sentinel run`). A scenario is **detected** \
         when an anomaly of its session reaches medium (score ≥ 25); *named* says whether one \
         of the detections it expects is among the factors. How the corpus is built: \
         tests/corpus/README.md.\n",
        attacks.len(),
        attacks.iter().filter(|o| o.scenario.in_scope()).count(),
        per.len(),
        benign.len(),
        filter
            .map(|f| format!(" (only scenarios matching `{f}`)"))
            .unwrap_or_default()
    );
    let (named, named_all) = named_recall(e);
    let _ = writeln!(
        s,
        "## Recall per tactic\n\n| tactic | detected (≥ medium) | detected and named by an expected detection |\n|---|---|---|"
    );
    for (t, r) in &per {
        let _ = writeln!(
            s,
            "| {t} | {} | {} |",
            pct(*r),
            named.get(t).copied().map(pct).unwrap_or_default()
        );
    }
    let _ = writeln!(
        s,
        "| **overall** | **{}** | **{}** |\n",
        pct(all),
        pct(named_all)
    );
    let fps: usize = benign.iter().map(|o| loud(o).count()).sum();
    let _ = writeln!(
        s,
        "Benign false positives (anomalies ≥ medium in benign sessions): **{fps}**.\n"
    );

    let _ = writeln!(s, "## Attack scenarios\n");
    let _ = writeln!(
        s,
        "| technique | scenario | as | expected | result | level | factors |\n|---|---|---|---|---|---|---|"
    );
    let mut sorted = attacks.clone();
    sorted.sort_by(|a, b| {
        (&a.scenario.tactic, &a.scenario.technique, &a.scenario.name).cmp(&(
            &b.scenario.tactic,
            &b.scenario.technique,
            &b.scenario.name,
        ))
    });
    for o in &sorted {
        let sc = &o.scenario;
        let result = if sc.out_of_scope.is_some() {
            "out of scope".to_string()
        } else if detected(o) {
            format!("detected{}", if expected_named(o) { ", named" } else { "" })
        } else if sc.known_miss.is_some() {
            "missed (known)".into()
        } else {
            "**missed**".into()
        };
        let fs: Vec<String> = o
            .anomalies
            .iter()
            .flat_map(|a| a.factors.iter())
            .map(|f| format!("{} +{}", f.detection, f.weight))
            .collect();
        let mut seen = std::collections::HashSet::new();
        let fs_dedup: Vec<&String> = fs.iter().filter(|f| seen.insert(*f)).collect();
        let problems = if o.ran.problems.is_empty() {
            String::new()
        } else {
            format!(" (problem: {})", md_escape(&o.ran.problems.join("; ")))
        };
        let _ = writeln!(
            s,
            "| {} ({}) | `{}`: {} | {} | {} | {}{} | {} | {} |",
            md_escape(&sc.technique),
            sc.tactic,
            sc.id,
            md_escape(&sc.behaviour),
            if sc.as_ == As::Root { "root" } else { "user" },
            sc.expect.join(", "),
            result,
            problems,
            top_level(o).map(|l| l.as_str()).unwrap_or("-"),
            fs_dedup
                .iter()
                .map(|f| f.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let _ = writeln!(s, "\n## Benign workloads\n");
    let _ = writeln!(
        s,
        "| workload | behaviour | anomalies ≥ medium | factors |\n|---|---|---|---|"
    );
    for o in &benign {
        let fs: Vec<String> = loud(o)
            .map(|a| {
                format!(
                    "{} {}{}: {}",
                    a.level,
                    a.score,
                    if unexplained_fp(o, a) { "" } else { " (known)" },
                    md_escape(&factors(a))
                )
            })
            .collect();
        let _ = writeln!(
            s,
            "| `{}` | {} | {} | {} |",
            o.scenario.id,
            md_escape(&o.scenario.behaviour),
            loud(o).count(),
            fs.join("<br>")
        );
    }
    let known: Vec<&Outcome> = attacks
        .iter()
        .copied()
        .filter(|o| o.scenario.known_miss.is_some())
        .collect();
    if !known.is_empty() {
        let _ = writeln!(s, "\n## Known misses (what the engine does not see yet)\n");
        for o in known {
            let _ = writeln!(
                s,
                "- `{}` ({}): {}",
                o.scenario.id,
                o.scenario.expect.join(", "),
                md_escape(o.scenario.known_miss.as_deref().unwrap_or(""))
            );
        }
    }
    let _ = writeln!(s, "\n## Out of scope\n");
    let _ = writeln!(
        s,
        "- Anything leaving the machine: every scenario runs in an empty network namespace; the \
         far side (C2 server, payload host, exfiltration sink, cloud metadata service) is a \
         stand-in on TEST-NET and link-local addresses bound to that namespace's loopback."
    );
    let _ = writeln!(
        s,
        "- Real damage: impact scenarios work on copies made for them; system-wide changes are \
         undone inside the scenario and checked by a snapshot of accounts, sudoers, cron, \
         units, PAM, ssh and loader configuration (restored if anything was left)."
    );
    for o in attacks.iter().filter(|o| o.scenario.out_of_scope.is_some()) {
        let _ = writeln!(
            s,
            "- `{}`: {}",
            o.scenario.id,
            md_escape(o.scenario.out_of_scope.as_deref().unwrap_or(""))
        );
    }
    s
}
