#!/usr/bin/env python3
"""Small ONNX test models for the ONNX importer, with reference outputs.

Builds six PyTorch models (four random, two trained briefly on Fashion-MNIST,
plus the akamaster CIFAR ResNet-20 from models/assets), exports each with
torch.onnx (TorchScript exporter at opset 13; models 1-5 also with the dynamo
exporter at its default opset; resnet18_style also at opset 20), runs every
file with onnxruntime (CPUExecutionProvider, float32) on four fixed images and
writes, per model, models/tests/data/onnx/<name>.json with the pixels, the
PyTorch logits and each file's onnxruntime logits, plus a README.md.

Run it through scripts/onnx/make-models.sh, which makes the venv. Options:
  --out DIR        output folder (default models/tests/data/onnx)
  --fmnist DIR     Fashion-MNIST IDX files (default $FMNIST or
                   /usr/share/datasets/fashion-mnist)
  --threads N      torch / onnxruntime threads (default $THREADS or 1)

Input convention: a model's graph input is a float32 [N, C, H, W] tensor equal
to the model card's normalisation of the raw uint8 pixels, as
models/src/card.rs InputSpec::normalise computes it (in f64, then cast to f32
here): x = (pixel / 255 - mean[c]) / std[c], mean and std on the [0, 1] scale.
For models 1-5 the card is mean 0 / std 1, so the graph input is pixel / 255;
for resnet20_akamaster it is the card's ImageNet mean / std.
"""
import argparse
import gzip
import hashlib
import json
import os
import sys
import time
import warnings

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CIFAR_RECORDS = os.path.join(ROOT, "models/tests/data/test_batch_first64.bin")
AKAMASTER_WEIGHTS = os.path.join(ROOT, "models/assets/resnet20-akamaster.safetensors")
AKAMASTER_CARD = os.path.join(ROOT, "models/assets/resnet20-akamaster.card.json")
AKAMASTER_F64 = os.path.join(ROOT, "models/tests/data/resnet20_pytorch_logits.json")

# The op types the Rust importer is meant to support; anything else is listed
# separately in the JSON and the README.
SUPPORTED = {
    "Conv", "BatchNormalization", "Relu", "MaxPool", "AveragePool", "GlobalAveragePool", "Add",
    "Concat", "Flatten", "Reshape", "Gemm", "MatMul", "Identity", "Dropout", "Pad", "Sub", "Mul", "Div",
}


# --------------------------------------------------------------------------- models

def conv_bn(cin, cout, k=3, stride=1, pad=1, groups=1, bias=True):
    return [nn.Conv2d(cin, cout, k, stride, pad, groups=groups, bias=bias), nn.BatchNorm2d(cout)]


class VggMaxpool(nn.Module):
    """1. (x - mean) / std as graph constants, conv-BN-ReLU x3 with max pools, two linears."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.49, 0.48, 0.45]).reshape(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.25, 0.24, 0.26]).reshape(1, 3, 1, 1))
        self.features = nn.Sequential(
            *conv_bn(3, 8), nn.ReLU(),
            *conv_bn(8, 8), nn.ReLU(),
            nn.MaxPool2d(2),
            *conv_bn(8, 16), nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(16 * 8 * 8, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 10))

    def forward(self, x):
        x = (x - self.mean) / self.std
        return self.classifier(self.features(x))


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU, conv3x3-BN, + shortcut (identity or conv1x1-BN), ReLU."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, 0, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class Resnet18Style(nn.Module):
    """2. stem conv-BN-ReLU, three BasicBlocks (identity, conv1x1 stride-2 shortcuts), GAP, linear."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(*conv_bn(3, 16, bias=False), nn.ReLU())
        self.blocks = nn.Sequential(BasicBlock(16, 16, 1), BasicBlock(16, 32, 2), BasicBlock(32, 32, 2))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        x = self.pool(self.blocks(self.stem(x)))
        return self.fc(torch.flatten(x, 1))


