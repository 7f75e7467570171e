"""OCI GPU pool: VCN, private subnet with its security list, an instance configuration and one
cluster network (RDMA over RoCE) carrying the node count of a BM.GPU shape.

Cluster networks: https://docs.oracle.com/iaas/Content/Compute/Tasks/managingclusternetworks.htm;
the oci-hpc quickstart (oracle-quickstart/oci-hpc) builds GPU clusters the same way.
"""

from __future__ import annotations

from typing import Optional

import pulumi
import pulumi_oci as oci

from ..errors import AifactoryError
from . import base
from .pool import PoolComponent

PROVIDER = "oci"
BOOT_VOLUME_GB = 512



class GpuPool(PoolComponent):
    TYPE = base.type_token(PROVIDER)

    def __init__(self, name: str, pool, plan, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        super().__init__(name, pool, plan, opts)
        if not pool.system.startswith("BM.GPU"):
            raise AifactoryError(f"pools.{pool.name}.system: cluster networks need a bare-metal BM.GPU shape, "
                                 f"got {pool.system}")
        compartment = pulumi.Config("aifactory").get("ociCompartmentId") or pulumi.Config("oci").get("tenancyOcid")
        if not compartment:
            raise AifactoryError(f"pools.{pool.name}: OCI pools need a compartment; `pulumi config set "
                                 "aifactory:ociCompartmentId ocid1.compartment…` (or set oci:tenancyOcid)")
        os_name = self.image()  # (operating system, version): the OCID differs per region
        ssh_key = pulumi.Config("aifactory").get("sshPublicKey")
        child, tags = self.child, self.tags
        invoke = pulumi.InvokeOutputOptions(parent=self)

        cidr = base.network_cidr(plan, pool)
        if pool.zones:
            ad = pulumi.Output.from_input(pool.zones[0])
        else:
            # The untyped invoke of the same data source: the typed wrapper would import all of
            # pulumi_oci.identity (~0.6 s) for one string.
            ads = pulumi.runtime.invoke_output("oci:Identity/getAvailabilityDomains:getAvailabilityDomains",
                                               {"compartmentId": compartment}, opts=invoke)
            ad = ads.apply(lambda result: _first_domain(result, compartment))
        vcn = oci.core.Vcn(base.child(name, "vcn"), compartment_id=compartment, cidr_blocks=[cidr],
                           display_name=base.child(name, "vcn"), freeform_tags=tags("network"), opts=child)
        ingress = [{"protocol": "all", "source": cidr, "description": "All traffic inside the pool"}]
        ingress += [{"protocol": "6", "source": admin, "description": "SSH from the declared admin network",
                     "tcp_options": {"min": 22, "max": 22}} for admin in plan.access.admin_cidrs]
        seclist = oci.core.SecurityList(
            base.child(name, "seclist"), compartment_id=compartment, vcn_id=vcn.id,
            display_name=base.child(name, "seclist"), ingress_security_rules=ingress,
            egress_security_rules=[{"protocol": "all", "destination": "0.0.0.0/0"}],
            freeform_tags=tags("security"), opts=child)
        subnet = oci.core.Subnet(
            base.child(name, "subnet"), compartment_id=compartment, vcn_id=vcn.id,
            cidr_block=base.subnet_cidr(cidr, 0), display_name=base.child(name, "subnet"),
            # Private subnet: no VNIC in it may ever get a public address.
            prohibit_public_ip_on_vnic=True, security_list_ids=[seclist.id],
            freeform_tags=tags("network"), opts=child)

        images = oci.core.get_images_output(
            compartment_id=compartment, operating_system=os_name[0], operating_system_version=os_name[1],
            shape=pool.system, sort_by="TIMECREATED", sort_order="DESC", opts=invoke)
        image_id = images.images.apply(lambda found: _first_image(found, pool.system, plan.software.os))

        launch = {
            "compartment_id": compartment,
            "availability_domain": ad,
            "shape": pool.system,
            "display_name": base.child(name, "node"),
            "create_vnic_details": {"subnet_id": subnet.id, "assign_public_ip": False,
                                    "freeform_tags": tags(base.ROLE_NODE)},
            "source_details": {"source_type": "image", "image_id": image_id,
                               "boot_volume_size_in_gbs": BOOT_VOLUME_GB},
            # Boot volumes are encrypted at rest by OCI; this also encrypts the path to them.
            "is_pv_encryption_in_transit_enabled": True,
            "freeform_tags": tags(base.ROLE_NODE),
        }
        # cloud-init reads metadata.user_data (base64) on OCI.
        launch["metadata"] = {"user_data": self.user_data(encoded=True)}
        if ssh_key:
            launch["metadata"]["ssh_authorized_keys"] = ssh_key
        if pool.capacity in ("reservation", "capacity-block") and pool.reservation:
            launch["capacity_reservation_id"] = pool.reservation
        if pool.capacity == "spot":
            launch["preemptible_instance_config"] = {"preemption_action": {"type": "TERMINATE",
                                                                          "preserve_boot_volume": False}}
        config = oci.core.InstanceConfiguration(
            base.child(name, "config"), compartment_id=compartment, display_name=base.child(name, "config"),
            instance_details={"instance_type": "compute", "launch_details": launch},
            freeform_tags=tags("template"), opts=child)
        cluster = oci.core.ClusterNetwork(
            base.child(name, "nodes"), compartment_id=compartment, display_name=base.child(name, "nodes"),
            instance_pools=[{"instance_configuration_id": config.id, "size": pool.nodes,
                             "display_name": base.child(name, "pool")}],
            placement_configuration={"availability_domain": ad, "primary_subnet_id": subnet.id},
            freeform_tags=tags(base.ROLE_NODE), opts=child)

        self.publish(
            pulumi.Output.all(cluster.id).apply(list), pulumi.Output.all(subnet.id).apply(list),
            pulumi.Output.all(cluster.id, vcn.id, ad).apply(
                lambda v: {"node_group": v[0], "vcn_id": v[1], "availability_domain": v[2],
                           "compartment_id": compartment}))


def _first_image(images, shape: str, os_name: str) -> str:
    if not images:
        raise AifactoryError(f"no OCI platform image of {os_name} is published for shape {shape} "
                             "in this region/compartment")
    first = images[0]
    return first["id"] if isinstance(first, dict) else first.id


def _first_domain(result: dict, compartment: str) -> str:
    domains = (result or {}).get("availabilityDomains") or []
    if not domains:
        raise AifactoryError(f"no availability domain is visible in compartment {compartment}; "
                             "check the region and the compartment id")
    return domains[0]["name"]
