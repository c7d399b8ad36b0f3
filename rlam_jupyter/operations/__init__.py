"""What users do with recorded runs: replay, verify, fork, diff, audit, bundle, agents.

Layer 6 of 7 (see docs/architecture.md): built on the engine and the store, called by
the front ends, never importing them.
"""
