"""The chaos run (`make chaos`): the whole of Wheel under load while everything fails together, then
an audit of the promises of docs/contracts.md. See tests/chaos/harness.py."""
