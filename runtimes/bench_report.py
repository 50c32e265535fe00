"""What `animeedge bench` writes: the JSON report (BENCH_SCHEMA; other tools read its keys),
the terminal table, the Markdown report and the latency-vs-quality plot with its Pareto front.

JSON layout (times in ms, memory in MiB):
  machine          CPU model, arch, cores, threads used, fp32 peak (and its formula), system,
                   library versions, emulation ("none": every figure is measured on this device)
  probe, placement the tier probe and where it places this device (calibration/)
  settings         warmup, runs, min_seconds, frame (the end-to-end input), threads, rounds
  results[]        one per (format, precision, width, resolution): backend (the runtime),
                   file, gmacs, size_bytes, quality_psnr_db / fidelity_psnr_db (from the
                   manifest), init_ms, first_ms, model {runs, mean_ms, std_ms, p50_ms, p90_ms,
                   p99_ms, fps}, e2e {same}, and flat copies: p50_ms, p90_ms, fps (model-only),
                   e2e_p50_ms, e2e_fps, peak_rss_mb, model_rss_mb; stages_ms {resize_in,
                   to_input, prepare, invoke, finish, from_output, resize_out}: p50 of each
                   stage of the end-to-end path, timed one by one in calls interleaved with
                   the end-to-end ones (their sum is about e2e.p50_ms; null where the
                   stylizer has no stages)
  peers[]          name, backend, resolution, p50_ms (model-only), e2e_p50_ms, params, gmacs
  ratios           fastest_256 {format, precision, width, p50_ms, p50_ms_rounds, candidates[]
                   {format, precision, width, p50_ms_rounds}}; per peer speedup_vs_<name> {x,
                   peer_backend, peer_p50_ms, peer_p50_ms_rounds, x_rounds}: the candidates for
                   the fastest 256-px result (round 1's fastest and up to 3 more within 2x) and
                   each peer's best runtime timed in settings.rounds interleaved rounds (round 1
                   is the table); the fastest is the candidate with the lowest round, x from the
                   best round of each side;
                   roofline_r1_fp32 of the r=1.0 fp32 model
  recommendations  per tier: format, precision, width, resolution, e2e_p50_ms (measured on this
                   device's tier, scaled by peak ratio elsewhere), quality_psnr_db, budget_ms,
                   fits, basis
  skipped          artifacts not run here, with the reason
"""
import fastjsonschema

from .formats import PRECISIONS

_NUM = {"type": "number"}
PLOT_CAP_DB = 40.0
_RESULT = {"type": "object",
           "required": ["format", "precision", "width", "resolution", "backend", "p50_ms", "p90_ms", "fps",
                        "peak_rss_mb", "e2e_p50_ms"],
           "properties": {"format": {"type": "string"}, "precision": {"enum": list(PRECISIONS)},
                          "width": _NUM, "resolution": {"type": "integer"}, "backend": {"type": "string"},
                          "p50_ms": _NUM, "p90_ms": _NUM, "fps": _NUM, "peak_rss_mb": _NUM, "e2e_p50_ms": _NUM,
                          "stages_ms": {"type": ["object", "null"], "additionalProperties": _NUM}}}
_PEER = {"type": "object", "required": ["name", "backend", "resolution", "p50_ms"],
         "properties": {"name": {"type": "string"}, "backend": {"type": "string"},
                        "resolution": {"type": "integer"}, "p50_ms": _NUM}}
_RECOMMENDATION = {"type": "object", "required": ["format", "precision", "width", "resolution", "e2e_p50_ms"],
                   "properties": {"format": {"type": "string"}, "precision": {"type": "string"}, "width": _NUM,
                                  "resolution": {"type": "integer"}, "e2e_p50_ms": _NUM}}
BENCH_SCHEMA = {
    "type": "object",
    "required": ["machine", "results", "peers", "recommendations"],
    "properties": {
        "machine": {"type": "object", "required": ["model", "cores", "threads", "libraries", "emulation"]},
        "results": {"type": "array", "items": _RESULT},
        "peers": {"type": "array", "items": _PEER},
        "recommendations": {"type": "object", "additionalProperties": _RECOMMENDATION},
    },
}
validate_report = fastjsonschema.compile(BENCH_SCHEMA)

COLUMNS = [("format", "format", "{}"), ("prec", "precision", "{}"), ("width", "width", "{}"),
           ("res", "resolution", "{}"), ("init ms", "init_ms", "{:.0f}"), ("first ms", "first_ms", "{:.1f}"),
           ("p50 ms", "p50_ms", "{:.2f}"), ("p90 ms", "p90_ms", "{:.2f}"), ("p99 ms", "model.p99_ms", "{:.2f}"),
           ("std", "model.std_ms", "{:.2f}"), ("FPS", "fps", "{:.0f}"), ("e2e p50", "e2e_p50_ms", "{:.2f}"),
           ("e2e FPS", "e2e_fps", "{:.0f}"), ("RSS MiB", "peak_rss_mb", "{:.0f}"),
           ("quality dB", "quality_psnr_db", "{}")]


