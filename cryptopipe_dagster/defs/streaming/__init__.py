"""Streaming path: Pub/Sub sensor lands micro-batches durably, then a run MERGEs them into raw.trades."""
