"""Shared helpers of the Python cross-check scripts: turn what Avro libraries decode into the JSON
shape of our JSON codec (instants as epoch milliseconds), so Rust can compare it with its own."""

import datetime


def normalize(value):
    """Recursively converts fastavro/confluent decoded values to plain JSON values."""
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        delta = value - datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
        return (delta.days * 86_400_000) + (delta.seconds * 1000) + (delta.microseconds // 1000)
    if isinstance(value, dict):
        return {k: normalize(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [normalize(v) for v in value]
    return value


def micros(value):
    """A timestamp-micros value as an integer."""
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        delta = value - datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
        return (delta.days * 86_400_000_000) + (delta.seconds * 1_000_000) + delta.microseconds
    return value
