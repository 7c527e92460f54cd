"""The command line: a thin shell over :class:`discovery_router.Router` and the onboarding API."""

from discovery_router.cli.app import main

__all__ = ["main"]
