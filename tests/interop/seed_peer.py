"""A peer built the way the Python seed's `amqp_worker` is: aio-pika's RPC pattern with
JSON + gzip serialization and the seed's response shapes.

  seed_peer.py call URL          call the example service's routes through aio-pika's
                                 RPC.call, print the replies as JSON
  seed_peer.py serve URL ROUTE [durable]
                                 register ROUTE with aio-pika's RPC.register, as the seed's
                                 RPCWorker does: echo the data, or fail with ValueError when
                                 the data is "raise"; with "durable", declare the queue
                                 durable (what a Python fleet does once its RPC queues are,
                                 e.g. on RabbitMQ 4.3)
  seed_peer.py work URL ROUTE    consume the work queue ROUTE as the seed's queue worker
                                 does (declared durable without arguments, decoded with
                                 the seed's serialization, acked), and print one JSON line
                                 per message: what a Python worker sees of it
"""

import asyncio
import gzip
import json
import sys
import traceback

import aio_pika
from aio_pika.patterns import RPC


class SeedRPC(RPC):
    """aio-pika's RPC pattern with the seed's serialization: gzip(UTF-8(JSON))."""

    CONTENT_TYPE = "application/octet-stream"

    def serialize(self, data):
        return gzip.compress(json.dumps(data, ensure_ascii=False).encode("utf-8"))

    def deserialize(self, data):
        return json.loads(gzip.decompress(data).decode("utf-8"))

    def serialize_exception(self, exception):
        return self.serialize(error_response(exception))


def error_response(err):
    return {
        "success": False,
        "error": {
            "type": err.__class__.__name__,
            "message": repr(err),
            "args": list(err.args),
            "trace": "".join(traceback.format_exception(type(err), err, err.__traceback__)),
        },
    }


async def call(url):
    conn = await aio_pika.connect(url)
    async with conn:
        channel = await conn.channel()
        rpc = await SeedRPC.create(channel)
        results = {}
        for route, data in [("hello_world", "from python"), ("will-error", "from python"), ("dictionary", {"foo": "bar"})]:
            reply = await asyncio.wait_for(rpc.call(route, kwargs={"data": data}, expiration=10), 15)
            results[route] = reply
        print(json.dumps(results))


async def serve(url, route, durable=False):
    conn = await aio_pika.connect(url)
    channel = await conn.channel()
    rpc = await SeedRPC.create(channel)

    async def handler(data):
        # The seed wraps every handler: its value becomes {"success": true, "data": ...},
        # an exception becomes the error shape.
        try:
            if data == "raise":
                raise ValueError("asked to raise")
            return {"success": True, "data": data}
        except Exception as err:  # noqa: BLE001 - the seed catches everything
            return error_response(err)

    await rpc.register(route, handler, durable=durable)
    print("ready", flush=True)
    await asyncio.Future()


async def work(url, route):
    conn = await aio_pika.connect(url)
    channel = await conn.channel()
    await channel.set_qos(prefetch_count=1)
    queue = await channel.declare_queue(route, durable=True)

    async def on_message(message):
        seen = {
            "exchange": message.exchange,
            "routing_key": message.routing_key,
            "expiration": None if message.expiration is None else str(message.expiration),
            "redelivered": message.redelivered,
            "headers": sorted((message.headers or {}).keys()),
            "retry_count": (message.headers or {}).get("x-retry-count"),
        }
        try:
            seen["body"] = SeedRPC.deserialize(None, message.body)
        except Exception as err:  # noqa: BLE001 - reported to the test, not raised
            seen["body_error"] = repr(err)
        await message.ack()
        print(json.dumps(seen), flush=True)

    await queue.consume(on_message)
    print("ready", flush=True)
    await asyncio.Future()


if __name__ == "__main__":
    if sys.argv[1] == "call":
        asyncio.run(call(sys.argv[2]))
    elif sys.argv[1] == "work":
        asyncio.run(work(sys.argv[2], sys.argv[3]))
    else:
        asyncio.run(serve(sys.argv[2], sys.argv[3], durable=sys.argv[4:] == ["durable"]))
