"""Onboarding: ``import`` servers from other MCP clients, ``install`` the router into them, ``doctor``.

- :mod:`.clients`: where each client keeps its config and how it writes server entries
- :mod:`.normalise`: one client entry to the router's format (and what was dropped)
- :mod:`.secrets`: inline secrets, found and reported by key name only
- :mod:`.importer`: the import plan (add / skip / rename) and applying it
- :mod:`.installer`: install / uninstall the router's own entry, with a backup
- :mod:`.doctor`: config, servers, cache, model and tokenizer checks, plus token figures
- :mod:`.output`: rich tables on a terminal, plain text or JSON otherwise
- :mod:`.commands`: the argparse subcommands (``register(subparsers)``)
"""
