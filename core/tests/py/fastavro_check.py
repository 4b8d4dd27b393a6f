"""Cross-checks our Avro bytes with fastavro, an independent Avro implementation.

Reads a JSON request on stdin (written by core/tests/codec_fastavro.rs):
  {"schemas": {kind: avsc text}, "envelope": avsc text,
   "items": [{"kind", "raw": hex datum, "single_object": hex, "expected": JSON of the payload}],
   "events": [{"kind", "structured": hex single-object envelope datum}]}
For every item it checks the single-object header (C3 01 + little-endian CRC-64-AVRO fingerprint
computed by fastavro), decodes both forms with fastavro, checks the datum is fully consumed and
equals the expected JSON, then re-encodes with fastavro (as is, and with one string field changed).
Writes {"items": [...], "events": [...]} on stdout; exits non-zero with a message on any mismatch.
"""

import io
import json
import sys

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.schema import fingerprint, to_parsing_canonical_form

from common import micros, normalize


def fail(msg):
    print(msg, file=sys.stderr)
    sys.exit(1)


def read_all(data, schema, what):
    buf = io.BytesIO(data)
    record = schemaless_reader(buf, schema, None)
    if buf.tell() != len(data):
        fail(f"{what}: fastavro consumed {buf.tell()} of {len(data)} bytes")
    return record


def write(schema, record):
    buf = io.BytesIO()
    schemaless_writer(buf, schema, record)
    return buf.getvalue()


def spec_rabin(data):
    """CRC-64-AVRO exactly as the Avro specification's reference code computes it."""
    empty = 0xC15D213AA4D7A795
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (empty & -(fp & 1))
        table.append(fp)
    fp = empty
    for b in data:
        fp = (fp >> 8) ^ table[(fp ^ b) & 0xFF]
    return fp


def single_object_header(schema):
    canonical = to_parsing_canonical_form(schema)
    # fastavro returns the fingerprint bytes already in little-endian order (as Java writes them).
    fp = bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))
    if fp != spec_rabin(canonical.encode()).to_bytes(8, "little"):
        fail("fastavro's fingerprint disagrees with the specification's algorithm")
    return b"\xc3\x01" + fp


def main():
    req = json.load(sys.stdin)
    parsed = {k: parse_schema(json.loads(text), named_schemas={}) for k, text in req["schemas"].items()}
    out_items = []
    for item in req["items"]:
        kind = item["kind"]
        schema = parsed[kind]
        header = single_object_header(schema)
        so = bytes.fromhex(item["single_object"])
        if so[:10] != header:
            fail(f"{kind}: single-object header {so[:10].hex()} != fastavro's {header.hex()}")
        from_so = normalize(read_all(so[10:], schema, f"{kind} single-object"))
        raw_record = read_all(bytes.fromhex(item["raw"]), schema, f"{kind} raw")
        from_raw = normalize(raw_record)
        if from_so != item["expected"] or from_raw != item["expected"]:
            fail(f"{kind}: fastavro decoded\n{json.dumps(from_raw, sort_keys=True)}\nexpected\n"
                 f"{json.dumps(item['expected'], sort_keys=True)}")
        reencoded = write(schema, raw_record)
        mutated_record = dict(raw_record)
        field = "title" if "title" in mutated_record else ("label" if "label" in mutated_record else "description")
        mutated_record[field] = "written by fastavro ✓"
        mutated = write(schema, mutated_record)
        out_items.append({
            "kind": kind,
            "decoded": from_raw,
            "reencoded": reencoded.hex(),
            "single_object": (header + reencoded).hex(),
            "mutated_field": field,
            "mutated": (header + mutated).hex(),
        })

    # The envelope refers to the payload records by full name: parse them into one namespace.
    named = {}
    for text in req["schemas"].values():
        parse_schema(json.loads(text), named_schemas=named)
    envelope = parse_schema(json.loads(req["envelope"]), named_schemas=named)
    env_header = single_object_header(envelope)
    out_events = []
    for ev in req["events"]:
        data = bytes.fromhex(ev["structured"])
        if data[:10] != env_header:
            fail(f"{ev['kind']}: envelope header {data[:10].hex()} != fastavro's {env_header.hex()}")
        record = read_all(data[10:], envelope, f"{ev['kind']} envelope")
        record["time"] = micros(record["time"])
        record["recordedtime"] = micros(record["recordedtime"])
        record["data"] = normalize(record["data"])
        out_events.append(record)
        # And fastavro's own encoding of the same event, for Rust to decode.
        ev_out = write(envelope, read_all(data[10:], envelope, "again"))
        out_events[-1]["reencoded"] = (env_header + ev_out).hex()
    json.dump({"items": out_items, "events": out_events}, sys.stdout)


if __name__ == "__main__":
    main()
