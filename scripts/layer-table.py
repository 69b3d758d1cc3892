#!/usr/bin/env python3
"""Per-layer online cost table (Markdown) from a `pann bench` JSON file.

usage: scripts/layer-table.py docs/results/secure-layers.json
Columns: for each row of the file (alpha, batch), online bytes per image (both
directions, from the client's channel meter) and rounds per run, per layer.
"""
import json
import sys

rows = json.load(open(sys.argv[1]))["rows"]
names = [l[0] for l in rows[0]["layers"]]
head = "| layer | " + " | ".join(
    f"alpha {r['alpha']} batch {r['batch']}: KB/image | rounds" for r in rows) + " |"
print(head)
print("|---|" + "---|---|" * len(rows))
for n in names:
    cells = []
    for r in rows:
        layer = {l[0]: l for l in r["layers"]}.get(n)
        cells += [f"{layer[1] / 1e3:.1f}", str(layer[2])] if layer else ["-", "-"]
    print(f"| {n} | " + " | ".join(cells) + " |")
