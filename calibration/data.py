"""Where the shared research data live: $ANIMEEDGE_DATA, else ../shared/data beside the checkout."""
import os
from pathlib import Path

from runtimes.errors import UserError


def shared_data(sub: str) -> Path:
    root = Path(os.environ.get("ANIMEEDGE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    path = root / sub
    if not path.is_dir():
        raise UserError(f"no data folder {path}; pass the folder explicitly or set ANIMEEDGE_DATA")
    return path
