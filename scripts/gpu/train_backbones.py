#!/usr/bin/env python3
"""A PyTorch replica of pann-train's recipes for CIFAR ResNet-20, for a GPU.

Why this exists: `pann-train` (Rust, tch) links a CUDA libtorch of several GB,
which cannot travel to the device machine (64 MiB a call). This script
re-implements what pann-train does, as closely as the two frameworks allow,
so that the long schedules can run on a GPU. It is NOT pann-train: results
from it must be labelled as coming from this replica.

What is replicated (see trainer/src/*.rs):
  * architecture (net.rs): CIFAR ResNet-20, akamaster names, option-A shortcut
    (x[:, :, ::2, ::2] and planes/4 zero channels on each side), BN eps 1e-5,
    momentum 0.1, global average pool, linear 64 -> 10;
  * init (net.rs): Kaiming normal N(0, 2/fan_in) for every conv and the linear
    weight, linear bias 0, BN weight 1 and bias 0 (same distributions; the
    numbers differ: the trainer draws them with its own SplitMix64);
  * data (data.rs): CIFAR-10 binary batches; random crop after 4 pixels of zero
    padding on the bytes (black pixels) then horizontal flip with probability
    1/2; normalisation (v/255 - mean) / std with CIFAR-10 statistics
    mean (0.4914, 0.4822, 0.4465) std (0.2470, 0.2435, 0.2616);
  * optimiser (optim.rs): torch.optim.SGD, dampening 0, weight decay on every
    trainable tensor (the trainer's update is written to equal it);
  * schedule (recipe.rs): cosine per step, lr * (1 + cos(pi t / epochs)) / 2,
    t = epoch + step / steps, no warm-up; last partial batch kept (391 steps);
  * Mixup (train.rs): one lambda ~ Beta(a, a) and one permutation per batch,
    loss lam * CE(y) + (1 - lam) * CE(y[perm]); train accuracy against y;
  * NGNV (act.rs), training mode only, at each of the 19 ReLU sites:
      M_s <- batch max|x| the first time, then momentum M_s + (1 - momentum) max|x|
      y = ReLU(x) + [x < 0] * U(-1, 1) * scale * margin * M_s * 2^-alpha  (no gradient)
    evaluation is the exact ReLU;
  * per-epoch test accuracy with exact ReLU on all test images (eval mode).

What differs: random numbers (shuffle, crops, flips, Mixup, NGNV noise, init)
come from torch / numpy generators seeded from (seed, epoch), not from the
trainer's SplitMix64, so runs are reproducible here but do not draw the same
batches as pann-train; convolutions run through cuDNN with PyTorch's defaults
(TF32 allowed for convolutions, recorded in the log); --amp bf16 (off by
default) would run the forward pass under bf16 autocast; divergence is checked
once per epoch instead of every step (no per-step host sync).

Recipes (flag sets; each flag below overrides every recipe of the invocation):
  standard       = pann-train --preset baseline: SGD momentum 0.9 (no Nesterov),
                   lr 0.1, batch 128, weight decay 1e-4, cosine, augmentation.
  paper          = pann-train --preset paper: as standard but weight decay 0,
                   Mixup Beta(1, 1), NGNV at alpha 9 (scale 1, margin 1.1, momentum 0.9).
  paper-no-ngnv  = paper without NGNV (isolates NGNV's effect).

Several recipes in one invocation run as parallel child processes on the one
GPU (ResNet-20 at batch 128 does not fill a large GPU). Each run checkpoints
to --ckpt-dir every --ckpt-every epochs and whenever --time-budget says stop;
rerunning the same command resumes from there. At the end each recipe writes
<out>/<name>.safetensors (f32, akamaster names, BN running stats, no
num_batches_tracked: what pann's importer reads) and <out>/<name>.json.

  python3 train_backbones.py --data DIR --recipes standard,paper --epochs 60 \
      --out OUT --ckpt-dir CKPT [--time-budget 480] [--amp bf16]
"""
import argparse
import hashlib
import json
import math
import os
import struct
import subprocess
import sys
import threading
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)
CROP_PADDING = 4