def _get(row, key):
    for part in key.split("."):
        row = row.get(part) if isinstance(row, dict) else None
    return row


def _cells(row):
    return [fmt.format(v) if (v := _get(row, key)) is not None else "-" for _, key, fmt in COLUMNS]


def table(report) -> str:
    rows = [[c for c, _, _ in COLUMNS]] + [_cells(r) for r in report["results"]]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(lines + [""] + summary_lines(report))


def summary_lines(report) -> list[str]:
    m, p = report["machine"], report["placement"]
    lines = [f"machine: {m['model']} ({m['arch']}), {m['threads']} of {m['cores']} cores, emulation: {m['emulation']}",
             f"tier: {p['tier']} ({p['method']}, estimated peak {p['estimated_peak_gflops']} GFLOP/s)"]
    if m.get("clock", {}).get("agree") is False:
        lines.append(f"clock: {m['clock']['ghz']} GHz from the {m['clock']['source']}")
    lines += [f"peer {q['name']} ({q['backend']}, {q['resolution']} px): p50 {q['p50_ms']:.2f} ms" for q in report["peers"]]
    lines += _ratio_lines(report.get("ratios", {}))
    for tier, r in report["recommendations"].items():
        lines.append(f"recommended for {tier}: {r['format']} {r['precision']} width {r['width']} {r['resolution']} px, "
                     f"{_tier_figure(r)} vs budget {r['budget_ms']} ms"
                     + ("" if r["fits"] else " (nothing fits: fastest shown)"))
    reasons = {}
    for skipped in report.get("skipped", []):
        reasons.setdefault(skipped["reason"], []).append(skipped["file"])
    lines += [f"skipped {len(files)} file(s) ({reason}): {', '.join(files)}" for reason, files in reasons.items()]
    return lines


def _tier_figure(r) -> str:
    """A pick's end-to-end figure: measured here, or an estimate for the tier that says
    what it was scaled from."""
    measured = r.get("measured_e2e_p50_ms", r["e2e_p50_ms"])
    if r["basis"] == "measured":
        return f"e2e {measured} ms measured here"
    return f"e2e {r['e2e_p50_ms']} ms estimated ({r['basis']} from {measured} ms measured here)"


def _rounds(values, unit, label) -> str:
    if len(values) < 2:
        return ""
    return f"; {label}: " + " / ".join(f"{v:.{2 if unit == ' ms' else 1}f}{unit}" for v in values)


def _ratio_lines(ratios) -> list[str]:
    lines = []
    if "fastest_256" in ratios:
        f = ratios["fastest_256"]
        lines.append(f"fastest at 256 px (model only): {f['format']} {f['precision']} width {f['width']}, "
                     f"p50 {f['p50_ms']:.2f} ms ({1000 / f['p50_ms']:.0f} FPS)"
                     + _rounds(f.get("p50_ms_rounds", []), " ms", "best of these rounds"))
        if len(f.get("candidates", [])) > 1:
            lines.append("candidates, best round: " + ", ".join(
                f"{c['format']} {c['precision']} width {c['width']} {min(c['p50_ms_rounds']):.2f} ms"
                for c in f["candidates"]))
    for key, r in ratios.items():
        if key.startswith("speedup_vs_"):
            lines.append(f"{r['x']}x faster than {key[len('speedup_vs_'):]} in its best runtime here "
                         f"({r['peer_backend']}; each side's best round)"
                         + _rounds(r.get("x_rounds", []), "x", "per round (the ratio takes each side's best round)"))
    if ratios.get("roofline_r1_fp32"):
        r = ratios["roofline_r1_fp32"]
        share = f" = {100 * r['fraction']:.1f}% of the fp32 peak {r['peak_gflops']} GFLOP/s ({r['peak_formula']})" \
            if r.get("fraction") else " (this CPU's peak is unknown)"
        lines.append(f"roofline, width 1.0 fp32: {r['format']} at {r['resolution']} px reaches {r['gflops']} GFLOP/s"
                     + share)
    return lines


