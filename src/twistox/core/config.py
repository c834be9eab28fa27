"""Configuration: schema validation with defaults, clear errors, and sample resolution.

The main schema (``workflow/schemas/config.schema.yaml``) covers the top level; each
stage section has its own ``workflow/schemas/{section}.schema.yaml``. Defaults from the
schemas are filled in. Every error names the key and the allowed values.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jsonschema
import yaml


SCHEMA_DIR = Path(__file__).resolve().parents[3] / "workflow" / "schemas"


class ConfigError(ValueError):
    """Bad configuration: the message names the key and the allowed values."""


def _with_defaults(cls):
    validate_props = cls.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for prop, sub in properties.items():
                if isinstance(sub, dict) and "default" in sub and prop not in instance:
                    instance[prop] = _copy(sub["default"])
        yield from validate_props(validator, properties, instance, schema)

    return jsonschema.validators.extend(cls, {"properties": set_defaults})


def _copy(v):
    return yaml.safe_load(yaml.safe_dump(v))


_Validator = _with_defaults(jsonschema.Draft7Validator)


def _key(path) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "<top level>"


def _allowed(err: jsonschema.ValidationError) -> str:
    s = err.schema if isinstance(err.schema, dict) else {}
    v = err.validator
    if v == "enum":
        return "allowed: " + ", ".join(map(repr, s["enum"]))
    if v in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "type"):
        parts = []
        if "type" in s:
            parts.append(f"type {s['type']}")
        for k, sym in (("exclusiveMinimum", ">"), ("minimum", ">="), ("exclusiveMaximum", "<"), ("maximum", "<=")):
            if k in s:
                parts.append(f"{sym} {s[k]}")
        return "allowed: " + ", ".join(parts)
    if v == "additionalProperties":
        return "allowed keys: " + ", ".join(sorted(s.get("properties", {})))
    if v in ("minItems", "maxItems"):
        return f"allowed: {s.get('minItems', 0)} to {s.get('maxItems', 'any number of')} items"
    if "description" in s:
        return "expected: " + s["description"]
    return ""


def _schema(name: str) -> dict:
    with open(SCHEMA_DIR / f"{name}.schema.yaml") as fh:
        return yaml.safe_load(fh)


def _check(instance: Any, schema: dict, prefix: tuple) -> None:
    for _ in range(1000):  # coerce numeric strings where the schema wants numbers, then validate
        errors = sorted(_Validator(schema).iter_errors(instance), key=lambda e: list(e.absolute_path))
        fixed = False
        for e in errors:
            if e.validator == "type" and e.absolute_path:
                num = _as_number(e.instance, e.validator_value)
                if num is not None:
                    parent = instance
                    for p in list(e.absolute_path)[:-1]:
                        parent = parent[p]
                    parent[e.absolute_path[-1]] = num
                    fixed = True
        if not fixed:
            break
    if errors:
        e = errors[0]
        key = _key(prefix + tuple(e.absolute_path))
        msg = e.message
        if e.validator == "additionalProperties":
            msg = msg.replace("Additional properties are not allowed", "unknown key")
        raise ConfigError(f"config key '{key}': {msg}; {_allowed(e)}".rstrip("; "))


_NUMBER_RE = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def _as_number(value, types) -> int | float | None:
    """A string that spells a number, where the schema wants one: YAML 1.1 reads 4.2e6 as a string,
    and values nested in ``snakemake --config`` arrive as strings."""
    if not isinstance(value, str) or not _NUMBER_RE.match(value.strip()):
        return None
    types = [types] if isinstance(types, str) else list(types)
    f = float(value)
    if "integer" in types and f.is_integer():
        return int(f)
    if "number" in types:
        return f
    return None


def validate_config(config: dict) -> dict:
    """Validate (in place, filling defaults) and return the config; raise ConfigError."""
    _check(config, _schema("config"), ())
    for section in sorted(config):
        f = SCHEMA_DIR / f"{section}.schema.yaml"
        if f.exists() and isinstance(config[section], dict):
            _check(config[section], _schema(section), (section,))
    from twistox.supercell.stage import bilayer_spec

    for name in config["systems"]:
        try:
            spec = bilayer_spec(config, name)
            spec.plane_sequence()
        except ValueError as exc:
            key, _, rest = str(exc).partition(":")
            raise ConfigError(f"config key 'systems.{name}.{key}':{rest}") from None
    resolve_samples(config)
    return config


def resolve_samples(config: dict) -> dict:
    """{system: {sample_name: CSL}} for every requested angle; raises ConfigError."""
    from twistox.supercell.lattice import nearest_csl, validate_angle  # the twist grammar lives with the lattice

    tw = config["twist"]
    out: dict[str, dict[str, CSL]] = {}
    csls = {}
    for i, theta in enumerate(tw["angles_deg"]):
        key = f"twist.angles_deg[{i}]"
        try:
            validate_angle(theta, key=f"config key '{key}'")
            c = nearest_csl(theta, tw["max_sigma"], tw.get("max_error_deg"))
        except ValueError as exc:
            msg = str(exc)
            if msg.startswith("max_sigma:"):
                msg = "config key 'twist.max_sigma':" + msg[len("max_sigma:"):]
            raise ConfigError(msg) from None
        csls.setdefault(c.name, c)
    for system in config["systems"]:
        out[system] = dict(csls)
    return out


def with_schema_defaults(name: str, values: dict | None = None) -> dict:
    """A validated copy of one config section (``workflow/schemas/{name}.schema.yaml``) with the schema's
    defaults filled in: for library entry points called outside the workflow (tests, notebooks), so
    that no library function carries defaults of its own. Raises ConfigError."""
    inst = _copy(values or {})
    _check(inst, _schema(name), (name,))
    return inst


def section(config: dict, *names: str) -> dict:
    """The config subset a stage depends on (recorded as provenance)."""
    return {n: config.get(n) for n in names}


def known_keys(key: str, values: dict | None, cls) -> dict:
    """A copy of ``values`` (a config section read by the dataclass ``cls``); ConfigError naming ``key``
    and the allowed keys when it holds a key that ``cls`` has no field for."""
    d = dict(values or {})
    allowed = sorted(f for f in cls.__dataclass_fields__)
    unknown = sorted(set(d) - set(allowed))
    if unknown:
        raise ConfigError(f"{key}: unknown key(s) {unknown}; allowed: {allowed}")
    return d
