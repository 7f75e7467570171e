"""GCP GPU pool: host VPC, the GPU NIC networks the machine type needs, compact placement,
an instance template and one managed instance group carrying the node count.

The NIC layouts follow Google's cluster-toolkit blueprints and the GPU network docs
(https://cloud.google.com/compute/docs/gpus/gpudirect,
https://cloud.google.com/ai-hypercomputer/docs/create/create-vm#rdma-network):

* a3-highgpu-8g (GPUDirect-TCPX): 4 GPU NICs, each in its own VPC, MTU 8244;
* a3-megagpu-8g (GPUDirect-TCPXO): 8 GPU NICs, each in its own VPC, MTU 8244;
* a3-ultragpu-8g, a4-highgpu-8g, a4x (RDMA over RoCE): one VPC on the zone's RoCE network
  profile holding one subnet per RDMA NIC (MRDMA), MTU 8896.
"""

from __future__ import annotations

from typing import Optional

import pulumi
import pulumi_gcp as gcp

from ..errors import AifactoryError
from . import base
from .pool import PoolComponent

PROVIDER = "gcp"
TCPX_MTU = 8244
RDMA_MTU = 8896
BOOT_DISK_GB = 500



def gpu_network_layout(fabric_type: Optional[str], nics: int) -> dict:
    """How the GPU NICs of a machine type are networked: kind, count, MTU, NIC type."""
    if fabric_type in ("gpudirect-tcpx", "gpudirect-tcpxo"):
        return {"kind": "vpc-per-nic", "count": nics, "mtu": TCPX_MTU, "nic_type": "GVNIC"}
    if fabric_type == "roce":
        return {"kind": "roce", "count": nics, "mtu": RDMA_MTU, "nic_type": "MRDMA"}
    return {"kind": "none", "count": 0, "mtu": 1460, "nic_type": "GVNIC"}


