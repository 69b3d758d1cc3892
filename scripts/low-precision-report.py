#!/usr/bin/env python3
"""Markdown tables from the JSON that scripts/low-precision.sh writes.

  python3 scripts/low-precision-report.py [RESULTS_DIR] > tables.md

Reads RESULTS_DIR/low-precision/{eval,sides,plan}-*.json (pann-train eval /
sides, pann plan) and prints the tables that docs/results/trainer-resnet20.md
and docs/results/mixed-precision.md quote. Standard library only.
"""
import glob
import json
import os
import sys

res = sys.argv[1] if len(sys.argv) > 1 else "docs/results"
lp = os.path.join(res, "low-precision")


def load(path):
    with open(path) as f:
        return json.load(f)


def pct(x):
    return f"{100 * x:.2f}%"


def eval_tables():
    files = sorted(glob.glob(os.path.join(lp, "eval-*.json")))
    if not files:
        return
    alphas = sorted({r["alpha"] for f in files for r in load(f)["rows"] if r["alpha"] is not None})
    print("| model | bounds | exact ReLU | " + " | ".join(f"a={a}" for a in alphas) + " |")
    print("|---|---|---|" + "---|" * len(alphas))
    for f in files:
        name = os.path.basename(f)[len("eval-"):-len(".json")]
        bounds = "per-layer" if name.endswith("-per-layer") else "global"
        model = name[: -len("-" + bounds)]
        rows = {r["alpha"]: r for r in load(f)["rows"]}
        cells = []
        for a in alphas:
            r = rows.get(a)
            if r is None:
                cells.append("")
            else:
                flag = f" ({r['images_out_of_range']} oor)" if r["images_out_of_range"] else ""
                cells.append(pct(r["accuracy"]) + flag)
        print(f"| {model} | {bounds} | {pct(rows[None]['accuracy'])} | " + " | ".join(cells) + " |")
    print()


def sides_tables():
    files = sorted(glob.glob(os.path.join(lp, "sides-*.json")))
    if not files:
        return
    print("| model | alpha | exact acc (loss) | both sides | negative inputs only | positive inputs only | loss added: negative / positive |")
    print("|---|---|---|---|---|---|---|")
    for f in files:
        model = os.path.basename(f)[len("sides-"):-len(".json")]
        for r in load(f)["rows"]:
            dn = r["negative_only_loss"] - r["exact_loss"]
            dp = r["positive_only_loss"] - r["exact_loss"]
            ratio = f"{dn / dp:.2f}" if dp > 1e-9 else "-"
            print(
                f"| {model} | {r['alpha']} | {pct(r['exact'])} ({r['exact_loss']:.4f}) | {pct(r['both'])} ({r['both_loss']:.4f}) "
                f"| {pct(r['negative_only'])} ({r['negative_only_loss']:.4f}) | {pct(r['positive_only'])} ({r['positive_only_loss']:.4f}) "
                f"| {dn:+.4f} / {dp:+.4f} (ratio {ratio}) |"
            )
    print()


def plan_tables():
    files = sorted(glob.glob(os.path.join(lp, "plan-*.json")))
    if not files:
        return
    print("| plan | calibration | exact | target | planned acc | ReLU MB/image | ReLU rounds | evaluations | alphas (execution order) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for f in files:
        r = load(f)
        oc = r["outcome"]
        chosen = [e for e in oc["explored"] if e["alphas"] == oc["alphas"]][-1]
        print(
            f"| {os.path.basename(r['card'])} | {r['calibration']} | {pct(oc['exact']['accuracy'])} | {pct(oc['target_accuracy'])} "
            f"| {pct(oc['score']['accuracy'])} | {chosen['relu_bytes'] / 1e6:.2f} | {chosen['relu_rounds']} | {len(oc['explored'])} "
            f"| {','.join(map(str, oc['alphas']))} |"
        )
    print()


eval_tables()
sides_tables()
plan_tables()
