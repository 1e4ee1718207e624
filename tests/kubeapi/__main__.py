"""``python -m tests.kubeapi --port 0``: run the API server test double on its own and print
the path of a kubeconfig that reaches it, so any outside check (kubectl, a script, an
agent) can be pointed at it. Its controllers step on the real clock every
``--controllers-every`` seconds; Ctrl-C or SIGTERM stops it."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import tempfile
import threading
from datetime import UTC, datetime
from pathlib import Path

from tests.kubeapi.server import KubeApiDouble


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.kubeapi", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: a free one)")
    parser.add_argument(
        "--kubeconfig",
        type=Path,
        help="where to write the kubeconfig (default: a new file in the temporary directory)",
    )
    parser.add_argument("--keda", action="store_true", help="serve KEDA's ScaledObject CRD")
    parser.add_argument(
        "--controllers-every",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="step the simulated controllers this often (default 1)",
    )
    parser.add_argument(
        "--failing-image",
        action="append",
        default=[],
        metavar="IMAGE",
        help="pods of this image never become ready (repeatable)",
    )
    parser.add_argument(
        "--kubelet",
        action="store_true",
        help="run Job pods for real, as local processes (tests/kubeapi/README.md, kubelet mode)",
    )
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    options = parse(argv)
    double = KubeApiDouble(
        keda=options.keda,
        port=options.port,
        clock=lambda: datetime.now(UTC),
        kubelet=options.kubelet,
    )
    for image in options.failing_image:
        double.controllers.fail_image(image)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with double:
        path = options.kubeconfig or Path(tempfile.mkdtemp(prefix="kubeapi-")) / "kubeconfig"
        print(double.write_kubeconfig(path), flush=True)
        double.step_every(options.controllers_every)
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