RECIPES = {
    "standard": dict(preset="baseline", lr=0.1, batch_size=128, momentum=0.9, nesterov=False, weight_decay=1e-4,
                     schedule="cosine", warmup_epochs=0, augment=True, mixup_alpha=0.0, ngnv=None),
    "paper": dict(preset="paper", lr=0.1, batch_size=128, momentum=0.9, nesterov=False, weight_decay=0.0,
                  schedule="cosine", warmup_epochs=0, augment=True, mixup_alpha=1.0,
                  ngnv=dict(alpha=9, scale=1.0, margin=1.1, momentum=0.9)),
    "paper-no-ngnv": dict(preset="paper without NGNV (--ngnv-alpha 0)", lr=0.1, batch_size=128, momentum=0.9,
                          nesterov=False, weight_decay=0.0, schedule="cosine", warmup_epochs=0, augment=True,
                          mixup_alpha=1.0, ngnv=None),
}


# --------------------------------------------------------------------------- data

def read_cifar(data_dir, names, limit=None):
    """uint8 images [N, 3, 32, 32] and int64 labels [N] from CIFAR-10 binary batches."""
    chunks, digests = [], {}
    for name in names:
        raw = open(os.path.join(data_dir, name), "rb").read()
        if len(raw) % 3073:
            sys.exit(f"{name}: {len(raw)} bytes is not a whole number of 3073-byte CIFAR-10 records")
        digests[name] = hashlib.sha256(raw).hexdigest()
        chunks.append(np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3073))
    arr = np.concatenate(chunks)
    if limit:
        arr = arr[:limit]
    labels = torch.from_numpy(arr[:, 0].astype(np.int64))
    images = torch.from_numpy(np.ascontiguousarray(arr[:, 1:])).view(-1, 3, 32, 32)
    return images, labels, digests


def train_files(data_dir):
    return [f"data_batch_{i}.bin" for i in range(1, 6) if os.path.exists(os.path.join(data_dir, f"data_batch_{i}.bin"))]


def normalise(u8, channels_last):
    mean = torch.tensor(MEAN, device=u8.device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=u8.device).view(1, 3, 1, 1)
    x = (u8.float() / 255.0 - mean) / std
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def augment(u8, gen):
    """Random crop with CROP_PADDING zero pixels (on the bytes) and then a horizontal flip
    with probability 1/2, per image, on whatever device u8 lives (data.rs: augment_into)."""
    n, c, h, w = u8.shape
    dev = u8.device
    span = 2 * CROP_PADDING + 1
    oy = torch.randint(0, span, (n,), generator=gen).to(dev)
    ox = torch.randint(0, span, (n,), generator=gen).to(dev)
    flip = torch.randint(0, 2, (n,), generator=gen).to(dev).bool()
    padded = F.pad(u8, (CROP_PADDING,) * 4)  # zeros = black pixels
    ar_h = torch.arange(h, device=dev)
    ar_w = torch.arange(w, device=dev)
    rows = (ar_h[None, :] + oy[:, None])  # out y reads padded row y + dy + pad
    xx = torch.where(flip[:, None], (w - 1 - ar_w)[None, :], ar_w[None, :])
    cols = xx + ox[:, None]  # flipped index, then shifted: out[y][x] = src[y+dy][xx+dx]
    bi = torch.arange(n, device=dev)[:, None, None, None]
    ci = torch.arange(c, device=dev)[None, :, None, None]
    return padded[bi, ci, rows[:, None, :, None], cols[:, None, None, :]]


# --------------------------------------------------------------------------- network

class ExactRelu:
    def __call__(self, site, x, train):
        return F.relu(x)


