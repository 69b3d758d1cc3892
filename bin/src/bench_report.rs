//! `pann bench-report`: BENCHMARKS.md and SVG plots rendered from the JSON
//! results of `pann bench` (`bench-loopback.json`, `bench-lan.json`,
//! `bench-wan.json`) and of the models engineer's plaintext accuracy run
//! (`plaintext-accuracy.json`). Every number written comes from those files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use plotters::prelude::*;
use serde_json::Value;

use crate::template::{Template, Vars};

fn load(path: &Path) -> Result<Value> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))
}

fn f(v: &Value, k: &str) -> f64 {
    v[k].as_f64().unwrap_or(f64::NAN)
}

fn rows(v: &Value) -> Vec<Value> {
    v["rows"].as_array().cloned().unwrap_or_default()
}

/// The row for (net, alpha, batch).
fn find<'a>(rows: &'a [Value], net: &str, alpha: u32, batch: u64) -> Option<&'a Value> {
    rows.iter().find(|r| r["net"] == net && r["alpha"].as_u64() == Some(alpha as u64) && r["batch"].as_u64() == Some(batch))
}

/// Per-ReLU-layer costs of a row: (layer, bytes per image, rounds per run).
fn relu_layers(row: &Value) -> Vec<(String, f64, f64)> {
    row["layers"]
        .as_array()
        .map(|ls| {
            ls.iter()
                .filter_map(|l| {
                    let name = l[0].as_str()?;
                    name.contains("relu").then(|| (name.to_string(), l[1].as_f64().unwrap_or(f64::NAN), l[2].as_f64().unwrap_or(f64::NAN)))
                })
                .collect()
        })
        .unwrap_or_default()
}

struct Accuracy {
    exact: f64,
    /// alpha -> (per-layer bounds accuracy, global bound accuracy, images).
    by_alpha: BTreeMap<u32, (f64, f64, u64)>,
    doc: Value,
}

fn accuracy(path: &Path) -> Option<Accuracy> {
    let doc = load(path).ok()?;
    let frac = |v: &Value| v["correct"].as_f64().unwrap_or(f64::NAN) / v["images"].as_f64().unwrap_or(f64::NAN);
    let mut by_alpha = BTreeMap::new();
    for r in rows(&doc) {
        let a = r["alpha"].as_u64()? as u32;
        by_alpha.insert(a, (frac(&r["per_layer"]), frac(&r["global"]), r["per_layer"]["images"].as_u64().unwrap_or(0)));
    }
    Some(Accuracy { exact: frac(&doc["exact"]), by_alpha, doc })
}

fn pct(x: f64) -> String {
    format!("{:.2}%", 100.0 * x)
}

fn mb(x: f64) -> String {
    format!("{:.2}", x / 1e6)
}

fn opt(x: Option<f64>, p: usize) -> String {
    match x {
        Some(v) if v.is_finite() => format!("{v:.p$}"),
        _ => "-".into(),
    }
}

fn machine_line(name: &str, doc: &Value) -> String {
    let m = &doc["machine"];
    let load = match (m["loadavg_at_start"].as_str(), doc["loadavg_at_end"].as_str()) {
        (Some(a), Some(b)) => format!(", load average (1/5/15 min) {a} at start, {b} at end"),
        _ => String::new(),
    };
    format!(
        "- `{name}`: {} ({} cores), commit `{}`, {}{load}; command `{}`",
        m["cpu"].as_str().unwrap_or("?"),
        m["cores"],
        m["commit"].as_str().unwrap_or("?"),
        m["date"].as_str().unwrap_or("?"),
        doc["command"].as_str().unwrap_or("?")
    )
}

/// The prose of BENCHMARKS.md, with placeholders for what the results decide.
const TEMPLATE: &str = include_str!("../templates/benchmarks.md");

/// First line of the block of BENCHMARKS.md that `scripts/compare-crypten.sh`
/// writes (PANN against CrypTen): `pann bench-report` keeps it as it is.
pub const COMPARE_CRYPTEN_BEGIN: &str = "<!-- compare-crypten:begin -->";
/// Last line of that block.
pub const COMPARE_CRYPTEN_END: &str = "<!-- compare-crypten:end -->";

