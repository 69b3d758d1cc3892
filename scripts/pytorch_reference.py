#!/usr/bin/env python3
"""PyTorch reference logits for the akamaster CIFAR ResNet-20.

Builds the network exactly as akamaster/pytorch_resnet_cifar10 (resnet.py) does,
loads the safetensors weights, runs the first N records of a CIFAR-10 binary
file and writes their logits as JSON. The Rust f64 executor is tested against
this file (models/tests/pytorch_reference.rs).

The network runs in float64 so that the comparison measures the Rust executor,
not float32 rounding; the float32 logits are written as well for reference.

Usage (from the repository root, after scripts/install-torch.sh --python):
  .venv/bin/python scripts/pytorch_reference.py \
      --weights models/assets/resnet20-akamaster.safetensors \
      --records models/tests/data/test_batch_first64.bin \
      --out models/tests/data/resnet20_pytorch_logits.json
"""
import argparse
import json

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
RECORD = 3073


class LambdaLayer(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            # option A, as in akamaster: subsample and zero-pad the channels.
            self.shortcut = LambdaLayer(
                lambda x: F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4), "constant", 0)
            )

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out = out + self.shortcut(x)
        return F.relu(out)


class ResNet(nn.Module):
    def __init__(self, num_blocks, num_classes=10):
        super().__init__()
        self.in_planes = 16
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = self._make_layer(16, num_blocks[0], 1)
        self.layer2 = self._make_layer(32, num_blocks[1], 2)
        self.layer3 = self._make_layer(64, num_blocks[2], 2)
        self.linear = nn.Linear(64, num_classes)

    def _make_layer(self, planes, n, stride):
        layers = []
        for s in [stride] + [1] * (n - 1):
            layers.append(BasicBlock(self.in_planes, planes, s))
            self.in_planes = planes
        return nn.Sequential(*layers)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.avg_pool2d(out, out.size()[3])
        return self.linear(out.view(out.size(0), -1))


def read_records(path, n):
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size % RECORD != 0:
        raise SystemExit(f"{path}: size {raw.size} is not a multiple of {RECORD}")
    recs = raw.reshape(-1, RECORD)[:n]
    labels = recs[:, 0].astype(int).tolist()
    images = recs[:, 1:].reshape(-1, 3, 32, 32).astype(np.float64) / 255.0
    mean = np.array(MEAN).reshape(1, 3, 1, 1)
    std = np.array(STD).reshape(1, 3, 1, 1)
    return labels, (images - mean) / std


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", required=True)
    ap.add_argument("--records", required=True, help="CIFAR-10 binary file")
    ap.add_argument("--count", type=int, default=64)
    ap.add_argument("--first-index", type=int, default=0,
                    help="index in the original test set of the first record (for the JSON)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    state = load_file(args.weights)
    model = ResNet([3, 3, 3])
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [m for m in missing if not m.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise SystemExit(f"state dict mismatch: missing {missing}, unexpected {unexpected}")
    model.eval()

    labels, x = read_records(args.records, args.count)
    with torch.no_grad():
        logits64 = model.double()(torch.from_numpy(x)).numpy()
        logits32 = model.float()(torch.from_numpy(x).float()).numpy()

    out = {
        "model": "akamaster ResNet-20 (resnet20-12fca82f.th), safetensors",
        "records": args.records,
        "indices": list(range(args.first_index, args.first_index + len(labels))),
        "labels": labels,
        "normalisation": {"mean": MEAN, "std": STD},
        "torch_version": torch.__version__,
        "logits_dtype": "float64",
        "logits": [[float(v) for v in row] for row in logits64],
        "logits_f32": [[float(v) for v in row] for row in logits32],
    }
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    acc = float(np.mean(np.argmax(logits64, 1) == np.array(labels)))
    print(f"wrote {args.out}: {len(labels)} images, accuracy {acc:.4f}")


if __name__ == "__main__":
    main()
