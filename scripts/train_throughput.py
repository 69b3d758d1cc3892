#!/usr/bin/env python3
"""Training throughput of plain PyTorch on the ResNet-20 that pann-train trains.

The same work per step as `pann-train train --preset baseline`: a batch of 128
CIFAR-10 training images, random crop (4-pixel zero padding) and horizontal
flip done on the bytes, normalisation, forward, cross-entropy, backward, SGD
with momentum 0.9 and weight decay 1e-4, float32 on the CPU with `--threads`
intra-op threads. Prints images per second over the whole run (warm-up
included, as pann-train's per-epoch figure is) and over the steps after the
first `--warmup`.

Usage (after VENV=... scripts/install-torch.sh --python):
  python scripts/train_throughput.py --data ../shared/data/cifar-10-jpeg --images 6400 --threads 2
The comparison with pann-train is scripts/train-throughput.sh.
"""
import argparse
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pytorch_reference import ResNet  # noqa: E402  (the akamaster architecture)

MEAN = np.array((0.4914, 0.4822, 0.4465), dtype=np.float32).reshape(1, 3, 1, 1)
STD = np.array((0.2470, 0.2435, 0.2616), dtype=np.float32).reshape(1, 3, 1, 1)
RECORD = 3073


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True, help="CIFAR-10 binary directory")
    ap.add_argument("--images", type=int, default=6400)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=5, help="steps left out of the steady-state figure")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    raw = np.fromfile(os.path.join(a.data, "data_batch_1.bin"), dtype=np.uint8).reshape(-1, RECORD)
    labels = torch.from_numpy(raw[:, 0].astype(np.int64))
    pixels = raw[:, 1:].reshape(-1, 3, 32, 32)
    model = ResNet([3, 3, 3])
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)

    steps = a.images // a.batch
    t0 = time.perf_counter()
    t_warm = None
    for s in range(steps):
        if s == a.warmup:
            t_warm = time.perf_counter()
        idx = rng.integers(0, len(pixels), a.batch)
        padded = np.pad(pixels[idx], ((0, 0), (0, 0), (4, 4), (4, 4)))
        dx, dy = rng.integers(0, 9, a.batch), rng.integers(0, 9, a.batch)
        flip = rng.random(a.batch) < 0.5
        crop = np.stack([padded[i, :, dy[i]:dy[i] + 32, dx[i]:dx[i] + 32] for i in range(a.batch)])
        crop[flip] = crop[flip][..., ::-1]
        x = torch.from_numpy((crop.astype(np.float32) / 255.0 - MEAN) / STD)
        y = labels[idx]
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        loss.item()
    t1 = time.perf_counter()
    total = steps * a.batch / (t1 - t0)
    steady = (steps - a.warmup) * a.batch / (t1 - t_warm) if t_warm else float("nan")
    print(f"pytorch {torch.__version__}: {steps} steps of {a.batch}, {a.threads} threads: "
          f"{total:.1f} img/s overall, {steady:.1f} img/s after {a.warmup} warm-up steps")


if __name__ == "__main__":
    main()
