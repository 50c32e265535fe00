"""How the ink head's composite reads its matte: each (sharpness, threshold) draws ink with
coverage sigmoid(sharpness * (logit - threshold)); (1, 0) is the plain sigmoid. Each variant
is the same checkpoint with its matte conv rescaled so that the network's own composite
(sigmoid(logit - network.MATTE_THRESHOLD)) computes that, then scored by `animeedge quality`
(line F-score, flicker and the face measures at full size and at app scale, in torch).

    python experiments/matte_threshold.py --photos SELECTION/ --n 100 [--model CKPT]
        [--variants 1,0 1,1 1,2 2,2 2,2.5 3,2]
    python experiments/matte_threshold.py --variants 1,0 --keep runs/matte  # only write the variants

Choose on photos the checkpoint did not train on (not photos/calib: the held-out set reports).
"""
import argparse
import tempfile
from pathlib import Path

from animeedge import quality
from animeedge.generator.checkpoint import load_generator, save_generator
from animeedge.generator.network import MATTE_THRESHOLD, rescale_matte_logit


def with_matte(model, sharpness: float, threshold: float):
    """`model` (an ink head) whose composite draws sigmoid(sharpness * (logit - threshold)) of
    its own matte logit: the logit z (the matte conv's fourth channel, plus the photo path's
    where there is one) becomes sharpness * (z - threshold) + MATTE_THRESHOLD."""
    if model.cfg.head != "ink":
        raise SystemExit("an ink-head checkpoint is needed")
    return rescale_matte_logit(model, sharpness, MATTE_THRESHOLD - sharpness * threshold)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="an ink-head checkpoint (default: the embedded default)")
    parser.add_argument("--photos", default=None, help="portraits to choose on (default: photos/calib)")
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--videos", type=int, default=1)
    parser.add_argument("--variants", nargs="+", default=["1,0", "1,1", "1,2", "1,2.3", "2,1", "2,1.5", "2,2",
                                                          "2,2.3", "2,2.5", "3,2", "3,2.5"])
    parser.add_argument("--json", default=None)
    parser.add_argument("--keep", default=None, help="write the variants' checkpoints here and score nothing")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.keep or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        models = []
        for variant in args.variants:
            sharpness, threshold = map(float, variant.split(","))
            path = folder / f"sharpness{sharpness:g}_threshold{threshold:g}.safetensors"
            save_generator(with_matte(load_generator(args.model), sharpness, threshold), path,
                           {"matte": {"sharpness": sharpness, "threshold": threshold}})
            models.append(str(path))
        if args.keep:
            print("\n".join(models))
        else:
            quality.run(models, args.photos, None, args.n, args.videos, json_path=args.json)


if __name__ == "__main__":
    main()