class LeNet5(nn.Module):
    """3. LeNet-5 with ReLU and average pools, 1x28x28."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 6, 5, 1, 2), nn.ReLU(), nn.AvgPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.AvgPool2d(2),
            nn.Flatten(),
            nn.Linear(400, 120), nn.ReLU(),
            nn.Linear(120, 84), nn.ReLU(),
            nn.Linear(84, 10),
        )

    def forward(self, x):
        return self.net(x)


class MlpFmnist(nn.Module):
    """4. Flatten, 784-128-64-10 with ReLU."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10))

    def forward(self, x):
        return self.net(x)


class DepthwiseBlock(nn.Module):
    """5. conv-BN-ReLU, depthwise, pointwise; dilated branch and explicit-Pad branch (x0.5); Concat;
    MaxPool k3 s2 p1; AdaptiveAvgPool2d(1); linear."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(
            *conv_bn(3, 16), nn.ReLU(),
            *conv_bn(16, 16, groups=16), nn.ReLU(),
            *conv_bn(16, 24, k=1, pad=0), nn.ReLU(),
        )
        self.dilated = nn.Conv2d(24, 8, 3, 1, padding=2, dilation=2)
        self.padded = nn.Conv2d(24, 8, 3, 1, padding=0)
        self.pool = nn.MaxPool2d(3, 2, 1)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = self.stem(x)
        a = F.relu(self.dilated(x))
        b = F.relu(self.padded(F.pad(x, (1, 1, 1, 1)))) * 0.5
        x = self.gap(self.pool(torch.cat([a, b], 1)))
        return self.fc(torch.flatten(x, 1))


def AkaResNet20():
    """6. akamaster's CIFAR ResNet-20, forward exactly as in resnet.py (avg_pool2d by the feature
    size, view(N, -1)), as a user exporting that model gets it: the definition the PyTorch
    reference of the shipped card uses (scripts/pytorch_reference.py)."""
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    from pytorch_reference import ResNet

    return ResNet([3, 3, 3])


def randomise(model, gen, gain):
    """Kaiming-normal conv / linear weights (so activations neither vanish nor blow up), small
    biases, and BN with non-trivial running statistics and affine parameters (so folding is
    exercised); the last Linear is then scaled by gain so that the logits are O(1-10)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
                if m.bias is not None:
                    m.bias.copy_(torch.rand(m.bias.shape, generator=gen) * 0.2 - 0.1)
            elif isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.rand(n, generator=gen) * 0.4 - 0.2)
                m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(n, generator=gen) * 0.4 + 0.8)
                m.bias.copy_(torch.rand(n, generator=gen) * 0.2 - 0.1)
        last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
        last.weight.mul_(gain)
        last.bias.mul_(gain)


# --------------------------------------------------------------------------- data

def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic = int.from_bytes(data[0:4], "big")
    ndim = magic & 0xFF
    if magic >> 8 != 0x08:
        raise SystemExit(f"{path}: not an unsigned-byte IDX file (magic {magic:#x})")
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_fmnist(d):
    def get(split):
        x = read_idx(os.path.join(d, f"{split}-images-idx3-ubyte.gz"))
        y = read_idx(os.path.join(d, f"{split}-labels-idx1-ubyte.gz"))
        return x.reshape(-1, 1, 28, 28), y.astype(np.int64)

    return get("train"), get("t10k")


def cifar_records(path, n):
    raw = np.fromfile(path, dtype=np.uint8).reshape(-1, 3073)[:n]
    return raw[:, 1:].reshape(-1, 3, 32, 32).copy(), raw[:, 0].astype(int).tolist()


def normalise(pixels, mean, std):
    """models/src/card.rs InputSpec::normalise, in f64: (pixel / 255 - mean[c]) / std[c]."""
    c = pixels.shape[1]
    m = np.asarray(mean, dtype=np.float64).reshape(1, c, 1, 1)
    s = np.asarray(std, dtype=np.float64).reshape(1, c, 1, 1)
    return (pixels.astype(np.float64) / 255.0 - m) / s


