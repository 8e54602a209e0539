"""The three adjustments the SageMaker Python SDK v2 needs to run at local speed and offline.

They are applied inside the process that runs the SDK, never to the SDK's files:

- **virtual clock**: the SDK sleeps 5-30 s before every status check (shared/spec/sdk-v2-calls.md)
  and no setting changes that. ``sagemaker.session`` gets a clock whose ``sleep`` really sleeps at
  most 50 ms and advances ``time()`` by the rest, so the SDK's loops keep their logic (describe
  every 30 s of *their* time) at local speed.
- **execution role**: ``get_execution_role()`` asks the real regional STS endpoint whatever
  ``AWS_ENDPOINT_URL`` says, except on a SageMaker notebook or Studio, where it reads the role
  from a metadata file. Pointing the SDK's ``NOTEBOOK_METADATA_FILE`` at a file naming the local
  role makes it answer the way it does on a notebook instance, without any network call.
- **config validated once**: the SDK re-validates its whole config against a large JSON schema on
  every config lookup (~70 per workflow, ~0.1 s each). The config does not change between
  lookups, so each distinct config is validated once; an invalid one still raises.

The cloud switch (``workflows.target``) and the pytest plugin apply them in their own process;
``sagelocal exec`` applies them in the command's interpreters through ``exec_site/sitecustomize.py``,
which loads this file by path. So this module imports only the standard library, and waits for
the SDK to be imported (an import hook) instead of importing it (1-2 s) in every interpreter.
"""

from __future__ import annotations

import importlib.abc
import json
import os
import sys
import time
from collections.abc import Callable
from types import ModuleType

#: Read by exec_site/sitecustomize.py in the command's interpreters.
CLOCK_ENV = "SAGELOCAL_SDK_CLOCK"  # "virtual" (default) or "real"
ROLE_METADATA_ENV = "SAGELOCAL_SDK_ROLE_METADATA"  # path of a resource-metadata.json


class VirtualClock:
    """Stands in for the ``time`` module inside ``sagemaker.session``.

    ``sleep(s)`` really sleeps at most ``real_poll`` seconds and advances ``time()`` by the rest.
    """

    def __init__(self, real_poll: float = 0.05):
        self.real_poll = real_poll
        self.offset = 0.0

    def sleep(self, seconds: float) -> None:
        real = min(seconds, self.real_poll)
        time.sleep(real)
        self.offset += max(0.0, seconds - real)

    def time(self) -> float:
        return time.time() + self.offset

    def __getattr__(self, name):
        return getattr(time, name)


def write_role_metadata(path: str, role_arn: str) -> str:
    """A SageMaker notebook's resource metadata file, reduced to the one field the SDK reads first."""
    with open(path, "w") as file:
        json.dump({"ExecutionRoleArn": role_arn}, file)
    return path


def validate_config_once(sdk_utils: ModuleType) -> None:
    """Memoize ``sagemaker.utils.validate_sagemaker_config`` per distinct config."""
    validate = sdk_utils.validate_sagemaker_config
    if getattr(validate, "sagelocal_memoized", False):
        return
    valid: set[str] = set()

    def validate_once(config=None):
        key = json.dumps(config, sort_keys=True, default=str)
        if key not in valid:
            validate(config)
            valid.add(key)

    validate_once.sagelocal_memoized = True
    sdk_utils.validate_sagemaker_config = validate_once


class SdkAdjustments:
    """Applies the adjustments to the SDK as soon as it is imported (now, if it already is).

    ``uninstall()`` puts the session module's clock and metadata path back; the memoized
    config validation stays, it changes no result.
    """

    def __init__(self, virtual_clock: bool = True, role_metadata_file: str | None = None):
        self.clock = VirtualClock() if virtual_clock else None
        self.role_metadata_file = role_metadata_file
        self._saved: dict[str, object] = {}
        self._finder = _AfterImport(
            {"sagemaker.session": self._adjust_session, "sagemaker.utils": validate_config_once}
        )

    @classmethod
    def from_environment(cls) -> SdkAdjustments:
        return cls(
            virtual_clock=os.environ.get(CLOCK_ENV, "virtual") != "real",
            role_metadata_file=os.environ.get(ROLE_METADATA_ENV) or None,
        )

    def install(self) -> SdkAdjustments:
        for name, adjust in self._finder.actions.items():
            if name in sys.modules:
                adjust(sys.modules[name])
        sys.meta_path.insert(0, self._finder)
        return self

    def uninstall(self) -> None:
        if self._finder in sys.meta_path:
            sys.meta_path.remove(self._finder)
        session = sys.modules.get("sagemaker.session")
        if session is not None:
            for attribute, value in self._saved.items():
                setattr(session, attribute, value)
        self._saved.clear()

    def __enter__(self) -> SdkAdjustments:
        return self.install()

    def __exit__(self, *exc) -> None:
        self.uninstall()

    def _adjust_session(self, session: ModuleType) -> None:
        if self.clock is not None:
            self._saved.setdefault("time", session.time)
            session.time = self.clock
        if self.role_metadata_file:
            self._saved.setdefault("NOTEBOOK_METADATA_FILE", session.NOTEBOOK_METADATA_FILE)
            session.NOTEBOOK_METADATA_FILE = self.role_metadata_file


class _AfterImport(importlib.abc.MetaPathFinder):
    """Runs ``actions[name](module)`` right after module ``name`` is first imported."""

    def __init__(self, actions: dict[str, Callable[[ModuleType], None]]):
        self.actions = actions

    def find_spec(self, fullname, path, target=None):
        action = self.actions.get(fullname)
        if action is None:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _ThenRun(spec.loader, action)
                return spec
        return None


class _ThenRun(importlib.abc.Loader):
    def __init__(self, loader, action: Callable[[ModuleType], None]):
        self._loader = loader
        self._action = action

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        # The module keeps its real loader (source lookups, resources); only this import is wrapped.
        module.__loader__ = module.__spec__.loader = self._loader
        self._loader.exec_module(module)
        self._action(module)
