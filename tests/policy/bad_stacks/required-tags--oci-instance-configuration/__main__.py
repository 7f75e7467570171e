"""An OCI instance configuration (cluster network template) with no aifactory freeform tags."""
import pulumi_oci as oci

oci.core.InstanceConfiguration(
    "h100", compartment_id="ocid1.compartment.oc1..x",
    instance_details={"instance_type": "compute", "launch_details": {
        "compartment_id": "ocid1.compartment.oc1..x", "shape": "BM.GPU.H100.8",
        "create_vnic_details": {"assign_public_ip": False, "subnet_id": "ocid1.subnet.oc1..x"}}})
