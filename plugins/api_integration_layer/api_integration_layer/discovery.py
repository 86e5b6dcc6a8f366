"""Endpoint discovery: what the server says it serves, against what the client knows.

``GET /api/v1/`` lists every route (generated from the server's routers). Comparing it
with :data:`endpoints.ENDPOINTS` tells which client methods a (remote, older or newer)
server cannot answer and which server routes the client has no method for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from api_integration_layer.endpoints import ENDPOINTS, Endpoint, route_key
from api_integration_layer.models import RouteInfo, ServerDescription


@dataclass
class DiscoveryReport:
    """The server's description and how it matches the client."""

    server: ServerDescription
    supported: list[Endpoint] = field(default_factory=list)
    missing_on_server: list[Endpoint] = field(default_factory=list)
    unknown_to_client: list[RouteInfo] = field(default_factory=list)

    def supports(self, name: str) -> bool:
        """Whether the server serves the route of client endpoint ``name``."""
        return any(e.name == name for e in self.supported)

    def to_dict(self) -> dict[str, Any]:
        s = self.server
        return {
            "name": s.name, "version": s.version, "api_version": s.api_version,
            "server": s.server, "base_path": s.base_path, "groups": sorted(s.endpoints),
            "routes": len(s.routes),
            # Distinct routes: typing and presence are client endpoints on the socket's route.
            "supported": len({route_key(e.method, e.path) for e in self.supported}),
            "missing_on_server": sorted({f"{e.method} {e.path}"
                                         for e in self.missing_on_server}),
            "unknown_to_client": [f"{r.method} {r.path}" for r in self.unknown_to_client],
            "access_token_ttl": s.auth.get("access_token_ttl"),
        }


def _relative(path: str, base_path: str) -> str:
    base = base_path.rstrip("/")
    if base and (path == base or path.startswith(base + "/")):
        path = path[len(base):]
    return path or "/"


def compare(server: ServerDescription) -> DiscoveryReport:
    """Match the server's routes with the client's endpoints by method and path shape."""
    served = {route_key(r.method, _relative(r.path, server.base_path)): r
              for r in server.routes}
    report = DiscoveryReport(server)
    known = set()
    for endpoint in ENDPOINTS.values():
        key = route_key(endpoint.method, endpoint.path)
        known.add(key)
        (report.supported if key in served else report.missing_on_server).append(endpoint)
    report.unknown_to_client = [r for k, r in served.items() if k not in known]
    return report
