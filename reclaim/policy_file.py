"""Reads a policies YAML file; every problem comes back in one PolicyError, never a traceback."""

from __future__ import annotations

from pathlib import Path

import yaml

from reclaim.domain.policy import Policy, PolicyError, policies_from_data


def load_policies(path: Path) -> tuple[Policy, ...]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise PolicyError(str(path), [f"cannot read the file: {reason}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise PolicyError(str(path), [f"not valid YAML: {where}{problem}"]) from None
    return policies_from_data(data, str(path))
