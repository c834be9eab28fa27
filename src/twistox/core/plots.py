"""Figure style and saving shared by the stages (matplotlib, Agg backend). Stage figures live in
``twistox.<stage>.figures``."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

LAYER_COLOURS = ("tab:blue", "tab:orange")


def save(fig, path: str | Path, dpi: int = 130) -> Path:
    """Save ``fig`` as PNG at ``path`` (parents created) and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return path
