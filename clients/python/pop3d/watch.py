"""A read-only controller: print every event as one JSON line.

    python3 -m pop3d.watch [--socket PATH] [--events all ...] [--count N]
                           [--show-secrets]

It registers for the given events (default ``all``) and never answers a
client, so it can run beside the controller that serves the mailboxes.
Arguments of PASS, APOP, AUTH and SASL data are masked unless
``--show-secrets``.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from typing import List, Optional

from .client import Client
from .protocol import Pop3dError

_SECRET = {"pop3d_cmd_pass", "pop3d_cmd_apop", "pop3d_cmd_auth", "pop3d_auth_data"}


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m pop3d.watch",
                                 description="Print pop3d events as JSON lines.")
    ap.add_argument("--socket", default=os.environ.get("POP3D_CONTROL"))
    ap.add_argument("--events", nargs="+", default=["all"])
    ap.add_argument("--count", type=int, default=0, help="exit after N events")
    ap.add_argument("--name", default="watch")
    ap.add_argument("--show-secrets", action="store_true")
    a = ap.parse_args(argv)
    if not a.socket:
        ap.error("--socket is required (or set POP3D_CONTROL)")
    signal.signal(signal.SIGTERM, lambda s, f: sys.exit(0))
    n = 0
    try:
        with Client(a.socket, name=a.name) as c:
            c.register(a.events)
            print(json.dumps({"type": "watching", "events": a.events}), flush=True)
            for ev in c.events():
                raw = dict(ev.raw)
                if ev.name in _SECRET and not a.show_secrets:
                    raw["args"] = raw["args"][:1] + ["****"] * (len(raw["args"]) - 1)
                    raw.pop("args_b64", None)
                print(json.dumps(raw), flush=True)
                n += 1
                if a.count and n >= a.count:
                    break
    except (OSError, Pop3dError) as e:
        print("pop3d.watch: %s" % e, file=sys.stderr)
        return 1
    except (KeyboardInterrupt, BrokenPipeError):
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
