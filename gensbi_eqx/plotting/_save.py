"""Writing a figure to disk so that readers never see a half-written file."""

import os

from .._atomic import atomic_writer


def _save_png_atomically(fig, path: str | os.PathLike) -> None:
    """Write ``fig`` as a PNG to ``path`` (a temporary file in the same directory, renamed)."""
    with atomic_writer(path) as f:
        fig.savefig(f, format="png")
