"""The marketplace sandbox: one HTTP server that emulates the marketplaces' documented APIs."""

from wheel.sandbox.app import SandboxApp, serve
from wheel.sandbox.core import ChannelBehaviour

__all__ = ["ChannelBehaviour", "SandboxApp", "serve"]
