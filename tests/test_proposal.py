"""The %%rlam parser and schema check: every hostile or malformed body is refused, nothing runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import rlam_jupyter
from rlam_jupyter.actions.proposal import Proposal, ProposalRejected, check, parse_cell
from rlam_jupyter.actions.registry import Registry, build_spec
from rlam_jupyter.frontends.magics.cell import StepFailedError

CANARY_CALLS: list[str] = []


def canary(note: str = "") -> str:
    """An action whose body must never run during parsing or for rejected cells."""
    CANARY_CALLS.append(note)
    return note


@pytest.fixture
def reg() -> Registry:
    registry = Registry()
    for name, spec in rlam_jupyter.registry().items():
        registry.add(spec)
        assert registry[name] is spec
    registry.add(build_spec(canary))
    return registry


# (cell body, fragment the rejection message must contain)
HOSTILE_BODIES = [
    ("__import__('os').system('touch {marker}')", "attribute access"),
    ("open('{marker}', 'w')", "unknown action 'open'"),
    ("x = open('{marker}', 'w').write('x')", "attribute access"),
    ("import os", "imports are not allowed"),
    ("from os import system", "imports are not allowed"),
    ("exec(\"open('{marker}','w')\")", "unknown action 'exec'"),
    ("eval('1+1')", "unknown action 'eval'"),
    ("os.system('ls')", "attribute access `os.system`"),
    ("data = load_dataset(name='iris').head()", "attribute access"),
    ("x = data['target']", "expected a call to an action, found subscripts"),
    ("x = canary(note=(lambda: 1))", "lambdas"),
    ("x = canary(note=[c for c in 'ab'])", "comprehensions"),
    ("x = canary(note=f'{{1}}')", "f-strings"),
    ("x = canary(note=str(1))", "calls inside arguments are not allowed"),
    ("x = canary(note=1 + 2)", "arithmetic"),
    ("x = canary(note='a' * 10**9)", "arithmetic"),
    ("x = canary(note='" + "a" * 200_001 + "')", "characters"),
    ("x = canary(note=[" + "1," * 20_001 + "])", "too large"),
    ("x = canary(note=" + "[" * 40 + "]" * 40 + ")", "nested deeper"),
    ("x = canary(note=b'bytes')", "bytes literals are not allowed"),
    ("x = canary(note={{1, 2}})", "sets"),
    ("x = canary(**{{'note': 'a'}})", "**-unpacking"),
    ("x = canary(*['a'])", "star-unpacking"),
    ("x = train_modl(C=1.0)", "Did you mean `train_model`"),
    ("x = nonexistent_action()", "unknown action 'nonexistent_action'"),
    ("m = train_model(X=undefined_name, y=undefined_y)", "no earlier step of this run produced"),
    ("d = load_dataset(name='mnist')", "Input should be 'breast_cancer'"),
    ("d = load_dataset(name=1)", "name=1"),
    ("d = load_dataset()", "missing required parameter 'name'"),
    ("d = load_dataset(name='iris', extra=3)", "unknown parameter 'extra'"),
    ("d = load_dataset(name='iris', name='wine')", "'name' is given twice"),
    ("d = load_dataset('iris', 'wine')", "takes at most 1 arguments"),
    ("for i in range(3): canary(note='x')", "loops are not allowed"),
    ("while True: pass", "loops are not allowed"),
    ("if True: canary(note='x')", "conditionals are not allowed"),
    ("def f(): pass", "function definitions are not allowed"),
    ("class A: pass", "class definitions are not allowed"),
    ("with open('x') as f: pass", "with-blocks are not allowed"),
    ("try:\n    canary(note='x')\nexcept Exception:\n    pass", "try-blocks are not allowed"),
    ("x = y = canary(note='a')", "chained assignment"),
    ("x.attr = canary(note='a')", "can only assign to plain names"),
    ("x += canary(note='a')", "augmented assignment"),
    ("global x", "global is not allowed"),
    ("del x", "del is not allowed"),
    ("x = 5", "expected a call to an action, found a constant"),
    ("x = canary(note='a'", "not valid syntax"),
    ("x = (yield canary(note='a'))", "yield"),
    ("x = canary(note=(y := 3))", "walrus"),
    ("x = canary(note=-'a')", "a sign may only precede a number"),
    ("x = canary(note={{1: 'a'}})", "dict keys must be string literals"),
    ("x = canary(note=1 if True else 2)", "conditional expressions"),
    ("x = canary(note=canary)", "expects a literal value"),
    ("x = canary(note=['a', data])", "names inside literals are not allowed"),
    ("a, a = split(data=d)", "not valid syntax|the same name is assigned twice|no earlier step"),
    ("m = train_model(X=1, y=2)", "'X' is an input"),
    ("s = split(data=d, test_size=1.5)", "no earlier step|test_size"),
]


def _matches(expected: str, message: str) -> bool:
    """``expected`` is one fragment or several separated by ``|`` (any may match)."""
    return any(fragment in message for fragment in expected.split("|"))


def test_at_least_thirty_distinct_hostile_bodies() -> None:
    assert len({body for body, _ in HOSTILE_BODIES}) >= 30


@pytest.mark.parametrize(("body", "expected"), HOSTILE_BODIES, ids=range(len(HOSTILE_BODIES)))
def test_hostile_cell_is_rejected_recorded_and_nothing_runs(
    shell: InteractiveShell, tmp_path: Path, body: str, expected: str
) -> None:
    marker = tmp_path / "side-effect"
    rlam_jupyter.action(canary)
    CANARY_CALLS.clear()
    source = body.replace("{marker}", str(marker)).replace("{{", "{").replace("}}", "}")
    with pytest.raises((StepFailedError, UsageError)) as info:
        shell.run_cell_magic("rlam", "--quiet", source)
    message = str(info.value)
    assert _matches(expected, message), message
    assert not marker.exists()
    assert CANARY_CALLS == []
    con = rlam_jupyter.connect()
    statuses = con.execute("SELECT status FROM steps").fetchall()
    assert statuses, "the rejection must be recorded"
    assert {s for (s,) in statuses} == {"rejected"}
    reasons = con.execute("SELECT error_message FROM steps").fetchall()
    assert any(_matches(expected, r or "") for (r,) in reasons)
    rlam_jupyter.actions.registry.DEFAULT.remove("canary")


def test_valid_cell_parses_into_proposals(reg: Registry) -> None:
    proposals = parse_cell(
        "data = load_dataset(name='iris')\n"
        "X_train, X_test, y_train, y_test = split(data=data, test_size=0.3)\n"
        "canary(note=-1.5)\n",
        reg,
    )
    assert [p.action for p in proposals] == ["load_dataset", "split", "canary"]
    assert proposals[1].inputs == {"data": "data"}
    assert proposals[1].params == {"test_size": 0.3}
    assert proposals[1].targets == ("X_train", "X_test", "y_train", "y_test")
    assert proposals[2].params == {"note": -1.5}
    assert proposals[0].line == 1
    assert proposals[1].line == 2


def test_rejection_names_line_column_and_signature(reg: Registry) -> None:
    with pytest.raises(ProposalRejected) as info:
        parse_cell("data = load_dataset(name='iris')\n\nx = canary(note=os.environ)", reg)
    assert info.value.line == 3
    assert info.value.col == 17
    assert "line 3, column 17" in info.value.message


def test_schema_check_is_strict(reg: Registry) -> None:
    import pandas as pd

    bound = {"X": pd.DataFrame({"a": [1.0]}), "y": pd.Series([1])}
    ok = check(Proposal("train_model", {"C": 2}, {"X": "X", "y": "y"}), reg, bound)
    assert ok.params_json["C"] == 2.0
    for bad in ({"C": "1"}, {"C": 0}, {"max_iter": 1.5}, {"model": "svm"}, {"C": True}):
        with pytest.raises(ProposalRejected) as info:
            check(Proposal("train_model", bad, {"X": "X", "y": "y"}), reg, bound)
        assert "Expected: train_model(" in info.value.message
    with pytest.raises(ProposalRejected, match="expected a DataFrame, but 'y' is a Series"):
        check(Proposal("train_model", {}, {"X": "y", "y": "y"}), reg, bound)


def test_proposal_from_json_matches_cell_form(reg: Registry) -> None:
    from_cell = parse_cell("s = split(data=d, test_size=0.2)", reg)[0]
    from_json = Proposal.from_json(
        '{"action": "split", "params": {"test_size": 0.2}, "inputs": {"data": "d"}, "targets": ["s"]}'
    )
    assert (
        from_json.action,
        dict(from_json.params),
        dict(from_json.inputs),
        from_json.targets,
    ) == (
        from_cell.action,
        dict(from_cell.params),
        dict(from_cell.inputs),
        from_cell.targets,
    )
    for bad in (
        "not json",
        "[]",
        '{"params": {}}',
        '{"action": "x", "inputs": {"a": 1}}',
        '{"action": "x", "code": "import os"}',
    ):
        with pytest.raises(ProposalRejected):
            Proposal.from_json(bad)


_TOKENS = st.sampled_from(
    [
        "canary",
        "load_dataset",
        "x",
        "=",
        "(",
        ")",
        "note",
        "name",
        "'a'",
        "1",
        "-",
        "+",
        ",",
        ".",
        "[",
        "]",
        "{",
        "}",
        ":",
        "\n",
        " ",
        "__import__",
        "os",
        "system",
        "lambda",
        "import",
        "for",
        "in",
        "if",
        "*",
        "**",
        "f'",
        '"',
        "#",
        "\\",
        "yield",
        "await",
        "open",
        "eval",
        "exec",
        "1e309",
        "0x1F",
        "None",
        "True",
    ]
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_TOKENS, max_size=40).map("".join) | st.text(max_size=200))
def test_parser_never_executes_and_always_answers_clearly(source: str) -> None:
    registry = Registry()
    registry.add(build_spec(canary))
    CANARY_CALLS.clear()
    try:
        proposals = parse_cell(source, registry)
    except ProposalRejected as rejection:
        assert rejection.message.strip()  # noqa: PT017 - either outcome is valid here
    else:
        assert all(isinstance(p, Proposal) and p.action == "canary" for p in proposals)
    assert CANARY_CALLS == []
