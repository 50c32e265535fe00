"""The quick device probe: a fixed workload (runtimes/probe.onnx or probe.tflite, a stack
of 3x3 convolutions) timed for about two seconds with the runtime the app will use. Its
achieved GFLOP/s, divided by the fraction of peak that runtime reaches on the probe where the
peak is known (tiers.json, probe_efficiency), estimates this device's fp32 peak, which places
it in a tier (runtimes/tiers.py).

The CPU's fp32 peak, where it can be read from the system, is cores x FMA pipes x SIMD lanes
x 2 x clock (`cpu_description`); it is what bench's roofline fraction divides by.

    python -m animeedge.runtimes.probe     # this device: probe figures, CPU peak, tier
"""
import ctypes
import functools
import json
import mmap
import os
import platform
import struct
import time
from pathlib import Path

import numpy as np

CHANNELS, LAYERS, SIZE = 64, 2, 96
PROBE_GFLOP = 2 * LAYERS * SIZE * SIZE * CHANNELS * CHANNELS * 9 / 1e9
HERE = Path(__file__).parent

# Arm cores by /proc/cpuinfo "CPU part": 128-bit FMA pipes (see tiers.json for sources)
ARM_FMA_PIPES = {0xd03: ("Cortex-A53", 1), 0xd05: ("Cortex-A55", 1), 0xd0b: ("Cortex-A76", 2),
                 0xd41: ("Cortex-A78", 2), 0xd44: ("Cortex-X1", 4), 0xd47: ("Cortex-A710", 2),
                 0xd4d: ("Cortex-A715", 2), 0xd4e: ("Cortex-X3", 4), 0xd81: ("Cortex-A720", 2),
                 0xd82: ("Cortex-X4", 4)}


def _cpuinfo() -> list[dict]:
    """One dict per processor block of /proc/cpuinfo ([] where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    blocks = []
    for block in text.strip().split("\n\n"):
        entries = (line.split(":", 1) for line in block.splitlines() if ":" in line)
        blocks.append({k.strip(): v.strip() for k, v in entries})
    return blocks


MAX_GHZ = 6.0  # no CPU sustains more; a loop that claims more has been folded by the core
CLOCK_TOLERANCE = 2.0  # max turbo over the nominal (TSC) clock of current server parts is under this


def _machine_code(code: bytes):
    """An executable copy of x86-64 code taking and returning a long (None where W^X forbids)."""
    if platform.machine() not in ("x86_64", "AMD64") or platform.system() != "Linux":
        return None
    try:
        buf = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    except (OSError, AttributeError):
        return None
    buf.write(code)
    function = ctypes.CFUNCTYPE(ctypes.c_long, ctypes.c_long)(ctypes.addressof(ctypes.c_char.from_buffer(buf)))
    function.buffer = buf  # keep the page mapped as long as the function lives
    return function


def measured_clock_ghz() -> float | None:
    """The clock this core really runs at (x86-64 Linux only, else None), from a chain of
    dependent 64-bit multiplies (3 cycles each on Intel and AMD cores). A chain of immediate
    adds is not used: recent Intel cores fold those at rename and ran it at "21 GHz"."""
    muls = 20
    code = b"\x31\xc0" + b"\x48\x0f\xaf\xc0" * muls + b"\x48\xff\xcf"  # xor eax,eax; imul rax,rax (x20); dec rdi
    code += b"\x75" + struct.pack("b", -(len(code) - 1)) + b"\xc3"  # jnz to the first imul; ret
    loop = _machine_code(code)
    if loop is None:
        return None
    n, best = 1_000_000, float("inf")
    loop(1000)
    for _ in range(5):
        t = time.perf_counter()
        loop(n)
        best = min(best, time.perf_counter() - t)
    return round(3 * muls * n / best / 1e9, 2)


def tsc_ghz() -> float | None:
    """The time-stamp counter's rate over 50 ms (the nominal clock on current x86 parts)."""
    rdtsc = _machine_code(b"\x0f\x31\x48\xc1\xe2\x20\x48\x09\xd0\xc3")  # rdtsc; shl rdx,32; or rax,rdx; ret
    if rdtsc is None:
        return None
    t0, c0 = time.perf_counter(), rdtsc(0)
    time.sleep(0.05)
    t1, c1 = time.perf_counter(), rdtsc(0)
    return round((c1 - c0) / (t1 - t0) / 1e9, 2)


def clock_check(measured: float | None, tsc: float | None, cpuinfo: float | None) -> dict:
    """The clock to use, with the evidence. The loop is used where it is physically possible
    and agrees with the nominal clock (TSC, else /proc/cpuinfo) within CLOCK_TOLERANCE;
    otherwise the nominal clock is, and the disagreement is recorded."""
    nominal = tsc or cpuinfo
    check = {"loop_ghz": measured, "tsc_ghz": tsc, "cpuinfo_ghz": cpuinfo}
    if measured and measured <= MAX_GHZ and (not nominal or 1 / CLOCK_TOLERANCE <= measured / nominal <= CLOCK_TOLERANCE):
        return check | {"ghz": measured, "source": "measured: dependent-multiply loop", "agree": True}
    if measured is None:
        source = "TSC" if tsc else "/proc/cpuinfo (nominal; turbo may run higher)"
        return check | {"ghz": nominal and min(nominal, MAX_GHZ), "source": source, "agree": None}
    why = f"over the {MAX_GHZ:.0f} GHz bound" if measured > MAX_GHZ else "outside the tolerance of the nominal clock"
    return check | {"ghz": nominal and min(nominal, MAX_GHZ), "agree": False,
                    "source": f"{'TSC' if tsc else '/proc/cpuinfo'} (the loop's {measured} GHz is {why})"}


