#!/usr/bin/env python3
"""Compares the per-sequence relevance shares of two `segrel analyze` runs (relevance.json, e.g. CPU and CUDA).

    compare_relevance.py CPU/relevance.json CUDA/relevance.json [TOLERANCE]

Prints the combined and per-class shares side by side, the voxel counts, Dice and stage times, and a verdict:
AGREE when no share differs by more than TOLERANCE (default 0.01), exit status 0; else DIFFER, exit status 1.
Only the standard library (runs with any python3).
"""
import json
import math
import sys


def main() -> int:
    if len(sys.argv) not in (3, 4):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    a_path, b_path = sys.argv[1], sys.argv[2]
    tolerance = float(sys.argv[3]) if len(sys.argv) == 4 else 0.01
    with open(a_path) as f:
        a = json.load(f)
    with open(b_path) as f:
        b = json.load(f)
    da, db = a.get("device", "a"), b.get("device", "b")
    print(f"{a_path} ({da}, {a.get('threads')} threads) vs {b_path} ({db}, {b.get('threads')} threads)")
    worst = 0.0

    def compare(label, sa, sb):
        nonlocal worst
        print(label)
        print(f"  {'sequence':10s} {da:>9s} {db:>9s} {'|diff|':>9s}")
        for name in sorted(set(sa) | set(sb), key=lambda n: list(sa).index(n) if n in sa else len(sa)):
            x, y = sa.get(name, math.nan), sb.get(name, math.nan)
            d = abs(x - y)
            worst = max(worst, d) if not math.isnan(d) else math.inf
            print(f"  {name:10s} {x:9.5f} {y:9.5f} {d:9.2e}")

    compare("sequence_relevance (combined)", a["sequence_relevance"], b["sequence_relevance"])
    for ca, cb in zip(a.get("classes", []), b.get("classes", [])):
        print(f"class {ca['name']}: predicted voxels {ca['predicted_voxels']} vs {cb['predicted_voxels']}, "
              f"region {ca['region_voxels']} vs {cb['region_voxels']}, "
              f"excluded {ca['excluded_voxels']} vs {cb['excluded_voxels']}")
        compare(f"class {ca['name']} sequence_relevance", ca["sequence_relevance"], cb["sequence_relevance"])
    print(f"ranking: {a['sequence_ranking']} vs {b['sequence_ranking']}")
    if "reference" in a and "reference" in b:
        print(f"Dice with the reference: {a['reference']['dice']:.5f} vs {b['reference']['dice']:.5f}")
    if "lesions" in a and "lesions" in b:
        print(f"lesions explained: {len(a['lesions'])} vs {len(b['lesions'])}")
    sa, sb = a.get("seconds", {}), b.get("seconds", {})
    if sa and sb:
        print(f"seconds ({da} / {db}): " + ", ".join(f"{k} {sa[k]:.2f}/{sb.get(k, math.nan):.2f}" for k in sa))
    verdict = "AGREE" if worst <= tolerance else "DIFFER"
    print(f"{da} vs {db} relevance shares: {verdict} (largest |difference| {worst:.2e}, tolerance {tolerance})")
    return 0 if verdict == "AGREE" else 1


if __name__ == "__main__":
    sys.exit(main())
