"""leaderboard-api: long-format benchmark results served as leaderboards from precomputed bytes."""

__version__ = "0.1.0"
