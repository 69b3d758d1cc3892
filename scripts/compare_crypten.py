#!/usr/bin/env python3
"""CrypTen 0.4.1 next to PANN: the measuring half of scripts/compare-crypten.sh.

Two subcommands (the script calls both; run them by hand only to debug):

  crypten   (in .venv-crypten: torch 2.13.0 and CrypTen 0.4.1)
            Runs the shipped ResNet-20 card (BN folded into the convolutions,
            akamaster's option-A shortcut written as AvgPool2d(1, stride 2)
            plus concatenation with zeros; both exact) under CrypTen with its
            trusted third party: party 0 holds the model (PANN's server),
            party 1 the images and alone learns the logits (PANN's client),
            rank 2 is the TTP (PANN's dealer). Each is its own Python process;
            they meet over loopback (torch.distributed, gloo, a TCP rendezvous
            on 127.0.0.1). For each batch size, over the first N test images
            (repeated --repeat times), one protocol run per batch in each of
            two modes, interleaved:
              on demand: the tuple cache is empty, so every Beaver triple,
                  square, binary triple, wrap and B2A pair is made while the
                  run waits for it (party 0 asks the TTP, party 1 draws its
                  share from the seed it shares with the TTP);
              prepared:  before the run, CrypTen's TupleProvider.fill_cache()
                  makes every tuple that a traced run of the same batch shape
                  requested (the TTP round trips happen then, untimed); the
                  run itself only pops tuples (a miss is counted and reported:
                  it must be 0).
            Online bytes come from CrypTen's communicator statistics of the
            two parties in the prepared runs (their sum halved: each party
            logs what it sends and what it receives). Offline bytes are what
            the TTP sends to the parties, counted at party 0's TTP client
            (every reply tensor, 8 bytes an element, plus the pickled size
            message), and the requests going the other way, separately.
  report    (plain python3, no torch) Builds the comparison table from PANN's
            `pann bench` JSON and the `crypten` JSON, writes
            docs/results/compare-crypten.{md,json}, and splices the table into
            BENCHMARKS.md between <!-- compare-crypten:begin --> and
            <!-- compare-crypten:end --> (which `pann bench-report` keeps).

CrypTen 0.4.1 on torch 2.13 needs three patches, applied at run time here
(site-packages is not edited): torch.onnx._internal.registration moved to
torch.onnx._internal.torchscript_exporter.registration (a sys.modules alias
before `import crypten`); torch.onnx.export must be called with dynamo=False
(a wrapper that defaults it); the TupleProvider cache keys requests by
frozenset(kwargs.items()), which fails on convolution kwargs whose values are
lists (padding=[1, 1]) - the patched provider turns lists into tuples in the
key.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in scripts/ from importing pytorch_reference
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BEGIN = "<!-- compare-crypten:begin -->"
END = "<!-- compare-crypten:end -->"


# --------------------------------------------------------------------------- model


def patch_torch_for_crypten():
    """The two torch 2.13 incompatibilities of CrypTen 0.4.1; call before `import crypten`."""
    import importlib

    import torch
    import torch.onnx

    try:
        importlib.import_module("torch.onnx._internal.registration")
    except ImportError:
        sys.modules["torch.onnx._internal.registration"] = importlib.import_module(
            "torch.onnx._internal.torchscript_exporter.registration"
        )
    export = torch.onnx.export
    if not getattr(export, "_pann_dynamo_false", False):

        def export_torchscript(*args, **kwargs):
            kwargs.setdefault("dynamo", False)
            return export(*args, **kwargs)

        export_torchscript._pann_dynamo_false = True
        torch.onnx.export = export_torchscript


def build_models(card_path):
    """(akamaster ResNet-20 as scripts/pytorch_reference.py builds it, the
    CrypTen-ready network with BN folded and the shortcut rewritten, the card)."""
    import hashlib

    import torch
    import torch.nn as nn
    from safetensors.torch import load_file

    sys.path.insert(0, HERE)
    import pytorch_reference as ref

    with open(card_path) as f:
        card = json.load(f)
    arch = card["architecture"]
    if arch.get("kind") != "resnet" or arch.get("depth") != 20 or arch.get("widths") != [16, 32, 64]:
        raise SystemExit(f"{card_path}: not a CIFAR ResNet-20 card ({arch})")
    weights = os.path.join(os.path.dirname(card_path), card["weights"])
    with open(weights, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    if digest != card["weights_sha256"]:
        raise SystemExit(f"{weights}: sha256 {digest} is not the card's {card['weights_sha256']}")
    state = load_file(weights)
    original = ref.ResNet([3, 3, 3], num_classes=arch["num_classes"])
    missing, unexpected = original.load_state_dict(state, strict=False)
    missing = [m for m in missing if not m.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise SystemExit(f"state dict mismatch: missing {missing}, unexpected {unexpected}")
    # Both networks come back in float64 (the check of the rewrite against
    # akamaster's network is then exact to rounding); CrypTen gets float32.
    original.eval().double()
    eps = arch.get("bn_eps", 1e-5)

    def fold(conv, bn):
        scale = bn.weight.detach() / torch.sqrt(bn.running_var.detach() + eps)
        out = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, bias=True).double()
        with torch.no_grad():
            out.weight.copy_(conv.weight.detach() * scale.reshape(-1, 1, 1, 1))
            out.bias.copy_(bn.bias.detach() - bn.running_mean.detach() * scale)
        return out

    class Shortcut(nn.Module):
        """Option A: x[:, :, ::2, ::2] zero-padded by `pad` channels on each side,
        as a 1x1 average pooling of stride 2 and a concatenation with zeros
        (CrypTen's ONNX importer takes neither strided slices nor F.pad)."""

        def __init__(self, pad):
            super().__init__()
            self.pool = nn.AvgPool2d(kernel_size=1, stride=2)
            self.pad = pad

        def forward(self, x):
            y = self.pool(x)
            # Two zero blocks of `pad` channels (y has 2 * pad), computed
            # separately: CrypTen's Graph marks only the first occurrence of
            # an input name, so cat([z, y, z]) would never become computable.
            # (Explicit ends: the importer turns slice bounds into float32, and
            # an open end, INT64_MAX, does not survive that.)
            left, right = y[:, 0 : self.pad] * 0.0, y[:, self.pad : 2 * self.pad] * 0.0
            return torch.cat([left, y, right], dim=1)

    class Block(nn.Module):
        def __init__(self, b):
            super().__init__()
            self.conv1 = fold(b.conv1, b.bn1)
            self.conv2 = fold(b.conv2, b.bn2)
            self.relu1, self.relu2 = nn.ReLU(), nn.ReLU()
            downsample = b.conv1.stride[0] != 1 or b.conv1.in_channels != b.conv1.out_channels
            self.shortcut = Shortcut(b.conv1.out_channels // 4) if downsample else nn.Identity()

        def forward(self, x):
            out = self.relu1(self.conv1(x))
            return self.relu2(self.conv2(out) + self.shortcut(x))

    class Net(nn.Module):
        def __init__(self, m):
            super().__init__()
            self.conv1 = fold(m.conv1, m.bn1)
            self.relu = nn.ReLU()
            self.blocks = nn.Sequential(*[Block(b) for layer in (m.layer1, m.layer2, m.layer3) for b in layer])
            self.pool = nn.AvgPool2d(8)
            self.linear = nn.Linear(m.linear.in_features, m.linear.out_features).double()
            with torch.no_grad():
                self.linear.weight.copy_(m.linear.weight)
                self.linear.bias.copy_(m.linear.bias)

        def forward(self, x):
            out = self.blocks(self.relu(self.conv1(x)))
            return self.linear(torch.flatten(self.pool(out), 1))

    folded = Net(original).eval()
    return original, folded, card


def read_images(records, n, card):
    import numpy as np

    sys.path.insert(0, HERE)
    import pytorch_reference as ref

    raw = np.fromfile(records, dtype=np.uint8)
    if raw.size % ref.RECORD != 0 or raw.size // ref.RECORD < n:
        raise SystemExit(f"{records}: fewer than {n} CIFAR-10 records")
    recs = raw.reshape(-1, ref.RECORD)[:n]
    labels = recs[:, 0].astype(int).tolist()
    images = recs[:, 1:].reshape(-1, 3, 32, 32).astype(np.float64) / 255.0
    mean = np.array(card["input"]["mean"]).reshape(1, 3, 1, 1)
    std = np.array(card["input"]["std"]).reshape(1, 3, 1, 1)
    return labels, (images - mean) / std


# --------------------------------------------------------------------------- parties


def patch_tuple_provider(counters):
    """TupleProvider's cache, keyed so that list-valued kwargs work, with hits and misses counted."""
    import crypten.mpc.provider.provider as prov

    TupleProvider = prov.TupleProvider

    def hashable(v):
        if isinstance(v, (list, tuple)):
            return tuple(hashable(x) for x in v)
        if isinstance(v, dict):
            return frozenset((k, hashable(x)) for k, x in v.items())
        return v

    def key(func_name, args, kwargs):
        return (func_name, hashable(args), frozenset((k, hashable(v)) for k, v in kwargs.items()))

    def __getattribute__(self, func_name):
        if func_name not in TupleProvider.TRACEABLE_FUNCTIONS:
            return object.__getattribute__(self, func_name)
        func = object.__getattribute__(self, func_name)
        if object.__getattribute__(self, "tracing"):

            def func_with_trace(*args, **kwargs):
                object.__getattribute__(self, "request_cache").append((func_name, args, kwargs))
                return func(*args, **kwargs)

            return func_with_trace
        cache = object.__getattribute__(self, "tuple_cache")
        if len(cache) == 0:
            return func

        def func_from_cache(*args, **kwargs):
            tuples = cache.get(key(func_name, args, kwargs))
            if tuples:
                counters["hits"] += 1
                return tuples.pop()
            counters["misses"] += 1
            return func(*args, **kwargs)

        return func_from_cache

    def fill_cache(self):
        for func_name, args, kwargs in self.request_cache:
            result = object.__getattribute__(self, func_name)(*args, **kwargs)
            self.tuple_cache.setdefault(key(func_name, args, kwargs), []).append(result)

    TupleProvider.__getattribute__ = __getattribute__
    TupleProvider.fill_cache = fill_cache


def count_ttp_traffic(counters):
    """Wrap party 0's TTP client: bytes the TTP sends (replies) and receives (requests)."""
    import pickle

    from crypten.mpc.provider.ttp_provider import TTPClient

    client = TTPClient.get()
    request = client.ttp_request

    def counted(func_name, device, *args, **kwargs):
        message = {"function": func_name, "device": None if device is None else str(device), "args": args, "kwargs": kwargs}
        result = request(func_name, device, *args, **kwargs)
        counters["requests"] += 1
        counters["party_to_ttp_bytes"] += 4 + len(pickle.dumps(message))
        counters["ttp_to_party_bytes"] += 4 + len(pickle.dumps(result.size())) + result.nelement() * result.element_size()
        return result

    client.ttp_request = counted


def party(cfg, rank):
    import torch

    torch.manual_seed(0)
    if cfg["threads"]:
        torch.set_num_threads(cfg["threads"])
    patch_torch_for_crypten()
    import crypten
    import crypten.communicator as comm

    crypten.cfg.mpc.provider = "TTP"
    crypten.cfg.communicator.verbose = True
    counters = {"hits": 0, "misses": 0, "requests": 0, "party_to_ttp_bytes": 0, "ttp_to_party_bytes": 0}
    patch_tuple_provider(counters)
    crypten.init()
    if rank == 0:
        count_ttp_traffic(counters)
    c = comm.get()
    provider = crypten.mpc.get_default_provider()

    _, folded, card = build_models(cfg["card"])
    folded = folded.float()
    if rank != 0:
        # The client's copy of the network holds random values, so that
        # nothing it computes uses the weights (model.encrypt(src=0) takes
        # party 0's). Not zeros: the
        # ONNX exporter merges equal initializers into Identity nodes, which
        # CrypTen's importer rejects.
        with torch.no_grad():
            for p in folded.parameters():
                p.normal_()
    labels, images = read_images(cfg["records"], cfg["images"], card)
    images = torch.from_numpy(images).float()

    def run(model, x):
        c.barrier()
        c.reset_communication_stats()
        before = dict(counters)
        t0 = time.perf_counter()
        with crypten.no_grad():
            xe = crypten.cryptensor(x if rank == 1 else torch.zeros_like(x), src=1)
            logits = model(xe).get_plain_text(dst=1)
        seconds = time.perf_counter() - t0
        stats = c.get_communication_stats()
        delta = {k: counters[k] - before[k] for k in counters}
        return seconds, stats, delta, logits

    out = {"rank": rank, "threads": torch.get_num_threads(), "batches": {}}
    for batch in cfg["batches"]:
        t0 = time.perf_counter()
        dummy = torch.zeros(batch, 3, 32, 32)
        model = crypten.nn.from_pytorch(folded, dummy).encrypt(src=0).eval()
        setup_s = time.perf_counter() - t0
        # Warm-up run on the first batch, traced: its tuple requests are what
        # fill_cache() makes before each prepared run of this batch shape.
        provider.request_cache = []
        provider.tuple_cache = {}
        provider.trace(True)
        warm = run(model, images[:batch])
        provider.trace(False)
        requests = len(provider.request_cache)
        rows = {"setup_s": setup_s, "warmup_s": warm[0], "tuple_requests_per_run": requests, "runs": []}
        for rep in range(cfg["repeat"]):
            for first in range(0, cfg["images"], batch):
                x = images[first : first + batch]
                # 1. on demand: nothing prepared.
                assert len(provider.tuple_cache) == 0
                od_s, od_stats, od_delta, od_logits = run(model, x)
                # 2. prepared: fill the cache (offline, untimed by the run), then run.
                c.barrier()
                f0 = time.perf_counter()
                before = dict(counters)
                provider.fill_cache()
                fill_s = time.perf_counter() - f0
                fill_delta = {k: counters[k] - before[k] for k in counters}
                pr_s, pr_stats, pr_delta, pr_logits = run(model, x)
                left = sum(len(v) for v in provider.tuple_cache.values())
                provider.tuple_cache = {}
                rows["runs"].append(
                    {
                        "repeat": rep,
                        "first": first,
                        "images": int(x.shape[0]),
                        "on_demand": {"s": od_s, "comm": od_stats, "counters": od_delta},
                        "fill": {"s": fill_s, "counters": fill_delta},
                        "prepared": {"s": pr_s, "comm": pr_stats, "counters": pr_delta, "tuples_left": left},
                        "logits_on_demand": od_logits.tolist() if rank == 1 else None,
                        "logits_prepared": pr_logits.tolist() if rank == 1 else None,
                    }
                )
                print(
                    f"crypten rank {rank} batch {batch} images {first}..{first + batch - 1}: "
                    f"on demand {od_s:.3f} s, fill {fill_s:.3f} s, prepared {pr_s:.3f} s "
                    f"(misses {pr_delta['misses']})",
                    flush=True,
                )
        out["batches"][str(batch)] = rows
        del model
    crypten.uninit()
    with open(os.path.join(cfg["workdir"], f"rank{rank}.json"), "w") as f:
        json.dump(out, f)


def ttp(cfg):
    import torch

    if cfg["threads"]:
        torch.set_num_threads(cfg["threads"])
    patch_torch_for_crypten()
    import crypten

    crypten.cfg.mpc.provider = "TTP"
    crypten.mpc.provider.TTPServer()  # serves until party 0's uninit sends "terminate"


def free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def run_crypten(args):
    import numpy as np
    import torch

    patch_torch_for_crypten()
    import crypten  # (fail here, not in three children, when it is missing)

    batches = [int(b) for b in args.batches.split(",")]
    for b in batches:
        if args.images % b:
            raise SystemExit(f"--images {args.images} is not a multiple of batch {b}")
    workdir = tempfile.mkdtemp(prefix="compare-crypten-")
    cfg = {
        "card": args.card,
        "records": args.records,
        "images": args.images,
        "batches": batches,
        "repeat": args.repeat,
        "threads": args.threads,
        "workdir": workdir,
    }
    cfg_path = os.path.join(workdir, "config.json")
    with open(cfg_path, "w") as f:
        json.dump(cfg, f)

    # The plaintext networks: the rewritten one must equal akamaster's exactly.
    original, folded, card = build_models(args.card)
    labels, images = read_images(args.records, args.images, card)
    with torch.no_grad():
        x64 = torch.from_numpy(images)
        ref64 = original(x64)
        fold64 = folded.double()(x64)
        plain32 = folded.float()(x64.float())
    rewrite_diff = float((ref64 - fold64).abs().max())
    if rewrite_diff > 1e-9:
        raise SystemExit(f"the BN-folded, rewritten network differs from akamaster's by {rewrite_diff}")

    env = dict(os.environ)
    env.update(
        {
            "DISTRIBUTED_BACKEND": "gloo",
            "RENDEZVOUS": f"tcp://127.0.0.1:{free_port()}",
            "WORLD_SIZE": "2",
            "GLOO_SOCKET_IFNAME": "lo",
            "MASTER_ADDR": "127.0.0.1",
        }
    )
    procs = []
    t0 = time.time()
    for rank, role in [(0, "party"), (1, "party"), (2, "ttp")]:
        e = dict(env, RANK=str(rank))
        log = open(os.path.join(workdir, f"rank{rank}.log"), "w")
        cmd = [sys.executable, os.path.abspath(__file__), "_" + role, "--config", cfg_path, "--rank", str(rank)]
        procs.append((subprocess.Popen(cmd, env=e, stdout=log, stderr=subprocess.STDOUT), log, rank))
    failed = None
    try:
        for p, _, rank in procs:
            left = args.timeout - (time.time() - t0)
            try:
                rc = p.wait(timeout=max(left, 1))
            except subprocess.TimeoutExpired:
                failed = f"rank {rank} still running after {args.timeout} s"
                break
            if rc != 0:
                failed = f"rank {rank} exited with {rc}"
                break
    finally:
        for p, log, _ in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
            log.close()
    for _, _, rank in procs:
        with open(os.path.join(workdir, f"rank{rank}.log")) as f:
            text = f.read()
        if failed or rank == 1:
            sys.stdout.write("".join(f"  [rank {rank}] {line}\n" for line in text.splitlines() if line.strip()))
    if failed:
        raise SystemExit(f"CrypTen run failed: {failed} (logs above, in {workdir})")
    ranks = []
    for rank in (0, 1):
        with open(os.path.join(workdir, f"rank{rank}.json")) as f:
            ranks.append(json.load(f))

    result = {
        "crypten_version": crypten.__version__,
        "torch_version": torch.__version__,
        "provider": "TTP",
        "encoder_precision_bits": int(crypten.cfg.encoder.precision_bits),
        "threads_per_process": ranks[0]["threads"],
        "images": args.images,
        "repeat": args.repeat,
        "rewrite_max_abs_diff_f64": rewrite_diff,
        "wall_s": time.time() - t0,
        "batches": {},
    }
    plain_pred = plain32.argmax(1).tolist()
    for b in batches:
        r0, r1 = ranks[0]["batches"][str(b)], ranks[1]["batches"][str(b)]
        runs = list(zip(r0["runs"], r1["runs"]))
        per_run = {"on_demand_s": [], "prepared_s": [], "fill_s": [], "online_bytes": [], "online_rounds": [], "offline_bytes": [],
                   "request_bytes": [], "on_demand_party_bytes": []}
        misses = 0
        left = 0
        diffs, same, correct = [], 0, 0
        for a, c1 in runs:
            per_run["on_demand_s"].append(c1["on_demand"]["s"])
            per_run["prepared_s"].append(c1["prepared"]["s"])
            per_run["fill_s"].append(max(a["fill"]["s"], c1["fill"]["s"]))
            per_run["online_bytes"].append((a["prepared"]["comm"]["bytes"] + c1["prepared"]["comm"]["bytes"]) / 2)
            per_run["online_rounds"].append(c1["prepared"]["comm"]["rounds"])
            per_run["offline_bytes"].append(a["fill"]["counters"]["ttp_to_party_bytes"])
            per_run["request_bytes"].append(a["fill"]["counters"]["party_to_ttp_bytes"])
            per_run["on_demand_party_bytes"].append(
                (a["on_demand"]["comm"]["bytes"] + c1["on_demand"]["comm"]["bytes"]) / 2
            )
            misses += a["prepared"]["counters"]["misses"] + c1["prepared"]["counters"]["misses"]
            misses += a["prepared"]["counters"]["requests"]  # a TTP request during a prepared run
            left += a["prepared"]["tuples_left"] + c1["prepared"]["tuples_left"]
            for mode in ("logits_on_demand", "logits_prepared"):
                for i, row in enumerate(c1[mode]):
                    k = c1["first"] + i
                    row = np.array(row)
                    diffs.append(float(np.abs(row - plain32[k].numpy()).max()))
                    same += int(row.argmax() == plain_pred[k])
                    correct += int(row.argmax() == labels[k])
        n_out = 2 * len(runs) * b
        result["batches"][str(b)] = {
            "batch": b,
            "runs": len(runs),
            "setup_s": max(r0["setup_s"], r1["setup_s"]),
            "tuple_requests_per_run": r0["tuple_requests_per_run"],
            "online_s_per_run": median(per_run["prepared_s"]),
            "end_to_end_s_per_run": median(per_run["on_demand_s"]),
            "fill_s_per_run": median(per_run["fill_s"]),
            "online_bytes_per_image": median(per_run["online_bytes"]) / b,
            "online_rounds_per_run": median(per_run["online_rounds"]),
            "offline_bytes_per_image": median(per_run["offline_bytes"]) / b,
            "offline_request_bytes_per_image": median(per_run["request_bytes"]) / b,
            "on_demand_party_bytes_per_image": median(per_run["on_demand_party_bytes"]) / b,
            "prepared_runs_cache_misses": misses,
            "prepared_runs_tuples_left": left,
            "verified": {
                "outputs": n_out,
                "same_prediction_as_plaintext_f32": same,
                "correct": correct,
                "max_abs_logit_diff": max(diffs) if diffs else None,
            },
            "per_run": per_run,
        }
        if misses or left:
            raise SystemExit(f"batch {b}: prepared runs were not fully prepared ({misses} misses, {left} tuples left over)")
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    shutil.rmtree(workdir, ignore_errors=True)
    print(f"wrote {args.out}")


# --------------------------------------------------------------------------- report


def pann_rows(pann, alpha):
    out = {}
    for r in pann["rows"]:
        if r.get("net") != "loopback" or r.get("alpha") != alpha:
            continue
        b = r["batch"]
        on, off = r.get("online_s_runs") or [], r.get("offline_s_runs") or []
        if on and len(on) == len(off):
            e2e = median([a + c for a, c in zip(on, off)])
        else:
            e2e = r["online_s_per_run"] + r["offline_s_per_run"]
        out[b] = {
            "batch": b,
            "runs": r["runs"],
            "online_s_per_image": r["online_s_per_run"] / b,
            "end_to_end_s_per_image": e2e / b,
            "offline_wait_s_per_run": r["offline_s_per_run"],
            "online_mb_per_image": r["online_bytes_per_image"] / 1e6,
            "offline_mb_per_image": r["offline_bytes_per_image"] / 1e6,
            "total_mb_per_image": (r["online_bytes_per_image"] + r["offline_bytes_per_image"]) / 1e6,
            "online_rounds_per_run": r["online_rounds_per_run"],
            "online_s_runs": on,
            "offline_wait_s_runs": off,
            "verified": r.get("verified"),
        }
    return out


def crypten_rows(cr):
    out = {}
    for key, r in cr["batches"].items():
        b = int(key)
        out[b] = {
            "batch": b,
            "runs": r["runs"],
            "online_s_per_image": r["online_s_per_run"] / b,
            "end_to_end_s_per_image": r["end_to_end_s_per_run"] / b,
            "fill_s_per_run": r["fill_s_per_run"],
            "online_mb_per_image": r["online_bytes_per_image"] / 1e6,
            "offline_mb_per_image": r["offline_bytes_per_image"] / 1e6,
            "total_mb_per_image": (r["online_bytes_per_image"] + r["offline_bytes_per_image"]) / 1e6,
            "online_rounds_per_run": r["online_rounds_per_run"],
            "tuple_requests_per_run": r["tuple_requests_per_run"],
            "prepared_s_runs": r["per_run"]["prepared_s"],
            "on_demand_s_runs": r["per_run"]["on_demand_s"],
            "fill_s_runs": r["per_run"]["fill_s"],
            "verified": r["verified"],
        }
    return out


ROWS = [
    ("online (material ready), s", "online_s_per_image", 3),
    ("end to end, material made on demand, s", "end_to_end_s_per_image", 3),
    ("online MB, both directions", "online_mb_per_image", 1),
    ("offline MB, dealer to parties", "offline_mb_per_image", 1),
    ("total MB", "total_mb_per_image", 1),
]


def table(batches, pann, crypten):
    head = "| per image |" + "".join(f" PANN batch {b} | CrypTen batch {b} |" for b in batches)
    sep = "|---|" + "---|---|" * len(batches)
    lines = [head, sep]

    def cell(side, b, key, p):
        r = side.get(b)
        if r is None:
            return "-"
        return f"{r[key]:.{p}f}"

    for label, key, p in ROWS:
        lines.append(f"| {label} |" + "".join(f" {cell(pann, b, key, p)} | {cell(crypten, b, key, p)} |" for b in batches))
    return "\n".join(lines)


def report(args):
    batches = [int(b) for b in args.batches.split(",")]
    pann_doc = json.load(open(args.pann)) if args.pann else None
    cr_doc = json.load(open(args.crypten)) if args.crypten else None
    pann = pann_rows(pann_doc, args.alpha) if pann_doc else {}
    cr = crypten_rows(cr_doc) if cr_doc else {}
    for b in batches:
        if pann_doc and b not in pann:
            raise SystemExit(f"{args.pann}: no loopback row for alpha {args.alpha}, batch {b}")
        if cr_doc and b not in cr:
            raise SystemExit(f"{args.crypten}: no batch {b}")
    machine = {
        "cpu": args.cpu,
        "cores": args.cores,
        "commit": args.commit,
        "date": args.date,
        "loadavg_at_start": args.load_start,
    }
    doc = {
        "what": "PANN (pann bench, alpha %d, TLS on loopback) against CrypTen 0.4.1 (TTP) on the same model, images and machine" % args.alpha,
        "model": "resnet20-akamaster (BN folded)",
        "data": args.records,
        "images": args.images,
        "batches": batches,
        "machine": machine,
        "loadavg_at_end": args.load_end,
        "command": args.command,
        "wall_s": args.wall_s,
        "pann": {"alpha": args.alpha, "command": pann_doc.get("command") if pann_doc else None, "rows": {str(b): r for b, r in pann.items()}},
        "crypten": (
            {k: v for k, v in cr_doc.items() if k != "batches"} | {"rows": {str(b): r for b, r in cr.items()}} if cr_doc else None
        ),
        "table": table(batches, pann, cr),
    }
    with open(args.out_json, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")

    def verified_pann(b):
        v = pann[b].get("verified") or {}
        return f"{v.get('same_prediction', '?')} of {v.get('images', '?')} equal to the fixed-point reference"

    def verified_cr(b):
        v = cr[b]["verified"]
        return (
            f"{v['same_prediction_as_plaintext_f32']} of {v['outputs']} outputs equal to plaintext float32, "
            f"max |dlogit| {v['max_abs_logit_diff']:.4f}"
        )

    notes = []
    if pann and cr:
        for b in batches:
            p, c = pann[b], cr[b]
            notes.append(
                f"batch {b}: online {c['online_s_per_image'] / p['online_s_per_image']:.2f}x, "
                f"end to end {c['end_to_end_s_per_image'] / p['end_to_end_s_per_image']:.2f}x, "
                f"total MB {c['total_mb_per_image'] / p['total_mb_per_image']:.2f}x (CrypTen / PANN)"
            )
    if pann_doc:
        pann_text = (
            f"PANN: `{pann_doc.get('command')}` (alpha {args.alpha}, TLS; online = the client's compute per run, "
            f"end to end = online + the client's wait for the dealer's material, which streams while it computes; "
            f"MB from the channel meters)."
        )
    else:
        pann_text = "PANN: not measured (--skip-pann)."
    if cr_doc:
        cr_text = (
            f"CrypTen {cr_doc['crypten_version']} (torch {cr_doc['torch_version']}, {cr_doc['encoder_precision_bits']}-bit "
            f"fixed point, TTP provider, gloo over 127.0.0.1, no TLS, {cr_doc['threads_per_process']} torch thread(s) per "
            f"process): online = a run after `TupleProvider.fill_cache()` made every tuple that a traced run of the same "
            f"batch shape requested (0 cache misses), end to end = a run with the cache empty, so the TTP makes material "
            f"on demand; online MB from the communicator statistics of both parties (sum / 2), offline MB = what the TTP "
            f"sends (to party 0; party 1 draws its share from a seed)."
        )
    else:
        cr_text = "CrypTen: not measured (--skip-crypten)."
    body = [
        table(batches, pann, cr),
        "",
        f"Measured on {args.cpu} ({args.cores} cores), commit `{args.commit}`, {args.date}, "
        f"load average (1/5/15 min) {args.load_start} at start, {args.load_end} at end; command `{args.command}` "
        f"([compare-crypten.json]({args.results_rel}/compare-crypten.json)).",
        "",
        f"Same model (`resnet20-akamaster`, BN folded), the first {args.images} images of `{args.records}`, "
        f"three processes on loopback each side. " + pann_text + " " + cr_text + " "
        f"Per image: medians over all runs of a configuration "
        f"({args.images} images / batch x {args.repeat} repetition(s), on each side), divided by the batch.",
        "",
    ]
    if notes:
        body += ["Ratios: " + "; ".join(notes) + ".", ""]
    checks = []
    for b in batches:
        if b in pann:
            checks.append(f"PANN batch {b}: {verified_pann(b)}")
        if b in cr:
            checks.append(f"CrypTen batch {b}: {verified_cr(b)}")
    body += ["Predictions: " + "; ".join(checks) + "."]
    if any(r["verified"]["max_abs_logit_diff"] > 0.5 for r in cr.values()):
        body += [
            "",
            "A CrypTen logit off by 1.0 is its decoder's: `FixedPointEncoder.decode` floor-divides a negative "
            "value by 2^16 - 1 instead of 2^16, so a value just above a negative integer -k (by less than "
            "k / 2^16) comes out near -k - 1.",
        ]
    block = "\n".join(body)
    with open(args.out_md, "w") as f:
        f.write("# PANN against CrypTen 0.4.1 (trusted third party)\n\n")
        f.write("Written by `scripts/compare-crypten.sh`; do not edit by hand.\n\n")
        f.write(block.replace(f"]({args.results_rel}/", "](") + "\n")
    print(f"wrote {args.out_md} and {args.out_json}")
    if not args.benchmarks:
        return
    if not (pann and cr):
        print(f"{args.benchmarks} not changed: it gets the table only from an invocation that measured both sides")
        return
    with open(args.benchmarks) as f:
        text = f.read()
    spliced = f"{BEGIN}\n{block}\n{END}"
    if text.count(BEGIN) == 1 and text.count(END) == 1 and text.index(BEGIN) < text.index(END):
        text = text[: text.index(BEGIN)] + spliced + text[text.index(END) + len(END) :]
    elif BEGIN in text or END in text:
        raise SystemExit(f"{args.benchmarks}: the {BEGIN} / {END} markers are broken; restore them (git) first")
    else:
        text = text.rstrip("\n") + "\n\n## Against CrypTen 0.4.1 with a trusted third party\n\n" + spliced + "\n"
    with open(args.benchmarks, "w") as f:
        f.write(text)
    print(f"spliced the table into {args.benchmarks}")


# --------------------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("crypten", help="measure CrypTen (needs torch and crypten)")
    c.add_argument("--card", default=os.path.join(ROOT, "models/assets/resnet20-akamaster.card.json"))
    c.add_argument("--records", required=True)
    c.add_argument("--images", type=int, default=16)
    c.add_argument("--batches", default="1,8")
    c.add_argument("--repeat", type=int, default=1)
    c.add_argument("--threads", type=int, default=1, help="torch threads per process (0: torch's default, one per core)")
    c.add_argument("--timeout", type=float, default=3600)
    c.add_argument("--out", required=True)
    for role in ("_party", "_ttp"):
        p = sub.add_parser(role)
        p.add_argument("--config", required=True)
        p.add_argument("--rank", type=int, required=True)
    r = sub.add_parser("report", help="write the table (plain python3)")
    r.add_argument("--pann")
    r.add_argument("--crypten")
    r.add_argument("--alpha", type=int, default=9)
    r.add_argument("--batches", default="1,8")
    r.add_argument("--images", type=int, required=True)
    r.add_argument("--repeat", type=int, default=1)
    r.add_argument("--records", required=True)
    for k in ("cpu", "commit", "date", "load-start", "load-end", "command"):
        r.add_argument("--" + k, required=True)
    r.add_argument("--cores", type=int, required=True)
    r.add_argument("--wall-s", type=float)
    r.add_argument("--out-md", required=True)
    r.add_argument("--out-json", required=True)
    r.add_argument("--results-rel", default="docs/results", help="the results folder relative to --benchmarks")
    r.add_argument("--benchmarks", help="BENCHMARKS.md to splice the table into")
    args = ap.parse_args()
    if args.cmd == "crypten":
        run_crypten(args)
    elif args.cmd in ("_party", "_ttp"):
        with open(args.config) as f:
            cfg = json.load(f)
        party(cfg, args.rank) if args.cmd == "_party" else ttp(cfg)
    else:
        report(args)


if __name__ == "__main__":
    main()
