"""The MCP face: the three meta-tools, passthrough of resources and prompts, notifications, access."""
