#!/usr/bin/env python3
"""Polynomial-in-the-loop fine-tuning of ResNet-20 (CIFAR-10 or Fashion-MNIST) on a GPU:
a PyTorch replica of pann-train's `finetune` recipe (trainer/src/act.rs PannRelu,
trainer/src/train.rs) with the levers of issue 16 added: distillation from an
exact-ReLU teacher, a penalty on ReLU inputs beyond their bound, alpha lowered in
stages or drawn per step, and the exact polynomial gradient or straight-through.

It is NOT pann-train; results must be labelled as coming from this replica.

The activation is the PANN ReLU the secure protocol evaluates,
    ReLU~(x) = x (1 + p(x / B)) / 2,   p = p_k o ... o p_1  (sign-minimax tables of
approx/data/sign-minimax, the same bytes as ../shared/data/sign-minimax),
with per-site bounds B = margin x max|x| of the site over the first `--calib`
training images (eval mode, exact ReLU, the starting weights), fixed during training,
exactly as pann-train's `finetune` calibrates them. As in act.rs the training forward
pass clamps x / B to [-1, 1] (a BN batch in training mode can exceed a bound and the
composite diverges past 1); every *evaluation* here (per-epoch PANN accuracy, final
table) does NOT clamp, like the protocol and the f64 executor, and counts images with
a ReLU input beyond its bound (out of range) and images whose logits are not finite.

p is evaluated in the power basis on s = v^2 (the components are odd: p(v) = v q(v^2)),
by Horner, in one autograd Function per site that recomputes p and p' in its backward
(few kernels instead of autograd through Clenshaw). Mathematically this is act.rs's
Clenshaw evaluation on the Chebyshev coefficients; `verify` checks it against values
written by the Rust SignPoly (models/examples/sign_poly_dump.rs).

Gradients (act.rs PolyGrad): `exact` = d/dx of the clamped polynomial ReLU,
`ste` = forward value of the polynomial, gradient of the exact ReLU (pann-train's default).

Loss: CE(y) (1 - w) + w T^2 KL(softmax(teacher / T) || softmax(student / T)) with the
teacher (exact ReLU, eval mode, same augmented batch) when --teacher is given, plus
lambda * sum over sites of sum_elements relu(|x| / B - rho)^2 / batch (--penalty lambda,
--penalty-rho rho; only in training, on the unclamped inputs).

Optimiser and data as train_backbones.py (SGD momentum 0.9, no Nesterov, cosine per step,
batch 128, crop with 4 zero pixels + flip, last partial batch kept).

Subcommands:
  run     fine-tune (or, with --act exact and --init none, train a backbone)
  bench   time training steps of a configuration (for choosing epochs)
  verify  compare this PANN ReLU with the Rust SignPoly on a grid (CPU)
  ranges  per test image, max |x| / B of a finished run at an alpha; images beyond a ring headroom
"""
import argparse
import gzip
import hashlib
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_backbones as tb  # noqa: E402

NORMS = {
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),  # akamaster's (card of resnet20-akamaster)
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),  # pann-train --norm auto on CIFAR
    "fmnist": ((0.2860,), (0.3530,)),  # pann-train --norm auto on IDX
}
HERE = os.path.dirname(os.path.abspath(__file__))
TABLES = os.path.join(HERE, "..", "..", "approx", "data", "sign-minimax")


# --------------------------------------------------------------------------- sign polynomials

def load_sign_poly(alpha, tables=TABLES):
    """Components (innermost first) as lists of odd monomial coefficients [c1, c3, c5, ...];
    the even coefficients of the table (~1e-40) are zero, as SignPoly::parse makes them."""
    degs = [int(t) for t in open(os.path.join(tables, f"deg_{alpha}.txt")).read().split()]
    coeffs = [float(t) for t in open(os.path.join(tables, f"coeff_{alpha}.txt")).read().split()]
    assert sum(d + 1 for d in degs) == len(coeffs), f"alpha {alpha}: malformed table"
    comps, k = [], 0
    for d in degs:
        mono = coeffs[k:k + d + 1]
        k += d + 1
        comps.append([mono[j] for j in range(1, d + 1, 2)])
    return degs, comps


