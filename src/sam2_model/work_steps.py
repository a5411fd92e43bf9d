"""Work done a step at a time: a ``*_steps`` generator yields its progress between pieces of work (so a worker can show
it and stop between them) and returns its result; :func:`drain` does such work in one call, :func:`relay` passes its
steps on in another form (a stage's own work as a step of the larger work it is part of).

Imports nothing of the package, nor NumPy or torch: the plugin's Qt-free modules (session files) use it without
loading the model's modules (``sam2_model.tracking.detection`` costs about 2 s to import).
"""

from __future__ import annotations

from typing import Any, Callable, Generator, TypeVar

__all__ = ["drain", "relay"]

Result = TypeVar("Result")
Item = TypeVar("Item")
Out = TypeVar("Out")


def drain(steps: Generator[Any, None, Result]) -> Result:
    """Run the generator ``steps`` to its end on the calling thread, dropping what it yields; returns its return value
    (the work a ``*_steps`` generator reports piece by piece, done in one call). An error it raises is raised here."""
    while True:
        try:
            next(steps)
        except StopIteration as stop:
            return stop.value


def relay(steps: Generator[Item, None, Result], each: Callable[[Item], Out]) -> Generator[Out, None, Result]:
    """The steps of the generator ``steps``, each yielded as ``each(step)``; returns what ``steps`` returns (``x =
    yield from relay(...)`` in a larger ``*_steps`` generator). Closed, or failed (in ``steps`` or ``each``), it closes
    ``steps``."""
    try:
        while True:
            try:
                step = next(steps)
            except StopIteration as stop:
                return stop.value
            yield each(step)
    finally:
        steps.close()
