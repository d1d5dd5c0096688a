"""The marketplace sandbox: one HTTP server that emulates the marketplaces' documented APIs."""

from sandbox.app import SandboxApp, serve
from sandbox.core import ChannelBehaviour

__all__ = ["ChannelBehaviour", "SandboxApp", "serve"]