class NgnvLeak:
    """act.rs NgnvLeak, with the running maxima kept on the device (no host sync)."""

    def __init__(self, p, sites, device, running_max=None):
        self.p = p
        self.running_max = torch.zeros(sites, dtype=torch.float64, device=device)
        if running_max is not None:
            self.running_max.copy_(torch.as_tensor(running_max, dtype=torch.float64))
        self.factor = p["scale"] * p["margin"] * 2.0 ** (-p["alpha"])

    def __call__(self, site, x, train):
        r = F.relu(x)
        if not train:
            return r
        with torch.no_grad():
            bm = x.detach().abs().amax().double()
            m = self.running_max[site]
            new = torch.where(m == 0, bm, self.p["momentum"] * m + (1.0 - self.p["momentum"]) * bm)
            self.running_max[site] = new
            bound = (new * self.factor).to(x.dtype)
            # u ~ U(-1, 1) times the bound where x < 0, 0 elsewhere
            noise = torch.rand_like(x).mul_(2.0).sub_(1.0).mul_(bound).masked_fill_(x >= 0, 0.0)
        return r + noise


class Block(nn.Module):
    def __init__(self, cin, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes, eps=1e-5, momentum=0.1)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, eps=1e-5, momentum=0.1)
        self.shortcut = None
        if stride != 1 or cin != planes:
            assert cin + 2 * (planes // 4) == planes, "option-A shortcut cannot map these widths"
            self.shortcut = (stride, planes // 4)


class ResNet(nn.Module):
    """CIFAR ResNet-(6n+2) with the akamaster variable names (net.rs)."""

    def __init__(self, depth=20, widths=(16, 32, 64), num_classes=10):
        super().__init__()
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0], eps=1e-5, momentum=0.1)
        cin = widths[0]
        for s, planes in enumerate(widths):
            blocks = []
            for b in range(n):
                blocks.append(Block(cin, planes, 2 if s > 0 and b == 0 else 1))
                cin = planes
            setattr(self, f"layer{s + 1}", nn.Sequential(*blocks))
        self.linear = nn.Linear(widths[2], num_classes)
        self.blocks = [b for s in range(3) for b in getattr(self, f"layer{s + 1}")]
        self.sites = 1 + 2 * len(self.blocks)

    def init_weights(self, gen):
        with torch.no_grad():
            for name, p in sorted(self.named_parameters()):
                if name.endswith(".weight") and p.dim() in (2, 4):
                    fan_in = p[0].numel()
                    p.copy_(torch.randn(p.shape, generator=gen) * math.sqrt(2.0 / fan_in))
                elif name == "linear.bias":
                    p.zero_()
            for m in self.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.weight.fill_(1.0)
                    m.bias.zero_()

    def forward(self, x, act):
        train = self.training
        x = act(0, self.bn1(self.conv1(x)), train)
        for i, b in enumerate(self.blocks):
            y = act(1 + 2 * i, b.bn1(b.conv1(x)), train)
            y = b.bn2(b.conv2(y))
            if b.shortcut is None:
                short = x
            else:
                stride, pad = b.shortcut
                short = F.pad(x[:, :, ::stride, ::stride], (0, 0, 0, 0, pad, pad))
            x = act(2 + 2 * i, y + short, train)
        return self.linear(x.mean(dim=(2, 3)))


# --------------------------------------------------------------------------- export

def write_safetensors(path, tensors, metadata):
    """The safetensors format written out (8-byte header length, JSON header, raw
    little-endian data), so the script needs no package for it; names sorted."""
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu", torch.float32).contiguous()
        b = t.numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def export_tensors(model):
    sd = model.state_dict()
    return {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}


# --------------------------------------------------------------------------- training

def lr_at(r, epochs, epoch, step, steps):
    spe = max(steps, 1)
    t = epoch + step / spe
    w = r["warmup_epochs"]
    if int(t) < w:
        return r["lr"] * (t + 1.0 / spe) / w
    frac = min(max((t - w) / max(epochs - w, 1e-9), 0.0), 1.0)
    return r["lr"] * 0.5 * (1.0 + math.cos(math.pi * frac))


def epoch_seed(seed, epoch, stream):
    return (seed * 1_000_003 + epoch * 7919 + stream * 104_729) % (2**63)


@torch.no_grad()
def evaluate(model, x_test, y_test, chunk=1000):
    model.eval()
    act = ExactRelu()
    correct = torch.zeros((), dtype=torch.int64, device=x_test.device)
    for i in range(0, len(x_test), chunk):
        correct += (model(x_test[i:i + chunk], act).argmax(-1) == y_test[i:i + chunk]).sum()
    model.train()
    return correct.item() / len(x_test)


