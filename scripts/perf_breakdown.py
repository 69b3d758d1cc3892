#!/usr/bin/env python3
"""Where the CPU time of a `pann bench` run goes, per role and category.

Reads `perf script -F pid,tid,comm,ip,sym --show-task-events` output (stdin)
of a `perf record -g` of `pann bench`, maps each pann-party process to its role
by the order they were forked (bin/src/launch.rs spawns dealer, server, client), and
attributes every sample to the first category that matches a frame of its
call chain, leaf first. Prints a Markdown table (share of all samples) and
writes JSON when --json is given. Used by scripts/profile.sh.
"""
import argparse
import collections
import json
import re
import sys

# (category, regex on a frame's symbol), checked leaf first per frame.
CATEGORIES = [
    ("TLS (AES-GCM, rustls)", r"aes_gcm|gcm_ghash|rustls|ring_core_.*(gcm|aes)|ChaCha|poly1305"),
    ("PRG (AES-CTR expansion)", r"aes::|Aes128|Prg::|prg::"),
    ("convolution / linear kernels", r"kernels::|gemm|im2col|conv2d|LinearSpec::apply"),
    ("ReLU program: local forms", r"exec::eval_form|exec::Ctx::eval|exec::Drawn|ring::mul_assign|ring::add_assign|ring::sub_assign|add_scaled_assign|exec::run_program"),
    ("dealer: atoms and products", r"dealer::|mask_atoms|pack::pack"),
    ("material: assembly and copies", r"material::|pack::unpack|from_iter|extend_from_slice|memmove|memcpy"),
    ("allocation and zeroing", r"memset|malloc|_int_free|cfree|realloc|page_fault|clear_page|do_anonymous_page|alloc_pages|folio|mmap|munmap|madvise"),
    ("network stack (kernel)", r"tcp_|skb|_copy_to_iter|_copy_from_iter|sock_|ip_|net_|__sys_send|__sys_recv|loopback|softirq"),
    ("channel framing", r"channel::|send_ring|recv_ring|exchange_ring|frame"),
    ("scheduling and waiting", r"sched|futex|yield|switch|epoll|park|idle|poll"),
]
COMPILED = [(c, re.compile(p)) for c, p in CATEGORIES]


def parse(lines):
    forks = []  # new processes, in the order they were forked
    parties = set()  # those that exec pann-party
    samples = []
    cur = None
    for line in lines:
        m = re.search(r"PERF_RECORD_FORK\((\d+):(\d+)\):\((\d+):\d+\)", line)
        if m:
            child, tid, parent = int(m.group(1)), int(m.group(2)), int(m.group(3))
            if child == tid and child != parent:
                forks.append(child)
            continue
        if "PERF_RECORD_COMM exec: pann-party" in line:
            m = re.search(r"pann-party:(\d+)/", line)
            if m:
                parties.add(int(m.group(1)))
            continue
        if not line.strip():
            if cur:
                samples.append(cur)
            cur = None
            continue
        if not line.startswith(("\t", " ")):
            m = re.match(r"\s*(\S.*?)\s+(\d+)/(\d+)", line)
            if m:
                cur = (int(m.group(2)), [])
            continue
        if cur is not None:
            parts = line.strip().split(None, 1)
            cur[1].append(parts[1] if len(parts) > 1 else "?")
    if cur:
        samples.append(cur)
    order = [p for p in forks if p in parties]
    names = ["dealer", "server", "client"]
    roles = {p: names[i] if i < len(names) else f"party{i}" for i, p in enumerate(order)}
    return roles, samples


def categorize(frames):
    for f in frames:
        for c, rx in COMPILED:
            if rx.search(f):
                return c
    return "other"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", help="write the breakdown here")
    ap.add_argument("--title", default="")
    a = ap.parse_args()
    roles, samples = parse(sys.stdin)
    table = collections.Counter()
    per_role = collections.Counter()
    for pid, frames in samples:
        role = roles.get(pid, "bench driver")
        cat = categorize(frames)
        if role == "dealer" and cat == "ReLU program: local forms":
            cat = "dealer: atoms and products"  # the same ring loops, making material
        table[(role, cat)] += 1
        per_role[role] += 1
    total = sum(per_role.values()) or 1
    cats = [c for c, _ in CATEGORIES] + ["other"]
    order = ["dealer", "server", "client", "bench driver"]
    print(f"| category | " + " | ".join(order) + " | all |")
    print("|---|" + "---|" * (len(order) + 1))
    for c in cats:
        row = [100.0 * table[(r, c)] / total for r in order]
        if sum(row) < 0.05:
            continue
        print(f"| {c} | " + " | ".join(f"{v:.1f}%" for v in row) + f" | {sum(row):.1f}% |")
    print("| **all** | " + " | ".join(f"{100.0 * per_role[r] / total:.1f}%" for r in order) + " | 100% |")
    print(f"\n{total} samples")
    if a.json:
        out = {
            "title": a.title,
            "samples": total,
            "share": {r: {c: table[(r, c)] / total for c in cats if table[(r, c)]} for r in order},
        }
        with open(a.json, "w") as fh:
            json.dump(out, fh, indent=2)


if __name__ == "__main__":
    main()
