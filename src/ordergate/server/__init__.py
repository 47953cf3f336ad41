"""The HTTP server side of a gateway process: connection bounds, header limits, access-log hygiene.

What the spec asks of abuse (section 4: headers bounded, slow clients cut off, a connection cap, an
early answer that clients can read) has to be enforced where bytes arrive, before the parser and the
application pay for them; uvicorn has no such bounds, so this package adds them:

- :mod:`~ordergate.server.limits`: the bounds and the derived connection cap;
- :mod:`~ordergate.server.protocol`: :class:`BoundedHttpProtocol`, uvicorn's httptools protocol with
  the bounds (``ordergate serve`` uses it; ``uvicorn ... --http ordergate.server:BoundedHttpProtocol``);
- :mod:`~ordergate.server.asgi`: the same header limits checked on the parsed request, the
  application's outermost layer, for plain uvicorn;
- :mod:`~ordergate.server.accesslog`: ``?api_key=`` redacted from the access log;
- :mod:`~ordergate.server.rsgi` and :mod:`~ordergate.server.granian_runner`: ``serve --server
  granian``, the same application on granian (hyper) embedded in the gateway's event loop, order
  entry served straight from RSGI; hyper enforces the header buffer and timeout there, and there is
  no connection cap (README, "Server stacks").
"""

from ordergate.server.limits import KEEP_ALIVE_SECONDS, ServerLimits, derived_max_connections
from ordergate.server.protocol import BoundedHttpProtocol, bounded_protocol

__all__ = ["KEEP_ALIVE_SECONDS", "BoundedHttpProtocol", "ServerLimits", "bounded_protocol", "derived_max_connections"]