def run_one(args, name):
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    r = dict(RECIPES[name])
    for k in ("lr", "batch_size", "momentum", "weight_decay", "mixup_alpha"):
        v = getattr(args, k)
        if v is not None:
            r[k] = v
    if args.nesterov is not None:
        r["nesterov"] = args.nesterov
    if args.ngnv_alpha is not None:
        r["ngnv"] = None if args.ngnv_alpha == 0 else dict(r["ngnv"] or dict(alpha=9, scale=1.0, margin=1.1, momentum=0.9), alpha=args.ngnv_alpha)
    epochs = args.epochs
    label = args.name_prefix + name + f"-{epochs}ep"
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    cl = args.channels_last

    files = train_files(args.data)
    x_tr_u8, y_tr, dig = read_cifar(args.data, files, args.train_limit)
    x_te_u8, y_te, dig_te = read_cifar(args.data, ["test_batch.bin"], args.test_limit)
    dig.update(dig_te)
    x_tr_u8, y_tr = x_tr_u8.to(dev), y_tr.to(dev)
    x_test, y_te = normalise(x_te_u8.to(dev), cl), y_te.to(dev)
    n = len(y_tr)
    bs = min(r["batch_size"], n)
    steps = -(-n // bs)

    model = ResNet().to(dev)
    model.init_weights(torch.Generator().manual_seed(args.seed))
    if cl:
        model = model.to(memory_format=torch.channels_last)
    opt_kw = dict(lr=r["lr"], momentum=r["momentum"], dampening=0.0, weight_decay=r["weight_decay"], nesterov=r["nesterov"])
    try:
        opt = torch.optim.SGD(model.parameters(), **opt_kw, fused=(dev.type == "cuda"))
    except (TypeError, RuntimeError):
        opt = torch.optim.SGD(model.parameters(), **opt_kw)
    act = NgnvLeak(r["ngnv"], model.sites, dev) if r["ngnv"] else ExactRelu()

    os.makedirs(args.ckpt_dir, exist_ok=True)
    os.makedirs(args.out, exist_ok=True)
    ckpt = os.path.join(args.ckpt_dir, label + ".pt")
    history, start, wall_before = [], 0, 0.0
    if os.path.exists(ckpt):
        st = torch.load(ckpt, map_location=dev, weights_only=False)
        if st["recipe"] != r or st["epochs"] != epochs or st["seed"] != args.seed:
            sys.exit(f"{ckpt}: checkpoint of another recipe/epochs/seed; remove it or change --ckpt-dir")
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["optimizer"])
        if st.get("ngnv_running_max") is not None:
            act.running_max.copy_(torch.as_tensor(st["ngnv_running_max"], dtype=torch.float64))
        history, start, wall_before = st["history"], st["epochs_done"], st.get("wall_seconds", 0.0)
        print(f"[{label}] resumed from {ckpt} after epoch {start}", flush=True)

    def save_ckpt(done, wall):
        st = dict(model=model.state_dict(), optimizer=opt.state_dict(), recipe=r, epochs=epochs, seed=args.seed,
                  epochs_done=done, history=history, wall_seconds=wall,
                  ngnv_running_max=act.running_max.tolist() if r["ngnv"] else None)
        torch.save(st, ckpt + ".tmp")
        os.replace(ckpt + ".tmp", ckpt)

    amp = args.amp == "bf16" and dev.type == "cuda"
    t_start = time.time()
    model.train()
    stopped_early = False
    for epoch in range(start, epochs):
        if args.max_steps is None and args.time_budget and history:
            per = max(h["seconds"] + h["eval_seconds"] for h in history[-3:])
            if time.time() - args.t0 + 1.3 * per + 5 > args.time_budget:
                stopped_early = True
                break
        t0 = time.time()
        torch.manual_seed(epoch_seed(args.seed, epoch, 2))  # NGNV noise (CPU and CUDA generators)
        g = torch.Generator().manual_seed(epoch_seed(args.seed, epoch, 0))
        order = torch.randperm(n, generator=g).to(dev)
        u8 = x_tr_u8[order]
        ys = y_tr[order]
        if r["augment"]:
            u8 = augment(u8, torch.Generator().manual_seed(epoch_seed(args.seed, epoch, 1)))
        xs = normalise(u8, cl)
        del u8
        mix = r["mixup_alpha"] > 0
        if mix:
            npg = np.random.default_rng([args.seed, epoch, 3])
            lams = npg.beta(r["mixup_alpha"], r["mixup_alpha"], size=steps)
            gp = torch.Generator().manual_seed(epoch_seed(args.seed, epoch, 4))
            # one permutation of the batch per step (the last batch may be shorter), moved in one copy
            perms = torch.cat([torch.randperm(min(bs, n - s * bs), generator=gp) for s in range(steps)]).to(dev)
        loss_sum = torch.zeros((), dtype=torch.float64, device=dev)
        correct = torch.zeros((), dtype=torch.int64, device=dev)
        lr = r["lr"]
        nsteps = steps if args.max_steps is None else min(steps, args.max_steps)
        seen = 0
        for s in range(nsteps):
            lr = lr_at(r, epochs, epoch, s, steps)
            for pg in opt.param_groups:
                pg["lr"] = lr
            x = xs[s * bs:(s + 1) * bs]
            y = ys[s * bs:(s + 1) * bs]
            k = len(y)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
                if mix:
                    lam = float(lams[s])
                    p = perms[s * bs:s * bs + k]
                    xm = x * lam + x[p] * (1.0 - lam)
                    logits = model(xm, act)
                    loss = F.cross_entropy(logits.float(), y) * lam + F.cross_entropy(logits.float(), y[p]) * (1.0 - lam)
                else:
                    logits = model(x, act)
                    loss = F.cross_entropy(logits.float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                loss_sum += loss.detach().double() * k
                correct += (logits.argmax(-1) == y).sum()
            seen += k
        if dev.type == "cuda":
            torch.cuda.synchronize()
        secs = time.time() - t0
        train_loss = loss_sum.item() / max(seen, 1)
        if not math.isfinite(train_loss):
            sys.exit(f"[{label}] diverged in epoch {epoch + 1}: loss {train_loss}")
        te0 = time.time()
        acc = evaluate(model, x_test, y_te)
        te = time.time() - te0
        history.append(dict(epoch=epoch + 1, lr_end=lr, train_loss=train_loss, train_accuracy=correct.item() / max(seen, 1),
                            test_accuracy=acc, seconds=secs, eval_seconds=te, images_per_second=seen / max(secs, 1e-9)))
        print(f"[{label}] epoch {epoch + 1}/{epochs}: loss {train_loss:.4f} train acc {100 * history[-1]['train_accuracy']:.2f}% "
              f"test acc {100 * acc:.2f}% {seen / secs:.0f} img/s {secs:.2f}+{te:.2f} s", flush=True)
        done = epoch + 1
        if done % args.ckpt_every == 0 or done == epochs:
            save_ckpt(done, wall_before + time.time() - t_start)
    wall = wall_before + time.time() - t_start
    done = history[-1]["epoch"] if history else 0
    if stopped_early:
        save_ckpt(done, wall)
        print(f"[{label}] stopped by --time-budget after epoch {done}/{epochs}; checkpoint {ckpt}", flush=True)
    finished = done == epochs
    out_name = label if finished else f"{args.name_prefix}{name}-{done}of{epochs}ep"
    meta = dict(
        format="pann-gpu-replica-1", name=out_name, recipe_name=name, finished=finished, epochs_done=done, epochs=epochs,
        recipe=r, seed=args.seed,
        architecture=dict(depth=20, widths=[16, 32, 64], num_classes=10, in_channels=3, image_size=32, bn_eps=1e-5,
                          shortcut="option A (subsample ::2 + zero-pad channels)"),
        input=dict(mean=list(MEAN), std=list(STD), normalisation="cifar10"),
        data=dict(dir=args.data, train_files=files, train_images=n, test_images=len(y_te), sha256=dig),
        device=torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        torch=torch.__version__, cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version() if dev.type == "cuda" else None,
        amp="bf16 autocast" if amp else "none (fp32)", channels_last=cl,
        tf32=dict(cudnn_conv=torch.backends.cudnn.allow_tf32, matmul=torch.backends.cuda.matmul.allow_tf32),
        cudnn_benchmark=torch.backends.cudnn.benchmark,
        optimizer=f"torch.optim.SGD({opt_kw}, fused={opt.defaults.get('fused')})",
        ngnv_running_max=act.running_max.tolist() if r["ngnv"] else None,
        wall_seconds=wall, final_test_accuracy_exact_relu=history[-1]["test_accuracy"] if history else None,
        command=" ".join(sys.argv), replica_of="pann-train (trainer/src) --preset " + r["preset"],
        max_steps_per_epoch=args.max_steps, history=history,
    )
    with open(os.path.join(args.out, out_name + ".json"), "w") as f:
        json.dump(meta, f, indent=1)
    st_meta = dict(source="scripts/gpu/train_backbones.py (PyTorch replica of pann-train)", recipe=json.dumps(r),
                   epochs=f"{done}/{epochs}", seed=args.seed, normalize_mean=",".join(map(str, MEAN)),
                   normalize_std=",".join(map(str, STD)), shortcut="option A (subsample ::2 + zero-pad channels)",
                   test_accuracy_exact_relu=meta["final_test_accuracy_exact_relu"], device=meta["device"], torch=torch.__version__)
    write_safetensors(os.path.join(args.out, out_name + ".safetensors"), export_tensors(model), st_meta)
    print(f"[{label}] wrote {out_name}.safetensors and .json; final exact-ReLU test accuracy "
          f"{100 * (meta['final_test_accuracy_exact_relu'] or 0):.2f}% after {done} epochs, {wall:.0f} s", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="CIFAR-10 binary directory (data_batch_*.bin, test_batch.bin)")
    ap.add_argument("--recipes", default="standard,paper", help=f"comma-separated, of {sorted(RECIPES)}")
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--out", required=True)
    ap.add_argument("--ckpt-dir", required=True)
    ap.add_argument("--ckpt-every", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--amp", choices=["none", "bf16"], default="none")
    ap.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--time-budget", type=float, default=None, help="seconds from start: stop at an epoch boundary before")
    ap.add_argument("--train-limit", type=int, default=None)
    ap.add_argument("--test-limit", type=int, default=None)
    ap.add_argument("--max-steps", type=int, default=None, help="steps per epoch (smoke tests)")
    ap.add_argument("--name-prefix", default="resnet20-gpu-")
    for k, t in (("lr", float), ("batch-size", int), ("momentum", float), ("weight-decay", float), ("mixup-alpha", float), ("ngnv-alpha", int)):
        ap.add_argument(f"--{k}", type=t, default=None)
    ap.add_argument("--nesterov", action=argparse.BooleanOptionalAction, default=None)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--t0", type=float, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.t0 = args.t0 or time.time()
    if args.child:
        run_one(args, args.child)
        return
    names = [s for s in args.recipes.split(",") if s]
    for nme in names:
        if nme not in RECIPES:
            sys.exit(f"unknown recipe {nme}; known: {sorted(RECIPES)}")
    if len(names) == 1:
        run_one(args, names[0])
        return
    # One child process per recipe, all on the same GPU; their lines are passed through.
    procs = []
    for nme in names:
        cmd = [sys.executable, "-u", os.path.abspath(__file__)] + sys.argv[1:] + ["--child", nme, "--t0", str(args.t0)]
        procs.append((nme, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)))

    def pump(p):
        for line in p.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()

    threads = [threading.Thread(target=pump, args=(p,), daemon=True) for _, p in procs]
    for t in threads:
        t.start()
    rc = 0
    for (nme, p), t in zip(procs, threads):
        p.wait()
        t.join()
        if p.returncode:
            print(f"recipe {nme} exited with status {p.returncode}", flush=True)
            rc = 1
    sys.exit(rc)


if __name__ == "__main__":
    main()
