"""Values as the trace sees them: canonical bytes, content hashes, seeds, environment.

Layer 1 of 7 (see docs/architecture.md): nothing here knows of actions, runs or stores.
"""
