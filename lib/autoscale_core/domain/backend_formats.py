"""Formats the backends need, checked when a group is created (asg create): a value that every
later node add or announcement would trip over is refused at once, naming the field.

These rules are the load balancer's, Chef's and Slack's (issue 13: they move to the backend
that uses them, which then validates the group's vendor settings itself).
"""

from __future__ import annotations

import re
from typing import Any, List

from ..errors import ValidationError
from .fields import brief, str_list

# HAProxy allows these characters in proxy names (cfgparse.c invalid_char()).
_BACKEND_RE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")

# Chef names: chef-client's Chef::Node#chef_environment takes /^[\-[:alnum:]_]+$/ and erchef's
# chef_regex environment_name /^[.[:alnum:]_-]+$/; both at once: ASCII letters, digits, "_",
# "-" (no ".": chef-client refuses it on the node).
_CHEF_ENVIRONMENT_RE = re.compile(r"[A-Za-z0-9_-]{1,255}")
# Run list items as both chef-client (Chef::RunList::RunListItem) and erchef (chef_regex
# qualified_recipe, qualified_role, unqualified_recipe) take them: recipe[cookbook],
# recipe[cookbook::recipe], either with @MAJOR.MINOR[.PATCH], role[name], or a bare recipe
# name, which both read as recipe[name].
_CHEF_NAME = r"[A-Za-z0-9_.-]+"
_CHEF_RECIPE = r"(?:%s::)?%s(?:@[0-9]+\.[0-9]+(?:\.[0-9]+)?)?" % (_CHEF_NAME, _CHEF_NAME)
_CHEF_RUN_LIST_ITEM_RE = re.compile(r"recipe\[%s\]|role\[%s\]|%s"
                                    % (_CHEF_RECIPE, _CHEF_NAME, _CHEF_RECIPE))
# Slack: chat.postMessage takes a conversation ID (C… channel, G… private group, D… direct
# message, U…/W… a user's direct message with the app) or a channel name. Names are at most
# 80 lowercase letters, digits, "-" and "_" (conversations.create/rename), not punctuation
# alone.
SLACK_CHANNEL_MAX = 80
_SLACK_ID_RE = re.compile(r"[CDGUW][A-Z0-9]{8,20}")


def validate_backend_name(value: Any) -> str:
    if not isinstance(value, str) or not _BACKEND_RE.fullmatch(value):
        raise ValidationError(
            "load balancer backend %r is not a valid HAProxy backend name: use 1 to 64 of "
            "letters, digits, '-', '_', '.' and ':'" % (value,)
        )
    return value


def validate_chef_run_list(value: Any, what: str = "chef_run_list") -> List[str]:
    items = str_list(value, what)
    for item in items:
        if not _CHEF_RUN_LIST_ITEM_RE.fullmatch(item):
            raise ValidationError(
                "%s entry %s is not a Chef run list item: use recipe[cookbook], "
                "recipe[cookbook::recipe], recipe[cookbook@1.2.3] or role[name], with names "
                "of letters, digits, '_', '-' and '.'" % (what, brief(item)))
    return items


def validate_chef_environment(value: Any, what: str = "chef_environment") -> str:
    if not isinstance(value, str) or not _CHEF_ENVIRONMENT_RE.fullmatch(value):
        raise ValidationError(
            "%s %s is not a Chef environment name: use letters, digits, '_' and '-' "
            "(chef-client refuses anything else, '.' and spaces included)" % (what, brief(value)))
    return value


def _slack_name_char(ch: str) -> bool:
    return ch in "-_" or (ch.isalnum() and not ch.isupper())


def validate_chat_channel(value: Any, what: str = "chat_channel") -> str:
    """A Slack conversation ID (C0123ABCD) or channel name (#web-ops or web-ops); "" for the
    default channel."""
    if not isinstance(value, str):
        raise ValidationError("%s must be a string, not %s" % (what, brief(value)))
    if value == "" or _SLACK_ID_RE.fullmatch(value):
        return value
    name = value[1:] if value.startswith("#") else value
    if not (0 < len(name) <= SLACK_CHANNEL_MAX and all(_slack_name_char(ch) for ch in name)
            and any(ch.isalnum() for ch in name)):
        raise ValidationError(
            "%s %s is not a Slack channel: use a channel name such as #web-ops (at most %d "
            "lowercase letters, digits, '-' and '_') or a channel ID such as C0123ABCD"
            % (what, brief(value), SLACK_CHANNEL_MAX))
    return value
