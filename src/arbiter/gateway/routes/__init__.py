"""The gateway's HTTP routes, one module per group of endpoints."""

__all__: list[str] = []