/// The block between the CrypTen markers (markers included) of an existing
/// BENCHMARKS.md, or, when the file has none, an empty block that says how to
/// fill it. A begin marker without an end marker after it, or a marker that
/// occurs twice, is an error: the file was cut or edited by hand, and
/// rewriting it would lose the comparison.
fn compare_crypten_block(existing: Option<&str>) -> Result<String> {
    let default = format!(
        "{COMPARE_CRYPTEN_BEGIN}\nNot measured in this checkout: run `scripts/compare-crypten.sh` (it installs CrypTen into `.venv-crypten` and needs `../shared/data/cifar-10-jpeg`).\n{COMPARE_CRYPTEN_END}"
    );
    let Some(text) = existing else { return Ok(default) };
    let (begins, ends) = (text.matches(COMPARE_CRYPTEN_BEGIN).count(), text.matches(COMPARE_CRYPTEN_END).count());
    match (text.find(COMPARE_CRYPTEN_BEGIN), text.find(COMPARE_CRYPTEN_END)) {
        (None, None) => Ok(default),
        (Some(b), Some(e)) if begins == 1 && ends == 1 && b < e => Ok(text[b..e + COMPARE_CRYPTEN_END.len()].to_string()),
        _ => anyhow::bail!(
            "the existing report has {begins} `{COMPARE_CRYPTEN_BEGIN}` and {ends} `{COMPARE_CRYPTEN_END}` (want one of each, in that order): \
             restore the block (git) or remove both markers, then render again"
        ),
    }
}

/// Render BENCHMARKS.md (`out`) and the SVGs (into `results`) from the JSON
/// files in `results`: `bench-loopback.json` is required; `bench-lan.json`,
/// `bench-wan.json`, `bench-resnet32.json` and `plaintext-accuracy.json` add
/// their sections when present. Links in the report are relative to `out`.
pub fn render(results: &Path, out: &Path) -> Result<()> {
    let (text, svgs) = report(results, out)?;
    std::fs::write(out, text).with_context(|| format!("writing {}", out.display()))?;
    println!("wrote {} and {} plots in {}", out.display(), svgs, results.display());
    Ok(())
}

