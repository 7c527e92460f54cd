"""What the tests and the benchmarks share, and nothing ships: processes and ports (``system``), servers
from npm (``npm``), and the MCP conformance suite run against ``discovery-router serve`` (``conformance``).

Import it from the repository root (pytest and ``python -m benchmarks.run`` both run there).
"""
