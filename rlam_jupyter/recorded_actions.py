"""The action a recorded step ran with: registered here, or rebuilt from the trace.

Replay's verification, forks and a bundle's re-execution all need, for each recorded
step, an action to run. :class:`RecordedActions` is the one place that finds it:

- a ``%%rlam python`` cell is rebuilt from its recorded source (its only parameter);
- an action registered here whose identity is the recorded one is used as it is;
- otherwise the action is rebuilt from the source the trace recorded for that version
  (:mod:`rlam_jupyter.action_source`), so a notebook's own actions re-execute where the
  notebook is not running;
- failing that, a registered action of the same name is used with a note that it changed
  (a fork prefers the current definition anyway: it asks "what would happen now").

When none of that works, the reason names what is missing and how to provide it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rlam_jupyter.action_source import Rebuilt, RecordedSource, rebuild
from rlam_jupyter.actions import ActionSpec, Registry
from rlam_jupyter.python_cell import ACTION_NAME as PYTHON
from rlam_jupyter.python_cell import spec_for_recorded_cell
from rlam_jupyter.run_index import StepEntry

RowsLoader = Callable[[Sequence[str]], Iterable[Mapping[str, Any]]]
"""Given action versions, the ``actions`` rows recorded for them."""


@dataclass(frozen=True)
class Resolved:
    """The action to run a recorded step with (None: it cannot run here, ``reason`` says why)."""

    spec: ActionSpec | None
    notes: tuple[str, ...] = ()
    reason: str = ""
    rebuilt: bool = False


@dataclass
class RecordedActions:
    """Finds (and rebuilds, once per version) the actions of recorded steps."""

    registry: Registry
    load_rows: RowsLoader | None = None
    _rebuilt: dict[str, Resolved] = field(default_factory=dict)

    def for_step(
        self,
        action: str,
        action_version: str | None,
        determinism: str | None,
        params: Mapping[str, Any],
        input_names: Sequence[str],
        targets: Sequence[str],
        *,
        prefer_current: bool = False,
    ) -> Resolved:
        current = self.registry.get(action)
        if action == PYTHON and current is None:
            spec = spec_for_recorded_cell(params, input_names, targets, determinism)
            if spec is None:
                return Resolved(None, reason="the python cell's source is not recorded")
            return Resolved(spec)
        if current is not None and (prefer_current or not action_version):
            return Resolved(current)
        current_version = current.current_identity().version_id if current else None
        if current is not None and current_version == action_version:
            return Resolved(current)
        assert action_version is not None
        rebuilt = self._rebuild(action, action_version)
        if rebuilt.spec is not None:
            return rebuilt
        if current is not None:
            return Resolved(
                current,
                (f"action changed since recorded ({action_version} → {current_version})",),
            )
        return Resolved(
            None,
            reason=f"action {action!r} is not registered here and {rebuilt.reason}; pass "
            "--import with the module or file that defines it",
        )

    def for_entry(self, entry: StepEntry, *, prefer_current: bool = False) -> Resolved:
        """:meth:`for_step` of a step as the run index has it."""
        return self.for_step(
            entry.action,
            entry.action_version,
            entry.determinism,
            entry.params,
            list(entry.input_ids or entry.inputs),
            entry.targets,
            prefer_current=prefer_current,
        )

    def _rebuild(self, action: str, action_version: str) -> Resolved:
        known = self._rebuilt.get(action_version)
        if known is not None:
            return known
        rows = list(self.load_rows([action_version])) if self.load_rows else []
        sources = [RecordedSource.from_row(r) for r in rows]
        resolved: Resolved
        if not sources:
            resolved = Resolved(
                None,
                reason="the trace holds no source for it (recorded by an earlier version "
                "of rlam-jupyter)",
            )
        elif all(s.origin == "package" for s in sources):
            module = sources[0].module
            resolved = Resolved(
                None, reason=f"it comes from the installed package module {module!r}"
            )
        else:
            resolved = _resolved_from(rebuild(sources[:1]), action, action_version)
        self._rebuilt[action_version] = resolved
        return resolved


def _resolved_from(rebuilt: Rebuilt, action: str, action_version: str) -> Resolved:
    spec = rebuilt.by_version.get(action_version)
    if spec is None:
        problem = rebuilt.problems.get(action_version, "its recorded source defines no action")
        return Resolved(None, reason=problem)
    identity = spec.current_identity()
    notes: tuple[str, ...] = ()
    if identity.version_id != action_version:
        recorded = rebuilt.sources[action_version].packages
        changed = [
            f"{name} {recorded.get(name, '(not used)')} → {version}"
            for name, version in sorted(identity.packages.items())
            if recorded.get(name) != version
        ]
        why = f"packages differ: {', '.join(changed)}" if changed else "what it reads differs"
        notes = (
            f"rebuilt {action} from its recorded source; its identity here is "
            f"{identity.version_id}, recorded {action_version} ({why})",
        )
    return Resolved(spec, notes, rebuilt=True)


def rows_from_connection(con: Any) -> RowsLoader:
    """A loader of ``actions`` rows from a DuckDB connection on the trace views."""

    def load(versions: Sequence[str]) -> list[dict[str, Any]]:
        relation = con.execute(
            "SELECT * FROM actions WHERE action_version IN (SELECT unnest(?::VARCHAR[])) "
            "ORDER BY event_no",
            [list(versions)],
        )
        names = [d[0] for d in relation.description]
        return [dict(zip(names, row, strict=True)) for row in relation.fetchall()]

    return load


def rows_from_store(layout: Any) -> RowsLoader:
    """A loader that opens the store's views only when a step needs a recorded source."""

    def load(versions: Sequence[str]) -> list[dict[str, Any]]:
        from rlam_jupyter.store.catalog import connect

        con = connect(layout)
        try:
            return [dict(row) for row in rows_from_connection(con)(versions)]
        finally:
            con.close()

    return load


def input_names_of(inputs_json: str | None, input_names_json: str | None) -> list[str]:
    """The input parameter names of a recorded step (from its JSON columns)."""
    for text in (input_names_json, inputs_json):
        if text:
            try:
                return list(json.loads(text))
            except ValueError:
                continue
    return []
