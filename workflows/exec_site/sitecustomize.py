"""Loaded at start-up by every Python interpreter that ``sagelocal exec`` starts (this folder is
first on its PYTHONPATH): applies workflows/sdk_hooks.py's adjustments to the SageMaker SDK when,
and only if, the program imports it. Nothing else is importable from this folder.

sdk_hooks is loaded by path, under a private name, so the program's own imports (it may have a
package called ``workflows``) are untouched; then any other ``sitecustomize`` on the path (a
distribution's or the user's) runs as it would have without us.
"""

import importlib.machinery
import importlib.util
import os
import sys

_here = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location(
    "_sagelocal_sdk_hooks", os.path.join(os.path.dirname(_here), "sdk_hooks.py")
)
_hooks = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = _hooks
_spec.loader.exec_module(_hooks)
_hooks.SdkAdjustments.from_environment().install()

_other = importlib.machinery.PathFinder.find_spec(
    "sitecustomize", [p for p in sys.path if os.path.abspath(p or ".") != _here]
)
if _other is not None and _other.loader is not None:
    _module = importlib.util.module_from_spec(_other)
    sys.modules["sitecustomize"] = _module
    _other.loader.exec_module(_module)
