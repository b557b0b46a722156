"""Schedules: a heartbeat every 2 seconds read back with the tick each message stands for, and a nightly cron.

restmq serve &                      # a server on http://127.0.0.1:8888
python examples/schedules.py        # or: RESTMQ_URL=http://host:port python examples/schedules.py
"""

from __future__ import annotations

from restmq.client import Client


def main() -> None:
    with Client() as client:
        beat = client.create_schedule("example.heartbeat", "beat {{tick}}", every=2)
        nightly = client.create_schedule("example.reports", '{"run": "nightly"}', cron="0 3 * * *", tz="Europe/Paris")
        print(f"created {beat.id} (every 2 s) and {nightly.id} (next: {nightly.next_tick_ms} ms)")
        try:
            for _ in range(3):
                message = client.take("example.heartbeat", wait=10)  # a long-poll: no sleeping
                print(message.value if message else "no tick within 10 s")
            client.pause_schedule(beat.id)
            print("paused; fired so far:", client.schedule(beat.id).fired)
        finally:
            client.delete_schedule(beat.id)
            client.delete_schedule(nightly.id)


if __name__ == "__main__":
    main()
