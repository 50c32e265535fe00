"""`animeedge verify`: every ONNX and TFLite file of a bundle, run by the real aarch64 build of
its runtime under qemu (animeedge/arm64.py) on fixed frames, against the same file run here.

Pass: fp32 within FP32_MAX_ABS of this host's output; int8 and fp16 bit-exact, or at least
MIN_PSNR_DB where ARM kernels legitimately round differently (said as "rounds differently").
Each passing CPU is recorded in the manifest under the artifact's `verified_on` (CPU model,
runtime versions, errors); the manifest is rewritten atomically and stays schema-valid.

No Core ML runtime runs on Linux: each Core ML file is run by the reference evaluator
(runtimes/coreml_reference.py: its graph and weights in numpy) on the same frames and held
to COREML_FLOORS_DB against the bundle's fp32 ONNX (else TFLite) file of its width and
resolution, run here; on a Mac, by Core ML itself (MLModel.predict) as well. Apple's kernels
and the Neural Engine's placement can only be checked there.
"""
import json
import tempfile
from pathlib import Path

import numpy as np

from animeedge.runtimes.arm64_worker import LOADERS, run_job
from animeedge.runtimes.backends import SESSIONS
from animeedge.runtimes.atomic import write_text
from animeedge.runtimes.backends import dequantize, quantize
from animeedge.runtimes.errors import UserError
from animeedge.runtimes.formats import runs_here
from animeedge.runtimes.manifest import MANIFEST, load_manifest, validate, verify_artifact
from animeedge.runtimes.opset import check_ops

from .arm64 import CACHE, WORKER, run_emulated

FP32_MAX_ABS, MIN_PSNR_DB = 1e-4, 45.0
COREML_FLOORS_DB = {"fp32": 100.0, "fp16": 60.0, "int8w": 40.0, "int8": 30.0}  # against fp32 ONNX / TFLite
REFERENCE = "reference evaluator"
DEFAULT_CPUS = ("cortex-a53", "cortex-a76", "neoverse-n1")
EMULATOR = "qemu-user 7.2"


def fixed_frames(resolution: int, n: int = 2) -> np.ndarray:
    """n deterministic pictures, NCHW float32 in [-1, 1]: smooth colour fields with edges
    (seeded), so every layer sees real dynamic range."""
    import cv2
    rng = np.random.default_rng(resolution)
    frames = []
    for _ in range(n):
        coarse = rng.uniform(-1, 1, (6, 6, 3)).astype(np.float32)
        smooth = cv2.resize(coarse, (resolution, resolution), interpolation=cv2.INTER_CUBIC)
        edges = np.sign(cv2.resize(rng.uniform(-1, 1, (12, 12)).astype(np.float32), (resolution,) * 2,
                                   interpolation=cv2.INTER_NEAREST))[..., None]
        frames.append(np.clip(0.7 * smooth + 0.3 * edges, -1, 1).transpose(2, 0, 1))
    return np.stack(frames)


def _prepare(artifact: dict, frames: np.ndarray) -> np.ndarray:
    x = frames.transpose(0, 2, 3, 1) if artifact["input"]["layout"] == "NHWC" else frames
    return quantize(np.ascontiguousarray(x, np.float32), artifact["input"].get("quantization"))


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b) ** 2))
    return min(10 * np.log10(4.0 / mse), 999.0) if mse else 999.0  # values span [-1, 1]


def _compare(artifact: dict, reference: np.ndarray, emulated: np.ndarray) -> dict:
    q = artifact["output"].get("quantization")
    a, b = (dequantize(y, q).astype(np.float64) for y in (reference, emulated))
    if a.shape != b.shape:
        return {"max_abs_error": float("inf"), "psnr_db": 0.0, "result": f"failed: shape {b.shape} != {a.shape}"}
    error, psnr = float(np.abs(a - b).max()), _psnr(a, b)
    if error == 0:
        result = "bit-exact"
    elif artifact["precision"] == "fp32":
        result = "within 1e-4" if error <= FP32_MAX_ABS else "failed"
    else:
        result = "rounds differently" if psnr >= MIN_PSNR_DB else "failed"
    return {"max_abs_error": error, "psnr_db": psnr, "result": result}


