"""Which Daft runner executes the engine's queries: Daft's native runner, or Ray.

Daft holds ONE runner per process and refuses to change it once set ("Cannot set runner
more than once"), so the runner is chosen by the first Daft engine a process makes, and an
engine asking for a different one later is refused with a clear error rather than silently
running elsewhere.
"""

from __future__ import annotations

import threading

from featureledger.errors import ConfigError

_lock = threading.Lock()
#: what this process set: None (nothing yet), "native" or "ray:<address>"
_chosen: str | None = None


def _wanted(ray_address: str | None) -> str:
    return "native" if ray_address is None else f"ray:{ray_address}"


def use_runner(ray_address: str | None) -> str:
    """Set Daft's process-wide runner for ``ray_address`` (None: the native runner;
    "local": a local Ray cluster, started unless this process already joined one; else
    the address of an existing cluster, e.g. ``ray://head:10001`` or ``auto``).

    Returns the runner kind ("native" or "ray"); raises `ConfigError` when this process
    already runs Daft on another runner.
    """
    global _chosen
    wanted = _wanted(ray_address)
    with _lock:
        if _chosen is not None:
            if _chosen != wanted:
                raise ConfigError(
                    f"offline.ray_address asks for Daft runner {wanted!r} but this process "
                    f"already runs Daft on {_chosen!r}; Daft's runner is process-wide, so "
                    "open repositories with different runners in different processes"
                )
            return "native" if ray_address is None else "ray"
        import daft

        if ray_address is None:
            current = daft.runners.get_or_infer_runner_type()
            if current == "ray":
                raise ConfigError(
                    "this process already runs Daft on Ray; set offline.ray_address to that "
                    "cluster's address (or 'local') to use it"
                )
            _set(daft.set_runner_native, "native")
        else:
            import ray

            if not ray.is_initialized():
                if ray_address == "local":
                    # a local cluster for one machine; the dashboard is left off (it binds
                    # a fixed port and is not needed to run queries)
                    ray.init(include_dashboard=False, log_to_driver=False)
                else:
                    ray.init(address=ray_address, log_to_driver=False)
            _set(lambda: daft.set_runner_ray(noop_if_initialized=True), "ray")
        _chosen = wanted
        return "native" if ray_address is None else "ray"


def _set(setter: object, kind: str) -> None:
    """Call ``setter`` unless Daft already runs on ``kind`` (set before any engine, e.g. by
    a query the user ran first, which locks in Daft's default runner)."""
    import daft

    if daft.runners._get_runner() is not None:
        current = daft.runners.get_or_infer_runner_type()
        if current != kind:
            raise ConfigError(
                f"this process already runs Daft on its {current!r} runner and Daft cannot "
                f"change it; open this repository (which asks for {kind!r}) in a new process"
            )
        return
    setter()  # type: ignore[operator]
