#!/usr/bin/python3
"""Reproducible training recipe for segrel's two bundled 3D U-Net models.

    /usr/bin/python3 tools/train/train_unet.py --bundle ms-flair4  --seed 0
    /usr/bin/python3 tools/train/train_unet.py --bundle brats-2seq --seed 0

Writes models/<bundle>/{model.pt, segrel.json, LICENSE.txt} (and, for ms-flair4, the Python
sliding-window segmentation of the held-out patient 19 that segrel's C++ tests compare against).

Choices
-------
* PyTorch / Python: Debian's python3-torch (1.13, CPU) is allowed for *training* only. segrel itself
  never runs Python at serving time: it loads the exported TorchScript file (model.pt) with libtorch
  and reimplements normalisation and sliding-window inference in C++. This script therefore also
  holds the reference implementation of both (``normalise_*`` and ``sliding_window``), and the
  evaluation uses exactly that code path.
* Architecture: a deliberately small 3D U-Net (3 resolution levels, 8/16/32 features, two
  conv3x3x3 + BatchNorm3d + ReLU per block, ConvTranspose3d(2, 2) upsampling, skips by torch.cat,
  1x1x1 conv to K logits, no softmax). BatchNorm rather than instance norm so that the frozen model
  folds the normalisation into the convolutions. Small enough for a < 3 MB bundle, fast CPU
  inference and LRP.
* Data: tiny public sets (ms-lesjak: 2 training patients; brats2015: 2 training cases). Random 64^3
  patches, about half centred on a foreground voxel, random flips along all three axes, loss =
  cross-entropy + (1 - soft Dice of the foreground class, computed over the whole batch), Adam
  lr 1e-3 with polynomial decay (power 0.9). The final iterate is exported: no model selection on the
  held-out cases, which are only used once, for the reported Dice.
* Reproducibility: torch.manual_seed + numpy Generator(seed), 2 threads (the machine is shared),
  torch.use_deterministic_algorithms(True). Re-running with the same seed, thread count and machine
  gives the same weights; other CPUs / libraries may differ in the last bits.

Tensor axes: the NIfTI voxel order (i, j, k) exactly as nibabel's get_fdata() returns it; a study
of C sequences is the tensor [1, C, i, j, k].
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("MKL_NUM_THREADS", "2")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")

import argparse
import json
import math
import sys
import time

import nibabel as nib
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# --------------------------------------------------------------------------------------------
# Bundle definitions
# --------------------------------------------------------------------------------------------

BUNDLES = {
    "ms-flair4": {
        "description": "Multiple-sclerosis white-matter lesion segmentation from co-registered, "
                       "skull-stripped T1, contrast-enhanced T1, T2 and FLAIR (1 mm, MNI space).",
        "subdir": "ms-lesjak",
        "sequences": [  # (name, file stem, description)
            ("T1", "T1", "T1-weighted"),
            ("T1POST", "T1POST", "contrast-enhanced T1-weighted"),
            ("T2", "T2", "T2-weighted"),
            ("FLAIR", "FLAIR", "T2-weighted FLAIR"),
        ],
        "normalisation": "zscore-nonzero",
        "label": "GOLD_STANDARD",
        "classes": ["background", "lesion"],
        "reference_sequence": "FLAIR",
        "train": ["patient07", "patient26"],
        "eval": ["patient19"],
        "patch_size": 128,
        "iterations": 2500,
        "data": "ms-lesjak: Lesjak Z, Galimzianova A, Koren A, Lukin M, Pernus F, Likar B, Spiclin Z. "
                "A novel public MR image dataset of multiple sclerosis patients with lesion "
                "segmentations based on multi-rater consensus. Neuroinformatics 16(1):51-63, 2018 "
                "(online 2017), doi:10.1007/s12021-017-9348-7. Files from GitHub "
                "muschellij2/open_ms_data, cross_sectional/MNI (commit ab6737647be9).",
        "license": "CC-BY (Creative Commons Attribution; the dataset states no version)",
        "reference_case": "patient19",
    },
    "brats-2seq": {
        "description": "Brain-tumour (whole tumour) segmentation from FLAIR and contrast-enhanced T1 "
                       "that are already z-scored inside the brain (1 mm); trained on BraTS 2015 data, "
                       "licensed CC BY-NC-SA 3.0: non-commercial use only.",
        "subdir": "brats2015",
        "sequences": [
            ("FLAIR", "Flair_subtrMeanDivStd", "T2-weighted FLAIR, z-scored inside the brain"),
            ("T1c", "T1c_subtrMeanDivStd", "contrast-enhanced T1-weighted, z-scored inside the brain"),
        ],
        "normalisation": "none",
        "label": "OTMultiClass",
        "classes": ["background", "tumour"],
        "reference_sequence": "FLAIR",
        "train": ["brats_2013_pat0003_1", "brats_2013_pat0004_1"],
        "eval": ["brats_2013_pat0005_1", "brats_2013_pat0006_1"],
        "patch_size": 128,
        "iterations": 2500,
        "data": "brats2015: BraTS 2015 training cases (brats_2013_pat0003..0006) as prepared by the "
                "DeepMedic project (GitHub deepmedic/deepmedic, examples/dataForExamples/"
                "brats2015TrainingData, commit 04b6ea41d65e). Menze BH et al. The Multimodal Brain "
                "Tumor Image Segmentation Benchmark (BRATS). IEEE Trans Med Imaging 34(10):1993-2024, "
                "2015, doi:10.1109/TMI.2014.2377694; Kamnitsas K et al. Efficient multi-scale 3D CNN "
                "with fully connected CRF for accurate brain lesion segmentation. Med Image Anal "
                "36:61-78, 2017 (DeepMedic).",
        "license": "CC BY-NC-SA 3.0 (non-commercial use only)",
        "reference_case": None,
    },
}

TRAIN_PATCH = 64
BATCH = 2
LR = 1e-3

# --------------------------------------------------------------------------------------------
# Normalisation (reimplemented exactly in segrel's C++)
# --------------------------------------------------------------------------------------------


def normalise_zscore_nonzero(x):
    """'zscore-nonzero': N = voxels whose raw value != 0; mu, sigma = mean and population std
    (ddof=0) over N in float64; (x - mu) / sigma on N (in float64, then cast to float32), exactly 0
    elsewhere."""
    x64 = np.asarray(x, dtype=np.float64)
    nz = x64 != 0
    vals = x64[nz]
    mu = vals.mean()
    sigma = vals.std()  # ddof=0
    out = np.zeros(x64.shape, dtype=np.float32)
    out[nz] = ((vals - mu) / sigma).astype(np.float32)
    return out


def normalise(x, method):
    if method == "zscore-nonzero":
        return normalise_zscore_nonzero(x)
    if method == "none":
        return np.asarray(x, dtype=np.float32)
    raise ValueError(method)


def load_case(cfg, data_root, case):
    """Returns (image float32 [C, i, j, k] normalised, label uint8 [i, j, k] {0,1}, FLAIR-like
    reference NIfTI image)."""
    d = os.path.join(data_root, cfg["subdir"], case)
    chans = []
    ref = None
    for name, stem, _ in cfg["sequences"]:
        img = nib.load(os.path.join(d, stem + ".nii.gz"))
        if name == cfg["reference_sequence"]:
            ref = img
        chans.append(normalise(img.get_fdata(dtype=np.float64), cfg["normalisation"]))
    lab = nib.load(os.path.join(d, cfg["label"] + ".nii.gz")).get_fdata()
    lab = (lab > 0).astype(np.uint8)
    return np.stack(chans, 0), lab, ref


# --------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------


class Block(nn.Sequential):
    def __init__(self, cin, cout):
        super().__init__(
            nn.Conv3d(cin, cout, 3, padding=1), nn.BatchNorm3d(cout), nn.ReLU(inplace=True),
            nn.Conv3d(cout, cout, 3, padding=1), nn.BatchNorm3d(cout), nn.ReLU(inplace=True),
        )


class UNet3D(nn.Module):
    """3 resolution levels (two 2x2x2 max-poolings), features 8/16/32, logits output."""

    def __init__(self, in_channels, num_classes, base=8):
        super().__init__()
        f1, f2, f3 = base, 2 * base, 4 * base
        self.enc1 = Block(in_channels, f1)
        self.pool1 = nn.MaxPool3d(2)
        self.enc2 = Block(f1, f2)
        self.pool2 = nn.MaxPool3d(2)
        self.bottom = Block(f2, f3)
        self.up2 = nn.ConvTranspose3d(f3, f2, 2, stride=2)
        self.dec2 = Block(2 * f2, f2)
        self.up1 = nn.ConvTranspose3d(f2, f1, 2, stride=2)
        self.dec1 = Block(2 * f1, f1)
        self.head = nn.Conv3d(f1, num_classes, 1)

    def forward(self, x):
        e1 = self.enc1(x)
        e2 = self.enc2(self.pool1(e1))
        b = self.bottom(self.pool2(e2))
        d2 = self.dec2(torch.cat([self.up2(b), e2], 1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], 1))
        return self.head(d1)


ARCHITECTURE = ("3D U-Net: 3 resolution levels (two 2x2x2 max-poolings), features 8/16/32, per block "
                "2x [Conv3d 3x3x3 padding 1 + BatchNorm3d + ReLU], ConvTranspose3d(kernel 2, stride 2) "
                "upsampling, skip connections by concatenation, final 1x1x1 Conv3d to K classes, "
                "output = logits (no softmax)")

# --------------------------------------------------------------------------------------------
# Sliding-window inference (reimplemented exactly in segrel's C++)
# --------------------------------------------------------------------------------------------


def window_starts(size, p):
    """Positions from 0 in steps of p/2; the last window is flush with the end (start = size - p).
    size >= p (smaller dimensions are zero-padded to p first)."""
    step = p // 2
    starts = list(range(0, size - p, step))
    starts.append(size - p)
    return starts


def gaussian_weights(p, sigma_fraction=0.125):
    """exp(-d^2 / (2 sigma^2)), sigma = p * sigma_fraction, d = distance of voxel index n to the
    patch centre (p - 1) / 2, product over the three axes, normalised to max 1."""
    n = np.arange(p, dtype=np.float64)
    d = n - (p - 1) / 2.0
    sigma = p * sigma_fraction
    g = np.exp(-(d * d) / (2.0 * sigma * sigma))
    w = g[:, None, None] * g[None, :, None] * g[None, None, :]
    w /= w.max()
    return w.astype(np.float32)


@torch.no_grad()
def sliding_window(model, image, p, sigma_fraction=0.125):
    """image float32 [C, i, j, k] -> (weighted-average logits float32 [K, i, j, k], argmax uint8).
    Dimensions smaller than p are zero-padded at the high end to p and cropped back."""
    c = image.shape[0]
    shape = image.shape[1:]
    padded = tuple(max(s, p) for s in shape)
    if padded != tuple(shape):
        img = np.zeros((c,) + padded, dtype=np.float32)
        img[:, :shape[0], :shape[1], :shape[2]] = image
    else:
        img = image
    w = torch.from_numpy(gaussian_weights(p, sigma_fraction))
    acc = None
    wsum = torch.zeros(padded, dtype=torch.float32)
    for a in window_starts(padded[0], p):
        for b in window_starts(padded[1], p):
            for cc in window_starts(padded[2], p):
                x = torch.from_numpy(np.ascontiguousarray(img[:, a:a + p, b:b + p, cc:cc + p]))[None]
                y = model(x)[0]
                if acc is None:
                    acc = torch.zeros((y.shape[0],) + padded, dtype=torch.float32)
                acc[:, a:a + p, b:b + p, cc:cc + p] += y * w
                wsum[a:a + p, b:b + p, cc:cc + p] += w
    logits = acc / wsum
    logits = logits[:, :shape[0], :shape[1], :shape[2]].contiguous()
    seg = torch.argmax(logits, 0).to(torch.uint8).numpy()
    return logits.numpy(), seg


def dice(seg, gt):
    a = seg > 0
    b = gt > 0
    denom = a.sum() + b.sum()
    return 1.0 if denom == 0 else float(2.0 * np.logical_and(a, b).sum() / denom)


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------


def sample_batch(cases, rng, batch, p):
    xs, ys = [], []
    for _ in range(batch):
        img, lab, fg = cases[rng.integers(len(cases))]
        shape = np.array(lab.shape)
        if rng.random() < 0.5 and len(fg) > 0:
            centre = fg[rng.integers(len(fg))]
            lo = centre - p // 2
        else:
            lo = np.array([rng.integers(0, s - p + 1) for s in shape])
        lo = np.clip(lo, 0, shape - p)
        sl = tuple(slice(int(l), int(l) + p) for l in lo)
        x = img[(slice(None),) + sl]
        y = lab[sl]
        for ax in range(3):
            if rng.random() < 0.5:
                x = np.flip(x, ax + 1)
                y = np.flip(y, ax)
        xs.append(np.ascontiguousarray(x))
        ys.append(np.ascontiguousarray(y))
    return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys).astype(np.int64))


def loss_fn(logits, target):
    ce = F.cross_entropy(logits, target)
    prob = torch.softmax(logits, 1)[:, 1]
    g = (target == 1).float()
    inter = (prob * g).sum()
    soft_dice = (2.0 * inter + 1.0) / (prob.sum() + g.sum() + 1.0)
    return ce + (1.0 - soft_dice), ce.item(), soft_dice.item()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bundle", required=True, choices=sorted(BUNDLES))
    ap.add_argument("--data", default="/work/shared/data")
    ap.add_argument("--out", default=None, help="default: models/<bundle> in the repository")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--iterations", type=int, default=None, help="default: the bundle's recipe value")
    args = ap.parse_args()

    cfg = BUNDLES[args.bundle]
    iterations = args.iterations if args.iterations is not None else cfg["iterations"]
    out = args.out or os.path.join(REPO, "models", args.bundle)
    os.makedirs(out, exist_ok=True)

    torch.set_num_threads(2)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    try:
        torch.use_deterministic_algorithms(True)
        deterministic = True
    except Exception as e:  # pragma: no cover
        print("warning: deterministic algorithms unavailable:", e)
        deterministic = False

    def log(*a):
        print(*a, flush=True)

    log(f"bundle {args.bundle}: torch {torch.__version__}, threads {torch.get_num_threads()}, "
        f"deterministic {deterministic}, seed {args.seed}, iterations {iterations}")

    # ---- data
    train_cases = []
    lo_hi = [[math.inf, -math.inf] for _ in cfg["sequences"]]
    for case in cfg["train"]:
        img, lab, _ = load_case(cfg, args.data, case)
        for ci in range(img.shape[0]):
            lo_hi[ci][0] = min(lo_hi[ci][0], float(img[ci].min()))
            lo_hi[ci][1] = max(lo_hi[ci][1], float(img[ci].max()))
        fg = np.argwhere(lab > 0)
        train_cases.append((img, lab, fg))
        log(f"  train {case}: shape {img.shape}, foreground voxels {len(fg)}")

    # ---- model
    C = len(cfg["sequences"])
    K = len(cfg["classes"])
    model = UNet3D(C, K)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"  model: {n_params} parameters")
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda it: (1.0 - it / iterations) ** 0.9)

    # ---- train
    model.train()
    t0 = time.time()
    run_ce = run_dice = 0.0
    for it in range(1, iterations + 1):
        x, y = sample_batch(train_cases, rng, BATCH, TRAIN_PATCH)
        opt.zero_grad(set_to_none=True)
        logits = model(x)
        loss, ce, sd = loss_fn(logits, y)
        loss.backward()
        opt.step()
        sched.step()
        run_ce += ce
        run_dice += sd
        if it % 25 == 0 or it == iterations:
            n = 25 if it % 25 == 0 else it % 25
            el = time.time() - t0
            log(f"  it {it:5d}/{iterations}  ce {run_ce / n:.4f}  soft-dice {run_dice / n:.4f}  "
                f"lr {sched.get_last_lr()[0]:.2e}  {el:7.1f}s  (eta {el / it * (iterations - it):6.0f}s)")
            run_ce = run_dice = 0.0
    train_seconds = time.time() - t0
    log(f"  training wall time {train_seconds:.1f}s")
    del train_cases

    # ---- export (eval mode, traced on a zero input of the bundle's patch size)
    model.eval()
    P = cfg["patch_size"]
    with torch.no_grad():
        traced = torch.jit.trace(model, torch.zeros(1, C, P, P, P))
    model_path = os.path.join(out, "model.pt")
    traced.save(model_path)
    reloaded = torch.jit.load(model_path)
    reloaded.eval()
    with torch.no_grad():
        gen = torch.Generator().manual_seed(1234)
        xr = torch.randn(1, C, P, P, P, generator=gen)
        diff = (reloaded(xr) - model(xr)).abs().max().item()
    log(f"  exported {model_path}: reload max |diff| on random input {diff:.2e}")
    if not diff <= 1e-5:
        sys.exit("error: TorchScript export does not reproduce the eager model")

    # ---- honest evaluation on the held-out cases, with the exported model and segrel's method
    t1 = time.time()
    fg_name = cfg["classes"][1]
    dices = {}
    for case in cfg["eval"]:
        img, lab, ref = load_case(cfg, args.data, case)
        _, seg = sliding_window(reloaded, img, P)
        dices[case] = dice(seg, lab)
        log(f"  eval {case}: Dice({fg_name}) = {dices[case]:.4f}  "
            f"(predicted {int((seg > 0).sum())}, reference {int(lab.sum())} voxels)")
        if case == cfg["reference_case"]:
            ref_path = os.path.join(out, f"reference_segmentation_{case}.nii.gz")
            hdr = ref.header.copy()
            hdr.set_data_dtype(np.uint8)
            nimg = nib.Nifti1Image(seg.astype(np.uint8), ref.affine, hdr)
            nimg.header.set_slope_inter(1, 0)
            nib.save(nimg, ref_path)
            log(f"  wrote {ref_path}")
    mean_dice = float(np.mean(list(dices.values())))
    eval_seconds = time.time() - t1
    log(f"  evaluation wall time {eval_seconds:.1f}s")

    # ---- bundle metadata
    seqs = []
    for (name, _, desc), (lo, hi) in zip(cfg["sequences"], lo_hi):
        seqs.append({"name": name, "description": desc, "normalisation": cfg["normalisation"],
                     "range": [round(lo, 6), round(hi, 6)]})
    dice_json = {case: round(v, 4) for case, v in dices.items()}
    dice_json["mean"] = round(mean_dice, 4)
    meta = {
        "format": "segrel.bundle/1",
        "name": args.bundle,
        "version": "1.0.0",
        "description": cfg["description"],
        "model": "model.pt",
        "sequences": seqs,
        "reference_sequence": cfg["reference_sequence"],
        "classes": cfg["classes"],
        "patch_size": [P, P, P],
        "overlap": 0.5,
        "gaussian_sigma_fraction": 0.125,
        "composite": "epsilon-plus",
        "training": {
            "data": cfg["data"],
            "license": cfg["license"],
            "cases": cfg["train"],
            "recipe": f"/usr/bin/python3 tools/train/train_unet.py --bundle {args.bundle} "
                      f"--seed {args.seed}"
                      + (f" --iterations {iterations}" if iterations != cfg["iterations"] else ""),
            "seed": args.seed,
            "iterations": iterations,
            "seconds": round(train_seconds, 1),
            "architecture": ARCHITECTURE,
            "parameters": n_params,
        },
        "evaluation": {
            "cases": cfg["eval"],
            "dice": {fg_name: dice_json},
            "method": f"sliding window over the whole held-out volume with the exported model.pt: "
                      f"{P}^3 patches (dimensions smaller than {P} zero-padded at the high end and "
                      f"cropped back), starts 0, {P // 2}, {P}, ... along each axis plus a last window "
                      f"flush with the end (size - {P}), Gaussian weights exp(-d^2/(2 sigma^2)) with "
                      f"sigma = {P}/8 and d = distance to the patch centre (P-1)/2, product over axes, "
                      f"normalised to max 1; weighted average of the logits, argmax; Dice of the "
                      f"'{fg_name}' class against label > 0",
        },
    }
    with open(os.path.join(out, "segrel.json"), "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")
    log(f"  wrote {os.path.join(out, 'segrel.json')}")
    log(f"FINAL Dice({fg_name}): " + ", ".join(f"{k} {v:.4f}" for k, v in dices.items())
        + f", mean {mean_dice:.4f}; training {train_seconds:.1f}s, evaluation {eval_seconds:.1f}s")


if __name__ == "__main__":
    main()
