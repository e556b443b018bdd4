"""The Python seed's stack for the benchmark: aio-pika speaking amqp_worker's format.

  seed_echo.py serve URL ROUTE
      answer ROUTE as the seed's RPCWorker does: gunzip {"data": ...}, reply
      gzip({"success": true, "data": ...}) to reply_to, ack after the reply is sent.
      Prints "ready" once consuming; runs until killed or the queue is deleted.

  seed_echo.py call URL ROUTE N IN_FLIGHT PAYLOAD_FILE
      call ROUTE N times with at most IN_FLIGHT calls pending, through an exclusive
      reply queue as the seed's RPC client does, with the JSON value in PAYLOAD_FILE as
      data. Prints one JSON line: {"calls", "seconds", "p50_ms", "p99_ms", "cpu_seconds"}.
"""

import asyncio
import gzip
import json
import math
import sys
import time
import uuid

import aio_pika


async def serve(url, route):
    conn = await aio_pika.connect_robust(url)
    channel = await conn.channel()
    await channel.declare_exchange("rpc.dlx", aio_pika.ExchangeType.HEADERS, durable=False, auto_delete=True)
    queue = await channel.declare_queue(
        route, durable=False, exclusive=False, auto_delete=False,
        arguments={"x-dead-letter-exchange": "rpc.dlx"},
    )

    async def on_message(message):
        async with message.process():
            raw = message.body
            if raw[:2] == b"\x1f\x8b":
                raw = gzip.decompress(raw)
            data = json.loads(raw.decode("utf-8"))["data"]
            reply = {"success": True, "data": data}
            await channel.default_exchange.publish(
                aio_pika.Message(
                    body=gzip.compress(json.dumps(reply).encode("utf-8")),
                    correlation_id=message.correlation_id,
                    content_encoding="gzip",
                    type="result",
                ),
                routing_key=message.reply_to,
            )

    await queue.consume(on_message)
    print("ready", flush=True)
    await asyncio.Future()


async def call(url, route, n, in_flight, payload_file):
    with open(payload_file, encoding="utf-8") as f:
        data = json.load(f)
    conn = await aio_pika.connect_robust(url)
    async with conn:
        channel = await conn.channel()
        replies = await channel.declare_queue(exclusive=True, auto_delete=True)
        futures = {}
        loop = asyncio.get_running_loop()

        async def on_reply(message):
            fut = futures.pop(message.correlation_id, None)
            if fut is not None and not fut.done():
                fut.set_result(message.body)

        await replies.consume(on_reply, no_ack=True)
        latencies = []
        remaining = n

        async def worker():
            # IN_FLIGHT workers each calling in a loop: the cheapest way to keep that many
            # calls pending in asyncio (one task per call would cost Python more).
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                started = time.perf_counter()
                corr = str(uuid.uuid4())
                fut = loop.create_future()
                futures[corr] = fut
                body = gzip.compress(json.dumps({"data": data}).encode("utf-8"))
                await channel.default_exchange.publish(
                    aio_pika.Message(body=body, correlation_id=corr, reply_to=replies.name,
                                     content_encoding="gzip"),
                    routing_key=route,
                )
                raw = await asyncio.wait_for(fut, timeout=30)
                reply = json.loads(gzip.decompress(raw).decode("utf-8"))
                if not reply.get("success"):
                    raise SystemExit(f"call failed: {reply}")
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        cpu_started = time.process_time()
        await asyncio.gather(*(worker() for _ in range(min(in_flight, n))))
        seconds = time.perf_counter() - started
        cpu_seconds = time.process_time() - cpu_started
    latencies.sort()

    def pct(q):
        rank = min(max(math.ceil(q * len(latencies)), 1), len(latencies))
        return latencies[rank - 1] * 1000.0

    print(json.dumps({"calls": n, "seconds": seconds, "p50_ms": pct(0.5), "p99_ms": pct(0.99), "cpu_seconds": cpu_seconds}), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        asyncio.run(serve(sys.argv[2], sys.argv[3]))
    elif sys.argv[1] == "call":
        asyncio.run(call(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]))
    else:
        raise SystemExit(__doc__)
