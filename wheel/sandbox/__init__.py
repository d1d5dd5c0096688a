"""The marketplace sandbox: one HTTP server that emulates the marketplaces' documented APIs."""

from wheel.sandbox.app import ChannelBehaviour, SandboxApp, serve

__all__ = ["ChannelBehaviour", "SandboxApp", "serve"]