/// The text of BENCHMARKS.md for `out`, and the number of plots written into `results`.
fn report(results: &Path, out: &Path) -> Result<(String, usize)> {
    let lo_doc = load(&results.join("bench-loopback.json"))?;
    let lan_doc = load(&results.join("bench-lan.json")).ok();
    let wan_doc = load(&results.join("bench-wan.json")).ok();
    let acc = accuracy(&results.join("plaintext-accuracy.json"));
    let lo = rows(&lo_doc);
    let lan = lan_doc.as_ref().map(rows).unwrap_or_default();
    let wan = wan_doc.as_ref().map(rows).unwrap_or_default();
    // Links from BENCHMARKS.md to the results directory.
    let rel = pathdiff(results, out.parent().unwrap_or(Path::new(".")));
    let mut v = Vars::default();
    v.set("results", rel.display().to_string());
    let existing = match std::fs::read_to_string(out) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("reading {}", out.display())),
    };
    v.set("compare_crypten", compare_crypten_block(existing.as_deref()).with_context(|| format!("in {}", out.display()))?);
    v.set("model", acc.as_ref().and_then(|a| a.doc["model"].as_str()).unwrap_or("resnet20-akamaster"));
    v.set("data", lo_doc["data"].as_str().unwrap_or("?"));
    v.flag("tls", lo_doc["transport"] == "tls");
    let mut machines = vec![machine_line("bench-loopback.json", &lo_doc)];
    for (n, d) in [("bench-lan.json", &lan_doc), ("bench-wan.json", &wan_doc)] {
        if let Some(d) = d {
            machines.push(machine_line(n, d));
        }
    }
    v.set("machines", machines.join("\n"));

    // ---------------------------------------------------------------- headline
    let (a, b) = (9u32, 12u32);
    let (l9, l12) = (find(&lo, "loopback", a, 1), find(&lo, "loopback", b, 1));
    let mut head = Vec::new();
    let mut line = |what: &str, x: Option<f64>, y: Option<f64>, fmt: &dyn Fn(f64) -> String| {
        let r = match (x, y) {
            (Some(x), Some(y)) if x > 0.0 => format!("{:.2}x", y / x),
            _ => "-".into(),
        };
        head.push(format!("| {what} | {} | {} | {r} |", x.map_or("-".into(), fmt), y.map_or("-".into(), fmt)));
    };
    let g = |r: Option<&Value>, k: &str| r.map(|r| f(r, k));
    line(
        "online bytes per image (MB, both directions, client-server)",
        g(l9, "online_bytes_per_image"),
        g(l12, "online_bytes_per_image"),
        &|x| mb(x),
    );
    line("online rounds per run", g(l9, "online_rounds_per_run"), g(l12, "online_rounds_per_run"), &|x| format!("{x:.0}"));
    line("offline bytes per image (MB, dealer to client)", g(l9, "offline_bytes_per_image"), g(l12, "offline_bytes_per_image"), &|x| mb(x));
    line("online latency, loopback (s)", g(l9, "online_s_per_run"), g(l12, "online_s_per_run"), &|x| format!("{x:.3}"));
    let net_s = |rows: &[Value], net: &str, al: u32| find(rows, net, al, 1).map(|r| f(r, "online_s_per_run"));
    line("online latency, LAN 1 Gbit/s, 0.5 ms RTT (s)", net_s(&lan, "lan", a), net_s(&lan, "lan", b), &|x| format!("{x:.3}"));
    line("online latency, WAN 100 Mbit/s, 40 ms RTT (s)", net_s(&wan, "wan", a), net_s(&wan, "wan", b), &|x| format!("{x:.3}"));
    let wan_off = |al: u32| find(&wan, "wan", al, 1).and_then(|r| r["bound"]["offline_transfer_s"].as_f64());
    line("offline transfer at WAN rate, bytes / 100 Mbit/s (s)", wan_off(a), wan_off(b), &|x| format!("{x:.2}"));
    if let Some(acc) = &acc {
        let pa = |al: u32| acc.by_alpha.get(&al).map(|x| x.0);
        line("accuracy, plaintext PANN, per-layer bounds (10000 test images)", pa(a), pa(b), &|x| pct(x));
        v.set("exact_accuracy", pct(acc.exact));
        v.set("test_images", acc.doc["test_images"].to_string());
    }
    v.set("headline_rows", head.join("\n"));
    v.flag("accuracy", acc.is_some());

    // ---------------------------------------------------------------- per ReLU
    v.flag("per_relu", l9.is_some() && l12.is_some());
    if let (Some(r9), Some(r12)) = (l9, l12) {
        let (x9, x12) = (relu_layers(r9), relu_layers(r12));
        let by12: BTreeMap<_, _> = x12.iter().map(|(n, b, r)| (n.clone(), (*b, *r))).collect();
        let mut t = Vec::new();
        let (mut sb9, mut sb12, mut sr9, mut sr12) = (0.0, 0.0, 0.0, 0.0);
        let (mut minb, mut minr) = (f64::INFINITY, f64::INFINITY);
        for (n, b9, rr9) in &x9 {
            if let Some((b12, rr12)) = by12.get(n) {
                sb9 += b9;
                sb12 += b12;
                sr9 += rr9;
                sr12 += rr12;
                minb = minb.min(b12 / b9);
                minr = minr.min(rr12 / rr9);
                t.push(format!("| {n} | {b9:.0} | {b12:.0} | {:.3} | {rr9:.0} | {rr12:.0} | {:.3} |", b12 / b9, rr12 / rr9));
            }
        }
        let n = x9.len();
        t.push(format!(
            "| **all {n} ReLU layers** | {sb9:.0} | {sb12:.0} | **{:.3}** | {sr9:.0} | {sr12:.0} | **{:.3}** |",
            sb12 / sb9,
            sr12 / sr9
        ));
        v.set("relu_layers", n.to_string());
        v.set("bytes_ratio", format!("{:.2}", sb12 / sb9));
        v.set("rounds_ratio", format!("{:.2}", sr12 / sr9));
        v.set("min_bytes_ratio", format!("{minb:.3}"));
        v.set("min_rounds_ratio", format!("{minr:.3}"));
        v.flag("all_above", minb >= 1.4 && minr >= 1.4);
        v.set("per_relu_rows", t.join("\n"));
    } else {
        v.flag("all_above", false);
    }

    // ---------------------------------------------------------------- bounds
    let beaten = lan
        .iter()
        .chain(wan.iter())
        .filter(|r| r["net"] == "wan" || r["net"] == "lan")
        .map(|r| f(&r["bound"], "online_ratio_rtt"))
        .fold(f64::INFINITY, f64::min);
    v.flag("beaten", beaten < 1.0);
    v.set("smallest_rtt_ratio", format!("{beaten:.2}"));
    let mut t = Vec::new();
    for r in
        lan.iter().chain(wan.iter()).filter(|r| r["bound"].is_object()).filter(|r| r["net"] != "relay0" || r["batch"].as_u64() == Some(1))
    {
        let bd = &r["bound"];
        t.push(format!(
            "| {} | {} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | **{:.2}** | {:.2} | {} | {} |",
            r["net"].as_str().unwrap_or("?"),
            r["alpha"],
            r["batch"],
            f(r, "online_s_per_run"),
            f(bd, "online_compute_s"),
            f(bd, "online_transfer_s"),
            f(bd, "online_rounds_s"),
            f(bd, "online_bound_s"),
            f(bd, "online_ratio"),
            f(bd, "online_ratio_rtt"),
            opt(bd["relay_overhead_s"].as_f64(), 3),
            opt(bd["online_ratio_with_relay_overhead"].as_f64(), 2),
        ));
    }
    v.set("bound_rows", t.join("\n"));
    let emulated: Vec<&Value> = lan.iter().chain(wan.iter()).filter(|r| r["net"] == "lan" || r["net"] == "wan").collect();
    let worst = emulated.iter().map(|r| f(&r["bound"], "online_ratio")).fold(f64::NAN, f64::max);
    v.set("worst_ratio", format!("{worst:.2}"));
    let over: Vec<String> = emulated
        .iter()
        .filter(|r| f(&r["bound"], "online_ratio") > 1.5)
        .map(|r| {
            format!(
                "{} alpha {} batch {} ({:.2}; {} with the relay's overhead charged to the bound)",
                r["net"].as_str().unwrap_or("?"),
                r["alpha"],
                r["batch"],
                f(&r["bound"], "online_ratio"),
                opt(r["bound"]["online_ratio_with_relay_overhead"].as_f64(), 2)
            )
        })
        .collect();
    v.flag("over", !over.is_empty());
    v.set("over_rows", over.join("; "));
    let under: Vec<f64> = emulated.iter().map(|r| f(&r["bound"], "online_ratio")).filter(|x| *x < 1.0).collect();
    v.flag("under", !under.is_empty());
    v.set("under_rows", under.len().to_string());
    v.set("emulated_rows", emulated.len().to_string());
    v.set("smallest_ratio", format!("{:.2}", under.iter().copied().fold(f64::INFINITY, f64::min)));
    let relay_rows: Vec<String> = lan
        .iter()
        .filter(|r| r["net"] == "relay0" && r["batch"].as_u64() == Some(1))
        .filter_map(|r| {
            let lo = find(&lan, "loopback", r["alpha"].as_u64()? as u32, 1)?;
            Some(format!(
                "alpha {}: {:.3} s vs {:.3} s ({:.2}x)",
                r["alpha"],
                f(r, "online_s_per_run"),
                f(lo, "online_s_per_run"),
                f(r, "online_s_per_run") / f(lo, "online_s_per_run")
            ))
        })
        .collect();
    v.flag("relay", !relay_rows.is_empty());
    v.set("relay_rows", relay_rows.join("; "));

    // ---------------------------------------------------------------- sweep
    let mut t = Vec::new();
    for r in lo.iter().filter(|r| r["net"] == "loopback") {
        let al = r["alpha"].as_u64().unwrap_or(0) as u32;
        let ver = &r["verified"];
        let same = if ver.is_object() { format!("{} / {}", ver["same_prediction"], ver["images"]) } else { "-".into() };
        let (pa, ga) = acc.as_ref().and_then(|a| a.by_alpha.get(&al)).map_or(("-".into(), "-".into()), |x| (pct(x.0), pct(x.1)));
        t.push(format!(
            "| {al} | {} | {} | {:.0} | {:.1} | {} | {same} | {pa} | {ga} |",
            r["batch"],
            mb(f(r, "online_bytes_per_image")),
            f(r, "online_rounds_per_run"),
            f(r, "online_ms_per_image"),
            mb(f(r, "offline_bytes_per_image")),
        ));
    }
    v.set("sweep_rows", t.join("\n"));

    // ---------------------------------------------------------------- LAN/WAN full
    for (flag, table, name, d) in [("lan", "lan_table", "bench-lan.json", &lan_doc), ("wan", "wan_table", "bench-wan.json", &wan_doc)] {
        v.flag(flag, d.is_some());
        if let Some(d) = d {
            let rs: Vec<crate::bench::BenchRow> = serde_json::from_value(d["rows"].clone()).with_context(|| format!("rows of {name}"))?;
            v.set(table, crate::bench::markdown(&rs).trim_end_matches('\n'));
        }
    }

    // ---------------------------------------------------------------- ResNet-32
    let r32 = load(&results.join("bench-resnet32.json")).ok();
    v.flag("resnet32", r32.is_some());
    if let Some(d) = r32 {
        let rs: Vec<crate::bench::BenchRow> = serde_json::from_value(d["rows"].clone()).context("rows of bench-resnet32.json")?;
        v.set("resnet32_machine", machine_line("bench-resnet32.json", &d).trim_start_matches("- "));
        v.set("resnet32_table", crate::bench::markdown(&rs).trim_end_matches('\n'));
        let r20 = |al: u32| find(&lo, "loopback", al, 1).map(|r| f(r, "online_bytes_per_image"));
        let ratios: Vec<String> = rs
            .iter()
            .filter_map(|r| {
                let alpha = r.alpha.map_or(0, pann_approx::Alpha::get);
                let b20 = r20(alpha)?;
                Some(format!("- alpha {alpha}: ResNet-32 / ResNet-20 online bytes per image = {:.2}", r.online_bytes_per_image / b20))
            })
            .collect();
        v.set("resnet32_ratios", ratios.join("\n"));
    }

    // ---------------------------------------------------------------- plots
    let svgs = plots(results, &lo, &lan, &wan, acc.as_ref())?;
    let plots: Vec<String> = svgs.iter().map(|(file, title)| format!("![{title}]({}/{file})", rel.display())).collect();
    v.set("plots", plots.join("\n\n"));

    let text = Template::parse("bin/templates/benchmarks.md", TEMPLATE)?.render(&v)?;
    Ok((text, svgs.len()))
}

