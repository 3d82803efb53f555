"""What an operator may run next, in chat commands: the one place that spells them.

Errors name a hint (``errors.hinted``) instead of a command; ``explain`` words an error for an
action's result (and so for chat), hint included.
"""

from __future__ import annotations

from typing import Any, Dict

# hint name -> its text, appended to the error's message; {…} are the hint's parameters.
HINTS: Dict[str, str] = {
    "list": " (see: !asg list)",
    "status": " (see: !asg status asg={asg})",
    "delete_group": " (delete it with: !asg delete name={name})",
    "force_remove": "; to remove it anyway: !asg node delete name={node} asg={asg} force=true",
    "name_a_node": "; name one to remove it anyway: !asg node delete name=<node> asg={asg} "
                   "force=true",
    "drain_first": " (!asg delete name={name} drains and removes them), or forget the records "
                   "anyway with force=true",
}


def hint_text(hint: str, **params: Any) -> str:
    """A hint's words ('' for an unknown hint: the error still reads on its own)."""
    template = HINTS.get(hint)
    return template.format(**params) if template else ""


def explain(exc: BaseException) -> str:
    """An error as an operator reads it: its message and, when it has one, its hint."""
    hint = getattr(exc, "hint", "")
    return str(exc) + (hint_text(hint, **getattr(exc, "hint_params", {})) if hint else "")


def resume_hint(asg: str) -> str:
    return "!asg resume asg=%s" % asg


def create_hint() -> str:
    return "!asg create name=XXX domain=YYY"


def delete_group_hint(asg: str) -> str:
    return "!asg delete name=%s" % asg