class GpuPool(PoolComponent):
    TYPE = base.type_token(PROVIDER)

    def __init__(self, name: str, pool, plan, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        super().__init__(name, pool, plan, opts)
        self.require_zones()
        zone = pool.zones[0]
        region = pool.region or zone.rsplit("-", 1)[0]
        child, labels = self.child, self.tags
        layout = gpu_network_layout(pool.fabric_type, pool.compute_nics)

        cidr = base.network_cidr(plan, pool)
        host_mtu = layout["mtu"] if layout["kind"] != "none" else 1460
        host = gcp.compute.Network(base.child(name, "host-vpc"), auto_create_subnetworks=False, mtu=host_mtu,
                                   description=f"aifactory {plan.name}/{pool.name} host network", opts=child)
        host_subnet = gcp.compute.Subnetwork(base.child(name, "host-subnet"), network=host.id, region=region,
                                             ip_cidr_range=base.subnet_cidr(cidr, 0),
                                             # Nodes have no external address: reach Google APIs privately.
                                             private_ip_google_access=True, opts=child)
        gcp.compute.Firewall(base.child(name, "host-internal"), network=host.id, direction="INGRESS",
                             source_ranges=[cidr], allows=[{"protocol": "all"}],
                             description="All traffic between nodes of the pool", opts=child)
        if plan.access.admin_cidrs:
            gcp.compute.Firewall(base.child(name, "ssh-admin"), network=host.id, direction="INGRESS",
                                 source_ranges=list(plan.access.admin_cidrs),
                                 allows=[{"protocol": "tcp", "ports": ["22"]}],
                                 description="SSH from the declared admin networks only", opts=child)
        # Egress for package mirrors without giving nodes external addresses.
        router = gcp.compute.Router(base.child(name, "router"), network=host.id, region=region, opts=child)
        gcp.compute.RouterNat(base.child(name, "nat"), router=router.name, region=region,
                              nat_ip_allocate_option="AUTO_ONLY",
                              source_subnetwork_ip_ranges_to_nat="ALL_SUBNETWORKS_ALL_IP_RANGES",
                              log_config={"enable": True, "filter": "ERRORS_ONLY"}, opts=child)

        gpu_networks, gpu_subnets = [], []
        if layout["kind"] == "vpc-per-nic":
            for i in range(layout["count"]):
                net = gcp.compute.Network(base.child(name, f"gpu-vpc-{i}"), auto_create_subnetworks=False,
                                          mtu=layout["mtu"], description=f"GPU NIC {i} of {pool.name}", opts=child)
                gpu_networks.append(net)
                gpu_subnets.append(gcp.compute.Subnetwork(
                    base.child(name, f"gpu-subnet-{i}"), network=net.id, region=region,
                    ip_cidr_range=f"192.168.{i}.0/24", opts=child))
                gcp.compute.Firewall(base.child(name, f"gpu-internal-{i}"), network=net.id, direction="INGRESS",
                                     source_ranges=[f"192.168.{i}.0/24"], allows=[{"protocol": "all"}],
                                     description="GPUDirect traffic between nodes", opts=child)
        elif layout["kind"] == "roce":
            project = pulumi.Config("gcp").get("project")
            if not project:
                raise AifactoryError(f"pools.{pool.name}: RDMA machine types need the RoCE network profile of "
                                     "the project; set it with `pulumi config set gcp:project <project-id>`")
            net = gcp.compute.Network(
                base.child(name, "rdma-vpc"), auto_create_subnetworks=False, mtu=layout["mtu"],
                network_profile=f"projects/{project}/global/networkProfiles/{zone}-vpc-roce",
                description=f"RDMA (RoCE) network of {pool.name}", opts=child)
            gpu_networks.append(net)
            # RoCE VPCs take no firewall rules; RDMA traffic never leaves the zone's fabric.
            for i in range(layout["count"]):
                gpu_subnets.append(gcp.compute.Subnetwork(
                    base.child(name, f"rdma-subnet-{i}"), network=net.id, region=region,
                    ip_cidr_range=f"192.168.{64 + i}.0/24", opts=child))

        placement = gcp.compute.ResourcePolicy(
            base.child(name, "placement"), region=region,
            group_placement_policy={"collocation": "COLLOCATED"},
            description="Compact placement: nodes of the pool close together on the fabric", opts=child)
        # A dedicated identity with no project roles: the least a node can be.
        account = gcp.serviceaccount.Account(base.child(name, "nodes-sa"),
                                             account_id=f"aif-{base._label(pool.name)}"[:28],
                                             display_name=f"aifactory {plan.name}/{pool.name} nodes", opts=child)

        image = self.image()
        scheduling = {"on_host_maintenance": "TERMINATE", "automatic_restart": True}
        reservation_affinity = None
        if pool.capacity == "spot":
            scheduling = {"provisioning_model": "SPOT", "preemptible": True, "automatic_restart": False,
                          "on_host_maintenance": "TERMINATE", "instance_termination_action": "DELETE"}
        elif pool.capacity in ("reservation", "capacity-block"):
            if pool.reservation:
                reservation_affinity = {"type": "SPECIFIC_RESERVATION", "specific_reservation": {
                    "key": "compute.googleapis.com/reservation-name", "values": [pool.reservation]}}
            else:
                reservation_affinity = {"type": "ANY_RESERVATION"}

        nics = [{"subnetwork": host_subnet.id, "nic_type": "GVNIC"}]  # no access_configs: no external IP
        nics += [{"subnetwork": s.id, "nic_type": layout["nic_type"]} for s in gpu_subnets]
        template = gcp.compute.InstanceTemplate(
            base.child(name, "template"),
            machine_type=pool.system,
            region=region,
            disks=[{"boot": True, "auto_delete": True, "source_image": image, "disk_size_gb": BOOT_DISK_GB,
                    # A3 Ultra and A4 boot only from Hyperdisk; Google encrypts every disk at rest.
                    "disk_type": "hyperdisk-balanced" if layout["kind"] == "roce" else "pd-balanced"}],
            network_interfaces=nics,
            scheduling=scheduling,
            reservation_affinity=reservation_affinity,
            resource_policies=placement.self_link,
            service_account={"email": account.email, "scopes": ["cloud-platform"]},
            # OS Login: SSH keys come from IAM, never from project metadata.
            metadata={"enable-oslogin": "TRUE", "block-project-ssh-keys": "TRUE", "user-data": self.user_data()},
            shielded_instance_config={"enable_integrity_monitoring": True, "enable_vtpm": True},
            labels=labels(base.ROLE_NODE),
            opts=child,
        )
        group = gcp.compute.InstanceGroupManager(
            base.child(name, "nodes"), zone=zone,
            base_instance_name=f"{plan.name}-{pool.name}"[:50],
            versions=[{"instance_template": template.self_link, "name": "primary"}],
            target_size=pool.nodes,
            # Replacing a GPU node costs hours of work in flight; roll templates out on request only.
            update_policy={"type": "OPPORTUNISTIC", "minimal_action": "REFRESH", "max_unavailable_fixed": 1},
            opts=child,
        )

        self.host_network_id = host.id
        self.gpu_network_ids = pulumi.Output.all(*[n.id for n in gpu_networks]).apply(list)
        self.publish(
            pulumi.Output.all(group.id).apply(list),
            pulumi.Output.all(host_subnet.id, *[s.id for s in gpu_subnets]).apply(list),
            pulumi.Output.all(group.name, host.id).apply(
                lambda v: {"node_group": v[0], "host_network": v[1], "zone": zone,
                           "gpu_nics": layout["count"], "gpu_mtu": layout["mtu"]}),
            host_network_id=self.host_network_id, gpu_network_ids=self.gpu_network_ids)
