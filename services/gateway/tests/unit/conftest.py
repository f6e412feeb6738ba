"""The web page's own script (app.js), its functions run by Node as a browser would run them."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import tawasul_gateway

APP = Path(tawasul_gateway.__file__).resolve().parent / "web" / "app.js"


def _definition(source: str, name: str) -> str:
    """app.js's top-level `function name(…) {…}` or `const name = …;`, as written."""
    found = re.search(
        rf"^(?:function {name}\(.*?\) \{{\n.*?^\}}\n|const {name} = (?:[^\n]*;\n|.*?^\}};\n))",
        source,
        re.M | re.S,
    )
    assert found, f"app.js has no {name}"
    return found.group(0)


@pytest.fixture(scope="session")
def page_script() -> Callable[..., object]:
    """`run(expression, names, *, lang=None, zone=None)`: the JSON value of `expression`, with
    the app.js definitions `names` in scope, the page's language `lang` and the device's time
    zone `zone`."""
    node = shutil.which("node")
    assert node is not None, "Node.js runs the page's script here; `make setup` needs it too"
    source = APP.read_text("utf-8")

    def run(
        expression: str, names: tuple[str, ...], *, lang: str | None = None, zone: str | None = None
    ) -> object:
        prelude = f"const state = {{ lang: {json.dumps(lang)} }};\n" if lang else ""
        script = (
            prelude
            + "".join(_definition(source, name) for name in names)
            + f"process.stdout.write(JSON.stringify({expression}));\n"
        )
        done = subprocess.run(
            [node, "-e", script],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
            env={**os.environ, "TZ": zone} if zone else None,
        )
        return json.loads(done.stdout)

    return run
