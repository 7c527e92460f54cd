"""Configuration: the file -> typed models; ``${VAR}`` and ``${keyring:...}``; editing in place."""
