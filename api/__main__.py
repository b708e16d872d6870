"""`python -m api ...` is `reward-wallet ...` (how `serve` starts its worker process)."""

from api.cli import main

main()
