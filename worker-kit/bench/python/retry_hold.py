# What retries waiting in the broker hold there (docs/performance.md): the memory of a delay
# queue with nothing in it, and with N copies waiting (persistent, 200 bytes, the TTL long
# enough that none expires while measured), for a classic and a quorum delay queue. The
# memory is the queue's own process (rabbitmqctl list_queues ... memory), so other traffic
# on the broker does not blur it.
# Usage: python retry_hold.py <copies>
# (needs aio-pika and rabbitmqctl; the broker at amqp://guest:guest@127.0.0.1/; makes and
# deletes its queues).
import asyncio, subprocess, sys, time, uuid
import aio_pika


def queue_stats(name):
    out = subprocess.run(
        ["rabbitmqctl", "-q", "list_queues", "-p", "/", "--no-table-headers", "name", "messages", "memory"],
        capture_output=True, text=True, check=True,
    ).stdout
    for line in out.splitlines():
        fields = line.split("\t")
        if fields[0] == name:
            return int(fields[1]), int(fields[2])
    raise SystemExit(f"{name} not listed")


async def settle(name, want, limit=120):
    deadline = time.monotonic() + limit
    while True:
        n, mem = queue_stats(name)
        if n == want:
            return mem
        if time.monotonic() > deadline:
            raise SystemExit(f"{name}: {n} messages, waiting for {want}")
        await asyncio.sleep(0.5)


async def run(kind, n):
    conn = await aio_pika.connect("amqp://guest:guest@127.0.0.1/")
    ch = await conn.channel(publisher_confirms=True)
    route = f"t.bench-hold.{uuid.uuid4().hex[:12]}"
    delay = route + ".retry.600000"
    await ch.declare_queue(route, durable=True, arguments={"x-queue-type": kind})
    dargs = {"x-queue-type": kind, "x-message-ttl": 600000, "x-dead-letter-exchange": "",
             "x-dead-letter-routing-key": route}
    if kind == "quorum":
        dargs.update({"x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"})
    await ch.declare_queue(delay, durable=True, arguments=dargs)
    try:
        await asyncio.sleep(2)
        idle = await settle(delay, 0)
        body = b"x" * 200
        batch = []
        for _ in range(n):
            batch.append(ch.default_exchange.publish(aio_pika.Message(body, delivery_mode=2), routing_key=delay))
            if len(batch) == 100:
                await asyncio.gather(*batch)
                batch = []
        if batch:
            await asyncio.gather(*batch)
        await asyncio.sleep(2)
        held = await settle(delay, n)
        print(f"{kind:8} delay queue idle {idle / 1024:8.1f} KiB; with {n} copies waiting "
              f"{held / 1024:8.1f} KiB: {(held - idle) / n:6.1f} bytes per copy", flush=True)
    finally:
        await ch.queue_delete(delay)
        await ch.queue_delete(route)
        await conn.close()


async def main():
    n = int(sys.argv[1])
    for kind in ("classic", "quorum"):
        for _ in range(2):
            await run(kind, n)

asyncio.run(main())
