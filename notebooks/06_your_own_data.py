# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 6. CORE-MTL on your own data set
#
# Notebooks 1 to 5 worked on the SCM of the theory. This one is what a researcher does with a data
# set and a backbone of their own: state the tasks, hand both to `coremtl.train`, read the
# metrics. The same call gives CORE-MTL and every baseline on the same backbone
# (`coremtl.METHODS`: EW, any balancer by name, MTAN, Rep-MTL, MT-CRL, single-task), each
# starting from a copy of the same backbone weights.
#
# For CORE-MTL the preset (`coremtl.preset`) splits the backbone's feature maps into a semantic
# stream $Z_s$ and a residual stream $Z_r$ (a 1x1 convolution), puts pooled heads on $Z_s$ only,
# fits an AdaIN decoder $(Z_s, Z_r) \mapsto \hat x$ to the input and feature sizes, and trains
# the staged schedule of the method with its defaults (`coremtl.defaults`):
#
# * epochs $[0, 1)$: reconstruction $\|\hat x - x\|_1$ alone;
# * epoch 1 on: the task losses as well;
# * epoch 2 on: the positive part of the debiased CKA of the pooled streams (weight 0.1, with
#   a warm-up ramp) and counterfactual augmentation (weight 0.5, probability 0.5): decode
#   $(Z_s(i), Z_r(\pi(i)))$, re-encode with batch norm frozen, score against the labels of $i$.
#
# (8 epochs here; the stage starts are $\lceil 0.1 E \rceil$ and $\lceil 0.2 E \rceil$.)

# %% [markdown]
# ## The data: three tasks and a colour that is a shortcut in the source
#
# `coremtl.toy_images.coloured_squares` draws 16x16 images of one or two squares. Three
# classification tasks: `count` (one or two squares), `large` (side 4 or 7) and `hollow` (filled
# or outline). The colour of the squares is a residual factor: no task depends on it. In the
# source splits the colour is tied to `hollow` with probability 0.95 (red/orange for filled,
# blue/green for outlines); in the target split it is drawn independently. A model that reads
# the colour to decide `hollow` does well on source validation data and falls to chance on the
# target.

# %%
import json
import time

import matplotlib.pyplot as plt
import torch
from torch import nn

import coremtl
from coremtl.toy_images import coloured_squares

SEED, SHORTCUT, EPOCHS, BATCH_SIZE, LEARNING_RATE = 0, 0.95, 8, 64, 3e-3
SIZES = {"train": 2048, "val": 512, "target": 1024}
train = coloured_squares(SIZES["train"], seed=SEED, shortcut=SHORTCUT)
val = coloured_squares(SIZES["val"], seed=SEED + 1, shortcut=SHORTCUT)
target = coloured_squares(SIZES["target"], seed=SEED + 2, shortcut=0.0)


def colour_agreement(split: dict) -> float:
    """How often the colour says the `hollow` label (colours 2, 3 for outlines)."""
    return float(((split["colour"] >= 2).long() == split["hollow"]).float().mean())


agreement = {
    name: colour_agreement(split) for name, split in (("train", train), ("target", target))
}
print("colour agrees with `hollow`:", {k: round(v, 3) for k, v in agreement.items()})

figure, axes = plt.subplots(1, 8, figsize=(10, 1.6))
for axis, index in zip(axes, range(8), strict=True):
    axis.imshow(train["x"][index].permute(1, 2, 0))
    labels = [train[t][index].item() for t in ("count", "large", "hollow")]
    axis.set_title(f"c{labels[0]} l{labels[1]} h{labels[2]}", fontsize=8)
    axis.axis("off")
figure.tight_layout()

# %% [markdown]
# ## Backbone, tasks, one call per method
#
# The backbone is any `nn.Module` returning feature vectors or maps; here two strided
# convolutions to 4x4 maps of 32 channels, initialised from the seed (every method trains a copy
# of these weights). The tasks are named by their batch key, kind and
# number of outputs.

# %%
torch.manual_seed(SEED)
backbone = nn.Sequential(
    nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU()),
    nn.Sequential(nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU()),
)
backbone_checksum = sum(float(p.detach().double().sum()) for p in backbone.parameters())
tasks = [coremtl.Task(name, "classification", outputs=2) for name in ("count", "large", "hollow")]
settings = {"epochs": EPOCHS, "batch_size": BATCH_SIZE, "learning_rate": LEARNING_RATE}

results, seconds = {}, {}
for method in ("core-mtl", "ew", "pcgrad"):
    start = time.perf_counter()
    results[method] = coremtl.train(
        method, backbone, tasks, train, val_data=val, test_data=target, seed=SEED, **settings
    )
    seconds[method] = time.perf_counter() - start

