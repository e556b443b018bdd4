# What a delayed retry costs the broker against an immediate one (docs/performance.md):
# broker CPU per message for a copy published to the route queue and consumed (an immediate
# retry) vs the same copy published to a delay queue with a 1 ms TTL that dead-letters it to
# the route (the kit's delayed retry, without the wait). Classic and quorum, two runs each.
# Usage: python retry_hop.py <pid of RabbitMQ's beam.smp> <messages per run>
# (needs aio-pika; the broker at amqp://guest:guest@127.0.0.1/; makes and deletes its queues).
import asyncio, os, sys, time, uuid
import aio_pika

CLK = os.sysconf("SC_CLK_TCK")
def beam_cpu(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / CLK

async def run(mode, n, pid, kind):
    conn = await aio_pika.connect_robust("amqp://guest:guest@127.0.0.1/")
    ch = await conn.channel(publisher_confirms=True)
    route = f"t.bench-hop.{uuid.uuid4().hex[:12]}"
    qargs = {"x-queue-type": kind}
    q = await ch.declare_queue(route, durable=True, arguments=qargs)
    target = route
    if mode == "delayed":
        dargs = {"x-queue-type": kind, "x-message-ttl": 1, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": route}
        if kind == "quorum":
            dargs.update({"x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"})
        await ch.declare_queue(route + ".retry.1", durable=True, arguments=dargs)
        target = route + ".retry.1"
    got = 0
    done = asyncio.Event()
    async def on(m):
        nonlocal got
        await m.ack()
        got += 1
        if got == n: done.set()
    cch = await conn.channel(); await cch.set_qos(prefetch_count=200)
    cq = await cch.get_queue(route)
    await cq.consume(on)
    body = b"x" * 200
    c0, t0 = beam_cpu(pid), time.monotonic()
    batch = []
    for i in range(n):
        batch.append(ch.default_exchange.publish(aio_pika.Message(body, delivery_mode=2), routing_key=target))
        if len(batch) == 100:
            await asyncio.gather(*batch); batch = []
    if batch: await asyncio.gather(*batch)
    await asyncio.wait_for(done.wait(), 120)
    c1, t1 = beam_cpu(pid), time.monotonic()
    await ch.queue_delete(route)
    if mode == "delayed": await ch.queue_delete(route + ".retry.1")
    await conn.close()
    return (c1 - c0) / n * 1e6, (t1 - t0) / n * 1e6

async def main():
    pid, n = int(sys.argv[1]), int(sys.argv[2])
    for kind in ("classic", "quorum"):
        for rep in range(2):
            for mode in ("immediate", "delayed"):
                cpu, wall = await run(mode, n, pid, kind)
                print(f"{kind:8} {mode:9} rep{rep}: broker CPU {cpu:6.1f} us/msg, wall {wall:6.1f} us/msg", flush=True)

asyncio.run(main())
