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


if __name__ == "__main__":
    if sys.argv[1] == "call":
        asyncio.run(call(sys.argv[2]))
    else:
        asyncio.run(serve(sys.argv[2], sys.argv[3], durable=sys.argv[4:] == ["durable"]))
