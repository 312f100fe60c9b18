"""A proxyless gRPC client (Python grpcio, the C-core xDS client) driven over stdin by tests/all/xds_grpcio.rs.

It opens one channel to the target given as its argument (``xds:///HOST:PORT``), which grpcio resolves through the
xDS server named in the bootstrap file at ``$GRPC_XDS_BOOTSTRAP``: LDS → RDS → CDS → EDS over one ADS stream, then
it picks a cluster for every RPC by the route's weights. Commands, one per line on stdin:

    calls N    make N unary grpc.health.v1.Health/Check calls, one after another; print one JSON line
               {"ok": COUNT, "errors": {"STATUS_CODE": COUNT, ...}, "first_error": "MESSAGE" or null}

The channel (and its xDS subscription) lives until stdin closes, so a later ``calls`` sees whatever the control plane
pushed meanwhile. The backends count the calls they receive; this client only says whether they succeeded.
Needs the PyPI packages grpcio and grpcio-health-checking (.ci/run installs them in target/grpcio-venv).
"""

import json
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

# Upper bound of one call, including the first xDS resolution (wait_for_ready waits for it instead of failing).
CALL_TIMEOUT_SECONDS = 10


def calls(stub, n):
    """Makes n Check calls and returns the JSON-ready summary."""
    ok = 0
    errors = {}
    first_error = None
    for _ in range(n):
        try:
            stub.Check(
                health_pb2.HealthCheckRequest(),
                timeout=CALL_TIMEOUT_SECONDS,
                wait_for_ready=True,
            )
            ok += 1
        except grpc.RpcError as e:
            code = e.code().name
            errors[code] = errors.get(code, 0) + 1
            if first_error is None:
                first_error = f"{code}: {e.details()}"
    return {"ok": ok, "errors": errors, "first_error": first_error}


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: client.py xds:///HOST:PORT")
    with grpc.insecure_channel(sys.argv[1]) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for line in sys.stdin:
            words = line.split()
            if len(words) == 2 and words[0] == "calls" and words[1].isdigit():
                print(json.dumps(calls(stub, int(words[1]))), flush=True)
            else:
                sys.exit(f"unknown command: {line.strip()!r}")


if __name__ == "__main__":
    main()
