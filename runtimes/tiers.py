"""Device tiers (tiers.json): placement of a probed device, latency scaling between devices,
and the per-tier recommendation that bench prints and the app's Auto mode starts from.

What a scaled estimate cannot know: it multiplies this machine's figure by a ratio of fp32
peaks, so it keeps this machine's ranking of precisions. int8's gain over fp32 hinges on 8-bit
dot-product instructions (x86 VNNI or AMX, Arm dotprod or i8mm), which the tier's CPU may have
and this one not, or the reverse; every scaled pick carries that caveat (`precision_caveat`)."""
import json
from pathlib import Path

from .errors import UserError
from .machine import int8_instructions, machine

TIERS_FILE = Path(__file__).with_name("tiers.json")


def load_tiers(path=TIERS_FILE) -> dict:
    try:
        data = json.loads(Path(path).read_text())
        tiers = data["tiers"]
        for name, tier in tiers.items():
            tier["budget_ms"] = round(1000 / float(tier["fps"]), 1)
            float(tier["peak_gflops"])
        for runtime in ("onnx", "tflite"):
            float(data["probe_efficiency"][runtime])
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise UserError(f"{path}: not a tier file ({e})") from None
    return data


def place(probe: dict, tiers: dict) -> dict:
    """The highest tier whose reference peak this device reaches (the lowest tier if none),
    its peak estimated as probe GFLOP/s / the runtime's probe efficiency."""
    efficiency = tiers["probe_efficiency"][probe["runtime"]]
    peak = probe["gflops"] / efficiency
    ordered = sorted(tiers["tiers"].items(), key=lambda kv: kv[1]["peak_gflops"])
    reached = [name for name, t in ordered if t["peak_gflops"] <= peak]
    return {"tier": reached[-1] if reached else ordered[0][0], "estimated_peak_gflops": round(peak, 1),
            "method": f"probe {probe['gflops']} GFLOP/s ({probe['runtime']}, {probe['threads']} threads) / "
                      f"probe efficiency {efficiency}"}


def tier_latency(ms: float, tier: str, placement: dict, tiers: dict) -> tuple[float, str]:
    """A latency measured here, as expected on `tier`: as measured on this device's own tier,
    else scaled by the ratio of peaks."""
    if tier == placement["tier"]:
        return ms, "measured"
    factor = placement["estimated_peak_gflops"] / tiers["tiers"][tier]["peak_gflops"]
    return round(ms * factor, 2), f"scaled x{factor:.2f} (peak ratio)"


def _named(flags) -> str:
    return ", ".join(flags) if flags else "none"


def precision_caveat(tier: str, tiers: dict, host: dict | None = None) -> str:
    """What an estimate scaled to `tier` cannot know: how precisions rank on its CPU, given the
    int8 dot-product instructions of this machine (`host`: a runtimes.machine fingerprint) and
    of the tier's reference cores (tiers.json int8_dot_product; null where not known)."""
    here = int8_instructions(host if host is not None else machine())
    there = tiers["tiers"][tier].get("int8_dot_product")
    theirs = "not known" if there is None else _named(there)
    return (f"scaled by the fp32 peak ratio, so the precision keeps this machine's ranking; int8 vs fp32 can rank "
            f"differently on {tier} (int8 dot-product instructions here: {_named(here)}; on its reference "
            f"cores: {theirs})")


QUALITY_TIE_DB = 0.5  # quality differences below this are not visible, nor caught by the fidelity gate


def tier_pick(results: list[dict], placement: dict, tiers: dict, host: dict | None = None) -> dict:
    """Per tier, among the results whose end-to-end p50 (for that tier) fits the frame
    budget, the fastest of those within QUALITY_TIE_DB of the best quality: a difference the
    eye cannot see must not buy a slower configuration. If none fits, the fastest, marked
    fits: false. Results need quality_psnr_db and e2e_p50_ms; each pick keeps the figure
    measured here apart from the one expected on the tier, and a pick scaled to a tier says
    what the scaling cannot know (`caveat`; `host`: this machine's fingerprint)."""
    rated = [r for r in results if r.get("quality_psnr_db") is not None]
    chosen = {}
    for name, tier in tiers["tiers"].items():
        options = [(r, *tier_latency(r["e2e_p50_ms"], name, placement, tiers)) for r in rated]
        if not options:
            continue
        fitting = [o for o in options if o[1] <= tier["budget_ms"]]
        if fitting:
            best = max(o[0]["quality_psnr_db"] for o in fitting)
            r, ms, basis = min((o for o in fitting if o[0]["quality_psnr_db"] >= best - QUALITY_TIE_DB),
                               key=lambda o: (o[1], -o[0]["quality_psnr_db"]))
        else:
            r, ms, basis = min(options, key=lambda o: o[1])
        chosen[name] = {key: r[key] for key in ("format", "precision", "width", "resolution")} | {
            "e2e_p50_ms": ms, "measured_e2e_p50_ms": r["e2e_p50_ms"], "quality_psnr_db": r["quality_psnr_db"],
            "budget_ms": tier["budget_ms"], "fits": bool(fitting), "basis": basis}
        if basis != "measured":
            chosen[name]["caveat"] = precision_caveat(name, tiers, host)
    return chosen


def caveat_lines(recommendations: dict) -> list[str]:
    """One line per tier pick that was scaled, not measured: what its estimate cannot know."""
    return [f"{tier} is an estimate: {pick['caveat']}" for tier, pick in recommendations.items() if pick.get("caveat")]