def _jobs(bundle: Path, artifacts: list, work: Path) -> list[dict]:
    """One job per artifact (the i-th), its fixed frames saved one per file: files fix batch 1."""
    jobs = []
    for i, artifact in enumerate(artifacts):
        inputs = []
        for k, x in enumerate(_prepare(artifact, fixed_frames(artifact["resolution"]))):
            inputs.append(str(work / f"in_{i}_{k}.npy"))
            np.save(inputs[-1], x[None])
        path = verify_artifact(bundle, artifact)
        check_ops(path, artifact["format"])  # before either machine's runtime sees the file
        jobs.append({"path": str(path.resolve()), "kind": artifact["format"], "inputs": inputs})
    return jobs


def _run_on(cpu: str, jobs: list, work: Path, cache) -> tuple[dict, list]:
    """The emulated outputs of every job on `cpu` (one array per job: its frames stacked), and
    the runtime versions it reported."""
    emulated = [dict(job, outputs=[str(work / f"{cpu}_{i}_{k}.npy") for k in range(len(job["inputs"]))])
                for i, job in enumerate(jobs)]
    job_file = work / f"{cpu}.json"
    job_file.write_text(json.dumps(emulated))
    done = run_emulated(cpu, [WORKER, job_file], cache=cache)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines or not lines[-1].startswith("{"):
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise UserError(f"the emulated runtime failed on {cpu} (exit {done.returncode}): {tail[:200]}")
    return json.loads(lines[-1]), [np.concatenate([np.load(p) for p in job["outputs"]]) for job in emulated]


def _fp32_peer(manifest: dict, artifact: dict) -> dict | None:
    """The bundle's fp32 ONNX (else TFLite) file of the artifact's width and resolution."""
    for fmt in LOADERS:
        for a in manifest["artifacts"]:
            if (a["format"], a["precision"], a["width"], a["resolution"]) == \
                    (fmt, "fp32", artifact["width"], artifact["resolution"]):
                return a
    return None


def coreml_rows(bundle: Path, manifest: dict, artifacts: list) -> list[dict]:
    """One row per Core ML file: the reference evaluator's output on the fixed frames against
    its fp32 peer's, held to the precision's floor."""
    try:
        import coremltools
        from animeedge.runtimes import coreml_reference
    except ImportError:
        return [{"file": a["file"], "precision": a["precision"], "cpu": REFERENCE, "max_abs_error": float("nan"),
                 "psnr_db": float("nan"), "result": "skipped: coremltools is not installed (the export extra)"}
                for a in artifacts]
    runtime = {"reference": "numpy " + np.__version__, "coremltools": coremltools.__version__}
    rows, peer_outputs = [], {}  # a peer serves every precision of its width: run once
    for a in artifacts:
        peer, frames = _fp32_peer(manifest, a), fixed_frames(a["resolution"])
        path = verify_artifact(bundle, a)
        check_ops(path, "coreml")
        row = {"file": a["file"], "precision": a["precision"], "cpu": REFERENCE, "runtime": runtime}
        if peer is None:
            rows.append(row | {"max_abs_error": float("nan"), "psnr_db": float("nan"),
                               "result": "skipped: no fp32 ONNX or TFLite file of this width to compare with"})
            continue
        key = (peer["file"], a["resolution"])
        if key not in peer_outputs:
            session = SESSIONS[peer["format"]](verify_artifact(bundle, peer), peer, threads=None)
            peer_outputs[key] = np.concatenate([session.run(x[None]) for x in frames])
        expected = peer_outputs[key]
        runners = {REFERENCE: lambda x: coreml_reference.evaluate(path, x)}
        if runs_here("coreml"):  # on a Mac, Apple's own kernels too (MLModel.predict)
            runners["Core ML on this Mac"] = SESSIONS["coreml"](path, a, threads=None).run
        for name, run in runners.items():
            found = np.concatenate([run(x[None]) for x in frames])
            rows.append(dict(row, cpu=name) | _against_floor(found, expected, a["precision"], peer["file"]))
    return rows


