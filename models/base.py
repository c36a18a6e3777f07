"""scikit-learn's estimator conventions without importing it: keyword-only parameters in ``__init__`` stored
under their own names, validated in one place (``_validate_params``), ``get_params(deep=True)``, fitted
attributes with a trailing ``_``. Importing scikit-learn costs about half a second of every `mimo fit`.

Each estimator declares its parameters' ranges in ``_param_specs``; the CLI builds its options (types, ranges,
defaults, help) from the same declarations, so nothing is written twice.
"""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Param:
    """What values a parameter takes: ``kind`` (int, float, bool, str, sizes), an inclusive or open range, or
    ``choices``; ``none_ok`` when None is allowed (meaning "chosen from the data")."""

    kind: str
    help: str = ""
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    choices: tuple[str, ...] | None = None
    none_ok: bool = False

    def check(self, name: str, value) -> None:
        if value is None:
            if not self.none_ok:
                raise ValueError(f"{name} must be set, not None")
            return
        if self.kind == "sizes":
            if not isinstance(value, (tuple, list)) or not all(isinstance(v, int) and v > 0 for v in value):
                raise ValueError(f"{name} must be a sequence of positive integers, not {value!r}")
            return
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise ValueError(f"{name} must be True or False, not {value!r}")
            return
        if self.kind == "str":
            if self.choices is not None and value not in self.choices:
                raise ValueError(f"{name} must be one of {list(self.choices)}, not {value!r}")
            return
        if self.kind == "int" and (isinstance(value, bool) or not isinstance(value, int)):
            raise ValueError(f"{name} must be an integer, not {value!r}")
        if self.kind == "float" and (isinstance(value, bool) or not isinstance(value, (int, float))
                                     or not math.isfinite(value)):
            raise ValueError(f"{name} must be a finite number, not {value!r}")
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            raise ValueError(f"{name} must be {'>' if self.low_open else '>='} {self.low:g}, not {value!r}")
        if self.high is not None and value > self.high:
            raise ValueError(f"{name} must be <= {self.high:g}, not {value!r}")


class Estimator:
    """Parameters are the ``__init__`` keyword arguments, stored under the same names."""

    _param_specs: dict[str, Param] = {}

    @classmethod
    def _param_names(cls) -> list[str]:
        signature = inspect.signature(cls.__init__)
        return [name for name in signature.parameters if name != "self"]

    @classmethod
    def param_defaults(cls) -> dict:
        """Each parameter's default, as the class declares it."""
        signature = inspect.signature(cls.__init__)
        return {name: p.default for name, p in signature.parameters.items() if name != "self"}

    def _store(self, values: dict) -> None:
        """Store ``__init__``'s arguments under their own names (call as ``self._store(locals())``)."""
        for name in self._param_names():
            setattr(self, name, values[name])

    def _validate_params(self) -> None:
        """Check every parameter against its declared range; called at the start of ``fit``."""
        for name in self._param_names():
            spec = self._param_specs.get(name)
            if spec is not None:
                spec.check(name, getattr(self, name))

    def get_params(self, deep: bool = True) -> dict:
        """Parameter names to values. No parameter is itself an estimator, so ``deep`` changes nothing."""
        return {name: getattr(self, name) for name in self._param_names()}

    def clone(self, **params) -> "Estimator":
        """A new, unfitted estimator with the same parameters (``params`` override some)."""
        return type(self)(**{**self.get_params(), **params})

    def refit_params(self) -> dict:
        """Parameters that refit this fitted estimator's choices (made on validation rows) on more rows."""
        return {}

    def set_params(self, **params) -> "Estimator":
        for name, value in params.items():
            if name not in self._param_names():
                raise ValueError(f"{type(self).__name__} has no parameter {name!r}")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        defaults = self.param_defaults()
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items() if v != defaults.get(k))
        return f"{type(self).__name__}({args})"

    # one save/load format for every head: see models.registry.save_model / load_model
    def fitted_state(self) -> dict:
        """Everything ``predict`` needs besides the parameters (tensors, numbers, strings)."""
        raise NotImplementedError

    def load_fitted_state(self, state: dict, device: str = "cpu") -> None:
        """Restore ``fitted_state()``'s output, onto ``device`` where the head computes on one."""
        raise NotImplementedError