def poly_and_deriv(v, comps, need_deriv):
    """p(v) and (optionally) dp/dv for the composite, elementwise (Horner in s = v^2)."""
    dp = None
    for c in comps:
        s = v * v
        q = torch.full_like(v, c[-1])
        dq = torch.zeros_like(v) if need_deriv else None
        for cj in reversed(c[:-1]):
            if need_deriv:
                dq = torch.addcmul(q, dq, s)  # dq = dq * s + q   (q'(s))
            q = q.mul_(s).add_(cj)
        # p = v q(s), p' = q(s) + 2 s q'(s)
        if need_deriv:
            dcomp = torch.addcmul(q, dq, s, value=2.0)
            dp = dcomp if dp is None else dp * dcomp
        v = v * q
    return v, dp


def monomial_to_chebyshev(mono):
    """protocols/src/sign_poly.rs monomial_to_chebyshev: x^n = 2^(1-n) sum_j C(n, j) T_{n-2j} (j = n/2 halved)."""
    d = len(mono) - 1
    cheb = [0.0] * (d + 1)
    for n, c in enumerate(mono):
        if c == 0.0:
            continue
        scale = 1.0 if n == 0 else 2.0 ** (1 - n)
        binom = 1.0
        for j in range(n // 2 + 1):
            k = n - 2 * j
            w = binom / 2.0 if k == 0 else binom
            cheb[k] += c * scale * (1.0 if n == 0 else w)
            binom = binom * (n - j) / (j + 1)
    return cheb


def chebyshev_components(comps):
    out = []
    for c in comps:
        mono = [0.0] * (2 * len(c))
        for j, v in enumerate(c):
            mono[2 * j + 1] = v
        out.append(monomial_to_chebyshev(mono))
    return out


@torch.no_grad()
def pann_relu_clenshaw(x, inv_b, cheb):
    """act.rs PannRelu::eval without the clamp (the protocol's evaluation order): Clenshaw per component."""
    v = x * inv_b
    for a in cheb:
        b1 = torch.zeros_like(v)
        b2 = torch.zeros_like(v)
        for c in reversed(a[1:]):
            b0 = v * b1 * 2.0 - b2 + c
            b2, b1 = b1, b0
        v = v * b1 - b2 + a[0]
    return x * (v + 1.0) * 0.5


class PannReluFn(torch.autograd.Function):
    """y = x (1 + p(t)) / 2, t = x * invB (clamped to [-1, 1] if clamp)."""

    @staticmethod
    def forward(ctx, x, inv_b, comps, clamp, grad):
        t = x * inv_b
        if clamp:
            t = t.clamp(-1.0, 1.0)
        p, _ = poly_and_deriv(t, comps, False)
        ctx.save_for_backward(x)
        ctx.inv_b, ctx.comps, ctx.clamp, ctx.grad = inv_b, comps, clamp, grad
        return x * (p + 1.0) * 0.5

    @staticmethod
    def backward(ctx, gy):
        (x,) = ctx.saved_tensors
        if ctx.grad == "ste":
            return gy * (x > 0).to(gy.dtype), None, None, None, None
        t_raw = x * ctx.inv_b
        t = t_raw.clamp(-1.0, 1.0) if ctx.clamp else t_raw
        p, dp = poly_and_deriv(t, ctx.comps, True)
        if ctx.clamp:  # torch's clamp passes the gradient on [-1, 1] (ends included)
            dp = dp * (t_raw.abs() <= 1.0).to(dp.dtype)
        g = (p + 1.0) * 0.5 + x * dp * (0.5 * ctx.inv_b)
        return gy * g, None, None, None, None


class PolyAct:
    """The training / evaluation activation: exact ReLU or the PANN ReLU per site."""

    def __init__(self, bounds, alpha, grad="exact", clamp=True, penalty=0.0, rho=1.0, track=False):
        self.bounds = list(bounds)
        self.inv = [1.0 / b for b in self.bounds]
        self.grad, self.clamp, self.penalty, self.rho = grad, clamp, penalty, rho
        self.set_alpha(alpha)
        self.pen = None
        self.track = track  # evaluation: per-image "some input beyond its bound"
        self.oor = None
        self.ratio = None  # per image: max over sites of |x| / B

    def set_alpha(self, alpha):
        self.alpha = alpha
        self.comps = None if alpha is None else load_sign_poly(alpha)[1]
        self.cheb = None if alpha is None else chebyshev_components(self.comps)

    def __call__(self, site, x, train):
        if self.track:
            r = (x.abs() * self.inv[site]).flatten(1).amax(1)
            ex = r > 1.0
            self.oor = ex if self.oor is None else (self.oor | ex)
            self.ratio = r if self.ratio is None else torch.maximum(self.ratio, r)
        if train and self.penalty > 0:
            e = F.relu(x.abs() * self.inv[site] - self.rho)
            term = (e * e).sum() / x.shape[0]
            self.pen = term if self.pen is None else self.pen + term
        if self.comps is None:
            return F.relu(x)
        if not train:  # evaluation: Chebyshev / Clenshaw as act.rs and the executors (stable in f32 at alpha 9)
            return pann_relu_clenshaw(x, self.inv[site], self.cheb)
        return PannReluFn.apply(x, self.inv[site], self.comps, self.clamp and train, self.grad if train else "exact")


# --------------------------------------------------------------------------- data

def read_idx(path):
    raw = open(path, "rb").read()
    if path.endswith(".gz"):
        raw = gzip.decompress(raw)
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    return data.reshape(dims), hashlib.sha256(open(path, "rb").read()).hexdigest()


def find_idx(d, stem):
    for p in (os.path.join(d, stem), os.path.join(d, stem + ".gz")):
        if os.path.exists(p):
            return p
    sys.exit(f"{stem}[.gz] missing in {d}")


def load_data(dataset, d, train_limit=None, test_limit=None):
    """uint8 train/test images [N, C, H, W] and int64 labels; digests of the files read."""
    if dataset == "cifar":
        xtr, ytr, dig = tb.read_cifar(d, tb.train_files(d), train_limit)
        xte, yte, dt = tb.read_cifar(d, ["test_batch.bin"], test_limit)
        dig.update(dt)
        return xtr, ytr, xte, yte, dig
    dig, out = {}, []
    for pre in ("train", "t10k"):
        ip, lp = find_idx(d, f"{pre}-images-idx3-ubyte"), find_idx(d, f"{pre}-labels-idx1-ubyte")
        im, hi = read_idx(ip)
        lb, hl = read_idx(lp)
        dig[os.path.basename(ip)], dig[os.path.basename(lp)] = hi, hl
        lim = train_limit if pre == "train" else test_limit
        im, lb = (im[:lim], lb[:lim]) if lim else (im, lb)
        out += [torch.from_numpy(np.ascontiguousarray(im)).view(-1, 1, im.shape[1], im.shape[2]),
                torch.from_numpy(lb.astype(np.int64))]
    return out[0], out[1], out[2], out[3], dig


def normaliser(norm, dev, cl):
    mean, std = NORMS[norm]
    m = torch.tensor(mean, device=dev).view(1, -1, 1, 1)
    s = torch.tensor(std, device=dev).view(1, -1, 1, 1)

    def f(u8):
        x = (u8.float() / 255.0 - m) / s
        return x.contiguous(memory_format=torch.channels_last) if cl else x
    return f


# --------------------------------------------------------------------------- network

SITE_NAMES = ["relu"] + [f"layer{s}.{b}.relu{k}" for s in (1, 2, 3) for b in range(3) for k in (1, 2)]


def make_model(in_channels, dev, cl):
    m = tb.ResNet()
    if in_channels != 3:
        m.conv1 = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
    m = m.to(dev)
    return m.to(memory_format=torch.channels_last) if cl else m


def read_safetensors(path):
    raw = open(path, "rb").read()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        assert v["dtype"] == "F32", f"{path}: {k} is {v['dtype']}"
        a, b = v["data_offsets"]
        out[k] = torch.from_numpy(np.frombuffer(raw[8 + n + a:8 + n + b], dtype="<f4").copy()).view(v["shape"])
    return out, hashlib.sha256(raw).hexdigest()


def load_weights(model, path):
    t, digest = read_safetensors(path)
    sd = model.state_dict()
    missing = [k for k in sd if not k.endswith("num_batches_tracked") and k not in t]
    if missing:
        sys.exit(f"{path}: missing tensors {missing[:5]}")
    with torch.no_grad():
        for k, v in sd.items():
            if k in t:
                v.copy_(t[k].to(v.device).view(v.shape))
    return digest


@torch.no_grad()
def calibrate(model, x_u8, norm_fn, n, chunk=1000):
    """Per-site max |ReLU input| over the first n images (eval mode, exact ReLU) = train.rs calibrate_max."""
    model.eval()
    mx = torch.zeros(model.sites, dtype=torch.float64, device=x_u8.device)

    def rec(site, x, train):
        mx[site] = torch.maximum(mx[site], x.abs().amax().double())
        return F.relu(x)
    for i in range(0, min(n, len(x_u8)), chunk):
        model(norm_fn(x_u8[i:min(i + chunk, n)]), rec)
    model.train()
    return mx.tolist()


@torch.no_grad()
def evaluate(model, x, y, act, chunk=1000):
    """Accuracy, images out of range, images with non-finite logits (counted wrong)."""
    model.eval()
    correct = torch.zeros((), dtype=torch.int64, device=x.device)
    oor = torch.zeros((), dtype=torch.int64, device=x.device)
    bad = torch.zeros((), dtype=torch.int64, device=x.device)
    ratios = []
    for i in range(0, len(x), chunk):
        if isinstance(act, PolyAct):
            act.oor, act.ratio = None, None
        logits = model(x[i:i + chunk], act)
        fin = torch.isfinite(logits).all(1)
        correct += ((logits.argmax(-1) == y[i:i + chunk]) & fin).sum()
        bad += (~fin).sum()
        if isinstance(act, PolyAct) and act.oor is not None:
            oor += act.oor.sum()
            ratios.append(act.ratio)
    model.train()
    out = dict(accuracy=correct.item() / len(x), correct=correct.item(), images=len(x),
               images_out_of_range=oor.item(), images_diverged=bad.item())
    if ratios:
        r = torch.cat(ratios).double()
        r = torch.where(torch.isfinite(r), r, torch.full_like(r, float("inf")))
        out["max_input_over_bound"] = dict(max=r.max().item(), p99=torch.quantile(r, 0.99).item(),
                                           over_1_25=int((r > 1.25).sum()), over_1_5=int((r > 1.5).sum()), over_2=int((r > 2).sum()))
    return out


def alpha_at(args, frac, step_rng):
    """The training alpha at fraction `frac` of the run."""
    if args.alpha_mix:
        choices = [int(a) for a in args.alpha_mix.split(",")]
        return choices[int(step_rng.integers(len(choices)))]
    if args.alpha_stages:
        # "6,5,4": equal parts of the run
        st = [int(a) for a in args.alpha_stages.split(",")]
        return st[min(int(frac * len(st)), len(st) - 1)]
    return args.alpha


# --------------------------------------------------------------------------- run

def run(args):
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    cl = args.channels_last
    t_begin = time.time()
    if args.wait_for:
        while not os.path.exists(args.wait_for):
            if args.deadline and time.time() > args.deadline - 30:
                sys.exit(f"[{args.name}] gave up waiting for {args.wait_for}")
            time.sleep(2)
        time.sleep(1)
    t_start = time.time()
    xtr, ytr, xte, yte, dig = load_data(args.dataset, args.data, args.train_limit, args.test_limit)
    xtr, ytr, xte, yte = xtr.to(dev), ytr.to(dev), xte.to(dev), yte.to(dev)
    norm = normaliser(args.norm, dev, cl)
    x_test = norm(xte)
    model = make_model(xtr.shape[1], dev, cl)
    if args.init == "none":
        model.init_weights(torch.Generator().manual_seed(args.seed))
        init_digest = None
    else:
        init_digest = load_weights(model, args.init)
    teacher, teacher_digest = None, None
    if args.teacher:
        teacher = make_model(xtr.shape[1], dev, cl)
        teacher_digest = load_weights(teacher, args.teacher)
        teacher.eval()
    exact = tb.ExactRelu()
    start_exact = evaluate(model, x_test, yte, exact)
    calib_max = calibrate(model, xtr, norm, args.calib)
    bounds = [args.margin * m if m > 0 else args.margin for m in calib_max]
    poly = args.act == "poly"
    act = PolyAct(bounds, alpha_at(args, 0.0, np.random.default_rng(0)) if poly else None, args.grad, True,
                  args.penalty if poly else 0.0, args.penalty_rho)
    eval_alpha = args.alpha if poly else None
    r = dict(lr=args.lr, batch_size=args.batch_size, momentum=0.9, nesterov=False, weight_decay=args.weight_decay,
             schedule="cosine", warmup_epochs=0, augment=True)
    opt_kw = dict(lr=r["lr"], momentum=0.9, dampening=0.0, weight_decay=r["weight_decay"], nesterov=False)
    try:
        opt = torch.optim.SGD(model.parameters(), **opt_kw, fused=(dev.type == "cuda"))
    except (TypeError, RuntimeError):
        opt = torch.optim.SGD(model.parameters(), **opt_kw)
    n = len(ytr)
    bs = min(args.batch_size, n)
    steps = -(-n // bs)
    epochs = args.epochs
    history = []
    arng = np.random.default_rng([args.seed, 99])
    model.train()
    stopped_early = False
    print(f"[{args.name}] start: exact-ReLU test acc {100 * start_exact['accuracy']:.2f}%, bounds "
          f"{[round(b, 3) for b in bounds]}", flush=True)
    for epoch in range(epochs):
        if args.deadline and history:
            per = max(h["seconds"] + h["eval_seconds"] for h in history[-3:])
            if time.time() + 1.3 * per + 20 > args.deadline:
                stopped_early = True
                break
        t0 = time.time()
        g = torch.Generator().manual_seed(tb.epoch_seed(args.seed, epoch, 0))
        order = torch.randperm(n, generator=g).to(dev)
        u8 = tb.augment(xtr[order], torch.Generator().manual_seed(tb.epoch_seed(args.seed, epoch, 1)))
        ys = ytr[order]
        xs = norm(u8)
        del u8
        loss_sum = torch.zeros((), dtype=torch.float64, device=dev)
        pen_sum = torch.zeros((), dtype=torch.float64, device=dev)
        correct = torch.zeros((), dtype=torch.int64, device=dev)
        nsteps = steps if args.max_steps is None else min(steps, args.max_steps)
        seen, lr = 0, r["lr"]
        for s in range(nsteps):
            lr = tb.lr_at(r, epochs, epoch, s, steps)
            for pg in opt.param_groups:
                pg["lr"] = lr
            if poly:
                a = alpha_at(args, (epoch + s / steps) / epochs, arng)
                if a != act.alpha:
                    act.set_alpha(a)
            x = xs[s * bs:(s + 1) * bs]
            y = ys[s * bs:(s + 1) * bs]
            act.pen = None
            logits = model(x, act)
            loss = F.cross_entropy(logits, y)
            if teacher is not None:
                with torch.no_grad():
                    tl = teacher(x, exact)
                T = args.kd_temp
                kd = F.kl_div(F.log_softmax(logits / T, -1), F.log_softmax(tl / T, -1), reduction="batchmean",
                              log_target=True) * T * T
                loss = loss * (1.0 - args.kd_weight) + kd * args.kd_weight
            total = loss
            if act.pen is not None:
                total = loss + act.pen * args.penalty
                pen_sum += act.pen.detach().double() * len(y)
            opt.zero_grad(set_to_none=True)
            total.backward()
            opt.step()
            with torch.no_grad():
                loss_sum += loss.detach().double() * len(y)
                correct += (logits.argmax(-1) == y).sum()
            seen += len(y)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        secs = time.time() - t0
        tl_ = loss_sum.item() / max(seen, 1)
        if not math.isfinite(tl_):
            print(f"[{args.name}] diverged in epoch {epoch + 1}: loss {tl_}", flush=True)
            stopped_early = True
            break
        te0 = time.time()
        ev_exact = evaluate(model, x_test, yte, exact)
        ev_pann = None
        if poly:
            ea = PolyAct(bounds, eval_alpha, clamp=False, track=True)
            ev_pann = evaluate(model, x_test, yte, ea)
        te = time.time() - te0
        history.append(dict(epoch=epoch + 1, lr_end=lr, alpha_end=act.alpha if poly else None, train_loss=tl_,
                            train_penalty=pen_sum.item() / max(seen, 1), train_accuracy=correct.item() / max(seen, 1),
                            test_exact=ev_exact, test_pann=ev_pann, seconds=secs, eval_seconds=te,
                            images_per_second=seen / max(secs, 1e-9)))
        pa = f" PANN a={eval_alpha} {100 * ev_pann['accuracy']:.2f}% (oor {ev_pann['images_out_of_range']})" if ev_pann else ""
        print(f"[{args.name}] epoch {epoch + 1}/{epochs}: loss {tl_:.4f} pen {history[-1]['train_penalty']:.4f} "
              f"train acc {100 * history[-1]['train_accuracy']:.2f}% exact {100 * ev_exact['accuracy']:.2f}%{pa} "
              f"{seen / secs:.0f} img/s {secs:.1f}+{te:.1f} s", flush=True)
    done = history[-1]["epoch"] if history else 0
    # Final table: exact and every alpha, no clamp, this run's bounds.
    final = dict(exact=evaluate(model, x_test, yte, exact))
    for a in [int(v) for v in args.eval_alphas.split(",") if v]:
        final[f"alpha{a}"] = evaluate(model, x_test, yte, PolyAct(bounds, a, clamp=False, track=True))
    # ... and with bounds recalibrated on the fine-tuned weights (what pann_accuracy.rs does by default)
    recal_max = calibrate(model, xtr, norm, 2000 if args.dataset == "cifar" else args.calib)
    recal = [1.1 * m if m > 0 else 1.1 for m in recal_max]
    final_recal = {f"alpha{a}": evaluate(model, x_test, yte, PolyAct(recal, a, clamp=False, track=True))
                   for a in [int(v) for v in args.eval_alphas.split(",") if v]}
    wall = time.time() - t_start
    name = args.name if done == epochs else f"{args.name}-{done}of{epochs}ep"
    meta = dict(
        format="pann-gpu-poly-finetune-1", name=name, finished=done == epochs, epochs_done=done, epochs=epochs,
        dataset=args.dataset, data=dict(dir=args.data, train_images=n, test_images=len(yte), sha256=dig),
        init=args.init, init_sha256=init_digest, teacher=args.teacher, teacher_sha256=teacher_digest,
        act=args.act, alpha=args.alpha if poly else None, alpha_stages=args.alpha_stages, alpha_mix=args.alpha_mix,
        grad=args.grad if poly else None, clamp_in_training=poly, penalty=args.penalty if poly else 0.0,
        penalty_rho=args.penalty_rho, kd=dict(weight=args.kd_weight, temperature=args.kd_temp) if teacher is not None else None,
        recipe=r, seed=args.seed, margin=args.margin, calib_images=args.calib, calib_max_abs=dict(zip(SITE_NAMES, calib_max)),
        bounds=dict(zip(SITE_NAMES, bounds)), norm=args.norm, input=dict(mean=list(NORMS[args.norm][0]), std=list(NORMS[args.norm][1])),
        start_test_exact=start_exact, final=final, recalibrated_bounds=dict(zip(SITE_NAMES, recal)), final_recalibrated=final_recal,
        device=torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu", torch=torch.__version__,
        cuda=torch.version.cuda, tf32_conv=torch.backends.cudnn.allow_tf32, channels_last=cl,
        optimizer=f"torch.optim.SGD({opt_kw})", wall_seconds=wall, waited_seconds=t_start - t_begin,
        stopped_early=stopped_early, command=" ".join(sys.argv), history=history)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, name + ".json"), "w") as f:
        json.dump(meta, f, indent=1)
    stm = dict(source="scripts/gpu/finetune_poly.py (PyTorch replica of pann-train finetune)", name=name,
               normalize_mean=",".join(map(str, NORMS[args.norm][0])), normalize_std=",".join(map(str, NORMS[args.norm][1])),
               bounds=json.dumps(dict(zip(SITE_NAMES, bounds))), epochs=f"{done}/{epochs}")
    tb.write_safetensors(os.path.join(args.out, name + ".safetensors"), tb.export_tensors(model), stm)
    summ = " ".join(f"{k} {100 * v['accuracy']:.2f}%({v.get('images_out_of_range', 0)})" for k, v in final.items())
    print(f"[{args.name}] wrote {name}: {summ}; {wall:.0f} s", flush=True)


