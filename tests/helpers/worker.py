"""A consumer process for the chaos test: lease up to 10 messages, then for each one record it and ack it.

    python tests/helpers/worker.py BASE_URL QUEUE OUT_FILE [LEASE_SECONDS]

OUT_FILE gets two kinds of lines, each flushed at once (SIGKILL loses nothing already written):
``P <key>`` when the message was processed (written before the ack, so a worker killed between the
two leaves a P line and the message is redelivered to another worker), and ``A <key>`` once the
server answered the ack with 200. The worker runs until it is killed.
"""

from __future__ import annotations

import sys
import time

import httpx


def main() -> None:
    base_url, queue, out_path = sys.argv[1:4]
    lease = sys.argv[4] if len(sys.argv) > 4 else "2"
    with open(out_path, "a", encoding="utf-8") as out, httpx.Client(base_url=base_url, timeout=10) as client:
        while True:
            try:
                reply = client.get(f"/q/{queue}", params={"lease": lease, "count": 10, "wait": 1})
            except httpx.HTTPError:
                time.sleep(0.05)  # the server process went away: the next connection reaches another one
                continue
            if reply.status_code != 200:
                if reply.status_code != 204:
                    time.sleep(0.05)  # back-off before trying again, not a wait for a condition
                continue
            for message in reply.json():
                key = message["key"]
                out.write(f"P {key}\n")
                out.flush()
                try:
                    acked = client.delete(f"/q/{queue}/{key}", params={"count": message["count"]})
                except httpx.HTTPError:
                    continue  # lost with the server process; the lease runs out and it comes back
                if acked.status_code == 200:
                    out.write(f"A {key}\n")
                    out.flush()


if __name__ == "__main__":
    main()
