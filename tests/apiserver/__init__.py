"""A stand-in for the Kubernetes API server, at least as strict as the real one for what the controller touches.

No API server runs on the development machines, so the rollout controller's cluster edge is tested against
this package through the real `kubernetes` client: `transport.py` replaces only the client's urllib3 pool
manager, `server.py` routes each request the way the API server's handler chain does (faults, body size,
decoding, patch by Content-Type, defaulting, validation, admission, storage), and the other modules each play
one part of it. `serving/rollout/tests/fake_cluster.py` is a façade over it for the controller's tests.
"""

from tests.apiserver.server import ApiServer

__all__ = ["ApiServer"]
