#!/usr/bin/env python3
"""A pann model card (models/src/card.rs) for weights written by scripts/gpu/finetune_poly.py:
the run's own per-layer bounds (those of the polynomial-in-the-loop training) as relu_bounds,
its input normalisation and architecture, provenance from the run's JSON log.

    python3 scripts/gpu/make_card.py RUN.json [--default-alpha 4] [--name NAME] [--source TEXT] [--notes TEXT]

Writes RUN.card.json beside RUN.json (the weights RUN.safetensors must be there too)."""
import argparse
import hashlib
import json
import os

ap = argparse.ArgumentParser()
ap.add_argument("run_json")
ap.add_argument("--default-alpha", type=int, default=None)
ap.add_argument("--name", default=None)
ap.add_argument("--source", default=None)
ap.add_argument("--notes", default="")
ap.add_argument("--license", default=None)
a = ap.parse_args()
j = json.load(open(a.run_json))
base = a.run_json[:-len(".json")]
w = base + ".safetensors"
sha = hashlib.sha256(open(w, "rb").read()).hexdigest()
fm = j["dataset"] == "fmnist"
alpha = a.default_alpha or j.get("alpha") or 9
card = {
    "name": a.name or j["name"],
    "architecture": {"kind": "resnet", "depth": 20, "num_classes": 10, "in_channels": 1 if fm else 3,
                     "image_size": 28 if fm else 32, "widths": [16, 32, 64], "bn_eps": 1e-05},
    "input": j["input"],
    "weights": os.path.basename(w),
    "weights_sha256": sha,
    "default_alpha": alpha,
    "relu_bounds": j["bounds"],
    "calibration": {
        "margin": j["margin"], "images": j["calib_images"],
        "data": (f"bounds of the polynomial-in-the-loop training: {j['margin']} x max |ReLU input| per site over the first "
                 f"{j['calib_images']} training images of {'Fashion-MNIST' if fm else 'cifar-10-jpeg'} (exact ReLU, eval mode, "
                 f"the starting weights), fixed during fine-tuning"),
    },
    "provenance": {
        "source": a.source or (f"scripts/gpu/finetune_poly.py (a PyTorch replica of pann-train's finetune recipe, not pann-train) on one NVIDIA H200: "
                               f"{j['command']}"),
        "license": a.license or ("BSD-2-Clause (fine-tuned from the akamaster/pytorch_resnet_cifar10 ResNet-20 weights; see models/assets/LICENSE-akamaster)"
                                 if "aka" in os.path.basename(j.get("init") or "") else "same as this repository"),
        "notes": a.notes,
    },
}
out = base + ".card.json"
open(out, "w").write(json.dumps(card, indent=2) + "\n")
print(out)
