"""Errors caused by input the user can fix; the CLI prints them as one line without a traceback."""
from __future__ import annotations

__all__ = ["UserError", "UnknownNameError", "PrecisionRangeError", "ArtifactError"]


class UserError(Exception):
    """Base of the errors whose message says what is wrong with the user's input and what to do.

    Bad configurations, missing or foreign files, unknown names. Anything else that escapes to
    the ``sparsewino`` command is treated as a defect: it is shown with its type and a hint to
    re-run with ``--debug``. Subclasses keep a built-in base (``ValueError``, ``RuntimeError``,
    ``FileNotFoundError``) so that ``except ValueError`` in user code keeps working.
    """


class UnknownNameError(UserError, ValueError):
    """A name nobody registered: a pruning method, layer kind, dataset, model, or an option of one."""


class PrecisionRangeError(UserError, ValueError):
    """A weight does not fit the storage precision asked for (fp16 holds magnitudes up to 65504).

    Raised where the weights are packed; ``engine.compile(..., weights="fp16")`` catches this
    class (never the message) and keeps that layer in fp32.
    """


class ArtifactError(UserError, ValueError):
    """An engine artifact (``.swe``) that cannot be written or loaded: a model with steps the
    artifact cannot hold, a foreign, truncated, modified or newer file, another kernel ABI, or an
    input shape the artifact has no program for. The message says what to do."""
