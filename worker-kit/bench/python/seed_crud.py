"""The CRUD route in the Python seed's stack for the benchmark: aio-pika + asyncpg.

  seed_crud.py serve URL ROUTE DSN
      answer ROUTE as the seed's RPCWorker does: gunzip {"data": {"name", "price_cents"}},
      INSERT the item, SELECT it by id, reply gzip({"success": true, "data": item}), ack.
      Prints "ready" once consuming; runs until killed.
"""

import asyncio
import gzip
import json
import sys

import aio_pika
import asyncpg

INSERT = "INSERT INTO items (name, price_cents) VALUES ($1, $2) RETURNING id"
SELECT = "SELECT id, name, price_cents, tags, created_at, updated_at FROM items WHERE id = $1"


async def serve(url, route, dsn):
    pool = await asyncpg.create_pool(dsn, min_size=4, max_size=16)
    conn = await aio_pika.connect_robust(url)
    channel = await conn.channel()
    await channel.set_qos(prefetch_count=64)
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
            try:
                async with pool.acquire() as db:
                    item_id = await db.fetchval(INSERT, data["name"], data.get("price_cents", 0))
                    row = await db.fetchrow(SELECT, item_id)
                item = dict(row)
                item["created_at"] = item["created_at"].isoformat()
                item["updated_at"] = item["updated_at"].isoformat()
                item["tags"] = list(item["tags"])
                reply = {"success": True, "data": item}
            except Exception as err:  # the seed answers every failure with its error shape
                reply = {"success": False, "error": {"type": type(err).__name__, "message": repr(err), "args": [], "trace": ""}}
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
    asyncio.run(serve(sys.argv[2], sys.argv[3], sys.argv[4]))