/// `to` relative to `from` for the simple cases here (same tree).
fn pathdiff(to: &Path, from: &Path) -> PathBuf {
    let (to, from) = (to.components().collect::<Vec<_>>(), from.components().filter(|c| c.as_os_str() != ".").collect::<Vec<_>>());
    let common = to.iter().zip(&from).take_while(|(a, b)| a == b).count();
    let mut p = PathBuf::new();
    for _ in common..from.len() {
        p.push("..");
    }
    for c in &to[common..] {
        p.push(c);
    }
    if p.as_os_str().is_empty() {
        p.push(".");
    }
    p
}

/// One line of a [`line_plot`]: legend label, (x, y) points (non-finite y
/// are skipped), colour.
pub type Series = (String, Vec<(f64, f64)>, RGBColor);

const ALPHA_AXIS: &str = "alpha (precision 2^-alpha)";

/// Write an SVG line plot with markers to `path` (nothing when no series has
/// a finite point); `x_desc` names the x axis (whole-number ticks).
pub fn line_plot(path: &Path, title: &str, x_desc: &str, y_label: &str, series: &[Series], legend: SeriesLabelPosition) -> Result<()> {
    let pts: Vec<(f64, f64)> = series.iter().flat_map(|s| s.1.iter().copied()).filter(|p| p.1.is_finite()).collect();
    if pts.is_empty() {
        return Ok(());
    }
    let (x0, x1) = pts.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let (y0, y1) = pts.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| (a.min(p.1), b.max(p.1)));
    let pad = ((y1 - y0) * 0.1).max(y1.abs() * 0.02).max(1e-9);
    let root = SVGBackend::new(path, (760, 460)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((x0 - 0.5)..(x1 + 0.5), (y0 - pad).min(0.0f64.max(y0 - pad))..(y1 + pad))
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_label)
        .x_labels(((x1 - x0) as usize + 2).min(14))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .draw()
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    for (name, data, color) in series {
        let data: Vec<(f64, f64)> = data.iter().copied().filter(|p| p.1.is_finite()).collect();
        if data.is_empty() {
            continue;
        }
        let c = *color;
        chart
            .draw_series(LineSeries::new(data.clone(), c.stroke_width(2)))
            .map_err(|e| anyhow::anyhow!("{e:?}"))?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
        chart.draw_series(data.iter().map(|p| Circle::new(*p, 4, c.filled()))).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    }
    chart
        .configure_series_labels()
        .position(legend)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    root.present().map_err(|e| anyhow::anyhow!("{e:?}"))?;
    Ok(())
}

