"""A Python caller instrumented the usual way: an OpenTelemetry SDK tracer and
opentelemetry-instrumentation-aio-pika, whose publish wrapper starts a PRODUCER span and
writes its context into the message's `traceparent` header.

  traced_caller.py URL ROUTE DATA_JSON
      call ROUTE once through aio-pika's RPC pattern with the seed's serialization
      (gzip(JSON {"data": DATA})) inside a span "python caller", then print one JSON line:
      the reply and the finished spans (name, kind, trace and span ids as hex, parent id)
"""

import asyncio
import json
import sys

import aio_pika
from opentelemetry import trace
from opentelemetry.instrumentation.aio_pika import AioPikaInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

# The seed's RPC pattern (gzip(UTF-8(JSON)) bodies), from the peer beside this script.
from seed_peer import SeedRPC


def described(span):
    return {
        "name": span.name,
        "kind": span.kind.name,
        "trace_id": format(span.context.trace_id, "032x"),
        "span_id": format(span.context.span_id, "016x"),
        "parent_id": format(span.parent.span_id, "016x") if span.parent else None,
        "attributes": {k: str(v) for k, v in (span.attributes or {}).items()},
    }


async def call(url, route, data):
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    AioPikaInstrumentor().instrument(tracer_provider=provider)
    tracer = provider.get_tracer("traced_caller")
    conn = await aio_pika.connect(url)
    async with conn:
        channel = await conn.channel()
        rpc = await SeedRPC.create(channel)
        with tracer.start_as_current_span("python caller"):
            reply = await asyncio.wait_for(rpc.call(route, kwargs={"data": data}, expiration=10), 15)
    provider.force_flush()
    print(json.dumps({"reply": reply, "spans": [described(s) for s in exporter.get_finished_spans()]}))


if __name__ == "__main__":
    asyncio.run(call(sys.argv[1], sys.argv[2], json.loads(sys.argv[3])))
