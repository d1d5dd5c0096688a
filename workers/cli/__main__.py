"""`python -m workers.cli`: the same as `wheelctl`."""

from workers.cli import main

main()
