"""Serializes Debezium change events as Confluent Avro with PyPI confluent-kafka's
AvroSerializer against the schema registry at argv[1] (keys and values, TopicNameStrategy).
stdin: {"topic", "key_schema", "value_schema", "items": [{"key": {...}, "value": {...}}]}
stdout: {"messages": [{"key": hex, "value": hex}]}"""
import json
import sys

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

req = json.load(sys.stdin)
client = SchemaRegistryClient({"url": sys.argv[1]})
keys = AvroSerializer(client, json.dumps(req["key_schema"]))
values = AvroSerializer(client, json.dumps(req["value_schema"]))
topic = req["topic"]
out = []
for item in req["items"]:
    k = keys(item["key"], SerializationContext(topic, MessageField.KEY))
    v = values(item["value"], SerializationContext(topic, MessageField.VALUE))
    out.append({"key": k.hex(), "value": v.hex()})
print(json.dumps({"messages": out}))
