"""The web page fills in the fields the catalog marks names_subject (app.js's `subjectId` and
`filledValue`), run by Node: intake takes such a field only when it names the person the
request is about, so the page offers that person's ID rather than a blank to get wrong."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import tawasul_gateway

APP = Path(tawasul_gateway.__file__).resolve().parent / "web" / "app.js"
NODE = shutil.which("node")


def run(call: str) -> str:
    """`call`'s value, with app.js's subjectId and filledValue defined."""
    assert NODE is not None, "Node.js runs the page's script here; `make setup` needs it too"
    source = APP.read_text("utf-8")
    functions = []
    for name in ("subjectId", "filledValue"):
        found = re.search(rf"^function {name}\(.*?\) \{{\n.*?^\}}\n", source, re.M | re.S)
        assert found, f"app.js has no {name}"
        functions.append(found.group(0))
    script = "\n".join(functions) + f"process.stdout.write(JSON.stringify({call}));\n"
    done = subprocess.run(
        [NODE, "-e", script], capture_output=True, text=True, check=True, timeout=30
    )
    answer: str = json.loads(done.stdout)
    return answer


@pytest.mark.parametrize(
    ("typed", "role", "subject"),
    [
        ("", "citizen", "1000000008"),  # about oneself: one's own ID
        (" 1023456781 ", "citizen", "1023456781"),  # a dependent
        ("", "establishment", ""),  # an establishment always names its worker
        ("2023456789", "establishment", "2023456789"),
    ],
)
def test_the_subject_is_the_typed_id_or_ones_own(typed: str, role: str, subject: str) -> None:
    own = "7000000005" if role == "establishment" else "1000000008"
    assert run(f"subjectId({json.dumps(typed)}, {json.dumps(own)}, {json.dumps(role)})") == subject


@pytest.mark.parametrize(
    ("current", "filled", "value"),
    [
        ("", "", "1023456781"),  # empty: filled in
        ("1000000008", "1000000008", "1023456781"),  # still what the page put: follows
        ("1012345672", "1000000008", "1012345672"),  # typed by the person: kept
    ],
)
def test_a_field_naming_the_subject_follows_it_until_typed_over(
    current: str, filled: str, value: str
) -> None:
    call = f"filledValue({json.dumps(current)}, {json.dumps(filled)}, '1023456781')"
    assert run(call) == value