def train(model, train_set, test_set, seed, epochs=1, batch=128, lr=3e-3):
    (xtr, ytr), (xte, yte) = train_set, test_set
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    xtr_t = torch.from_numpy(xtr.astype(np.float32) / 255.0)
    ytr_t = torch.from_numpy(ytr)
    t0 = time.time()
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(xtr_t), generator=gen)
        for i in range(0, len(perm), batch):
            idx = perm[i:i + batch]
            loss = F.cross_entropy(model(xtr_t[idx]), ytr_t[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(torch.from_numpy(xte[i:i + 1000].astype(np.float32) / 255.0)).argmax(1)
                          for i in range(0, len(xte), 1000)])
    acc = float((pred.numpy() == yte).mean())
    return {
        "dataset": "Fashion-MNIST (Debian dataset-fashion-mnist IDX files), input pixel / 255",
        "train_images": int(len(xtr)),
        "epochs": epochs,
        "optimizer": f"Adam lr {lr}",
        "batch": batch,
        "seed": seed,
        "test_images": int(len(xte)),
        "test_accuracy": acc,
        "accuracy_note": "PyTorch float32, exact ReLU, on all 10,000 test images",
    }, time.time() - t0


# --------------------------------------------------------------------------- export and check

def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def export(model, example, path, exporter, opset):
    """Exports with a dynamic batch dimension, falling back to batch 1. Returns (batch, note)."""
    kw = dict(input_names=["input"], output_names=["logits"])
    if exporter == "torchscript":
        # PRESERVE (with the model in eval mode) keeps BatchNormalization nodes; the default, EVAL,
        # fuses each BN into the Conv before it, and the importer is to do that folding itself.
        kw["training"] = torch.onnx.TrainingMode.PRESERVE
        try:
            torch.onnx.export(model, (example,), path, dynamo=False, opset_version=opset, do_constant_folding=True,
                              dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}}, **kw)
            return "dynamic", None
        except Exception as e:  # noqa: BLE001
            note = f"dynamic batch failed ({type(e).__name__}: {e}); exported with batch 1"
            torch.onnx.export(model, (example[:1],), path, dynamo=False, opset_version=opset,
                              do_constant_folding=True, **kw)
            return 1, note
    # dynamo
    kwd = dict(dynamo=True, external_data=False, optimize=True, verbose=False, **kw)
    if opset is not None:
        kwd["opset_version"] = opset
    try:
        batch = torch.export.Dim("N", min=1, max=1024)
        torch.onnx.export(model, (example,), path, dynamic_shapes=({0: batch},), **kwd)
        return "dynamic", None
    except Exception as e:  # noqa: BLE001
        note = f"dynamic batch failed ({type(e).__name__}: {str(e)[:300]}); exported with batch 1"
        torch.onnx.export(model, (example[:1],), path, **kwd)
        return 1, note


def describe(path):
    """Op types, opset and the nodes whose op type is not in SUPPORTED (with attributes and inputs)."""
    import onnx
    from onnx import numpy_helper

    m = onnx.load(path, load_external_data=False)
    onnx.checker.check_model(m, full_check=True)
    g = m.graph
    inits = {i.name: i for i in g.initializer}
    consts = {}
    for n in g.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    consts[n.output[0]] = numpy_helper.to_array(a.t)
    external = any(i.data_location == onnx.TensorProto.EXTERNAL for i in g.initializer)

    def show_input(name):
        if name == "":
            return "(absent)"
        if name in inits:
            a = numpy_helper.to_array(inits[name])
            return f"{name} = initializer {a.dtype}{list(a.shape)}" + (f" {a.tolist()}" if a.size <= 8 else "")
        if name in consts:
            a = consts[name]
            return f"{name} = Constant {a.dtype}{list(a.shape)}" + (f" {a.tolist()}" if a.size <= 8 else "")
        return name

    def show_attr(a):
        v = onnx.helper.get_attribute_value(a)
        if isinstance(v, bytes):
            v = v.decode()
        elif isinstance(v, onnx.TensorProto):
            arr = numpy_helper.to_array(v)
            v = f"tensor {arr.dtype}{list(arr.shape)}" + (f" {arr.tolist()}" if arr.size <= 8 else "")
        elif isinstance(v, list):
            v = [x.decode() if isinstance(x, bytes) else x for x in v]
        return f"{a.name}={v}"

    others = []
    for n in g.node:
        if n.op_type not in SUPPORTED:
            others.append({
                "op": n.op_type,
                "name": n.name,
                "attributes": [show_attr(a) for a in n.attribute],
                "inputs": [show_input(i) for i in n.input],
                "outputs": list(n.output),
            })
    opsets = {o.domain or "ai.onnx": o.version for o in m.opset_import}
    shape = [d.dim_param or d.dim_value for d in g.input[0].type.tensor_type.shape.dim]
    return {
        "ops": sorted({n.op_type for n in g.node}),
        "op_counts": dict(sorted(_count(n.op_type for n in g.node).items())),
        "opset": opsets.get("ai.onnx"),
        "opset_imports": opsets,
        "ir_version": m.ir_version,
        "producer": f"{m.producer_name} {m.producer_version}".strip(),
        "graph_input": {"name": g.input[0].name, "shape": shape},
        "graph_output": g.output[0].name,
        "nodes": len(g.node),
        "initializers": len(g.initializer),
        "external_data": external,
        "other_ops": others,
    }


