"""`cryptopipe chaos`: fault scenarios on the live path, each checked against ground truth.

Ground truth is the simulator's ledger of every trade its replay emitted, whatever happened to the
message that carried it (`simulator/ledger.py`); the warehouse must end holding exactly those
trades, once each.
"""
