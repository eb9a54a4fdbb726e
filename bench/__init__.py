"""vit-plasticity-bench: which components of a Vision Transformer are worth fine-tuning.

Suites (``suites/*.yaml``) expand into jobs; each job measures per-component plasticity and
fine-tunes one component-selection strategy; each writes one JSON record; the leaderboard is
regenerated from the records. Entry point: ``bench --help``.
"""

__version__ = "0.1.0"
