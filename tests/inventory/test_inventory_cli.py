"""`aifactory inventory --from X`: every scoping option is held to its shape before any cloud SDK
is imported, and a bad value is one line naming the option (never echoing the value)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from aifactory import cli

SUB = "00000000-1111-2222-3333-444444444444"
COMPARTMENT = "ocid1.compartment.oc1..aaaaaaaafactory"

BAD = [
    # (arguments after `inventory --from`, what the one error line must say)
    (["aws", "--factory", "F1;id"], "--factory must be a factory name"),
    (["aws", "--factory", "f1", "--region", "us east 1"], "--region must be an AWS region"),
    (["aws", "--factory", "f1", "--endpoint-url", "file:///etc/passwd"], "--endpoint-url must be an http(s) URL"),
    (["gcp", "--factory", "f1"], "give --project ID"),
    (["gcp", "--factory", "f1", "--project", "My_Project"], "--project must be a Google Cloud project id"),
    (["gcp", "--factory", "f1", "--project", "my-project-1\nx"], "--project must be a Google Cloud project id"),
    (["gcp", "--factory", "f1", "--project", 'p") OR (name = "x'], "--project must be a Google Cloud project id"),
    (["gcp", "--factory", "f1", "--project", "my-project-1", "--endpoint-url", "http://user:pw@host/"],
     "--endpoint-url must be an http(s) URL"),
    (["gcp", "--factory", "f1", "--project", "my-project-1", "--region", "us-central1"], "--region does not apply"),
    (["gcp", "--factory", "f1", "--compartment", COMPARTMENT], "--compartment applies to --from oci"),
    (["azure", "--factory", "f1"], "give --subscription ID"),
    (["azure", "--factory", "f1", "--subscription", "not-a-uuid"], "--subscription must be an Azure subscription id"),
    (["azure", "--factory", "f1", "--subscription", SUB + "/resourceGroups/x"],
     "--subscription must be an Azure subscription id"),
    (["azure", "--factory", "f1", "--subscription", SUB, "--resource-group", "rg/../other"],
     "--resource-group must be an Azure resource group name"),
    (["azure", "--factory", "f1", "--subscription", SUB, "--resource-group", "rg."],
     "--resource-group must be an Azure resource group name"),
    (["azure", "--factory", "f1", "--subscription", SUB, "--endpoint-url", "https://example.com"],
     "do not apply"),
    (["oci", "--factory", "f1"], "give --compartment OCID"),
    (["oci", "--factory", "f1", "--compartment", "ocid1.instance.oc1..aaaaaaaa"],
     "--compartment must be an OCI compartment or tenancy OCID"),
    (["oci", "--factory", "f1", "--compartment", COMPARTMENT + "/../x"],
     "--compartment must be an OCI compartment or tenancy OCID"),
    (["oci", "--factory", "f1", "--compartment", COMPARTMENT, "--region", "US_EAST"], "--region must be an OCI region"),
    (["oci", "--factory", "f1", "--compartment", COMPARTMENT, "--region", "us-ashburn-1", "--region", "eu-frankfurt-1"],
     "give one --region"),
    (["oci", "--factory", "f1", "--compartment", COMPARTMENT, "--subscription", SUB],
     "--subscription applies to --from azure"),
]


def test_scope_variables_apply_to_their_own_cloud_only(monkeypatch, capsys):
    """GOOGLE_CLOUD_PROJECT stands in for --project with --from gcp (and is held to the same shape);
    with another --from it is not an option given, so it is no error."""
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "Bad_Project")
    monkeypatch.setattr(sys, "argv", ["aifactory", "inventory", "--from", "gcp", "--factory", "f1"])
    with pytest.raises(SystemExit):
        cli.main()
    assert "--project must be a Google Cloud project id" in capsys.readouterr().err
    monkeypatch.setattr(sys, "argv", ["aifactory", "inventory", "--from", "oci", "--factory", "f1",
                                      "--compartment", "bad"])
    with pytest.raises(SystemExit):
        cli.main()
    assert "--compartment must be" in capsys.readouterr().err


@pytest.mark.parametrize("args,message", BAD, ids=[" ".join(a).replace("\n", "\\n")[:60] for a, _ in BAD])
def test_bad_option_values_are_one_line_errors(args, message, monkeypatch, capsys):
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
    monkeypatch.delenv("AZURE_SUBSCRIPTION_ID", raising=False)
    monkeypatch.setattr(sys, "argv", ["aifactory", "inventory", "--from", *args])
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    assert exit_.value.code == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message in err, err
    if "must be" in message:  # the refused value is not echoed back
        refused = args[args.index(message.split()[0]) + 1]
        assert refused not in err


def test_bad_values_are_refused_before_any_sdk_is_imported():
    code = """
import sys
from aifactory import cli
for argv in (["gcp", "--project", "Bad"], ["azure", "--subscription", "bad"], ["oci", "--compartment", "bad"]):
    sys.argv = ["aifactory", "inventory", "--factory", "f1", "--from", *argv]
    try:
        cli.main()
    except SystemExit as exc:
        assert exc.code == 1, exc.code
print(sorted(m for m in ("google.cloud.compute_v1", "google.auth", "azure.mgmt.compute", "azure.identity", "oci")
             if m in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