def _against_floor(found, expected, precision, peer) -> dict:
    psnr, floor = _psnr(found, expected), COREML_FLOORS_DB.get(precision, MIN_PSNR_DB)
    return {"max_abs_error": float(np.abs(found - expected).max()), "psnr_db": psnr,
            "result": f"within {floor:g} dB of {peer}" if psnr >= floor else
            f"failed: {psnr:.1f} dB from {peer}, under {floor:g} dB"}


def verify(bundle, cpus=DEFAULT_CPUS, cache=CACHE, record: bool = True, precisions=None, formats=None) -> list[dict]:
    """Rows (file, precision, cpu, max_abs_error, psnr_db, result) for every ONNX/TFLite file
    on each emulated CPU, then every Core ML file by the reference evaluator (of the given
    precisions and formats only, if any)."""
    bundle = Path(bundle)
    manifest = load_manifest(bundle)
    chosen = [a for a in manifest["artifacts"] if (precisions is None or a["precision"] in precisions)
              and (formats is None or a["format"] in formats)]
    artifacts = [a for a in chosen if a["format"] in LOADERS]
    coreml = [a for a in chosen if a["format"] == "coreml"]
    if not artifacts and not coreml:
        raise UserError(f"{bundle}: no ONNX, TFLite or Core ML file to verify")
    rows = []
    # guest paths that exist in the ARM root (/tmp does) are served from it: a fresh folder is not
    with tempfile.TemporaryDirectory(prefix="animeedge-verify-") as tmp:
        work = Path(tmp)
        jobs = _jobs(bundle, artifacts, work)
        reference = [np.concatenate(run_job(job)) for job in jobs]
        for cpu in cpus if jobs else ():
            runtime, outputs = _run_on(cpu, jobs, work, cache)
            for artifact, expected, found in zip(artifacts, reference, outputs):
                rows.append({"file": artifact["file"], "precision": artifact["precision"], "cpu": cpu,
                             "runtime": runtime} | _compare(artifact, expected, found))
    rows += coreml_rows(bundle, manifest, coreml)
    if record:
        _record(bundle, manifest, [r for r in rows if r["file"] not in {a["file"] for a in coreml}])
    return rows


def _record(bundle: Path, manifest: dict, rows: list):
    for artifact in manifest["artifacts"]:
        passed = [r for r in rows if r["file"] == artifact["file"] and not r["result"].startswith("failed")]
        if passed:
            artifact["verified_on"] = [{"arch": "arm64", "cpu": r["cpu"], "emulator": EMULATOR,
                                        "max_abs_error": r["max_abs_error"], "psnr_db": r["psnr_db"],
                                        "result": r["result"]} | r["runtime"] for r in passed]
    write_text(bundle / MANIFEST, json.dumps(validate(manifest), indent=2) + "\n")


def verify_and_report(bundle, cpus, record=True, json_path=None, formats=None):
    """What `animeedge verify` does: the checks, their table, the JSON; a UserError if any failed."""
    rows = verify(bundle, cpus, record=record, formats=formats)
    print(f"{'file':<36} {'cpu':<12} {'max abs':>9} {'PSNR dB':>8}  result")
    for r in rows:
        print(f"{r['file']:<36} {r['cpu']:<12} {r['max_abs_error']:>9.2g} {r['psnr_db']:>8.1f}  {r['result']}")
    for runtime in {json.dumps(r["runtime"], sort_keys=True) for r in rows if "runtime" in r}:
        print(", ".join(f"{k} {v}" for k, v in json.loads(runtime).items())
              + (" (Core ML files)" if "coremltools" in runtime else " (aarch64, under qemu)"))
    if json_path:
        write_text(Path(json_path), json.dumps(rows, indent=2) + "\n")
    failed = [r for r in rows if r["result"].startswith("failed")]
    if failed:
        raise UserError(f"{len(failed)} of {len(rows)} checks failed (see the table)")