print(f"{'method':>9} {'split':>7}" + "".join(f"{t.name:>8}" for t in tasks))
for method, result in results.items():
    for split, metrics in (("val", result.val), ("target", result.test)):
        row = "".join(f"{metrics[f'{t.name}/accuracy']:8.3f}" for t in tasks)
        print(f"{method:>9} {split:>7}{row}")
print("seconds:", {k: round(v, 1) for k, v in seconds.items()})

# %% [markdown]
# The CORE-MTL run logged its terms every step; the epoch means show the stages switching on
# (reconstruction from epoch 0, CKA and CFA from epoch 2). The logged CKA is the raw debiased
# estimate; the penalty minimised is its positive part.

# %%
history = results["core-mtl"].history
for record in history:
    terms = {k[5:]: round(v, 4) for k, v in record["train"].items() if k.startswith("term/")}
    print(record["epoch"], "tasks" if record["tasks_active"] else "     ", terms)

# %% [markdown]
# ## What the heads read: how much colour is left in it
#
# A linear probe (least squares on one-hot colours, fitted on the training split, scored on the
# target split) reads the colour from the pooled features the heads see: the backbone output for
# EW and PCGrad, the semantic stream $Z_s$ for CORE-MTL. Chance is 0.25.

# %%


def pooled_features(result, images: torch.Tensor) -> torch.Tensor:
    model = result.model.eval()
    with torch.no_grad():
        forward = model(images)
    features = forward.z_s if forward.z_s is not None else forward.shared
    return features.mean(dim=(2, 3))


def colour_probe(result) -> float:
    design = [
        torch.nn.functional.pad(pooled_features(result, s["x"]), (0, 1), value=1.0)
        for s in (train, target)
    ]
    onehot = torch.nn.functional.one_hot(train["colour"], 4).float()
    weights = torch.linalg.lstsq(design[0], onehot).solution
    return float(((design[1] @ weights).argmax(dim=1) == target["colour"]).float().mean())


probes = {method: colour_probe(result) for method, result in results.items()}
print("colour probe accuracy on the target split:", {k: round(v, 3) for k, v in probes.items()})

# %% [markdown]
# ## What CFA trains on: the decoder's images
#
# CFA scores the heads on decoded images $\hat x = \mathrm{dec}(Z_s(i), Z_r(\pi(i)))$ against the
# labels of $i$. Those labels are only right if the decoder draws what the tasks see. The same
# heads scored on the decoder's plain reconstructions $\mathrm{dec}(Z_s(i), Z_r(i))$ of the target
# images tell how much of each task the decoded images keep.

# %%
core = results["core-mtl"].model.eval()
with torch.no_grad():
    streams = core(target["x"])
    redrawn = core(core.decode(streams.z_s, streams.z_r)).predictions
on_reconstructions = {
    t.name: float((redrawn[t.name].argmax(dim=1) == target[t.name]).float().mean()) for t in tasks
}
print(
    "CORE-MTL heads on its reconstructions:",
    {k: round(v, 3) for k, v in on_reconstructions.items()},
)

# %% [markdown]
# ## Reading the result
#
# In the run recorded with this notebook (seed 0, 8 epochs, CPU, the library's defaults: CKA 0.01,
# CFA 0.1):
#
# * all three methods learn `large` and `hollow` on the source (validation accuracy about 0.97
#   for `hollow`, the colour agreeing with it 97.6% of the time there), and all three fall to
#   about 0.51-0.53 on `hollow` in the target, where the colour agrees with it by chance: each
#   reads the colour shortcut, CORE-MTL at its default weights included;
# * the probe reads the colour from CORE-MTL's $Z_s$ at least as well as from the EW and PCGrad
#   features (0.80 against 0.73 and 0.73): the CKA penalty decorrelates the pooled streams, yet
#   the colour stays in $Z_s$, as the shortcut suite of `coremtl verify` (study 9) finds on every
#   benchmark;
# * CORE-MTL is clearly worse on `count` (about 0.71 against 0.86 on the target). The heads
#   scored on the decoder's own reconstructions say why: there `count` is read correctly only
#   about 57% of the time, so CFA trains `count` on decoded images that mostly lost the second
#   square, against labels that say it is there. A decoder too weak for a task turns CFA into
#   label noise for that task.
#
# The point of the notebook is the workflow: one call per method on the same backbone, the
# method's defaults, and measurements that show where it helps or not. The question of when
# CORE-MTL beats gradient balancing is answered by the regime map of `coremtl verify`.

# %%
key_numbers = {
    "seed": SEED,
    "shortcut": SHORTCUT,
    "sizes": SIZES,
    "backbone_checksum": backbone_checksum,
    "settings": settings,
    "agreement": agreement,
    "metrics": {m: {"val": r.val, "test": r.test} for m, r in results.items()},
    "colour_probe": probes,
    "on_reconstructions": on_reconstructions,
    "seconds": seconds,
}
print("KEY_NUMBERS " + json.dumps(key_numbers))
