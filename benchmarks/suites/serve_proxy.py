"""fastmcp's ``create_proxy`` in front of one upstream, served over stdio or HTTP (the peer in latency runs).

python serve_proxy.py stdio --upstream-url URL
python serve_proxy.py http PORT --upstream-stdio
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from fastmcp.client.transports import StdioTransport
from fastmcp.server import create_proxy

UPSTREAM = str(Path(__file__).with_name("lean_echo.py"))  # the latency suite's upstream

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("transport", choices=["stdio", "http"])
    parser.add_argument("port", nargs="?", type=int)
    parser.add_argument("--upstream-url")
    parser.add_argument("--upstream-stdio", action="store_true")
    args = parser.parse_args()
    env = {"PYTHONPATH": os.environ.get("PYTHONPATH", "")}  # the upstream imports the router's stdio transport
    target = args.upstream_url if args.upstream_url else StdioTransport(sys.executable, [UPSTREAM, "stdio"], env=env)
    proxy = create_proxy(target, name="proxy")
    if args.transport == "http":
        proxy.run(transport="http", host="127.0.0.1", port=args.port, show_banner=False, log_level="warning")
    else:
        proxy.run(transport="stdio", show_banner=False, log_level="warning")
