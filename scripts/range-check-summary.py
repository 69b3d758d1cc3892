"""Summarise `range_check` output (engine/examples/range_check.rs): per image, the f64 PANN's
logits against the exact fixed-point reference's, and what left its range.

    python3 scripts/range-check-summary.py OUT.txt [OUT2.txt ...]

Classes are taken from the logits as range_check prints them (2 decimals), so a tie there can
differ from the executors' own argmax.
"""
import re, sys
imgs = []
cur = None
for path in sys.argv[1:]:
    for line in open(path):
        m = re.match(r"image (\d+) \(label (\d+)\)", line)
        if m:
            cur = {"i": int(m[1]), "label": int(m[2])}
            imgs.append(cur)
            continue
        if cur is None:
            continue
        m = re.search(r"f64 PANN logits:\s+\[(.*)\]", line)
        if m:
            cur["f"] = [float(x) for x in m[1].split(",")]
        m = re.search(r"fixed-point reference logits: \[(.*)\]", line)
        if m:
            cur["r"] = [float(x) for x in m[1].split(",")]
        m = re.search(r"reference: (\d+) ReLU inputs beyond their bound, (\d+) openings out of range, (\d+) values wrapped", line)
        if m:
            cur["beyond"], cur["oor"], cur["wrap"] = int(m[1]), int(m[2]), int(m[3])
        m = re.search(r"client verdict: (\S+)", line)
        if m:
            cur["verdict"] = m[1]
am = lambda v: max(range(len(v)), key=lambda k: v[k])
done = [x for x in imgs if "r" in x and "verdict" in x]
n = len(done)
beyond = [x for x in done if x["beyond"] > 0]
print(f"images {n} (indices {min(x['i'] for x in done)}..{max(x['i'] for x in done)})")
print(f"with a ReLU input beyond its bound: {len(beyond)}")
print(f"with an opening out of range: {sum(x['oor'] > 0 for x in done)}; with a wrapped value: {sum(x['wrap'] > 0 for x in done)}")
print(f"reference class == f64 PANN class: {sum(am(x['r']) == am(x['f']) for x in done)} of {n}; among those beyond B: {sum(am(x['r']) == am(x['f']) for x in beyond)} of {len(beyond)}")
print(f"max |reference logit - f64 logit|: {max(max(abs(a - b) for a, b in zip(x['r'], x['f'])) for x in done):.3f} (printed to 2 decimals)")
print(f"reference accuracy: {sum(am(x['r']) == x['label'] for x in done) / n:.2%}; f64 PANN accuracy: {sum(am(x['f']) == x['label'] for x in done) / n:.2%}")
print(f"client verdict not plausible: {sum(x['verdict'] != 'plausible' for x in done)}")
differ = [x for x in done if am(x["r"]) != am(x["f"])]
for x in differ[:10]:
    print(f"  image {x['i']}: f64 logits {x['f']}, reference logits {x['r']}")
