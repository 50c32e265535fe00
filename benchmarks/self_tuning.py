"""Self-tuning on first use, measured: for each width and resolution of a bundle, what
`load(precision="auto")` picks in its one-second budget (fresh cache), what that first use
costs, and how the pick compares with the fastest runnable file measured at length (end to
end on a 640x480 frame, the best of 3 medians of 30 runs, the same quality floor).

    python benchmarks/self_tuning.py BUNDLE [--threads 2] [--json benchmarks/self_tuning.json]

The goal: the pick within 10% of the fastest, the first use under 1.5 s.
"""
import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from animeedge.runtimes import autotune
from animeedge.runtimes.bench import best_median_ms
from animeedge.runtimes.load import load
from animeedge.runtimes.machine import describe, machine
from animeedge.runtimes.manifest import load_manifest


def _frame() -> np.ndarray:
    return np.asarray(np.random.default_rng(0).integers(0, 256, (480, 640, 3)), dtype=np.uint8)


def measure(bundle: Path, width: float, resolution: int, threads) -> dict:
    manifest = load_manifest(bundle)
    start = time.perf_counter()
    picked = load(bundle, width, resolution, "auto", "auto", threads)
    first_use_s = time.perf_counter() - start
    frame, timings = _frame(), {}
    for a in autotune.candidates(manifest, width, resolution):
        stylizer = load(bundle, width, resolution, a["format"], a["precision"], threads)
        timings[f"{a['format']}/{a['precision']}"] = best_median_ms(lambda: stylizer(frame), runs=30)
    entry = next(e for e in json.loads(autotune.cache_file().read_text()).values()
                 if (e["width"], e["resolution"]) == (width, resolution))
    passed = {k: t for k, t in timings.items() if entry["results"][k]["passed"]}
    fastest = min(passed, key=passed.get)
    pick = f"{picked.backend}/{picked.precision}"
    return {"width": width, "resolution": resolution, "first_use_s": round(first_use_s, 2), "pick": pick,
            "fastest": fastest, "pick_ms": timings[pick], "fastest_ms": timings[fastest],
            "pick_over_fastest": round(timings[pick] / timings[fastest], 3), "e2e_ms": timings,
            "tuning_results": entry["results"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    manifest = load_manifest(args.bundle)
    pairs = sorted({(a["width"], a["resolution"]) for a in manifest["artifacts"]})
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        os.environ[autotune.CACHE_ENV] = cache  # every first use is a first use
        for width, resolution in pairs:
            rows.append(measure(args.bundle, width, resolution, args.threads))
            r = rows[-1]
            print(f"width {width} {resolution} px: picked {r['pick']} {r['pick_ms']} ms in {r['first_use_s']} s; "
                  f"fastest {r['fastest']} {r['fastest_ms']} ms; pick/fastest {r['pick_over_fastest']}")
    report = {"machine": machine(), "machine_line": describe(machine()), "threads": args.threads, "rows": rows}
    print(report["machine_line"])
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
