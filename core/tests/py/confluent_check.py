"""Cross-checks our Confluent wire format with the official client (PyPI confluent-kafka's
SchemaRegistryClient, AvroSerializer, AvroDeserializer), pointed at the registry stub the Rust test
serves.

usage: confluent_check.py serialize|deserialize REGISTRY_URL < request.json
  serialize:   {"items": [{"topic", "schema": avsc text, "record": JSON payload}]}
               -> {"messages": [hex]}  (AvroSerializer, auto-registering under <topic>-value)
  deserialize: {"items": [{"topic", "message": hex}]}
               -> {"records": [JSON]}  (AvroDeserializer with the writer schema from the registry)
"""

import json
import sys

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from common import normalize


def main():
    mode, url = sys.argv[1], sys.argv[2]
    req = json.load(sys.stdin)
    client = SchemaRegistryClient({"url": url})
    if mode == "serialize":
        out = []
        for item in req["items"]:
            ser = AvroSerializer(client, item["schema"], conf={"auto.register.schemas": True})
            ctx = SerializationContext(item["topic"], MessageField.VALUE)
            out.append(ser(item["record"], ctx).hex())
        json.dump({"messages": out}, sys.stdout)
    elif mode == "deserialize":
        de = AvroDeserializer(client)
        out = []
        for item in req["items"]:
            ctx = SerializationContext(item["topic"], MessageField.VALUE)
            out.append(normalize(de(bytes.fromhex(item["message"]), ctx)))
        json.dump({"records": out}, sys.stdout)
    else:
        print(f"unknown mode {mode}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
