//! The benchmark pipeline cannot rot: `pann bench --quick --net lan` (direct
//! loopback, the relay alone, and the emulated LAN; alpha 9, 2 images) writes
//! JSON with every field BENCHMARKS.md reads, and `pann bench-report` renders
//! a report and plots from it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const PANN: &str = env!("CARGO_BIN_EXE_pann");

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

struct Tmp(PathBuf);

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn quick_bench_over_emulated_lan_writes_complete_json_and_a_report() {
    let tmp = Tmp(std::env::temp_dir().join(format!("pann-bench-test-{}", std::process::id())));
    std::fs::create_dir_all(&tmp.0).unwrap();
    let json = tmp.0.join("bench-lan.json");
    let t0 = Instant::now();
    let out = Command::new(PANN)
        .args(["bench", "--quick", "--net", "lan", "--data"])
        .arg(repo().join("models/tests/data/test_batch_first64.bin"))
        .arg("--out")
        .arg(&json)
        .output()
        .unwrap();
    eprintln!("pann bench --quick --net lan: {:.1} s\n{}", t0.elapsed().as_secs_f64(), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "pann bench failed");
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    for k in ["command", "machine", "model", "data", "transport", "networks", "rows"] {
        assert!(!doc[k].is_null(), "missing {k}");
    }
    assert!(doc["machine"]["commit"].is_string() && doc["machine"]["cores"].as_u64().unwrap() >= 1);
    let rows = doc["rows"].as_array().unwrap();
    let nets: Vec<&str> = rows.iter().map(|r| r["net"].as_str().unwrap()).collect();
    assert_eq!(nets, ["loopback", "relay0", "lan"]);
    for r in rows {
        assert_eq!(r["alpha"], 9);
        for k in [
            "online_bytes_per_image",
            "offline_bytes_per_image",
            "online_rounds_per_run",
            "online_s_per_run",
            "online_max_direction_bytes_per_run",
        ] {
            assert!(r[k].as_f64().unwrap() > 0.0, "{k} in {r}");
        }
        // Metered, so identical whatever the network.
        assert_eq!(r["online_bytes_per_image"], rows[0]["online_bytes_per_image"]);
        assert_eq!(r["online_rounds_per_run"], rows[0]["online_rounds_per_run"]);
        let layers = r["layers"].as_array().unwrap();
        assert!(layers.iter().any(|l| l[0].as_str().unwrap().contains("relu")), "no ReLU layer labels");
    }
    let lan = &rows[2]["bound"];
    for k in [
        "online_compute_s",
        "online_transfer_s",
        "online_rounds_s",
        "online_bound_s",
        "online_ratio",
        "online_ratio_rtt",
        "relay_overhead_s",
    ] {
        assert!(lan[k].as_f64().is_some(), "bound field {k} missing: {lan}");
    }
    assert_eq!(lan["rtt_ms"], 0.5);
    assert_eq!(lan["rate_mbit"], 1000.0);
    // The emulated link is slower than its own bound's transfer + rounds terms.
    let measured = rows[2]["online_s_per_run"].as_f64().unwrap();
    assert!(measured >= lan["online_transfer_s"].as_f64().unwrap() + lan["online_rounds_s"].as_f64().unwrap());

    // The report renders from these files (the same JSON standing in for the three networks).
    for n in ["bench-loopback.json", "bench-wan.json"] {
        std::fs::copy(&json, tmp.0.join(n)).unwrap();
    }
    std::fs::copy(repo().join("docs/results/plaintext-accuracy.json"), tmp.0.join("plaintext-accuracy.json")).ok();
    let md = tmp.0.join("BENCHMARKS.md");
    let st = Command::new(PANN).args(["bench-report", "--results"]).arg(&tmp.0).arg("--out").arg(&md).status().unwrap();
    assert!(st.success());
    let text = std::fs::read_to_string(&md).unwrap();
    assert!(text.contains("## Headline") && text.contains("lower bound") && text.contains("| lan | 9 | 2 |"), "{text}");
    assert!(tmp.0.join("bench-bytes-vs-alpha.svg").exists());
}
