"""The C2ST benchmark on sbibm tasks; run it as ``python -m gensbi_eqx.benchmark --help``."""

from ._runner import append_rows as append_rows
from ._runner import machine_description as machine_description
from ._runner import read_table as read_table
from ._runner import run as run
from ._runner import summarise as summarise
from ._runner import write_summary as write_summary

__all__ = ["append_rows", "machine_description", "read_table", "run", "summarise", "write_summary"]
