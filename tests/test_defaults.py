"""One source of defaults (issue 15 item 3): every library settings dataclass agrees with its schema.

Add a stage's dataclass to ``CASES`` as (dataclass, schema name, path of the object inside the schema).
A field whose default differs from the schema's, or a schema key the dataclass does not know, fails.
"""

import dataclasses

import pytest
import yaml

from twistox.core.config import SCHEMA_DIR
from twistox.dft.trainset import TrainsetSettings
from twistox.dft.twisted import TwistedSettings
from twistox.mlip.active_learning import ALSettings
from twistox.mlip.carved import CarveSettings
from twistox.mlip.relaxpaths import RelaxPathSettings
from twistox.mlip.training import TrainSettings

# (dataclass, schema, path inside the schema, schema keys that are not settings of this dataclass)
CASES = [
    (TrainSettings, "mlip", (), {"load_mode", "active_learning"}),
    (ALSettings, "mlip", ("active_learning",), {"carve", "relax_paths"}),
    (CarveSettings, "mlip", ("active_learning", "carve"), set()),
    (RelaxPathSettings, "mlip", ("active_learning", "relax_paths"), set()),
    (TrainsetSettings, "dft", ("configs",), set()),
    (TwistedSettings, "dft", ("configs", "twisted"), set()),
]


def schema_properties(name: str, path: tuple[str, ...]) -> dict:
    with open(SCHEMA_DIR / f"{name}.schema.yaml") as fh:
        node = yaml.safe_load(fh)
    for p in path:
        node = node["properties"][p]
    return node["properties"]


def _norm(v):
    return [_norm(x) for x in v] if isinstance(v, (list, tuple)) else v


def field_default(f: dataclasses.Field):
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return dataclasses.MISSING


@pytest.mark.parametrize("cls, schema, path, not_fields", CASES, ids=lambda c: getattr(c, "__name__", None))
def test_dataclass_defaults_equal_schema_defaults(cls, schema, path, not_fields):
    props = schema_properties(schema, path)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    missing = sorted(set(props) - set(fields) - not_fields)
    assert not missing, f"{cls.__name__} lacks schema keys {missing}"
    bad = {}
    for name, f in fields.items():
        assert name in props, f"{cls.__name__}.{name} is not declared in {schema}.schema.yaml {'.'.join(path)}"
        if "default" not in props[name]:
            continue
        lib, sch = _norm(field_default(f)), _norm(props[name]["default"])
        if lib != sch:
            bad[name] = (lib, sch)
    assert not bad, f"{cls.__name__} defaults differ from {schema}.schema.yaml (library, schema): {bad}"


def test_the_check_catches_a_drifted_default():
    @dataclasses.dataclass
    class Drifted:
        committee_size: int = 5

    props = schema_properties("mlip", ())
    assert field_default(dataclasses.fields(Drifted)[0]) != props["committee_size"]["default"]
