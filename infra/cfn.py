"""Reading CloudFormation/SAM templates: YAML with intrinsics kept as data, conditions applied.

:func:`load_template` turns the short forms (``!Ref``, ``!GetAtt``, ``!Sub``, ...) into the
long forms CloudFormation's JSON uses; :func:`resolve_conditions` gives the template as
CloudFormation would see it for one set of parameter values.  :mod:`infra.template`
derives the local stack from the result.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

__all__ = ["TemplateDrift", "evaluate_conditions", "load_template", "resolve_conditions"]


class TemplateDrift(ValueError):
    """The template defines something the local stack has no stand-in for (or lacks a part it needs)."""


# --------------------------------------------------------------------------------- loading


class _CfnLoader(yaml.SafeLoader):
    """PyYAML loader that keeps CloudFormation short-form intrinsics as their long-form data."""


# CloudFormation YAML has no timestamps: "2010-09-09" must stay a string even unquoted.
_CfnLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix in ("Ref", "Condition"):
        return {suffix: value}
    if suffix == "GetAtt" and isinstance(value, str):
        # !GetAtt Res.Attr is the short form of [Res, Attr]; attributes may contain dots.
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


def load_template(path: str | Path) -> dict[str, Any]:
    """Parse a CloudFormation/SAM YAML (or JSON) template, keeping intrinsics as data.

    Parameters
    ----------
    path : str or Path
        The template file.

    Returns
    -------
    dict
        The template, with short forms turned into long forms: ``!Ref X`` becomes
        ``{"Ref": "X"}``, ``!GetAtt A.B`` becomes ``{"Fn::GetAtt": ["A", "B"]}``, ``!Sub s``
        becomes ``{"Fn::Sub": s}`` and so on.

    """
    text = Path(path).read_text(encoding="utf-8")
    return yaml.load(text, Loader=_CfnLoader)  # noqa: S506 - _CfnLoader is a SafeLoader


# ------------------------------------------------------------------------------ conditions


def _parameter_values(template: Mapping[str, Any], parameters: Mapping[str, Any] | None) -> dict[str, str]:
    values = {name: str(spec.get("Default", "")) for name, spec in template.get("Parameters", {}).items()}
    for name, value in (parameters or {}).items():
        if name not in values:
            raise KeyError(f"template has no parameter {name!r}")
        values[name] = str(value)
    return values


def _eval_condition(expr: Any, params: Mapping[str, str], conditions: Mapping[str, Any], seen: dict) -> Any:
    """Evaluate a condition expression (Fn::Equals/Not/And/Or, Condition, Ref to a parameter)."""
    if isinstance(expr, dict) and len(expr) == 1:
        ((fn, arg),) = expr.items()
        if fn == "Condition":
            if arg not in seen:
                seen[arg] = bool(_eval_condition(conditions[arg], params, conditions, seen))
            return seen[arg]
        if fn == "Ref":
            if arg not in params:
                raise TemplateDrift(f"condition refers to {arg!r}, which is not a parameter")
            return params[arg]
        if fn == "Fn::Equals":
            left, right = (_eval_condition(a, params, conditions, seen) for a in arg)
            return str(left) == str(right)
        if fn == "Fn::Not":
            return not _eval_condition(arg[0], params, conditions, seen)
        if fn == "Fn::And":
            return all(_eval_condition(a, params, conditions, seen) for a in arg)
        if fn == "Fn::Or":
            return any(_eval_condition(a, params, conditions, seen) for a in arg)
        raise TemplateDrift(f"unsupported function in a condition: {fn}")
    return expr


def evaluate_conditions(
    template: Mapping[str, Any], parameters: Mapping[str, Any] | None = None
) -> dict[str, bool]:
    """Evaluate every entry of the template's ``Conditions`` for the given parameter values.

    Parameters
    ----------
    template : mapping
        A template as returned by :func:`load_template` (or translated by SAM).
    parameters : mapping, optional
        Parameter values; parameters not given take their ``Default``.

    Returns
    -------
    dict
        Condition name -> bool.

    """
    params = _parameter_values(template, parameters)
    conditions = template.get("Conditions", {})
    seen: dict[str, bool] = {}
    return {name: bool(_eval_condition({"Condition": name}, params, conditions, seen)) for name in conditions}


_NO_VALUE = object()


def _prune(node: Any, conds: Mapping[str, bool]) -> Any:
    if isinstance(node, dict):
        if len(node) == 1 and "Fn::If" in node:
            name, when_true, when_false = node["Fn::If"]
            return _prune(when_true if conds[name] else when_false, conds)
        if node == {"Ref": "AWS::NoValue"}:
            return _NO_VALUE
        out = {}
        for key, value in node.items():
            value = _prune(value, conds)
            if value is not _NO_VALUE:
                out[key] = value
        return out
    if isinstance(node, list):
        return [v for v in (_prune(v, conds) for v in node) if v is not _NO_VALUE]
    return node


def resolve_conditions(
    template: Mapping[str, Any], parameters: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The template as CloudFormation would see it for these parameters, conditions applied.

    Resources and outputs whose ``Condition`` is false are dropped, every ``Fn::If`` is
    replaced by the branch taken and ``AWS::NoValue`` removed. Other intrinsics stay as data.

    Parameters
    ----------
    template : mapping
        A template as returned by :func:`load_template` (or translated by SAM).
    parameters : mapping, optional
        Parameter values; parameters not given take their ``Default``.

    Returns
    -------
    dict
        A new template; the input is not modified.

    """
    conds = evaluate_conditions(template, parameters)
    out = copy.deepcopy(dict(template))
    for section in ("Resources", "Outputs"):
        kept = {
            lid: body for lid, body in out.get(section, {}).items() if conds.get(body.get("Condition"), True)
        }
        if section in out:
            out[section] = kept
    # Conditions themselves and Rules are not resources: leave them, prune the rest.
    for section in ("Globals", "Resources", "Outputs"):
        if section in out:
            out[section] = _prune(out[section], conds)
    return out
