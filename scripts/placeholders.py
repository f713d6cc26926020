"""`${Name}` placeholders in the ecs/ files: the one place that finds and fills them.

scripts/check-deploy.py fills them with sample values (and `render FILE` from the environment);
scripts/local-task fills the task definition's with local values. A placeholder is whatever
stands between `${` and `}`.
"""

import re

PATTERN = re.compile(r"\$\{([^}]*)\}")


def names(text):
    """The placeholder names in `text`, in order of appearance (repeats included)."""
    return PATTERN.findall(text)


def fill(text, lookup):
    """`text` with every `${NAME}` replaced by `lookup(NAME)`, or left as written where
    `lookup` answers None; and the names left unfilled, in order of appearance."""
    unfilled = []

    def one(match):
        value = lookup(match.group(1))
        if value is None:
            unfilled.append(match.group(1))
            return match.group(0)
        return value

    return PATTERN.sub(one, text), unfilled
