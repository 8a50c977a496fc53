"""Exchange simulator: real recorded candles served through real exchange REST APIs.

Entry points: `server.create_app`, `server.run_simulator`, `server.SimulatorServer` and
`client.point_exchange_at`. Finer data (1m candles, trades) is derived deterministically
from a seed and aggregates back to the recordings exactly (`derive.split_bars`).
"""