def bench(args):
    """Time `--max-steps` training steps (after 10 warm-up) of the configuration, on random data."""
    dev = torch.device(args.device)
    torch.backends.cudnn.benchmark = True
    c, hw = (3, 32) if args.dataset == "cifar" else (1, 28)
    model = make_model(c, dev, args.channels_last)
    teacher = make_model(c, dev, args.channels_last).eval() if args.teacher else None
    x = torch.randn(args.batch_size, c, hw, hw, device=dev)
    if args.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (args.batch_size,), device=dev)
    poly = args.act == "poly"
    act = PolyAct([5.0] * 19, args.alpha if poly else None, args.grad, True, args.penalty if poly else 0.0)
    opt = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9)
    times = []
    for i in range(10 + args.max_steps):
        if i == 10:
            torch.cuda.synchronize() if dev.type == "cuda" else None
            t0 = time.time()
        act.pen = None
        out = model(x, act)
        loss = F.cross_entropy(out, y)
        if teacher is not None:
            with torch.no_grad():
                tl = teacher(x, tb.ExactRelu())
            loss = loss + F.kl_div(F.log_softmax(out / 4, -1), F.log_softmax(tl / 4, -1), reduction="batchmean", log_target=True)
        if act.pen is not None:
            loss = loss + act.pen
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    per = (time.time() - t0) / args.max_steps
    res = dict(name=args.name, seconds_per_step=per, steps=args.max_steps, batch=args.batch_size)
    os.makedirs(args.out, exist_ok=True)
    json.dump(res, open(os.path.join(args.out, f"bench-{args.name}.json"), "w"))
    print(f"[bench {args.name}] {1000 * per:.2f} ms/step", flush=True)


