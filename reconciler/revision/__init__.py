"""Which revision of the desired state runs: a pure state machine (see gate.py)."""
