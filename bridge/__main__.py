"""`python -m bridge`: run the bridge (the same as `wheelctl bridge`)."""

from bridge.cli import main

main(["bridge", *__import__("sys").argv[1:]])
