"""A local stand-in for the Azure Functions host: the same registered functions on one machine.

`python -m reclaim host` serves the function app where Core Tools cannot be installed, and it is
the harness of the end-to-end tests. Against the storage in AzureWebJobsStorage (Azurite) it runs
the timers, the HTTP routes on 127.0.0.1 under /api/, and the queue trigger, each the way the
real host's documentation describes (README: "The local host vs the real host"):
- bindings.py: the functions, their triggers and the %SETTING% binding expressions;
- http_server.py: HTTP/1.1 parsing, limits and timeouts of the host's front end;
- queue_pump.py: the queue trigger (batches in parallel, visibility timeout, poison queue);
- local_host.py: LocalHost and serve(), which put them together.
"""

from reclaim.host.bindings import resolve, route_pattern
from reclaim.host.http_server import HttpLimits
from reclaim.host.local_host import LocalHost, serve
from reclaim.host.queue_pump import PumpResult, QueuePump

__all__ = [
    "HttpLimits",
    "LocalHost",
    "PumpResult",
    "QueuePump",
    "resolve",
    "route_pattern",
    "serve",
]
