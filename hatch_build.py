"""Compiles the C pieces when the package is built: ticker/_order.c (the merge into feed order),
ticker/_frames.c (a connection's drain into ready-to-send frames), ticker/_wake.c (the hub's wake
walk), feeds/_market_walk.c (the simulated market's walk) and ticker/bench/_recorder.c (the
benchmark load generator's recording loop).

Only a C compiler and Python's headers are needed, both on any machine that builds Python
packages. Where a build fails, the package still installs and the same code runs in Python,
slower (ticker/feed_order.py, ticker/subscriber.py, ticker/hub.py, feeds/market_walk.py); with
TICKER_REQUIRE_ALL_TOOLS set (CI) a failed build is an error.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sysconfig
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


def compile_extension(source: Path, target: Path) -> None:
    compiler = shlex.split(sysconfig.get_config_var("CC") or "cc")
    include = sysconfig.get_paths()["include"]
    # No fused multiply-add: feeds/_market_walk.c must round as Python's arithmetic does.
    subprocess.run([*compiler, "-shared", "-fPIC", "-O2", "-ffp-contract=off", "-Wall", "-Werror",
                    f"-I{include}", str(source), "-o", str(target)], check=True,
                   capture_output=True, text=True)


# Each C source (<path>.c from the project root), and what runs in Python where it is not built.
EXTENSIONS = {
    "ticker/_order": "the merge into feed order",
    "ticker/_frames": "the drain into frames",
    "ticker/_wake": "the hub's wake walk",
    "feeds/_market_walk": "the simulated market's walk",
    "ticker/bench/_recorder": "the load generator's recording loop",
}


class CompiledExtensions(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        for name in EXTENSIONS:
            source = Path(self.root) / f"{name}.c"
            target = source.with_name(source.stem + str(sysconfig.get_config_var("EXT_SUFFIX")))
            try:
                compile_extension(source, target)
            except (OSError, subprocess.CalledProcessError) as error:
                detail = getattr(error, "stderr", "") or str(error)
                if os.environ.get("TICKER_REQUIRE_ALL_TOOLS"):
                    raise RuntimeError(f"ticker: could not compile {source}: {detail}") from error
                self.app.display_warning(f"ticker: {source.name} not compiled "
                                         f"({detail.strip()}); {EXTENSIONS[name]} runs in Python")
                continue
            if version != "editable":
                relative = target.relative_to(Path(self.root)).as_posix()
                build_data["force_include"][str(target)] = relative
            build_data["pure_python"] = False
            build_data["infer_tag"] = True
