"""A BMC web UI (443) rule from the Internet service tag, as a separate rule."""
import pulumi_azure_native as azure

azure.network.SecurityRule("bmc-https", resource_group_name="aifactory", network_security_group_name="bmc",
                           priority=110, direction="Inbound", access="Allow", protocol="Tcp",
                           source_address_prefix="Internet", source_port_range="*",
                           destination_address_prefix="*", destination_port_ranges=["443", "8000-8100"])