def _count(it):
    out = {}
    for x in it:
        out[x] = out.get(x, 0) + 1
    return out


def run_ort(path, x32, threads):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    # one image at a time, so a batch-1 export runs as well
    return np.concatenate([sess.run(None, {name: x32[i:i + 1]})[0] for i in range(len(x32))]), sess, name


def rows(a):
    return [[float(v) for v in r] for r in np.asarray(a)]


# --------------------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(ROOT, "models/tests/data/onnx"))
    ap.add_argument("--fmnist", default=os.environ.get("FMNIST", "/usr/share/datasets/fashion-mnist"))
    ap.add_argument("--threads", type=int, default=int(os.environ.get("THREADS", "1")))
    args = ap.parse_args()

    import onnx
    import onnxruntime
    import onnxscript

    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    os.makedirs(args.out, exist_ok=True)
    versions = {
        "torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__,
        "onnxscript": onnxscript.__version__, "numpy": np.__version__,
        "python": sys.version.split()[0],
    }
    print("versions:", versions, flush=True)

    fm_train, fm_test = load_fmnist(args.fmnist)
    ident = {"mean": [0.0], "std": [1.0]}
    ident3 = {"mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]}
    with open(AKAMASTER_CARD) as f:
        aka_input = json.load(f)["input"]

    def random_pixels(seed, shape):
        return np.random.default_rng(seed).integers(0, 256, size=(4, *shape), dtype=np.uint8)

    specs = [
        # name, class, input shape, seed, card input, how the weights are made, last-layer gain
        ("vgg_maxpool", VggMaxpool, (3, 32, 32), 1, ident3, "random", 1.0),
        ("resnet18_style", Resnet18Style, (3, 32, 32), 2, ident3, "random", 4.0),
        ("lenet5", LeNet5, (1, 28, 28), 3, ident, "fmnist", None),
        ("mlp_fmnist", MlpFmnist, (1, 28, 28), 4, ident, "fmnist", None),
        ("depthwise_block", DepthwiseBlock, (3, 32, 32), 5, ident3, "random", 8.0),
        ("resnet20_akamaster", AkaResNet20, (3, 32, 32), 6, aka_input, "akamaster", None),
    ]

    summary = []
    for name, cls, shape, seed, card_input, kind, gain in specs:
        print(f"== {name}", flush=True)
        torch.manual_seed(seed)
        model = cls()
        labels = None
        trained = None
        if kind == "random":
            randomise(model, torch.Generator().manual_seed(1000 + seed), gain)
            pixels = random_pixels(seed, shape)
            weights = (f"random, not trained (torch generator seed {1000 + seed}): conv / linear weights "
                       "N(0, 2 / fan_in), biases U(-0.1, 0.1), BN running_mean U(-0.2, 0.2), running_var "
                       f"U(0.5, 1.5), weight U(0.8, 1.2), bias U(-0.1, 0.1); last Linear times {gain}")
            pixels_from = f"numpy default_rng({seed}).integers(0, 256, (4, {', '.join(map(str, shape))}), uint8)"
        elif kind == "fmnist":
            trained, secs = train(model, fm_train, fm_test, seed)
            print(f"   trained: test accuracy {trained['test_accuracy']:.4f} in {secs:.1f} s", flush=True)
            pixels = fm_test[0][:4].copy()
            labels = fm_test[1][:4].astype(int).tolist()
            weights = "trained here: see trained"
            pixels_from = "the first 4 test images of Fashion-MNIST (t10k-images-idx3-ubyte.gz)"
        else:
            from safetensors.torch import load_file

            missing, unexpected = model.load_state_dict(load_file(AKAMASTER_WEIGHTS), strict=False)
            missing = [m for m in missing if not m.endswith("num_batches_tracked")]
            if missing or unexpected:
                raise SystemExit(f"akamaster state dict mismatch: missing {missing}, unexpected {unexpected}")
            pixels, labels = cifar_records(CIFAR_RECORDS, 4)
            weights = "models/assets/resnet20-akamaster.safetensors (sha256 " + sha256(AKAMASTER_WEIGHTS) + ")"
            pixels_from = "the first 4 records of models/tests/data/test_batch_first64.bin (CIFAR-10 binary)"
        model.eval()

        x64 = normalise(pixels, card_input["mean"], card_input["std"])
        x32 = x64.astype(np.float32)
        with torch.no_grad():
            torch_logits = model(torch.from_numpy(x32)).numpy()
            model64 = cls().double()
            model64.load_state_dict(model.state_dict())
            model64.eval()
            torch_logits64 = model64(torch.from_numpy(x64)).numpy()
        print(f"   torch logits: max |.| {np.abs(torch_logits).max():.3f}, argmax {torch_logits.argmax(1).tolist()}, "
              f"labels {labels}", flush=True)
        if kind == "akamaster":
            with open(AKAMASTER_F64) as f:
                ref = np.array(json.load(f)["logits"][:4])
            d = float(np.abs(ref - torch_logits64).max())
            print(f"   f64 logits vs models/tests/data/resnet20_pytorch_logits.json: max |diff| {d:.2e}")
            if d > 1e-9:
                raise SystemExit("akamaster model does not reproduce resnet20_pytorch_logits.json")

        exports = [("torchscript", 13)]
        if kind != "akamaster":
            exports.append(("dynamo", None))
        if name == "resnet18_style":
            exports.append(("torchscript", 20))
        files = {}
        example = torch.from_numpy(x32)
        for exporter, opset in exports:
            fname = f"{name}.opset{opset}.onnx" if exporter == "torchscript" else f"{name}.dynamo.onnx"
            if exporter == "torchscript" and opset != 13:
                fname = f"{name}.opset{opset}.onnx"
            path = os.path.join(args.out, fname)
            for stale in (path, path + ".data"):
                if os.path.exists(stale):
                    os.remove(stale)
            entry = {"exporter": exporter}
            try:
                batch, note = export(model, example, path, exporter, opset)
            except Exception as e:  # noqa: BLE001
                msg = f"{type(e).__name__}: {str(e)[:2000]}"
                print(f"   {fname}: export FAILED: {msg[:300]}", flush=True)
                files[fname] = {"exporter": exporter, "opset": opset, "export_failed": msg}
                summary.append((fname, "-", "-", "-", "FAILED", []))
                continue
            leftovers = [p for p in os.listdir(args.out) if p.startswith(fname) and p != fname]
            if leftovers:
                raise SystemExit(f"{fname}: the exporter wrote external files {leftovers}")
            info = describe(path)
            if info["external_data"]:
                raise SystemExit(f"{fname}: initializers stored as external data")
            ort_logits, sess, in_name = run_ort(path, x32, args.threads)
            entry.update({
                "opset": info["opset"],
                "sha256": sha256(path),
                "bytes": os.path.getsize(path),
                "batch": batch,
            })
            if note:
                entry["batch_note"] = note
            if batch == "dynamic":
                full = sess.run(None, {in_name: x32})[0]
                entry["batch4_vs_batch1_max_abs_diff"] = float(np.abs(full - ort_logits).max())
            entry.update({
                "onnxruntime_logits": rows(ort_logits),
                "max_abs_diff_vs_torch": float(np.abs(ort_logits - torch_logits).max()),
                "max_abs_diff_vs_torch_f64": float(np.abs(ort_logits.astype(np.float64) - torch_logits64).max()),
                "ops": info["ops"],
                "op_counts": info["op_counts"],
                "ops_outside_supported_set": info["other_ops"],
                "opset_imports": info["opset_imports"],
                "ir_version": info["ir_version"],
                "producer": info["producer"],
                "graph_input": info["graph_input"],
                "graph_output": info["graph_output"],
                "nodes": info["nodes"],
                "initializers": info["initializers"],
            })
            files[fname] = entry
            others = sorted({o["op"] for o in info["other_ops"]})
            summary.append((fname, entry["opset"], entry["bytes"], batch, f"{entry['max_abs_diff_vs_torch']:.2e}", others))
            print(f"   {fname}: opset {entry['opset']}, {entry['bytes']} B, batch {batch}, "
                  f"ort vs torch {entry['max_abs_diff_vs_torch']:.2e}, ops {info['ops']}", flush=True)

        all_ops = sorted({op for f in files.values() for op in f.get("ops", [])})
        record = {
            "name": name,
            "input_shape": list(shape),
            "input": {"mean": list(card_input["mean"]), "std": list(card_input["std"])},
            "input_note": "graph input = (pixel / 255 - mean[c]) / std[c] in f64 (models/src/card.rs "
                          "InputSpec::normalise), cast to float32 for onnxruntime and torch",
            "pixels_from": pixels_from,
            "pixels": [p.reshape(-1).astype(int).tolist() for p in pixels],
            "labels": labels,
            "weights": weights,
            "torch_logits": rows(torch_logits),
            "torch_logits_f64": rows(torch_logits64),
            "torch_note": "torch_logits: the float32 model on the float32 input; torch_logits_f64: the same "
                          "weights in float64 on the f64 input; both eval mode, exact ReLU",
            "files": files,
            "trained": trained,
            "ops": all_ops,
            "versions": versions,
        }
        with open(os.path.join(args.out, f"{name}.json"), "w") as f:
            f.write(compact_json(record))

    print()
    print(f"{'file':40} {'opset':>5} {'bytes':>9} {'batch':>8} {'ort-torch':>10}  ops outside the supported set")
    for fname, opset, size, batch, diff, others in summary:
        print(f"{fname:40} {opset!s:>5} {size!s:>9} {batch!s:>8} {diff:>10}  {', '.join(others) or '-'}")
    total = sum(os.path.getsize(os.path.join(args.out, p)) for p in os.listdir(args.out))
    print(f"total size of {args.out}: {total} bytes")
    write_readme(args.out, versions)


def compact_json(obj):
    """Indented JSON with each innermost list of numbers on one line (pixels, logit rows)."""
    def enc(o, ind):
        pad = " " * ind
        if isinstance(o, dict):
            if not o:
                return "{}"
            items = [f'{pad} {json.dumps(k)}: {enc(v, ind + 1)}' for k, v in o.items()]
            return "{\n" + ",\n".join(items) + "\n" + pad + "}"
        if isinstance(o, list):
            if all(not isinstance(v, (dict, list)) for v in o):
                return json.dumps(o)
            return "[\n" + ",\n".join(f"{pad} {enc(v, ind + 1)}" for v in o) + "\n" + pad + "]"
        return json.dumps(o)

    return enc(obj, 0) + "\n"


NOTES = """## Notes

- Card normalisation: models 1-5 take pixel/255, so their JSON says mean 0 / std 1 (card.rs divides by
  255 before applying mean and std); resnet20_akamaster takes the card's ImageNet-normalised image.
- TorchScript exports use `training=TrainingMode.PRESERVE` with the model in eval mode so that
  `BatchNormalization` nodes stay in the graph (opset 13: attributes epsilon, momentum; opset 20: also
  training_mode=0). The default (`EVAL`) would fuse every BN into the Conv before it. Dropout is not
  exported in eval mode, whatever the exporter.
- The dynamo exporter (default `optimize=True`) fuses BN into Conv and an explicit zero `Pad` into the
  next Conv's pads, exports `AdaptiveAvgPool2d(1)` as `ReduceMean` (axes input [-1, -2], keepdims=1)
  and flatten as `Reshape` (allowzero=1, shape initializer [-1, features]); its files also carry
  `value_info` and per-node `metadata_props` (stack traces, module names).
- The TorchScript exporter writes `F.pad` as a chain of constant int64 ops computing the ONNX pads
  from PyTorch's (last-dim-first) pad list: `Constant` pad list, `ConstantOfShape` zeros up to 2 x rank,
  `Concat`, `Reshape` [-1, 2], `Slice` (starts -1, ends -INT64_MAX, axes 0, steps -1: reverse the
  pairs), `Transpose` perm [1, 0], `Reshape` [-1], `Cast` to int64, then `Pad` (mode constant; value
  input absent or a Constant 0.0). All of it folds to a constant pads input: [0, 0, 1, 1, 0, 0, 1, 1]
  for `F.pad(x, (1, 1, 1, 1))` and [0, p, 0, 0, 0, p, 0, 0] for the option-A channel pad
  `(0, 0, 0, 0, p, p)`.
- akamaster's option-A shortcut `x[:, :, ::2, ::2]` becomes two `Slice` nodes (starts 0, ends
  INT64_MAX, axes 2 then 3, steps 2, all from `Constant` nodes); `out.view(out.size(0), -1)`
  becomes `Shape`, `Gather` (axis 0, index 0: the batch size), `Unsqueeze` (axes [0] as an input),
  `Concat` with [-1], `Reshape`; `F.avg_pool2d(out, out.size()[3])` becomes `AveragePool` kernel 8
  stride 8.
"""


def write_readme(out, versions):
    recs = []
    for p in sorted(os.listdir(out)):
        if p.endswith(".json"):
            with open(os.path.join(out, p)) as f:
                recs.append(json.load(f))
    order = ["vgg_maxpool", "resnet18_style", "lenet5", "mlp_fmnist", "depthwise_block", "resnet20_akamaster"]
    recs.sort(key=lambda r: order.index(r["name"]) if r["name"] in order else 99)
    desc = {
        "vgg_maxpool": "3x32x32, random. `(x - mean) / std` with per-channel constants [1,3,1,1] (Sub, Div), "
                       "conv3x3(3->8)+BN+ReLU, conv3x3(8->8)+BN+ReLU, MaxPool 2, conv3x3(8->16)+BN+ReLU, MaxPool 2, "
                       "flatten, Linear(1024->32)+ReLU+Dropout(0.5) (gone in eval export), Linear(32->10).",
        "resnet18_style": "3x32x32, random. Stem conv3x3(3->16, no bias)+BN+ReLU; BasicBlocks 16->16 (identity "
                          "shortcut), 16->32 stride 2 and 32->32 stride 2 (conv1x1 stride 2 + BN shortcut); "
                          "AdaptiveAvgPool2d(1), flatten, Linear(32->10).",
        "lenet5": "1x28x28, trained 1 epoch on Fashion-MNIST. conv5x5(1->6, pad 2)+ReLU, AvgPool 2, "
                  "conv5x5(6->16)+ReLU, AvgPool 2, flatten, Linear 400-120-84-10 with ReLU.",
        "mlp_fmnist": "1x28x28, trained 1 epoch on Fashion-MNIST. Flatten, Linear 784-128-64-10 with ReLU.",
        "depthwise_block": "3x32x32, random. conv3x3(3->16)+BN+ReLU, depthwise conv3x3 (groups 16)+BN+ReLU, "
                           "conv1x1(16->24)+BN+ReLU; branch a: conv3x3 dilation 2 pad 2 (24->8)+ReLU; branch b: "
                           "explicit zero Pad 1 then conv3x3 pad 0 (24->8)+ReLU, times 0.5 (Mul); Concat (16 "
                           "channels), MaxPool k3 s2 p1, AdaptiveAvgPool2d(1), flatten, Linear(16->10).",
        "resnet20_akamaster": "3x32x32, the akamaster CIFAR-10 ResNet-20 with the weights of "
                              "models/assets/resnet20-akamaster.safetensors, forward as in akamaster's resnet.py "
                              "(option-A shortcuts `F.pad(x[:, :, ::2, ::2], (0,0,0,0,p,p))`, "
                              "`F.avg_pool2d(out, out.size()[3])`, `out.view(out.size(0), -1)`). Input "
                              "normalisation is not in the graph: the input is the card's normalised image.",
    }
    L = []
    L.append("# ONNX test models\n")
    L.append("Small ONNX models and reference outputs for the ONNX importer, all made by "
             "`scripts/onnx/make_models.py`. Regenerate everything (makes or reuses the venv `.venv-onnx`, "
             "or `VENV=...`) with:\n")
    L.append("    scripts/onnx/make-models.sh\n")
    L.append("Versions used for the files here: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".\n")
    L.append("Each `<name>.json` holds: `input_shape` [C,H,W]; `input` (the card normalisation, as "
             "models/src/card.rs `InputSpec::normalise` applies it: graph input = (pixel/255 - mean[c]) / std[c], "
             "mean and std on the [0,1] scale, so mean 0 / std 1 means the graph input is pixel/255); `pixels` "
             "(4 images, CHW uint8 as ints); `labels` (null where unknown); `torch_logits` (float32) and "
             "`torch_logits_f64`; `files`: per ONNX file the exporter, opset, sha256, size, batch (`dynamic` or 1), "
             "`onnxruntime_logits` (CPUExecutionProvider, float32, on the f64-normalised input cast to float32, one "
             "image per run), `max_abs_diff_vs_torch`, op types and counts, and every node whose op type is outside "
             "the importer's planned set (with attributes and inputs); `trained` (null for random models); `ops`.\n")
    L.append("Planned op set: " + ", ".join(sorted(SUPPORTED)) + ".\n")
    L.append(NOTES)
    L.append("## Models\n")
    for r in recs:
        L.append(f"### {r['name']}\n")
        L.append(desc.get(r["name"], "") + "\n")
        if r.get("trained"):
            t = r["trained"]
            L.append(f"Trained: {t['epochs']} epoch, {t['optimizer']}, batch {t['batch']}, seed {t['seed']}; "
                     f"test accuracy {t['test_accuracy']:.4f} on {t['test_images']} test images (PyTorch, exact ReLU).\n")
        L.append("| file | exporter | opset | bytes | batch | max abs diff ort vs torch | op types |")
        L.append("| --- | --- | --- | --- | --- | --- | --- |")
        for fname, e in r["files"].items():
            if "export_failed" in e:
                L.append(f"| {fname} | {e['exporter']} | {e['opset']} | - | - | export failed: "
                         f"{e['export_failed'][:200].replace('|', '/')} | |")
                continue
            ops = ", ".join(f"{k} x{v}" for k, v in e["op_counts"].items())
            L.append(f"| {fname} | {e['exporter']} | {e['opset']} | {e['bytes']} | {e['batch']} | "
                     f"{e['max_abs_diff_vs_torch']:.2e} | {ops} |")
        L.append("")
        for fname, e in r["files"].items():
            others = e.get("ops_outside_supported_set") or []
            if others:
                L.append(f"Nodes of {fname} outside the planned op set:\n")
                for o in others:
                    attrs = ", ".join(o["attributes"]) or "no attributes"
                    L.append(f"- `{o['op']}` ({attrs}); inputs: " + "; ".join(f"`{i}`" for i in o["inputs"]))
                L.append("")
    with open(os.path.join(out, "README.md"), "w") as f:
        f.write("\n".join(L).rstrip() + "\n")


if __name__ == "__main__":
    main()
