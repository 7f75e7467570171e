"""Every rule against stacks that try to slip past it, and against stacks that comply.

The cases (``cases.py``) run offline under the recording mocks; a bypass must be refused by
its rule alone (plus any rule the case says it cannot help breaking), on the resources it
names, and the pulumi-policy pack must report the same; a compliant case raises nothing.
"""

from __future__ import annotations

from collections import Counter
from functools import lru_cache
from pathlib import Path

import pytest

from aifactory.policy import RULE_NAMES, evaluate
from aifactory.policy.addresses import cidr_source, is_internet, public_size
from tests.policy.cases import BYPASS, CASES, COMPLIANT, Case
from tests.policy.stacklib import TAGS
from tests.policy.harness import run, through_policy_sdk

PROGRAM = Path(__file__).parent / "case_program" / "__main__.py"

# The ways past a literal reading of single properties that the rules must close.
ATTACKS = {
    "half-ranges", "union-covers-internet", "large-public-prefix", "separate-rules", "ipv6", "ipv4-mapped-ipv6",
    "lowercase-keyword", "service-tag", "whitespace",
    "public-subnet", "elastic-ip", "several-interfaces", "azure-public-ip-resource", "oci-vnic",
    "spot-request", "spot-fleet", "spot-vm", "ephemeral-only-root", "blank-tag", "tags-in-one-place",
}
# Every kind of spot capacity must meet every rule that reads nodes.
SPOT_KINDS = {
    "imdsv2-required": {"spot-request", "spot-fleet"},
    "encrypted-volumes": {"spot-request", "spot-fleet", "spot-vm"},
    "no-public-ip-on-gpu-nodes": {"spot-request", "spot-fleet", "spot-vm"},
    "required-tags": {"spot-request", "spot-fleet", "spot-vm"},
}


@lru_cache(maxsize=None)
def _resources(case: Case) -> tuple:
    return tuple(run(PROGRAM, config={"policy-test:case": str(case)}))


@pytest.mark.parametrize("case", [c for c in CASES if c.verdict == BYPASS], ids=str)
def test_bypass_is_refused_by_its_rule(case):
    violations = evaluate(_resources(case))
    rendered = [v.render() for v in violations]
    assert {v.rule for v in violations} == {case.rule, *case.also}, rendered
    flagged = {v.name for v in violations if v.rule == case.rule}
    assert set(case.on) <= flagged, rendered


@pytest.mark.parametrize("case", [c for c in CASES if c.verdict == COMPLIANT], ids=str)
def test_compliant_stack_passes(case):
    violations = evaluate(_resources(case))
    assert violations == [], [v.render() for v in violations]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_policy_pack_reports_what_evaluate_reports(case):
    resources = list(_resources(case))
    assert sorted(through_policy_sdk(resources)) == sorted((v.rule, v.name) for v in evaluate(resources))


def test_every_rule_has_three_bypasses_and_three_compliant_stacks():
    counts = Counter((c.rule, c.verdict) for c in CASES)
    short = {(rule, verdict): counts[(rule, verdict)] for rule in RULE_NAMES for verdict in (BYPASS, COMPLIANT)
             if counts[(rule, verdict)] < 3}
    assert not short, short


def test_every_known_attack_has_a_bypass_case():
    covered = set().union(*(c.covers for c in CASES if c.verdict == BYPASS))
    assert ATTACKS <= covered, sorted(ATTACKS - covered)
    for rule, kinds in SPOT_KINDS.items():
        seen = set().union(*(c.covers for c in CASES if c.verdict == BYPASS and c.rule == rule))
        assert kinds <= seen, (rule, sorted(kinds - seen))


@pytest.mark.parametrize("sources, open_", [
    (["0.0.0.0/0"], True),
    (["0.0.0.0/1", "128.0.0.0/1"], True),
    ([f"{i * 32}.0.0.0/3" for i in range(8)], True),
    (["2.0.0.0/7"], True),                                   # wider than a /8 of public space
    (["17.0.0.0/8"], False),                                 # one holder's /8: at the limit
    (["17.0.0.0/8", "18.0.0.0/24"], True),                   # ... and one address over it
    (["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "224.0.0.0/3"], False),
    (["::/0"], True), (["::/1"], True), (["2000::/3"], True),
    (["2600:1f00::/32"], False), (["2600::/31"], True),
    (["fc00::/7", "fe80::/10"], False),                      # unique-local and link-local
    (["::ffff:0:0/96"], True), (["::ffff:10.0.0.0/104"], False),  # IPv4-mapped: judged as IPv4
    (["64:ff9b::/96"], True),                                # NAT64: the IPv4 internet
    (["2001:db8::/32"], False),                              # documentation
])
def test_what_counts_as_the_internet(sources, open_):
    assert is_internet(public_size([cidr_source(s).network for s in sources])) is open_


@pytest.mark.parametrize("text, world", [
    ("*", True), ("Any", True), ("internet", True), ("INTERNET", True), (" 0.0.0.0/0 ", False),
    ("0.0.0.0/0/0", True), ("10.0.0.0/8", False),
])
def test_sources_that_are_not_address_ranges(text, world):
    """Keywords in any case are the internet; unreadable text is refused; ranges are counted."""
    assert cidr_source(text).world is world


@pytest.mark.parametrize("template_deps, refused", [(["lt"], False), ([], True)])
def test_a_literal_id_beside_an_unrelated_depends_on_names_nothing(template_deps, refused):
    """Where the engine says which property a dependency came from (the pack), a node group whose
    launch template id is a literal is not taken to launch the template it merely depends on."""
    lt = {"type": "aws:ec2/launchTemplate:LaunchTemplate", "name": "lt", "urn": "urn:lt", "props": {
        "instanceType": "p5.48xlarge", "metadataOptions": {"httpTokens": "required"},
        "blockDeviceMappings": [{"deviceName": "/dev/sda1", "ebs": {"encrypted": True}}],
        "networkInterfaces": [{"associatePublicIpAddress": False}], "tags": TAGS,
        "tagSpecifications": [{"resourceType": "instance", "tags": TAGS}]}}
    group = {"type": "aws:autoscaling/group:Group", "name": "nodes", "urn": "urn:nodes", "dependencies": ["urn:lt"],
             "property_dependencies": {"launchTemplate": template_deps, "vpcZoneIdentifiers": []},
             "props": {"launchTemplate": {"id": "lt-0123456789abcdef0"}, "vpcZoneIdentifiers": [],
                       "tags": [{"key": k, "value": v} for k, v in TAGS.items()]}}
    rules = {v.rule for v in evaluate([lt, group]) if v.name == "nodes"}
    assert ("launch-templates-in-stack" in rules) is refused