def _clock_ghz(cpu: int, info: dict) -> tuple[float | None, str, dict | None]:
    cpuinfo = float(info["cpu MHz"]) / 1000 if "cpu MHz" in info else None
    measured, tsc = _measured_clock(), _tsc_clock()
    if measured or tsc:
        check = clock_check(measured, tsc, cpuinfo)
        return check["ghz"], check["source"], check
    try:
        khz = int(Path(f"/sys/devices/system/cpu/cpu{cpu}/cpufreq/cpuinfo_max_freq").read_text())
        return khz / 1e6, "cpufreq max", None
    except (OSError, ValueError):
        pass
    return (cpuinfo, "/proc/cpuinfo (nominal; turbo may run higher)", None) if cpuinfo else (None, "unknown", None)


@functools.cache
def _measured_clock():
    return measured_clock_ghz()


@functools.cache
def _tsc_clock():
    return tsc_ghz()


def _x86_flops_per_cycle(info: dict) -> tuple[int | None, str]:
    flags, family = set(info.get("flags", "").split()), int(info.get("cpu family", 0))
    amd = info.get("vendor_id") == "AuthenticAMD"
    if "avx512f" in flags and not (amd and family < 26):
        return 2 * 16 * 2, "2 FMA pipes x 16 fp32 lanes (AVX-512)"
    if "avx2" in flags and "fma" in flags:
        return 2 * 8 * 2, "2 FMA pipes x 8 fp32 lanes (AVX2; Zen 4 runs AVX-512 at this rate)"
    return None, "no FMA"


def cpu_model() -> str:
    """The CPU's name as the OS reports it ("Intel(R) Xeon(R) Processor", not just "x86_64")."""
    blocks = _cpuinfo()
    info = blocks[0] if blocks else {}
    return info.get("model name") or info.get("Hardware") or platform.processor() or platform.machine()


def cpu_description(threads: int | None = None) -> dict:
    """This CPU, and its fp32 peak over `threads` cores where it can be worked out."""
    blocks = _cpuinfo()
    threads = threads or os.cpu_count() or 1
    desc = {"model": cpu_model(),
            "arch": platform.machine(), "cores": os.cpu_count(), "threads": threads, "system": platform.system()}
    per_core = []
    for i, block in enumerate(blocks):
        ghz, clock_source, check = _clock_ghz(i, block)
        if check and "clock" not in desc:
            desc["clock"] = check
        if "CPU part" in block:
            name, pipes = ARM_FMA_PIPES.get(int(block["CPU part"], 16), (None, None))
            flops, how = (pipes * 4 * 2, f"{name}: {pipes} x 128-bit FMA pipes") if pipes else (None, "unknown core")
        else:
            flops, how = _x86_flops_per_cycle(block)
        if flops and ghz:
            per_core.append((flops * ghz, f"{flops} FLOP/cycle ({how}) x {ghz:.2f} GHz ({clock_source})"))
    per_core.sort(key=lambda c: -c[0])
    if len(per_core) >= threads:
        used = per_core[:threads]
        desc["peak_gflops"] = round(sum(g for g, _ in used), 1)
        desc["peak_formula"] = f"{threads} cores x " + used[0][1]
    return desc


def _probe_session(runtime: str, threads: int):
    """A callable running the probe once with `runtime` (onnx or tflite)."""
    x = np.random.default_rng(0).standard_normal((1, CHANNELS, SIZE, SIZE), dtype=np.float32)
    if runtime == "onnx":
        import onnxruntime as ort
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
        session = ort.InferenceSession(str(HERE / "probe.onnx"), opts, providers=["CPUExecutionProvider"])
        return lambda: session.run(None, {"x": x})
    from .backends import litert_interpreter
    interpreter = litert_interpreter()(model_path=str(HERE / "probe.tflite"), num_threads=threads)
    interpreter.allocate_tensors()
    index = interpreter.get_input_details()[0]["index"]
    interpreter.set_tensor(index, np.ascontiguousarray(x.transpose(0, 2, 3, 1)))
    return interpreter.invoke


def available_runtime() -> str:
    import importlib.util
    return "onnx" if importlib.util.find_spec("onnxruntime") else "tflite"


def run_probe(threads: int | None = None, runtime: str | None = None, seconds: float = 2.0) -> dict:
    from .bench import summary, timed_runs
    threads = threads or min(4, os.cpu_count() or 1)
    runtime = runtime or available_runtime()
    run = _probe_session(runtime, threads)
    start = time.perf_counter()
    stats = summary(timed_runs(run, warmup=3, runs=10, min_seconds=seconds, max_seconds=seconds))
    return {"runtime": runtime, "threads": threads, "gflop": round(PROBE_GFLOP, 3), "p50_ms": stats["p50_ms"],
            "gflops": round(PROBE_GFLOP / stats["p50_ms"] * 1000, 1), "seconds": round(time.perf_counter() - start, 1)}


def main():
    from .tiers import load_tiers, place
    cpu = cpu_description(min(4, os.cpu_count() or 1))
    out = {"cpu": cpu}
    for runtime in ("onnx", "tflite"):
        probe = run_probe(runtime=runtime)
        if "peak_gflops" in cpu:
            probe["fraction_of_peak"] = round(probe["gflops"] / cpu["peak_gflops"], 3)
        out[runtime] = probe
    out["placement"] = place(out[available_runtime()], load_tiers())
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
