"""`python -m sandbox`: run the marketplace sandbox (`wheelctl sandbox` starts this).

The sandbox is an island: it imports nothing of Wheel, and Wheel imports nothing of it
(docs/architecture.md), so it takes its address on the command line, not from Wheel's settings.
"""

from __future__ import annotations

import argparse
import signal
import threading

from sandbox.app import SandboxApp, load_config, serve


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8900, help="port to listen on; 0 picks a free one (default: %(default)s)")
    parser.add_argument("--config", help='JSON: {"channels": {"UA": {"marketplace": "tatacliq", "token": "..."}}}')
    args = parser.parse_args(argv)
    app = SandboxApp(load_config(args.config) if args.config else {})
    server = serve(app, args.host, args.port)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"sandbox listening on http://{server.host}:{server.server_port} "
          f"({len(app.state.channels)} channels configured)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
