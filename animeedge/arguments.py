"""The command line's argument types: each parses one option's text or says, in one line,
what it expected. The values' ranges come from runtimes/formats.py."""
import argparse

from animeedge.runtimes.errors import UserError
from animeedge.runtimes.formats import RESOLUTION_RANGE


def width_arg(text: str) -> float:
    """Any channel ratio in (0, 1]: which ones a model holds is the model's to say."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"width must be a channel ratio in (0, 1] such as 0.25 or 0.5, got {text!r}")
    return value


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def threads_arg(text: str) -> int:
    """--threads: bounded as runtimes.load bounds its `threads` (100000 crashed LiteRT)."""
    from animeedge.runtimes.processing import check_threads
    try:
        return check_threads(int(text) if text.isdigit() else text)
    except UserError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < 1e6:  # also rejects nan and inf
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def float_from(low: float, high: float):
    """A number in [low, high] (nan and inf are not)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected a number from {low:g} to {high:g}, got {text!r}")
        return value
    return parse


def resolution_arg(text: str) -> int:
    low, high = RESOLUTION_RANGE
    if not text.isdigit() or not low <= int(text) <= high:
        raise argparse.ArgumentTypeError(f"resolution must be an integer from {low} to {high} px, got {text!r}")
    return int(text)


def non_negative_int(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return int(text)


def ratios(text: str) -> list[float]:
    try:
        values = sorted({float(v) for v in text.split(",") if v.strip()})
    except ValueError:
        values = []
    if not values or not all(0 < v <= 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected comma-separated ratios in (0, 1], got {text!r}")
    return values


def ratios_with_full(text: str) -> list[float]:
    """compress's widths: the sandwich rule distills every width from the full one."""
    values = ratios(text)
    if values[-1] != 1.0:
        raise argparse.ArgumentTypeError(f"compress needs the full width 1.0 among its widths, got {text!r}")
    return values


def until_db(text: str) -> dict[float, float]:
    """compress --until-db W:DB,...: the held-out PSNR each width must reach."""
    try:
        goals = {float(w): float(db) for w, db in (part.split(":") for part in text.split(",") if part.strip())}
    except ValueError:
        goals = {}
    if not goals or not all(0 < w <= 1 and 0 < db < 100 for w, db in goals.items()):
        raise argparse.ArgumentTypeError(f"expected WIDTH:DB pairs such as 0.25:22,1.0:28, got {text!r}")
    return goals


def resolution_list(text: str) -> list[int]:
    parts = [v.strip() for v in text.split(",") if v.strip()]
    try:
        values = sorted({resolution_arg(v) for v in parts})
    except argparse.ArgumentTypeError:
        values = []
    if not values:
        raise argparse.ArgumentTypeError(f"expected comma-separated resolutions from {RESOLUTION_RANGE[0]} to {RESOLUTION_RANGE[1]} px, "
                                         f"got {text!r}")
    return values


def choices(allowed):
    def parse(text: str) -> list[str]:
        values = [v.strip() for v in text.split(",") if v.strip()]
        bad = [v for v in values if v not in allowed]
        if not values or bad:
            raise argparse.ArgumentTypeError(f"expected a comma-separated subset of {','.join(allowed)}, got {text!r}")
        return list(dict.fromkeys(values))
    return parse


def cpus(text: str) -> list[str]:
    from .arm64 import CPUINFO
    cpus = [c.strip() for c in text.split(",") if c.strip()]
    unknown = [c for c in cpus if c.split(",")[0] not in CPUINFO]
    if not cpus or unknown:
        raise argparse.ArgumentTypeError(f"unknown CPU model {', '.join(unknown) or text!r}; one of {', '.join(CPUINFO)}")
    return cpus