def stage_table(results) -> list[str]:
    """Markdown rows: per configuration, each stage's p50 (ms), their sum, the stages but the
    model's ("beside model": what a frame costs beyond the model, from the same calls; "in the
    app": the same but the way back to the frame's size, which the app leaves to the display), the
    end-to-end and model-only p50 and their difference (ms and share of end to end; two
    separate timings, so a slow spell of a shared machine shows here first)."""
    timed = [r for r in results if r.get("stages_ms")]
    if not timed:
        return []
    stages = list(timed[0]["stages_ms"])
    head = ["format", "prec", "width", "res", *stages, "sum", "beside model", "in the app", "e2e p50", "model p50", "e2e - model",
            "share"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in timed:
        extra = r["e2e_p50_ms"] - r["p50_ms"]
        beside = sum(v for s, v in r["stages_ms"].items() if s != "invoke")
        in_app = beside - r["stages_ms"].get("resize_out", 0.0)
        cells = [r["format"], r["precision"], str(r["width"]), str(r["resolution"]),
                 *(f"{r['stages_ms'].get(s, 0.0):.3f}" for s in stages), f"{sum(r['stages_ms'].values()):.2f}",
                 f"{beside:.2f}", f"{in_app:.2f}", f"{r['e2e_p50_ms']:.2f}", f"{r['p50_ms']:.2f}", f"{extra:.2f}",
                 f"{100 * extra / r['e2e_p50_ms']:.0f}%"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def markdown(report) -> str:
    head = "| " + " | ".join(c for c, _, _ in COLUMNS) + " |"
    rule = "|" + "---|" * len(COLUMNS)
    body = ["| " + " | ".join(_cells(r)) + " |" for r in report["results"]]
    m = report["machine"]
    libs = ", ".join(f"{k} {v}" for k, v in m["libraries"].items())
    text = [f"# animeedge bench: {report['bundle']}", "",
            f"Machine: {m['model']} ({m['arch']}, {m['system']}), {m['threads']} threads of {m['cores']} cores; "
            f"{libs}. Emulation: {m['emulation']}.", "",
            f"Settings: warm-up {report['settings']['warmup']}, at least {report['settings']['runs']} runs and "
            f"{report['settings']['min_seconds']} s per timing; end to end on {report['settings']['frame']}.", "",
            head, rule, *body, ""]
    stages = stage_table(report["results"])
    if stages:
        text += ["## Where a frame's time goes (p50 ms per stage)", "",
                 "Each stage timed on its own in calls interleaved with the end-to-end ones; beside model: "
                 "the stages other than invoke; in the app: those but resize_out (the app shows the picture at the "
                 "model's size and the display scales it); e2e - model: the end-to-end p50 minus the model-only p50.", "",
                 *stages, ""]
    text += ["## Peers, ratios, tiers", ""]
    return "\n".join(text + [f"- {line}" for line in summary_lines(report)]) + "\n"


def pareto(points) -> list:
    """The points no other point beats on both latency (lower) and quality (higher)."""
    front, best = [], float("-inf")
    for p in sorted(points, key=lambda p: (p[0], -p[1])):
        if p[1] > best:
            front.append(p)
            best = p[1]
    return front


def plot(report, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    rated = [r for r in report["results"] if r.get("quality_psnr_db") is not None]
    fig, ax = plt.subplots(figsize=(9, 5.5), dpi=120)
    markers = {"fp32": "o", "fp16": "s", "int8": "^", "int8w": "v"}

    def shown(r):  # beyond PLOT_CAP_DB outputs are indistinguishable from the reference
        return min(r["quality_psnr_db"], PLOT_CAP_DB)
    for (fmt, prec) in sorted({(r["format"], r["precision"]) for r in rated}):
        pts = [r for r in rated if (r["format"], r["precision"]) == (fmt, prec)]
        ax.scatter([r["e2e_p50_ms"] for r in pts], [shown(r) for r in pts], marker=markers[prec],
                   label=f"{fmt} {prec}", alpha=0.75)
    front = pareto([(r["e2e_p50_ms"], shown(r), r) for r in rated])
    ax.step([p[0] for p in front], [p[1] for p in front], where="post", color="k", lw=1, label="Pareto front")
    last = 0.0
    for ms, q, r in front:
        if ms >= 1.4 * last:  # label every front point that has room
            ax.annotate(f"{r['format']} {r['precision']}\nw{r['width']} {r['resolution']}px", (ms, q), fontsize=7,
                        xytext=(2, 4), textcoords="offset points")
            last = ms
    tier = report["recommendations"].get(report["placement"]["tier"])
    if tier:
        ax.axvline(tier["budget_ms"], ls="--", color="grey", lw=1, label=f"{report['placement']['tier']} budget")
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("end-to-end latency p50 (ms, log)")
    ax.set_ylabel(f"quality: PSNR vs full model (dB, shown up to {PLOT_CAP_DB:.0f})")
    m = report["machine"]
    ax.set_title(f"{m['model']}, {m['threads']} threads: latency vs quality", fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
