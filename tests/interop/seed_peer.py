"""A peer speaking the Python seed's wire format (amqp_worker on aio-pika).

  seed_peer.py call URL          call the example service's routes, print the replies as JSON
  seed_peer.py serve URL ROUTE   answer ROUTE as the seed's RPCWorker does: echo the data,
                                 or fail with ValueError when the data is "raise"
"""

import asyncio
import gzip
import json
import sys
import uuid

import aio_pika


async def call(url):
    conn = await aio_pika.connect_robust(url)
    async with conn:
        channel = await conn.channel()
        replies = await channel.declare_queue(exclusive=True)
        results = {}
        for route, data in [("hello_world", "from python"), ("will-error", None), ("dictionary", None)]:
            corr = str(uuid.uuid4())
            body = gzip.compress(json.dumps({"data": data}).encode("utf-8"))
            await channel.default_exchange.publish(
                aio_pika.Message(body=body, correlation_id=corr, reply_to=replies.name),
                routing_key=route,
            )
            msg = await replies.get(timeout=10, fail=False)
            for _ in range(100):
                if msg is not None:
                    break
                await asyncio.sleep(0.05)
                msg = await replies.get(timeout=10, fail=False)
            if msg is None:
                raise SystemExit(f"no reply from {route}")
            await msg.ack()
            payload = msg.body
            if payload[:2] == b"\x1f\x8b":
                payload = gzip.decompress(payload)
            results[route] = {
                "body": json.loads(payload.decode("utf-8")),
                "type": msg.type,
                "correlation_matches": msg.correlation_id == corr,
            }
        print(json.dumps(results))


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
            if data == "raise":
                reply = {"success": False, "error": {"type": "ValueError", "message": "asked to raise", "args": ["asked to raise"], "trace": ""}}
            else:
                reply = {"success": True, "data": data}
            await channel.default_exchange.publish(
                aio_pika.Message(
                    body=gzip.compress(json.dumps(reply).encode("utf-8")),
                    correlation_id=message.correlation_id,
                    type="result",
                ),
                routing_key=message.reply_to,
            )

    await queue.consume(on_message)
    print("ready", flush=True)
    await asyncio.Future()


if __name__ == "__main__":
    if sys.argv[1] == "call":
        asyncio.run(call(sys.argv[2]))
    else:
        asyncio.run(serve(sys.argv[2], sys.argv[3]))
