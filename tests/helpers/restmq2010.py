# ruff: noqa: UP031  (the 2010 code's %-formatting of key names, kept as it was)
"""RestMQ 2010's own RedisOperations (src/restmq/core.py of gleicon/restmq), ported to Python 3 with the
smallest mechanical changes, to fill a Redis exactly as a 2010 server did: Twisted's deferreds became plain
calls on a synchronous redis-py client (`yield self.redis.x(...)` -> `self.redis.x(...)`,
`defer.returnValue(v)` -> `return v`, lindex's "-1" -> -1), `types.StringType`/`UnicodeType` became `str`,
and redis-py replies are decoded. Only the functions that write what `restmq import-2010` reads, and the
consuming ones."""

from __future__ import annotations

from typing import Any

import redis

POLICY_BROADCAST = 1
POLICY_ROUNDROBIN = 2
QUEUE_STATUS = "queuestat:"
QUEUE_POLICY = "%s:queuepolicy"
QUEUE_NAME = "%s:queue"


class RedisOperations:
    def __init__(self, redis: redis.Redis) -> None:
        self.STOPQUEUE = 0
        self.STARTQUEUE = 1
        self.redis = redis
        self.policies = {
            "broadcast": POLICY_BROADCAST,
            "roundrobin": POLICY_ROUNDROBIN,
        }
        self.QUEUESET = "QUEUESET"  # the set which holds all queues

    def normalize(self, item: Any) -> str:
        if isinstance(item, str):
            return item
        raise ValueError("data must be utf-8")

    def queue_add(self, queue: str, value: str, ttl: int | None = None) -> str:
        queue, value = self.normalize(queue), self.normalize(value)

        uuid = self.redis.incr("%s:UUID" % queue)
        key = "%s:%d" % (queue, uuid)
        self.redis.set(key, value)
        if ttl is not None:
            self.redis.expire(key, ttl)
        internal_queue_name = QUEUE_NAME % self.normalize(queue)
        if uuid == 1:  # TODO: use ismember()
            # either by checking uuid or by ismember, this is where you must know if the queue is a new one.
            # add to queues set
            self.redis.sadd(self.QUEUESET, queue)

            ckey = "%s:%s" % (QUEUE_STATUS, queue)
            self.redis.set(ckey, self.STARTQUEUE)

        self.redis.lpush(internal_queue_name, key)
        return key

    def queue_get(self, queue: str, softget: bool = False) -> tuple[Any, Any]:
        queue = self.normalize(queue)
        lkey = QUEUE_NAME % self.normalize(queue)
        okey: Any
        if softget is False:
            okey = self.redis.rpop(lkey)
        else:
            okey = self.redis.lindex(lkey, -1)

        if okey is None:
            return (None, None)

        qpkey = QUEUE_POLICY % queue
        (policy, val) = self.redis.mget([qpkey, okey])
        c = 0
        if softget is True:
            c = self.redis.incr("%s:refcount" % okey)

        return (policy or POLICY_BROADCAST, {"key": okey, "value": val, "count": c})

    def queue_del(self, queue: str, okey: str) -> dict[str, Any]:
        queue, okey = self.normalize(queue), self.normalize(okey)
        val = self.redis.delete(okey)
        return {"key": okey, "value": val}

    def queue_policy_set(self, queue: str, policy: str) -> Any:
        queue, policy = self.normalize(queue), self.normalize(policy)
        if policy in ("broadcast", "roundrobin"):
            policy_id = self.policies[policy]
            qpkey = QUEUE_POLICY % queue
            res = self.redis.set(qpkey, policy_id)
            return res
        return None

    def queue_changestatus(self, queue: str, status: int) -> dict[str, Any] | None:
        """Statuses: core.STOPQUEUE/core.STARTQUEUE"""
        if status != self.STOPQUEUE and status != self.STARTQUEUE:
            return None

        key = "%s:%s" % (QUEUE_STATUS, queue)
        self.redis.set(key, status)
        return {"queue": queue, "status": status}

    def queue_purge(self, queue: str) -> dict[str, Any]:
        lkey = QUEUE_NAME % self.normalize(queue)
        res = self.redis.delete(lkey)
        return {"queue": queue, "status": res}
