"""Serializes DataHub MetadataChangeLog records as Confluent Avro with PyPI confluent-kafka's
AvroSerializer (value, TopicNameStrategy) against the schema registry at argv[1]; keys are the
entity URN as a UTF-8 string (StringSerializer), as DataHub's producer writes them.
stdin: {"topic", "schema": <MetadataChangeLog.avsc>, "items": [<MCL with aspect.value as a JSON object>]}
stdout: {"messages": [{"key": hex, "value": hex}]}"""
import json
import sys

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext, StringSerializer


def generic(aspect):
    """GenericAspect: the aspect document serialized as JSON bytes."""
    if aspect is None:
        return None
    return {"value": json.dumps(aspect, separators=(",", ":")).encode(), "contentType": "application/json"}


req = json.load(sys.stdin)
client = SchemaRegistryClient({"url": sys.argv[1]})
values = AvroSerializer(client, json.dumps(req["schema"]))
keys = StringSerializer("utf_8")
topic = req["topic"]
out = []
for item in req["items"]:
    record = dict(item)
    for field in ("aspect", "previousAspectValue", "entityKeyAspect"):
        record[field] = generic(item.get(field))
    k = keys(item.get("entityUrn"), SerializationContext(topic, MessageField.KEY))
    v = values(record, SerializationContext(topic, MessageField.VALUE))
    out.append({"key": (k or b"").hex(), "value": v.hex()})
print(json.dumps({"messages": out}))
