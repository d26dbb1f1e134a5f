"""``python -m leaderboard_api``: the same CLI as the ``leaderboard-api`` script."""

from leaderboard_api.cli import main

raise SystemExit(main())
