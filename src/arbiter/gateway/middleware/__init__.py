"""ASGI middleware of the gateway, one concern per module (auth, body size)."""

__all__: list[str] = []
