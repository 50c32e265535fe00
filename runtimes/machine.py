"""This machine's fingerprint: what decides whose numbers a timing or a precision ranking is.

`machine()` is the CPU (name, vendor, family/part), the instruction-set flags that change
which precision runs fastest (int8 beats fp32 only where the CPU has 8-bit dot-product
instructions: x86 VNNI or AMX, Arm dotprod or i8mm), the core count, the OS and
architecture, and the runtime libraries' versions. The export records it in the manifest
next to its timings and recommended precision; `info` and `bench` compare it with the
running machine; the self-tuning cache (runtimes/autotune.py) keys on it.

Torch-free and phone-safe: /proc/cpuinfo where there is one (Linux, Android), else
`platform` alone (macOS, iOS, Windows), where the flags are not known ("source" says which).

    {"cpu": "AMD EPYC", "vendor": "AuthenticAMD", "cpu_id": "family 25 model 17",
     "flags": ["avx2", "avx512_vnni", ...], "cores": 2, "os": "Linux", "arch": "x86_64",
     "libraries": {"onnxruntime": "1.22.0", "ai-edge-litert": "1.4.0", "numpy": "2.3.1"},
     "source": "/proc/cpuinfo"}
"""
import copy
import functools
import os
import platform
from importlib import metadata
from pathlib import Path

from .errors import one_line

CPUINFO = Path("/proc/cpuinfo")
LIBRARIES = ("onnxruntime", "ai-edge-litert", "tflite-runtime", "numpy")
MAX_TEXT = 128  # a CPU name longer than this is cut (the manifest schema bounds it)
# the flags that change how fast a precision runs; any other flag is left out
X86_FLAGS = ("avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "avx512_fp16", "avx_vnni",
             "avx_vnni_int8")
X86_PREFIXES = ("amx",)  # amx_tile, amx_int8, amx_bf16, amx_fp16, ...
ARM_FLAGS = ("asimd", "asimdhp", "asimddp", "dotprod", "i8mm", "bf16", "sve", "sve2", "svei8mm", "sme")
INT8_DOT = ("avx512_vnni", "avx_vnni", "avx_vnni_int8", "amx_int8", "asimddp", "dotprod", "i8mm", "svei8mm")
ARM_IMPLEMENTERS = {0x41: "Arm", 0x42: "Broadcom", 0x43: "Cavium", 0x48: "HiSilicon", 0x4E: "NVIDIA",
                    0x51: "Qualcomm", 0x53: "Samsung", 0x61: "Apple", 0xC0: "Ampere"}
ARM_PARTS = {0xD03: "Cortex-A53", 0xD04: "Cortex-A35", 0xD05: "Cortex-A55", 0xD07: "Cortex-A57",
             0xD08: "Cortex-A72", 0xD09: "Cortex-A73", 0xD0A: "Cortex-A75", 0xD0B: "Cortex-A76",
             0xD0C: "Neoverse-N1", 0xD0D: "Cortex-A77", 0xD40: "Neoverse-V1", 0xD41: "Cortex-A78",
             0xD44: "Cortex-X1", 0xD46: "Cortex-A510", 0xD47: "Cortex-A710", 0xD48: "Cortex-X2",
             0xD49: "Neoverse-N2", 0xD4D: "Cortex-A715", 0xD4E: "Cortex-X3", 0xD4F: "Neoverse-V2",
             0xD80: "Cortex-A520", 0xD81: "Cortex-A720", 0xD82: "Cortex-X4"}
COMPARED = ("cpu", "cpu_id", "flags", "cores", "arch")  # what `same_machine` looks at


def _blocks(path: Path | None = None) -> list[dict]:
    """One dict per processor block of /proc/cpuinfo; [] where it is missing or unreadable."""
    try:
        text = Path(path or CPUINFO).read_text(errors="replace")
    except (OSError, ValueError):
        return []
    blocks = []
    for block in text.strip().split("\n\n"):
        entries = (line.split(":", 1) for line in block.splitlines() if ":" in line)
        blocks.append({k.strip(): v.strip() for k, v in entries})
    return [b for b in blocks if b]


def _int(text) -> int | None:
    try:
        return int(str(text), 0)
    except ValueError:
        return None


def _relevant(flags: set) -> list[str]:
    return sorted(f for f in flags if f in X86_FLAGS or f in ARM_FLAGS or f.startswith(X86_PREFIXES))


