"""Proposals: what an agent or a person *wants* to run, parsed and checked, never executed.

A ``%%rlam`` body is Python *syntax* read with :mod:`ast`; nothing in it is evaluated.
Each statement must be ``name = action(kw=literal|name, ...)`` (or a tuple of names
for multi-output actions, or a bare ``action(...)``). The same :class:`Proposal`
comes from JSON (an LLM tool call, a sidebar click). :func:`check` validates a
proposal against the action registry and the names bound so far.

This module is where callers import the proposal API from; the records live in
:mod:`~rlam_jupyter.actions.proposal_record`, the parser in
:mod:`~rlam_jupyter.actions.cell_parser`, the schema check in
:mod:`~rlam_jupyter.actions.proposal_check`.
"""

from __future__ import annotations

from rlam_jupyter.actions.cell_parser import (
    MAX_LITERAL_ITEMS,
    MAX_NESTING,
    MAX_SOURCE_CHARS,
    MAX_STRING_CHARS,
    parse_cell,
)
from rlam_jupyter.actions.proposal_check import PENDING, check
from rlam_jupyter.actions.proposal_record import (
    CheckedProposal,
    Origin,
    Proposal,
    ProposalRejected,
    suggest,
)

__all__ = [
    "MAX_LITERAL_ITEMS",
    "MAX_NESTING",
    "MAX_SOURCE_CHARS",
    "MAX_STRING_CHARS",
    "PENDING",
    "CheckedProposal",
    "Origin",
    "Proposal",
    "ProposalRejected",
    "check",
    "parse_cell",
    "suggest",
]
