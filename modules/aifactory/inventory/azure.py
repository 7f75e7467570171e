"""Dynamic Ansible inventory from Azure tags: the running nodes of a factory.

An Azure pool is one scale set in Uniform orchestration carrying the aifactory tags (as they are:
Azure tag keys may hold ``:``). The VMs of a Uniform scale set do not carry tags of their own, so
the scale sets are listed and filtered on the factory tag, then the VMs of each matching scale
set with their power state, and the scale set's network interfaces for the private addresses
(a scale set VM's model names no address; ``azure-mgmt-network`` is the one extra client that
gives it). Calls grow with pools and pages, never one per node.
"""

from __future__ import annotations

import logging
import re
from typing import Iterable, Optional

from ..components.base import TAG_FACTORY
from ..errors import AifactoryError
from ..fields import AZURE_SUBSCRIPTION_PATTERN
from .dynamic import Node, one_line, read_tags, require, require_factory, stored_key
from .dynamic import build as build_nodes

PROVIDER = "azure"
# Azure's rule for resource group names: 1-90 letters, digits, '_', '-', '.', '(' and ')', not
# ending in '.' (ASCII only here).
RESOURCE_GROUP_PATTERN = r"[A-Za-z0-9_.()-]{0,89}[A-Za-z0-9_()-]"
_GROUP_OF = re.compile(r"/subscriptions/[^/]+/resourceGroups/(?P<group>[^/]+)/", re.IGNORECASE)
RUNNING = "PowerState/running"
NO_CREDENTIALS = ("inventory --from azure: no Azure credentials found; set AZURE_TENANT_ID, AZURE_CLIENT_ID and "
                  "AZURE_CLIENT_SECRET (a service principal) or run `az login`")


def resource_group_of(resource_id) -> Optional[str]:
    """The resource group named in an ARM id, when it is shaped like one."""
    found = _GROUP_OF.match(resource_id) if isinstance(resource_id, str) else None
    group = found.group("group") if found else None
    return group if group and re.fullmatch(RESOURCE_GROUP_PATTERN, group) else None


def _running(vm) -> bool:
    view = vm.instance_view
    return bool(view and any(s.code == RUNNING for s in (view.statuses or [])))


def addresses(network, group: str, scale_set: str) -> dict[str, str]:
    """VM id (lowercase) -> private address of its primary NIC's primary IP configuration."""
    out: dict[str, str] = {}
    for nic in network.network_interfaces.list_virtual_machine_scale_set_network_interfaces(group, scale_set):
        if nic.virtual_machine is None or not nic.virtual_machine.id or nic.primary is False:
            continue
        for config in nic.ip_configurations or []:
            if config.primary is not False and config.private_ip_address:
                out.setdefault(nic.virtual_machine.id.lower(), config.private_ip_address)
    return out


def running_nodes(compute, network, factory: str, resource_group: Optional[str] = None) -> Iterable[Node]:
    """The running VMs of the scale sets tagged with ``factory``, as :class:`~.dynamic.Node`."""
    sets = compute.virtual_machine_scale_sets
    key = stored_key(PROVIDER, TAG_FACTORY)
    for scale_set in (sets.list(resource_group) if resource_group else sets.list_all()):
        if (scale_set.tags or {}).get(key) != factory:
            continue
        group = resource_group_of(scale_set.id)
        if group is None:
            continue
        found = addresses(network, group, scale_set.name)
        for vm in compute.virtual_machine_scale_set_vms.list(group, scale_set.name, expand="instanceView"):
            if _running(vm):
                yield node(scale_set, vm, found.get((vm.id or "").lower()), group)


def node(scale_set, vm, address: Optional[str], group: str) -> Node:
    """One scale set VM as a :class:`~.dynamic.Node`; the tags are its scale set's."""
    computer = (vm.os_profile.computer_name if vm.os_profile else None) or (
        vm.instance_view.computer_name if vm.instance_view else None)
    return Node(
        key=(vm.id or "").lower(),
        names=tuple(n for n in (computer, f"{scale_set.name}-{vm.instance_id}") if n),
        address=address,
        tags=read_tags(PROVIDER, scale_set.tags),
        hostvars={
            "azure_vm_id": vm.id,
            "azure_vm_name": vm.name,
            "azure_vm_size": vm.sku.name if vm.sku else None,
            "azure_zone": vm.zones[0] if vm.zones else None,
            "azure_location": vm.location,
            "azure_resource_group": group,
            "azure_scale_set": scale_set.name,
        })


def clients(subscription: str, credential=None, **kwargs):
    """(compute, network) management clients on ``credential`` (default: ``DefaultAzureCredential``,
    which reads the environment, a workload or managed identity, or the Azure CLI's login)."""
    from azure.mgmt.compute import ComputeManagementClient
    from azure.mgmt.network import NetworkManagementClient

    if credential is None:
        from azure.identity import DefaultAzureCredential

        # Without a handler of its own, the credential chain's warning (one line per source it
        # tried) would reach stderr through logging's last resort; the error below says it in one.
        logging.getLogger("azure.identity").addHandler(logging.NullHandler())
        credential = DefaultAzureCredential()
    return (ComputeManagementClient(credential, subscription, **kwargs),
            NetworkManagementClient(credential, subscription, **kwargs))


def inventory(factory: str, subscription: str, resource_group: Optional[str] = None, *, credential=None,
              compute=None, network=None) -> dict:
    """The inventory of ``factory`` in ``subscription`` (only ``resource_group`` when given)."""
    require_factory(factory)
    require(subscription, AZURE_SUBSCRIPTION_PATTERN, "--subscription",
            "an Azure subscription id (a UUID such as 00000000-0000-0000-0000-000000000000)")
    if resource_group is not None:
        require(resource_group, RESOURCE_GROUP_PATTERN, "--resource-group",
                "an Azure resource group name (letters, digits, '_', '-', '.', '(', ')'; at most 90)")
    from azure.core.exceptions import AzureError, ClientAuthenticationError, HttpResponseError

    if compute is None or network is None:
        compute, network = clients(subscription, credential)
    try:
        found = list(running_nodes(compute, network, factory, resource_group))
    except ClientAuthenticationError as exc:
        if exc.response is None:  # no credential source worked
            raise AifactoryError(NO_CREDENTIALS) from None
        raise AifactoryError(f"inventory --from azure: the credentials were refused: {one_line(exc)}") from None
    except HttpResponseError as exc:
        raise AifactoryError(f"inventory --from azure: subscription {subscription}: {one_line(exc)}") from None
    except AzureError as exc:
        raise AifactoryError(f"inventory --from azure: cannot reach Azure Resource Manager: {one_line(exc)}") from None
    return build_nodes(found, factory)
