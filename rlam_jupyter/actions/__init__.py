"""The action schema: what an agent may propose, and what a proposal must satisfy.

Layer 2 of 7 (see docs/architecture.md): the registry of ``@action`` functions and
the built-in catalogue, proposals (parsed from ``%%rlam`` cells or agents' JSON) and
their check, and an action's identity and recorded source.
"""
