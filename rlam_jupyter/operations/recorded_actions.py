"""The action a recorded step ran with: registered here, or rebuilt from the trace.

Replay's verification, forks and a bundle's re-execution all need, for each recorded
step, an action to run. :class:`RecordedActions` is the one place that finds it:

- a ``%%rlam python`` cell is rebuilt from its recorded source (its only parameter);
- an action registered here whose identity is the recorded one is used as it is;
- otherwise the action is rebuilt from the source the trace recorded for that version
  (:mod:`rlam_jupyter.actions.source`), so a notebook's own actions re-execute where the
  notebook is not running;
- a registered action that is the same *code* in another environment (other package
  versions, library settings) is used with a note that names the difference;
- anything else is not re-executed: a recorded result checked against other code proves
  nothing (a fork alone prefers the current definition: it asks "what would happen now").

When nothing fits, the reason names what is missing and how to provide it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rlam_jupyter.actions.identity import ActionIdentity
from rlam_jupyter.actions.python_cell import ACTION_NAME as PYTHON
from rlam_jupyter.actions.python_cell import spec_for_recorded_cell
from rlam_jupyter.actions.rebuild import Rebuilt, RecordedSource, rebuild
from rlam_jupyter.actions.registry import ActionSpec, Registry
from rlam_jupyter.store.catalog import Connection, connect, rows
from rlam_jupyter.store.index.model import StepEntry
from rlam_jupyter.store.layout import StoreLayout

REGISTER_HINT = (
    "import the module or file that defines it first (in a notebook: import it or run its "
    "cell; rlam replay, rlam mcp: --actions MODULE_OR_FILE; rlam bundle verify: --import "
    "MODULE_OR_FILE)"
)
"""How to register a missing action, in each front end that replays (one message serves all)."""

RowsLoader = Callable[[Sequence[str]], Iterable[Mapping[str, Any]]]
"""Given action versions, the ``actions`` rows recorded for them."""


@dataclass(frozen=True)
class Resolved:
    """The action to run a recorded step with (None: it cannot run here, ``reason`` says why)."""

    spec: ActionSpec | None
    notes: tuple[str, ...] = ()
    reason: str = ""


@dataclass
class RecordedActions:
    """Finds (and rebuilds, once per version) the actions of recorded steps.

    A step is only re-executed with code that is the code it was recorded with: the same
    identity, or the same *code* identity (the user's code and the values it reads) with
    other package versions or library settings, which a note names. Anything else is
    not re-executed: checking a recorded result against other code proves nothing."""

    registry: Registry
    load_rows: RowsLoader | None = None
    _sources: dict[str, RecordedSource | None] = field(default_factory=dict)
    _rebuilt: dict[str, Rebuilt] = field(default_factory=dict)

    def for_step(
        self,
        action: str,
        action_version: str | None,
        determinism: str | None,
        params: Mapping[str, Any],
        input_names: Sequence[str],
        targets: Sequence[str],
        *,
        input_types: Iterable[type] = (),
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
        assert action_version is not None
        types_ = tuple(input_types)
        now = current.current_identity(types_) if current is not None else None
        if current is not None and now is not None:
            if now.version_id == action_version:
                return Resolved(current)
            if action_version == current.identity:
                return Resolved(
                    current,
                    (
                        f"recorded by an earlier rlam-jupyter ({action_version}, its own source "
                        "only): verified with the current definition, which has that source",
                    ),
                )
        source = self._source(action_version)
        same_code = (
            now is not None
            and source is not None
            and bool(source.code_digest)
            and source.code_digest == now.code_digest
        )
        if current is not None and now is not None and source is not None and same_code:
            return Resolved(current, (_environment_note(action, source, now),))
        rebuilt = self._rebuilt_from(source, action, action_version, types_)
        if rebuilt.spec is not None or current is None:
            if rebuilt.spec is None:
                return Resolved(
                    None,
                    reason=f"action {action!r} is not registered here and {rebuilt.reason}; "
                    f"{REGISTER_HINT}",
                )
            return rebuilt
        assert now is not None
        return Resolved(
            None,
            reason=f"action {action!r} changed since it was recorded ({action_version} → "
            f"{now.version_id}) and {rebuilt.reason}: its recorded result cannot be "
            "checked against other code",
        )

    def for_entry(
        self, entry: StepEntry, *, input_types: Iterable[type] = (), prefer_current: bool = False
    ) -> Resolved:
        """:meth:`for_step` of a step as the run index has it."""
        return self.for_step(
            entry.action,
            entry.action_version,
            entry.determinism,
            entry.params,
            list(entry.input_ids or entry.inputs),
            entry.targets,
            input_types=input_types,
            prefer_current=prefer_current,
        )

    def _source(self, action_version: str) -> RecordedSource | None:
        if action_version not in self._sources:
            rows = list(self.load_rows([action_version])) if self.load_rows else []
            self._sources[action_version] = RecordedSource.from_row(rows[0]) if rows else None
        return self._sources[action_version]

    def _rebuilt_from(
        self,
        source: RecordedSource | None,
        action: str,
        action_version: str,
        input_types: tuple[type, ...],
    ) -> Resolved:
        if source is None:
            return Resolved(
                None,
                reason="the trace holds no source for it (recorded by an earlier version "
                "of rlam-jupyter)",
            )
        if source.origin == "package":
            return Resolved(
                None, reason=f"it comes from the installed package module {source.module!r}"
            )
        if action_version not in self._rebuilt:
            self._rebuilt[action_version] = rebuild([source])
        rebuilt = self._rebuilt[action_version]
        spec = rebuilt.by_version.get(action_version)
        if spec is None:
            problem = rebuilt.problems.get(action_version, "its recorded source defines no action")
            return Resolved(None, reason=problem)
        identity = spec.current_identity(input_types)
        if identity.version_id == action_version:
            return Resolved(spec)
        if source.code_digest and identity.code_digest == source.code_digest:
            return Resolved(spec, (_environment_note(action, source, identity),))
        return Resolved(
            None,
            reason="rebuilt from its recorded source, the code or values it depends on are "
            f"not what they were here ({identity.version_id}, recorded {action_version})",
        )


def _environment_note(action: str, source: RecordedSource, now: ActionIdentity) -> str:
    changed = [
        f"{name} {source.packages.get(name, '(not used)')} → {version}"
        for name, version in sorted(now.packages.items())
        if source.packages.get(name) != version
    ]
    what = (
        f"packages: {', '.join(changed)}" if changed else "library settings (e.g. matplotlib style)"
    )
    return (
        f"{action}: the same code as recorded, in another environment ({what}); "
        f"identity here {now.version_id}, recorded {source.action_version}"
    )


def rows_from_connection(con: Connection) -> RowsLoader:
    """A loader of ``actions`` rows from a DuckDB connection on the trace views."""

    def load(versions: Sequence[str]) -> list[dict[str, Any]]:
        return rows(
            con,
            "SELECT * FROM actions WHERE action_version IN (SELECT unnest(?::VARCHAR[])) "
            "ORDER BY event_no",
            [list(versions)],
        )

    return load


def rows_from_store(layout: StoreLayout) -> RowsLoader:
    """A loader that opens the store's views only when a step needs a recorded source."""

    def load(versions: Sequence[str]) -> list[dict[str, Any]]:
        con = connect(layout)
        try:
            return [dict(row) for row in rows_from_connection(con)(versions)]
        finally:
            con.close()

    return load
