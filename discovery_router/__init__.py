
from importlib.metadata import PackageNotFoundError as _NotInstalled, version as _version

try:
    __version__ = _version("discovery-router")
except _NotInstalled:  # run from a checkout without `pip install -e .`
    __version__ = "0.0.0+unknown"
