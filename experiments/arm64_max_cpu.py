"""Where the emulated `max` CPU's wrong int8 output comes from: a bundle's ONNX/TFLite files
(int8 by default) on qemu's `max` CPU (SVE, SVE2 and SME) with SVE or SME switched off in
turn, against the same file on this x86 host (the comparison of `animeedge verify`; nothing
recorded).

    python experiments/arm64_max_cpu.py --bundle demo_out/bundle [--precisions int8,fp32] [--json FILE]

Needs `make arm64`. In qemu 7.2, sve=off also turns SME off.
"""
import argparse
import json
from pathlib import Path


from animeedge.verify import verify

VARIANTS = ("max", "max,sve=off", "max,sme=off", "max,sve=off,sme=off", "max,sve-default-vector-length=16")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bundle", required=True)
    p.add_argument("--precisions", default="int8")
    p.add_argument("--json")
    args = p.parse_args()
    rows = verify(args.bundle, VARIANTS, record=False, precisions=args.precisions.split(","))
    print(f"{'file':<36} {'-cpu':<34} {'max abs':>9} {'PSNR dB':>8}  result")
    for r in rows:
        print(f"{r['file']:<36} {r['cpu']:<34} {r['max_abs_error']:>9.2g} {r['psnr_db']:>8.1f}  {r['result']}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
