"""A group's settings that belong to a backend are checked by that backend when the group is
created (``check_group`` of each configured backend, asked by asg_register): the load
balancer's backend name (HAProxy's rule), the provisioner's run list and environment (what
Chef takes), the chat channel (what Slack takes). A stored group is read without them, so that
a group created by an earlier version keeps being governed."""

import json
import re

import pytest

from autoscale_core import backends
from autoscale_core.backends.haproxy import validate_backend_name
from autoscale_core.domain.model import Group
from autoscale_core.errors import ValidationError


def group(**spec):
    """A group as asg_register creates it with the default backends."""
    spec.setdefault("name", "web")
    spec.setdefault("domain", "example.com")
    created = Group.create(**spec)
    backends.check_group({}, created)
    return created


def test_backend_names():
    assert validate_backend_name("be_web:80.v2") == "be_web:80.v2"
    for bad in ["", "a b", "a;b", "a\nb", "ab\n", "x" * 65, None]:
        with pytest.raises(ValidationError):
            validate_backend_name(bad)


def test_a_backend_name_haproxy_refuses_is_refused_on_create_only():
    with pytest.raises(ValidationError, match="not a valid HAProxy backend name"):
        group(lb_backend="web back")
    assert group(lb_backend="be_web:80.v2").lb_backend == "be_web:80.v2"
    # The domain itself takes any one line: the rule is the load balancer's.
    assert Group.create(name="web", domain="example.com", lb_backend="web back").lb_backend \
        == "web back"


@pytest.mark.parametrize("field,value,message", [
    ("chef_run_list", ["role[web]", "nginx server"],
     "chef_run_list entry 'nginx server' is not a Chef run list item"),
    ("chef_run_list", ["Recipe[nginx]"], "chef_run_list entry 'Recipe[nginx]' is not"),
    ("chef_run_list", ["role[web"], "chef_run_list entry 'role[web' is not"),
    ("chef_run_list", ["role[web::x]"], "chef_run_list entry 'role[web::x]' is not"),
    ("chef_run_list", ["recipe[nginx@1]"], "chef_run_list entry 'recipe[nginx@1]' is not"),
    ("chef_run_list", ["recipe[]"], "chef_run_list entry 'recipe[]' is not"),
    ("chef_environment", "prod env", "chef_environment 'prod env' is not a Chef environment"),
    ("chef_environment", "prod.eu", "chef_environment 'prod.eu' is not a Chef environment"),
    ("chef_environment", "prod/eu", "chef_environment 'prod/eu' is not a Chef environment"),
    ("chat_channel", "<!channel>", "chat_channel '<!channel>' is not a Slack channel"),
    ("chat_channel", "#Web-Ops", "chat_channel '#Web-Ops' is not a Slack channel"),
    ("chat_channel", "#web ops", "chat_channel '#web ops' is not a Slack channel"),
    ("chat_channel", "#web.ops", "chat_channel '#web.ops' is not a Slack channel"),
    ("chat_channel", "#---", "chat_channel '#---' is not a Slack channel"),
    ("chat_channel", "#", "chat_channel '#' is not a Slack channel"),
    ("chat_channel", "#" + "a" * 81, "is not a Slack channel"),
    ("chat_channel", "@alice", "chat_channel '@alice' is not a Slack channel"),
])
def test_create_refuses_what_chef_or_slack_would_refuse_naming_the_field(field, value, message):
    with pytest.raises(ValidationError, match=re.escape(message)):
        group(**{field: value})


def test_create_takes_what_chef_and_slack_take_and_old_groups_still_read():
    taken = group(chef_run_list=["recipe[nginx]", "recipe[nginx::server]", "recipe[app@1.2]",
                                 "recipe[app::web@1.2.3]", "role[web-front_1.x]", "nginx",
                                 "nginx::server", "app@1.2"],
                  chef_environment="Prod_EU-1", chat_channel="#web-ops_2")
    assert taken.chef_run_list[-1] == "app@1.2"  # kept as given: Chef reads it as a recipe
    for channel in ("", "web-ops", "#" + "a" * 80, "#運用", "C0123ABCD", "G0123ABCDEF",
                    "D0123ABCD", "U0123ABCD"):
        assert group(chat_channel=channel).chat_channel == channel
    with pytest.raises(ValidationError, match="chat_channel"):
        group(chat_channel="<!channel>")
    # A group stored by an earlier version with a value create now refuses is still governed.
    data = json.loads(taken.to_json())
    data.update(chat_channel="Ops Team", chef_environment="prod.eu", chef_run_list=["x y"],
                lb_backend="web back")
    assert Group.from_json(json.dumps(data)).chat_channel == "Ops Team"
