"""Settings of the shift-invariance stage: the ``shiftinv`` config section ([C]; keys and defaults:
the config schema)."""

from __future__ import annotations

from dataclasses import dataclass

from ..core.config import DEMO_MODEL, ModelSpec, Settings
from ..core.errors import ConfigError

__all__ = ["ShiftinvRun", "ShiftinvSettings"]


@dataclass(frozen=True)
class ShiftinvRun(Settings):
    """One ``shiftinv.runs`` entry: a timm ``architecture`` trained from scratch on the embedded
    demo crops with the demo network's recipe, budget and seed, stored as
    ``resources/weights/{name}.safetensors`` (offline first layers that were really trained)."""

    name: str
    architecture: str


@dataclass(frozen=True)
class ShiftinvSettings(Settings, section="shiftinv"):
    """The ``shiftinv`` config section ([C], docs/methods.md section 8).

    ``images`` grayscale crops of ``image_size`` pixels with ``context`` pixels around them;
    ``q`` the max pooling half-width (``(2q+1)^2`` grid, stride 2); ``shifts`` the translations
    (rows, cols) in pixels; ``depths`` the DT-CWPT depths; ``gamma_subsamplings`` the ``m`` of the
    ``gamma_q(m theta)`` maps; ``networks`` the first layers analysed (a configured model, a run or
    a timm ``architecture.tag`` checkpoint); ``runs`` the networks
    trained on the demo crops; ``device`` cpu or cuda (None: CUDA when present); ``batch_size``
    images per batch.
    """

    images: int = 32
    image_size: int = 224
    context: int = 48
    q: int = 1
    shifts: tuple[tuple[int, int], ...] = ((1, 0), (0, 1))
    depths: tuple[int, ...] = (2, 3)
    gamma_subsamplings: tuple[int, ...] = (2, 4)
    networks: tuple[str, ...] = ()
    runs: tuple[dict, ...] = ()
    device: str | None = None
    batch_size: int = 8

    def __post_init__(self):  # the config gives the shifts as lists of lists
        object.__setattr__(self, "shifts", tuple(tuple(int(c) for c in u) for u in self.shifts))

    def run_list(self, models=()) -> list[ShiftinvRun]:
        """The runs as :class:`ShiftinvRun`; ``ConfigError`` naming the key for a run named like a
        configured model (``models``: names or :class:`~masterkey.core.config.ModelSpec`), the
        demo or another run, or an architecture timm does not know."""
        import timm

        names = {m if isinstance(m, str) else m.name for m in models} | {DEMO_MODEL}
        runs = [ShiftinvRun.from_section(entry) for entry in self.runs]
        for i, run in enumerate(runs):
            if run.name in names:
                why = f"'{run.name}' is already a configured model or run; give the run its own name"
                raise ConfigError(f"shiftinv.runs[{i}].name", why)
            names.add(run.name)
            if not timm.is_model(run.architecture):
                raise ConfigError(f"shiftinv.runs[{i}].architecture", f"timm has no '{run.architecture}'")
        return runs

    def fetched_networks(self, models=(), runs=()) -> list[ModelSpec]:
        """The networks that are neither configured ``models`` nor ``runs`` (names): timm
        checkpoints to fetch, as :class:`ModelSpec`."""
        known = {m if isinstance(m, str) else m.name for m in models} | set(runs)
        return [ModelSpec(name=n) for n in self.networks if n not in known]
