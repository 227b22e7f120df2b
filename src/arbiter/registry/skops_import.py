"""Import ``skops.io`` without the PyTorch import that its trusted-types list drags in.

MLflow saves scikit-learn models in the skops format, and loading one imports ``skops.io``.
That import builds skops's default trusted types by calling scikit-learn's ``all_estimators()``,
which walks every scikit-learn module with ``pkgutil.walk_packages``. The walk imports each
*package* to look inside it, before ``all_estimators`` drops the ``sklearn.externals`` subtree.
One of those packages is ``sklearn.externals.array_api_compat.torch``, which imports PyTorch
when it is installed (arbiter's ``torch`` extra). That was about 1.4 s of CPU of the import's
1.9 s here, and most of a gateway's start-up with two small models (issue 13).

The fix marks that one package as unimportable (``sys.modules[name] = None``) for the duration of
the import. ``walk_packages`` skips a package whose import raises ``ImportError``, so the walk
skips it. No estimator that ``all_estimators`` returns comes from ``sklearn.externals``, so
skops's trusted-types lists are unchanged: ``tests/registry/test_skops_import.py`` compares
them with a plain import's in a fresh process. The marker is removed afterwards, so code that
later uses scikit-learn's array API with torch tensors can import the package for real.

This is hand-written because there is no setting for it upstream. skops computes the list when
it is imported, and ``all_estimators`` has no option to skip packages before importing them.
"""

from __future__ import annotations

import sys
import threading

#: The scikit-learn package whose import pulls in PyTorch during ``all_estimators``' walk.
TORCH_SHIM = "sklearn.externals.array_api_compat.torch"

_lock = threading.Lock()


def import_skops_io() -> None:
    """Import ``skops.io`` (once per process) with :data:`TORCH_SHIM` hidden from the walk."""
    if "skops.io" in sys.modules:
        return
    with _lock:
        if "skops.io" in sys.modules:
            return
        hide = TORCH_SHIM not in sys.modules
        if hide:
            sys.modules[TORCH_SHIM] = None  # type: ignore[assignment]  # import raises ImportError
        try:
            import skops.io  # noqa: F401
        finally:
            if hide and sys.modules.get(TORCH_SHIM, 0) is None:
                del sys.modules[TORCH_SHIM]


__all__ = ["TORCH_SHIM", "import_skops_io"]