fn plots(results: &Path, lo: &[Value], lan: &[Value], wan: &[Value], acc: Option<&Accuracy>) -> Result<Vec<(String, String)>> {
    // Batch `batch` when measured, else the smallest batch of that network.
    let series = |rows: &[Value], net: &str, batch: u64, k: &str, scale: f64| -> Vec<(f64, f64)> {
        let of_net = || rows.iter().filter(|r| r["net"] == net);
        let batch = if of_net().any(|r| r["batch"].as_u64() == Some(batch)) {
            batch
        } else {
            of_net().filter_map(|r| r["batch"].as_u64()).min().unwrap_or(batch)
        };
        let mut v: Vec<(f64, f64)> = rows
            .iter()
            .filter(|r| r["net"] == net && r["batch"].as_u64() == Some(batch))
            .map(|r| (r["alpha"].as_f64().unwrap_or(f64::NAN), f(r, k) * scale))
            .collect();
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        v
    };
    let mut out = Vec::new();
    let f1 = "bench-bytes-vs-alpha.svg";
    line_plot(
        &results.join(f1),
        "ResNet-20: bytes per image vs alpha",
        ALPHA_AXIS,
        "MB per image",
        &[
            ("online, client<->server".into(), series(lo, "loopback", 1, "online_bytes_per_image", 1e-6), BLUE),
            ("offline, dealer->client".into(), series(lo, "loopback", 1, "offline_bytes_per_image", 1e-6), RED),
        ],
        SeriesLabelPosition::UpperLeft,
    )?;
    out.push((f1.to_string(), "bytes per image against alpha".to_string()));
    let f2 = "bench-rounds-vs-alpha.svg";
    line_plot(
        &results.join(f2),
        "ResNet-20: online rounds per run vs alpha",
        ALPHA_AXIS,
        "rounds",
        &[("online rounds".into(), series(lo, "loopback", 1, "online_rounds_per_run", 1.0), BLUE)],
        SeriesLabelPosition::UpperLeft,
    )?;
    out.push((f2.to_string(), "online rounds against alpha".to_string()));
    let f3 = "bench-latency-vs-alpha.svg";
    line_plot(
        &results.join(f3),
        "ResNet-20: online latency per image vs alpha (batch 1)",
        ALPHA_AXIS,
        "seconds (median run)",
        &[
            ("loopback".into(), series(lo, "loopback", 1, "online_s_per_run", 1.0), BLUE),
            ("LAN 1 Gbit/s, 0.5 ms".into(), series(lan, "lan", 1, "online_s_per_run", 1.0), GREEN),
            ("WAN 100 Mbit/s, 40 ms".into(), series(wan, "wan", 1, "online_s_per_run", 1.0), RED),
        ],
        SeriesLabelPosition::UpperLeft,
    )?;
    out.push((f3.to_string(), "online latency against alpha".to_string()));
    if let Some(acc) = acc {
        let f4 = "bench-accuracy-vs-alpha.svg";
        let pl: Vec<(f64, f64)> = acc.by_alpha.iter().map(|(a, x)| (*a as f64, 100.0 * x.0)).collect();
        let gl: Vec<(f64, f64)> = acc.by_alpha.iter().map(|(a, x)| (*a as f64, 100.0 * x.1)).collect();
        let ex: Vec<(f64, f64)> = acc.by_alpha.keys().map(|a| (*a as f64, 100.0 * acc.exact)).collect();
        line_plot(
            &results.join(f4),
            "ResNet-20 (akamaster) plaintext PANN accuracy vs alpha",
            ALPHA_AXIS,
            "top-1 accuracy (%)",
            &[
                ("exact ReLU".into(), ex, BLACK),
                ("PANN, global bound".into(), gl, RED),
                ("PANN, per-layer bounds (shipped card)".into(), pl, BLUE),
            ],
            SeriesLabelPosition::LowerRight,
        )?;
        out.push((f4.to_string(), "accuracy against alpha".to_string()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch directory laid out like the repository: `docs/results/`
    /// holding copies of the committed results named by `files`.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(tag: &str, files: &[&str]) -> Scratch {
            let dir = std::env::temp_dir().join(format!("pann-bench-report-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(dir.join("docs/results")).unwrap();
            for f in files {
                std::fs::copy(repo().join("docs/results").join(f), dir.join("docs/results").join(f)).unwrap();
            }
            Scratch(dir)
        }

        /// Write the report where `report` renders it, then render the file.
        fn render(&self) -> Result<()> {
            render(&self.0.join("docs/results"), &self.0.join("BENCHMARKS.md"))
        }

        fn benchmarks_md(&self) -> String {
            std::fs::read_to_string(self.0.join("BENCHMARKS.md")).unwrap()
        }

        fn set_benchmarks_md(&self, text: &str) {
            std::fs::write(self.0.join("BENCHMARKS.md"), text).unwrap();
        }

        fn edit(&self, file: &str, change: impl FnOnce(&mut Value)) {
            let path = self.0.join("docs/results").join(file);
            let mut doc = load(&path).unwrap();
            change(&mut doc);
            std::fs::write(path, serde_json::to_vec(&doc).unwrap()).unwrap();
        }

        fn report(&self) -> String {
            report(&self.0.join("docs/results"), &self.0.join("BENCHMARKS.md")).unwrap().0
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn repo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
    }

    const RESULTS: [&str; 5] =
        ["bench-loopback.json", "bench-lan.json", "bench-wan.json", "bench-resnet32.json", "plaintext-accuracy.json"];

    /// BENCHMARKS.md is exactly what `pann bench-report` renders from the
    /// committed results (so it was not edited by hand, and moving the prose
    /// into the template changed no byte). After changing the report or
    /// the template, regenerate it: `pann bench-report` (see scripts/bench.sh).
    /// (The committed BENCHMARKS.md is copied into the scratch directory
    /// first, so that its CrypTen block, which the report keeps, is the
    /// committed one.)
    #[test]
    fn benchmarks_md_is_the_report_of_the_committed_results() {
        let s = Scratch::new("golden", &RESULTS);
        let committed = std::fs::read_to_string(repo().join("BENCHMARKS.md")).unwrap();
        s.set_benchmarks_md(&committed);
        let rendered = s.report();
        if rendered != committed {
            let line =
                rendered.lines().zip(committed.lines()).position(|(a, b)| a != b).map_or("the end".into(), |i| format!("line {}", i + 1));
            panic!("BENCHMARKS.md differs from the rendered report at {line}");
        }
    }

    /// Every section of the template, on and off, renders without a
    /// template error: the committed results, the loopback file alone, and
    /// results edited to take the other branches.
    #[test]
    fn every_branch_of_the_template_renders() {
        let minimal = Scratch::new("minimal", &RESULTS[..1]).report();
        for absent in ["bench-lan.json`:", "## ResNet-32", "Exact-ReLU accuracy", "Emulator overhead", "*under*", "faster than it"] {
            assert!(!minimal.contains(absent), "{absent} in\n{minimal}");
        }
        assert!(minimal.contains("Every emulated row is within 1.5x") && minimal.contains("Both are at least 1.4"), "{minimal}");

        let s = Scratch::new("edited", &RESULTS);
        s.edit("bench-loopback.json", |d| {
            d["transport"] = "tcp".into();
            for r in d["rows"].as_array_mut().unwrap() {
                if r["alpha"] == 12 && r["batch"] == 1 {
                    let layers = r["layers"].as_array_mut().unwrap();
                    layers.iter_mut().find(|l| l[0].as_str().is_some_and(|n| n.contains("relu"))).unwrap()[1] = 1.0.into();
                }
            }
        });
        for file in ["bench-lan.json", "bench-wan.json"] {
            s.edit(file, |d| {
                for r in d["rows"].as_array_mut().unwrap().iter_mut().filter(|r| r["bound"].is_object()) {
                    r["bound"]["online_ratio"] = 1.7.into();
                    r["bound"]["online_ratio_rtt"] = 1.1.into();
                }
            });
        }
        let edited = s.report();
        for present in ["plain TCP", "At least one per-layer ratio is below 1.4", "Rows above 1.5x: lan alpha 7 batch 1 (1.70;"] {
            assert!(edited.contains(present), "{present} missing in\n{edited}");
        }
        assert!(!edited.contains("*under*") && !edited.contains("faster than it"), "{edited}");
    }

    /// `pann bench-report` keeps the block that scripts/compare-crypten.sh
    /// spliced into BENCHMARKS.md, byte for byte, wherever the rest of the
    /// report changes; a file without the block gets the empty one; a cut
    /// block (begin without end, end before begin, a marker twice) is an
    /// error and leaves the file as it was.
    #[test]
    fn the_crypten_block_survives_regeneration() {
        let s = Scratch::new("crypten", &RESULTS[..1]);
        // No BENCHMARKS.md yet: the empty block, with its markers.
        s.render().unwrap();
        let fresh = s.benchmarks_md();
        assert!(fresh.contains(COMPARE_CRYPTEN_BEGIN) && fresh.contains(COMPARE_CRYPTEN_END), "{fresh}");
        assert!(fresh.contains("Not measured in this checkout"), "{fresh}");

        // What the script writes: a table between the markers. The rest of the
        // file is stale (a line the template does not have) and is rewritten.
        let block = format!(
            "{COMPARE_CRYPTEN_BEGIN}\n| per image | PANN batch 1 | CrypTen batch 1 |\n|---|---|---|\n| online MB | 36.2 | 95.2 |\n\nMeasured on a test.\n{COMPARE_CRYPTEN_END}"
        );
        let (b, e) = (fresh.find(COMPARE_CRYPTEN_BEGIN).unwrap(), fresh.find(COMPARE_CRYPTEN_END).unwrap() + COMPARE_CRYPTEN_END.len());
        let spliced = format!("a stale first line\n{}{block}{}", &fresh[..b], &fresh[e..]);
        s.set_benchmarks_md(&spliced);
        s.render().unwrap();
        let kept = s.benchmarks_md();
        assert!(kept.contains(&block), "{kept}");
        assert!(!kept.contains("Not measured in this checkout") && !kept.contains("a stale first line"), "{kept}");
        assert_eq!(kept, format!("{}{block}{}", &fresh[..b], &fresh[e..]), "only the block differs from the fresh report");
        // Rendering again changes nothing.
        s.render().unwrap();
        assert_eq!(s.benchmarks_md(), kept);

        // Cut or doubled blocks: an error, and the file stays as it was.
        for broken in [
            kept.replace(COMPARE_CRYPTEN_END, ""),
            kept.replace(COMPARE_CRYPTEN_BEGIN, ""),
            kept.replace(COMPARE_CRYPTEN_BEGIN, "\u{0}")
                .replace(COMPARE_CRYPTEN_END, COMPARE_CRYPTEN_BEGIN)
                .replace('\u{0}', COMPARE_CRYPTEN_END),
            format!("{kept}\n{block}\n"),
        ] {
            s.set_benchmarks_md(&broken);
            let err = s.render().unwrap_err();
            assert!(format!("{err:#}").contains("want one of each"), "{err:#}");
            assert_eq!(s.benchmarks_md(), broken);
        }
    }
}
