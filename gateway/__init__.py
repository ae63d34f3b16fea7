"""Zynk's REST edge: transcodes HTTP/JSON to the gRPC services from their google.api.http rules.

Public entry points: :func:`gateway.app.create_app` (the Starlette app) and
:func:`gateway.server.serve` (run it with uvicorn inside an already running event loop).
"""