@torch.no_grad()
def ranges(args):
    """Per test image: max over ReLU sites of |x| / B of a finished run's model at --alpha (no clamp),
    with the run's bounds; counts beyond the ring headroom t_max of docs/results/out-of-range.md (--tmax)
    and the indices of those images (for engine/examples/range_check.rs)."""
    torch.set_num_threads(args.threads)
    j = json.load(open(args.run_json))
    dev = torch.device(args.device)
    _, _, xte, yte, _ = load_data(j["dataset"], args.data, 1, args.test_limit)
    norm = normaliser(j["norm"], dev, False)
    model = make_model(xte.shape[1], dev, False)
    load_weights(model, args.run_json[:-len(".json")] + ".safetensors")
    model.eval()
    bounds = [j["bounds"][s] for s in SITE_NAMES]
    act = PolyAct(bounds, args.alpha, clamp=False, track=True)
    rs, correct = [], 0
    for i in range(0, len(xte), 500):
        act.oor, act.ratio = None, None
        lg = model(norm(xte[i:i + 500].to(dev)), act)
        correct += int(((lg.argmax(-1) == yte[i:i + 500].to(dev)) & torch.isfinite(lg).all(1)).sum())
        rs.append(act.ratio.double().cpu())
    r = torch.cat(rs)
    r = torch.where(torch.isfinite(r), r, torch.full_like(r, float("inf")))
    beyond = [int(i) for i in torch.nonzero(r > args.tmax).flatten()]
    out = dict(run=j["name"], alpha=args.alpha, images=len(r), accuracy=correct / len(r), tmax=args.tmax,
               out_of_range=int((r > 1).sum()), beyond_tmax=len(beyond), beyond_tmax_images=beyond,
               max_ratio=float(r.max()), quantiles={q: float(torch.quantile(r, q)) for q in (0.5, 0.9, 0.99, 0.999)})
    print(json.dumps({k: v for k, v in out.items() if k != "beyond_tmax_images"}), "first images beyond:", beyond[:20])
    if args.out_json:
        json.dump(out, open(args.out_json, "w"), indent=1)


