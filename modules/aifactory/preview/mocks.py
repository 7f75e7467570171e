"""A recording mock engine for Pulumi programs: no CLI, no credentials, no network.

``RecordingMocks`` echoes a resource's inputs as its outputs and adds the ids, names, ARNs and
self links real providers would compute, so that ``preview=False`` resolves every output.
Provider functions (data sources) are answered only for the few tokens the components use;
any other call raises, so a component cannot silently depend on a lookup nobody mocked.
``RecordingMonitor`` keeps what the stock ``MockMonitor`` drops: parent, dependencies and
whether a resource is custom or a component.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from pulumi.runtime import mocks as _mocks
from pulumi.runtime import rpc
from pulumi.runtime.sync_await import _ensure_event_loop

SECRET = "[secret]"
_SECRET_SIG = rpc._special_sig_key  # noqa: SLF001 - the wire marker of a secret value


class UnknownCall(Exception):
    """A provider function the mocks do not know; the program would need the real cloud."""


@dataclass
class Record:
    type: str
    name: str
    urn: str
    parent: Optional[str]  # the parent's name; None only for the root stack
    parent_type: Optional[str]
    custom: bool
    dependencies: list[str] = field(default_factory=list)  # names of explicit dependencies
    inputs: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"type": self.type, "name": self.name, "parent": self.parent, "parent_type": self.parent_type,
                "custom": self.custom, "dependencies": list(self.dependencies), "inputs": self.inputs}


def _urn_name(urn: str) -> str:
    return urn.split("::")[-1]


def _urn_type(urn: str) -> str:
    return urn.split("::")[2].split("$")[-1]


def _plain(value: Any) -> Any:
    """Inputs as plain JSON-able data, secrets masked."""
    if isinstance(value, dict):
        if value.get(_SECRET_SIG) == rpc._special_secret_sig:  # noqa: SLF001
            return SECRET
        return {k: _plain(v) for k, v in value.items() if k != _SECRET_SIG}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# Outputs real providers compute that the components read back.
_EXTRA_STATE: dict[str, Callable[[str], dict]] = {
    "aws:ec2/launchTemplate:LaunchTemplate": lambda n: {"latestVersion": 1, "defaultVersion": 1},
}


def _oci_images(args: dict) -> dict:
    shape = args.get("shape", "")
    return {"images": [{"id": f"ocid1.image.oc1..mock-{shape.lower()}", "displayName": f"mock image for {shape}",
                        "operatingSystem": args.get("operatingSystem", "Canonical Ubuntu"),
                        "operatingSystemVersion": args.get("operatingSystemVersion", "22.04")}],
            "compartmentId": args.get("compartmentId", "")}


def _oci_availability_domains(args: dict) -> dict:
    return {"availabilityDomains": [{"name": f"mock:AD-{i}", "id": f"ocid1.ad.oc1..mock{i}",
                                     "compartmentId": args.get("compartmentId", "")} for i in (1, 2, 3)],
            "compartmentId": args.get("compartmentId", "")}


CALLS: dict[str, Callable[[dict], dict]] = {
    "oci:Core/getImages:getImages": _oci_images,
    "oci:Identity/getAvailabilityDomains:getAvailabilityDomains": _oci_availability_domains,
}


class RecordingMocks(_mocks.Mocks):
    def __init__(self, calls: Optional[dict[str, Callable[[dict], dict]]] = None) -> None:
        self.calls_known = dict(CALLS if calls is None else calls)
        self.calls: list[tuple[str, dict]] = []

    def new_resource(self, args: _mocks.MockResourceArgs):
        if not args.custom:
            return "", {}
        state = dict(args.inputs)
        rid = f"{args.name}-id"
        if args.typ.startswith("aws:"):
            state.setdefault("arn", f"arn:aws:mock:us-east-1:000000000000:{args.typ.split(':')[1]}/{args.name}")
        elif args.typ.startswith("gcp:"):
            state.setdefault("selfLink", f"https://www.googleapis.com/compute/v1/mock/{args.name}")
        elif args.typ.startswith("azure-native:"):
            rid = f"/subscriptions/00000000-0000-0000-0000-000000000000/mock/{args.name}"
        elif args.typ.startswith("oci:"):
            rid = f"ocid1.mock.oc1..{args.name}"
        state.setdefault("name", args.name)
        state.setdefault("id", rid)
        state.update(_EXTRA_STATE.get(args.typ, lambda n: {})(args.name))
        return rid, state

    def call(self, args: _mocks.MockCallArgs):
        self.calls.append((args.token, dict(args.args)))
        handler = self.calls_known.get(args.token)
        if handler is None:
            raise UnknownCall(f"provider function {args.token} is not mocked; the offline preview cannot "
                              "answer it (add a handler to aifactory.preview.mocks.CALLS)")
        return handler(dict(args.args)), []


class RecordingMonitor(_mocks.MockMonitor):
    def __init__(self, mocks: RecordingMocks) -> None:
        super().__init__(mocks)
        self.records: list[Record] = []

    def RegisterResource(self, request):  # noqa: N802 - gRPC method name
        response = super().RegisterResource(request)
        _ensure_event_loop()
        parent = request.parent or None
        inputs = _plain(rpc.deserialize_properties(request.object)) if request.type != "pulumi:pulumi:Stack" else {}
        self.records.append(Record(
            type=request.type, name=request.name, urn=response.urn,
            parent=_urn_name(parent) if parent else None, parent_type=_urn_type(parent) if parent else None,
            custom=bool(request.custom), dependencies=[_urn_name(u) for u in request.dependencies],
            inputs=inputs,
        ))
        return response
