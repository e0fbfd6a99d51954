"""`python -m w2v_triton.serving.serve`: run tritonserver on a model repository until Ctrl-C/SIGTERM.

Waits for /v2/health/ready with a timeout (and shows the server log if it never comes),
then stays in the foreground; a signal stops the server cleanly.
"""
from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from types import FrameType

from w2v_triton.paths import DEFAULT_REPOSITORY, SERVER_LOG
from w2v_triton.serving.tritonserver import Ports, ServerError, TritonServer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-repository", type=Path, default=DEFAULT_REPOSITORY)
    parser.add_argument("--http-port", type=int, default=8000)
    parser.add_argument("--grpc-port", type=int, default=8001)
    parser.add_argument("--metrics-port", type=int, default=8002)
    parser.add_argument("--ready-timeout", type=float, default=180.0)
    parser.add_argument("--log", type=Path, default=SERVER_LOG)
    parser.add_argument("extra", nargs="*", help="extra tritonserver flags (after --)")
    args = parser.parse_args(argv)

    server = TritonServer(args.model_repository, Ports(args.http_port, args.grpc_port, args.metrics_port),
                          log_path=args.log, extra_args=args.extra)
    stopping = False

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        print(f"\nreceived {signal.Signals(signum).name}: stopping tritonserver", flush=True)
        server.terminate()  # the main thread's wait() sees the exit

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        server.start(timeout=args.ready_timeout)
    except ServerError as exc:
        if stopping:   # a signal during start-up: the server exited because we stopped it
            print("tritonserver stopped", flush=True)
            return 0
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"tritonserver ready: HTTP {server.http_url}  gRPC {server.grpc_url}  "
          f"metrics 127.0.0.1:{args.metrics_port}  (log: {args.log}; Ctrl-C to stop)", flush=True)
    assert server.process is not None   # start() returned, so the process exists
    code = server.process.wait()
    if stopping:
        print("tritonserver stopped", flush=True)
        return 0
    print(f"tritonserver exited unexpectedly ({code}):\n{server.log_tail()}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