def verify(args):
    """Compare PannReluFn (f64 and f32, forward and exact gradient) with the Rust SignPoly dump."""
    d = json.load(open(args.rust_dump))
    worst = {}
    for entry in d["alphas"]:
        a, B = entry["alpha"], entry["bound"]
        xs = torch.tensor(entry["x"], dtype=torch.float64)
        want = torch.tensor(entry["relu"], dtype=torch.float64)
        comps = load_sign_poly(a)[1]
        got64 = PannReluFn.apply(xs, 1.0 / B, comps, False, "exact")
        got32 = PannReluFn.apply(xs.float(), 1.0 / B, comps, False, "exact").double() if a <= 6 else \
            pann_relu_clenshaw(xs.float(), 1.0 / B, chebyshev_components(comps)).double()
        # gradient of the clamped version against central differences of the Rust values (inside (-B, B))
        xg = xs.clone().requires_grad_(True)
        PannReluFn.apply(xg, 1.0 / B, comps, True, "exact").sum().backward()
        h = 1e-6
        inside = (xs.abs() < B * 0.999)
        fd = torch.tensor(entry["relu_plus_h"], dtype=torch.float64) - torch.tensor(entry["relu_minus_h"], dtype=torch.float64)
        fd = fd / (2 * h)
        inb = xs.abs() <= B
        rel = lambda g: ((g - want).abs() / want.abs().clamp_min(1.0))[~inb].max().item() if (~inb).any() else 0.0
        worst[a] = dict(
            f64=(got64 - want)[inb].abs().max().item(),
            f32=(got32 - want)[inb].abs().max().item(),
            f64_rel_beyond_bound=rel(got64), f32_rel_beyond_bound=rel(got32),
            grad_f64=(xg.grad - fd)[inside].abs().max().item(),
            bound=B, points=len(xs))
        print(f"alpha {a}: on [-B, B] max |torch f64 - rust| {worst[a]['f64']:.3e}, f32 {worst[a]['f32']:.3e}; "
              f"beyond B (to 1.05 B) relative {worst[a]['f64_rel_beyond_bound']:.3e} / {worst[a]['f32_rel_beyond_bound']:.3e}; "
              f"|grad - finite diff of rust| {worst[a]['grad_f64']:.3e} on {len(xs)} points, B {B}")
    json.dump(worst, open(args.out_json, "w"), indent=1) if args.out_json else None
    ok = all(v["f64"] < 1e-9 * max(1.0, v["bound"]) and v["f32"] < 1e-4 * max(1.0, v["bound"]) and v["grad_f64"] < 1e-4
             and v["f64_rel_beyond_bound"] < 1e-9 and v["f32_rel_beyond_bound"] < 1e-3 for v in worst.values())
    print("OK" if ok else "MISMATCH")
    sys.exit(0 if ok else 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cmd", choices=["run", "bench", "verify", "ranges"])
    ap.add_argument("--dataset", choices=["cifar", "fmnist"], default="cifar")
    ap.add_argument("--data")
    ap.add_argument("--norm", choices=sorted(NORMS), default="imagenet")
    ap.add_argument("--init", default="none", help="start weights (safetensors, akamaster names) or none")
    ap.add_argument("--teacher", default=None, help="exact-ReLU teacher weights for distillation")
    ap.add_argument("--wait-for", default=None, help="wait until this file exists (the teacher) before starting")
    ap.add_argument("--name", default="run")
    ap.add_argument("--out", default="out")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--weight-decay", type=float, default=0.0)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--act", choices=["exact", "poly"], default="poly")
    ap.add_argument("--alpha", type=int, default=4, help="the target alpha (evaluated each epoch)")
    ap.add_argument("--alpha-stages", default=None, help="e.g. 6,5,4: alphas for equal parts of the run")
    ap.add_argument("--alpha-mix", default=None, help="e.g. 4,5: alpha drawn per step")
    ap.add_argument("--grad", choices=["exact", "ste"], default="exact")
    ap.add_argument("--penalty", type=float, default=0.0)
    ap.add_argument("--penalty-rho", type=float, default=1.0)
    ap.add_argument("--kd-weight", type=float, default=0.7)
    ap.add_argument("--kd-temp", type=float, default=4.0)
    ap.add_argument("--margin", type=float, default=1.1)
    ap.add_argument("--calib", type=int, default=5000)
    ap.add_argument("--eval-alphas", default="4,5,6,7,8,9")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--deadline", type=float, default=None, help="unix time: stop at an epoch boundary before it")
    ap.add_argument("--train-limit", type=int, default=None)
    ap.add_argument("--test-limit", type=int, default=None)
    ap.add_argument("--max-steps", type=int, default=None)
    ap.add_argument("--rust-dump", default=None)
    ap.add_argument("--out-json", default=None)
    ap.add_argument("--run-json", default=None, help="ranges: a run's JSON (weights beside it)")
    ap.add_argument("--tmax", type=float, default=1.0, help="ranges: ring headroom t_max of the alpha")
    args = ap.parse_args()
    {"run": run, "bench": bench, "verify": verify, "ranges": ranges}[args.cmd](args)


if __name__ == "__main__":
    main()
