"""Azure GPU pool: resource group, VNet with a private subnet and its NSG, a proximity placement
group, and one VM scale set of ND-series VMs with InfiniBand carrying the node count.

InfiniBand on ND-series scale sets: VMs of one scale set placement group share an IB fabric
(https://learn.microsoft.com/azure/virtual-machines/setup-infiniband); accelerated networking
on the Ethernet NIC (https://learn.microsoft.com/azure/virtual-network/accelerated-networking-overview).
"""

from __future__ import annotations

from typing import Optional

import pulumi
import pulumi_azure_native as azure

from ..errors import AifactoryError
from . import base
from .pool import PoolComponent

PROVIDER = "azure"
OS_DISK_GB = 512
# A uniform scale set keeps its VMs in one placement group (one InfiniBand fabric) up to 100
# VMs; above that Azure spreads them and IB connectivity is no longer guaranteed across them.
SINGLE_PLACEMENT_GROUP_MAX = 100



class GpuPool(PoolComponent):
    TYPE = base.type_token(PROVIDER)

    def __init__(self, name: str, pool, plan, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        super().__init__(name, pool, plan, opts)
        image = dict(self.image())  # the Ubuntu HPC images: x86_64 only
        ssh_key = pulumi.Config("aifactory").get("sshPublicKey")
        if not ssh_key:
            raise AifactoryError(f"pools.{pool.name}: Azure VMs need an admin SSH public key (password login "
                                 "is disabled); `pulumi config set aifactory:sshPublicKey \"$(cat ~/.ssh/id_ed25519.pub)\"`")
        child, tags = self.child, self.tags

        cidr = base.network_cidr(plan, pool)
        group = azure.resources.ResourceGroup(base.child(name, "rg"), location=pool.region, tags=tags("group"),
                                              opts=child)
        rules = [{
            "name": f"ssh-admin-{i}", "priority": 100 + i, "direction": "Inbound", "access": "Allow",
            "protocol": "Tcp", "source_address_prefix": admin, "source_port_range": "*",
            "destination_address_prefix": "VirtualNetwork", "destination_port_range": "22",
        } for i, admin in enumerate(plan.access.admin_cidrs)]
        # Explicit, so no later rule can open SSH wider by priority accident.
        rules.append({"name": "ssh-deny-rest", "priority": 4000, "direction": "Inbound", "access": "Deny",
                      "protocol": "Tcp", "source_address_prefix": "*", "source_port_range": "*",
                      "destination_address_prefix": "*", "destination_port_range": "22"})
        nsg = azure.network.NetworkSecurityGroup(base.child(name, "nsg"), resource_group_name=group.name,
                                                 location=group.location, security_rules=rules,
                                                 tags=tags("security"), opts=child)
        vnet = azure.network.VirtualNetwork(
            base.child(name, "vnet"), resource_group_name=group.name, location=group.location,
            address_space={"address_prefixes": [cidr]}, tags=tags("network"),
            # Subnets are managed as their own resource below; never inline as well.
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["subnets"]))
        subnet = azure.network.Subnet(
            base.child(name, "subnet"), resource_group_name=group.name, virtual_network_name=vnet.name,
            address_prefix=base.subnet_cidr(cidr, 0), network_security_group={"id": nsg.id},
            # No implicit internet egress address for the nodes (private subnet).
            default_outbound_access=False, opts=child)
        subnet_id = subnet.id
        ppg = azure.compute.ProximityPlacementGroup(
            base.child(name, "ppg"), resource_group_name=group.name, location=group.location,
            proximity_placement_group_type="Standard", tags=tags("placement"), opts=child)

        profile: dict = {
            "os_profile": {
                "computer_name_prefix": f"{pool.name}"[:9],
                "admin_username": plan.access.ssh_user,
                # cloud-init reads custom data on Azure; the API takes it base64-encoded.
                "custom_data": self.user_data(encoded=True),
                "linux_configuration": {
                    "disable_password_authentication": True,
                    "ssh": {"public_keys": [{"path": f"/home/{plan.access.ssh_user}/.ssh/authorized_keys",
                                             "key_data": ssh_key}]},
                },
            },
            "storage_profile": {
                "image_reference": image,
                "os_disk": {"create_option": "FromImage", "caching": "ReadWrite", "disk_size_gb": OS_DISK_GB,
                            "managed_disk": {"storage_account_type": "Premium_LRS"}},
            },
            # Host-based encryption covers temp disks and caches too, not only the managed disks
            # Azure already encrypts at rest (needs the EncryptionAtHost feature on the subscription).
            "security_profile": {"encryption_at_host": True},
            "network_profile": {"network_interface_configurations": [{
                "name": "primary", "primary": True, "enable_accelerated_networking": True,
                "ip_configurations": [{"name": "ipv4", "primary": True, "subnet": {"id": subnet_id}}],
            }]},
        }
        if pool.capacity == "spot":
            profile.update({"priority": "Spot", "eviction_policy": "Delete", "billing_profile": {"max_price": -1}})
        elif pool.capacity in ("reservation", "capacity-block") and pool.reservation:
            profile["capacity_reservation"] = {"capacity_reservation_group": {"id": pool.reservation}}

        scale_set = azure.compute.VirtualMachineScaleSet(
            base.child(name, "nodes"),
            resource_group_name=group.name, location=group.location,
            sku={"name": pool.system, "tier": "Standard", "capacity": pool.nodes},
            orchestration_mode="Uniform",
            single_placement_group=pool.nodes <= SINGLE_PLACEMENT_GROUP_MAX,
            # Overprovisioning would boot and bill extra ND VMs only to delete them.
            overprovision=False,
            proximity_placement_group={"id": ppg.id},
            upgrade_policy={"mode": "Manual"},
            virtual_machine_profile=profile,
            zones=list(pool.zones) or None,
            tags=tags(base.ROLE_NODE),
            opts=child,
        )
        if pool.nodes > SINGLE_PLACEMENT_GROUP_MAX:
            pulumi.log.warn(f"pool {pool.name}: {pool.nodes} VMs exceed one placement group "
                            f"({SINGLE_PLACEMENT_GROUP_MAX}); InfiniBand spans each placement group only",
                            resource=self)

        self.resource_group = group.name
        self.publish(
            pulumi.Output.all(scale_set.id).apply(list), pulumi.Output.all(subnet_id).apply(list),
            pulumi.Output.all(group.name, scale_set.name, vnet.id).apply(
                lambda v: {"resource_group": v[0], "node_group": v[1], "vnet_id": v[2]}),
            resource_group=self.resource_group)
