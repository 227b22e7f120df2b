"""The HTTP gateway: a Starlette app served by uvicorn (``arbiter serve``).

Built by :func:`arbiter.gateway.app.create_app`; its modules are the shell around the routing
core. Nothing is re-exported here, so importing a route does not build the app.
"""

__all__: list[str] = []