def _arm_cores(blocks) -> tuple[str, str, str]:
    """(name, vendor, id) of an Arm CPU from its blocks' implementer and parts: "Cortex-A78 x4 + Cortex-A55 x4"."""
    parts, implementers = {}, []
    for b in blocks:
        part, implementer = _int(b.get("CPU part", "")), _int(b.get("CPU implementer", ""))
        if part is None:
            continue
        name = ARM_PARTS.get(part, f"part {part:#05x}") if implementer in (0x41, None) else f"part {part:#05x}"
        parts[name] = parts.get(name, 0) + 1
        if implementer is not None and implementer not in implementers:
            implementers.append(implementer)
    name = " + ".join(f"{p} x{n}" for p, n in parts.items())
    vendor = ", ".join(ARM_IMPLEMENTERS.get(i, f"implementer {i:#04x}") for i in implementers)
    ids = f"implementer {', '.join(f'{i:#04x}' for i in implementers)} parts {', '.join(parts)}" if parts else ""
    return name, vendor, ids


def _from_cpuinfo(blocks) -> dict:
    first = blocks[0]
    flag_sets = [set((b.get("flags") or b.get("Features") or "").split()) for b in blocks]
    flag_sets = [s for s in flag_sets if s]
    common = set.intersection(*flag_sets) if flag_sets else set()  # what every core has
    if "vendor_id" in first or "cpu family" in first:
        name, vendor = first.get("model name", ""), first.get("vendor_id", "")
        cpu_id = f"family {first.get('cpu family', '?')} model {first.get('model', '?')}"
    else:
        name, vendor, cpu_id = _arm_cores(blocks)
        hardware = next((b.get("Hardware") or b.get("model name") for b in blocks
                         if b.get("Hardware") or b.get("model name")), "")  # Android: a block of its own
        name = f"{hardware} ({name})" if hardware and name else hardware or name
    return {"cpu": name, "vendor": vendor, "cpu_id": cpu_id, "flags": _relevant(common)}


def _libraries() -> dict:
    found = {}
    for name in LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except (metadata.PackageNotFoundError, ValueError):
            pass
    return found


def _text(value) -> str:
    return str(value or "").strip()[:MAX_TEXT]


@functools.cache
def _machine() -> dict:
    blocks = _blocks()
    found = _from_cpuinfo(blocks) if blocks else {"flags": []}
    m = {"cpu": _text(found.get("cpu") or platform.processor() or platform.machine() or "unknown"),
         "vendor": _text(found.get("vendor")), "cpu_id": _text(found.get("cpu_id")),
         "flags": found["flags"], "cores": os.cpu_count() or 1, "os": _text(platform.system() or "unknown"),
         "arch": _text(platform.machine() or "unknown"), "libraries": _libraries(),
         "source": "/proc/cpuinfo" if blocks else "platform (flags not known)"}
    return {k: v for k, v in m.items() if v != ""}


def machine() -> dict:
    """This machine's fingerprint (a fresh copy: the caller may change it)."""
    return copy.deepcopy(_machine())


def same_machine(a, b) -> bool:
    """Whether two fingerprints are the same machine for timings: the same CPU name, family
    or parts, instruction-set flags and core count (and architecture). Library versions are
    not compared. False where either is missing or not a fingerprint."""
    if not isinstance(a, dict) or not isinstance(b, dict) or not a.get("cpu") or not b.get("cpu"):
        return False
    flags = lambda m: sorted(m.get("flags") or [])
    return all(a.get(k) == b.get(k) for k in COMPARED if k != "flags") and flags(a) == flags(b)


def int8_instructions(m: dict) -> list[str]:
    """The 8-bit dot-product flags of a fingerprint (what makes int8 beat fp32)."""
    return [f for f in m.get("flags") or [] if f in INT8_DOT]


def describe(m, limit: int = 160) -> str:
    """A fingerprint in one line a user can read, e.g. "AMD EPYC (avx2, avx512f, avx512_vnni),
    2 cores, Linux x86_64"; text from a manifest goes through one_line."""
    if not isinstance(m, dict) or not m.get("cpu"):
        return "an unknown machine"
    if m.get("flags"):
        flags = ", ".join(map(str, m["flags"]))
    else:
        flags = "none of the flags looked for" if str(m.get("source", "")).startswith("/proc") else "flags unknown"
    return (f"{one_line(str(m['cpu']), limit)} ({one_line(flags, limit)}), {m.get('cores', '?')} cores, "
            f"{one_line(str(m.get('os', '?')), 40)} {one_line(str(m.get('arch', '?')), 40)}")


def differs_note(recorded, here=None) -> str | None:
    """None where `recorded` (a manifest's machine) is this machine; else one line saying
    whose numbers the timings are and what to do about it."""
    here = here or machine()
    if same_machine(recorded, here):
        return None
    if not isinstance(recorded, dict):
        return (f"the bundle does not record the machine its timings were measured on; this machine is "
                f"{describe(here)}: int8 vs fp32 can rank differently here; run `animeedge bench` or let "
                f"load(precision=\"auto\") time it here")
    return (f"timings measured on {describe(recorded)}; this machine is {describe(here)}: int8 vs fp32 can rank "
            f"differently here; run `animeedge bench` or let load(precision=\"auto\") time it here")
