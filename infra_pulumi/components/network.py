"""VPC over 2 (staging) or 3 (prod) AZs: public, private (NAT egress) and isolated subnets."""

from __future__ import annotations

import ipaddress
from typing import Any

import pulumi
import pulumi_aws as aws

from infra_pulumi.components._shared import child, tags
from infra_pulumi.config import StackConfig


class Network(pulumi.ComponentResource):
    vpc: aws.ec2.Vpc
    public_subnet_ids: list[pulumi.Output[str]]
    private_subnet_ids: list[pulumi.Output[str]]
    isolated_subnet_ids: list[pulumi.Output[str]]

    def __init__(self, name: str, config: StackConfig, opts: pulumi.ResourceOptions | None = None):
        super().__init__("slipway:network:Network", name, None, opts)
        zones = config.availability_zones
        public_cidrs, private_cidrs, isolated_cidrs = _tier_cidrs(config.vpc_cidr, len(zones))

        self.vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=config.vpc_cidr,
            enable_dns_hostnames=True,
            enable_dns_support=True,
            tags=tags(config, "vpc"),
            opts=child(self),
        )
        igw = aws.ec2.InternetGateway(
            f"{name}-igw", vpc_id=self.vpc.id, tags=tags(config, "igw"), opts=child(self)
        )
        public_routes = aws.ec2.RouteTable(
            f"{name}-public-rt",
            vpc_id=self.vpc.id,
            routes=[{"cidr_block": "0.0.0.0/0", "gateway_id": igw.id}],
            tags=tags(config, "public"),
            opts=child(self),
        )

        public: list[aws.ec2.Subnet] = []
        private: list[aws.ec2.Subnet] = []
        isolated: list[aws.ec2.Subnet] = []
        route_tables: list[aws.ec2.RouteTable] = [public_routes]
        nat_ids: list[pulumi.Output[str]] = []
        for index, zone in enumerate(zones):
            suffix = zone[-1]
            subnet = self._subnet(name, config, "public", zone, public_cidrs[index], public_routes)
            public.append(subnet)
            # One NAT in staging (cheap, single point of failure accepted), one per AZ in prod,
            # none in dev stacks (VPC endpoints instead: see private_endpoints).
            if config.has_nat and (config.nat_per_az or index == 0):
                eip = aws.ec2.Eip(
                    f"{name}-nat-{suffix}",
                    domain="vpc",
                    tags=tags(config, f"nat-{suffix}"),
                    opts=child(self),
                )
                nat = aws.ec2.NatGateway(
                    f"{name}-nat-{suffix}",
                    allocation_id=eip.id,
                    subnet_id=subnet.id,
                    tags=tags(config, f"nat-{suffix}"),
                    opts=child(self, depends_on=[igw]),
                )
                nat_ids.append(nat.id)

        for index, zone in enumerate(zones):
            suffix = zone[-1]
            egress: list[Any] = []
            if nat_ids:
                nat_id = nat_ids[index] if config.nat_per_az else nat_ids[0]
                egress = [{"cidr_block": "0.0.0.0/0", "nat_gateway_id": nat_id}]
            private_routes = aws.ec2.RouteTable(
                f"{name}-private-rt-{suffix}",
                vpc_id=self.vpc.id,
                routes=egress,
                tags=tags(config, f"private-{suffix}"),
                opts=child(self),
            )
            route_tables.append(private_routes)
            subnet = self._subnet(
                name, config, "private", zone, private_cidrs[index], private_routes
            )
            private.append(subnet)

        # Isolated subnets (databases, cache) have no route out at all.
        isolated_routes = aws.ec2.RouteTable(
            f"{name}-isolated-rt",
            vpc_id=self.vpc.id,
            tags=tags(config, "isolated"),
            opts=child(self),
        )
        route_tables.append(isolated_routes)
        for index, zone in enumerate(zones):
            subnet = self._subnet(
                name, config, "isolated", zone, isolated_cidrs[index], isolated_routes
            )
            isolated.append(subnet)

        # S3 traffic (backups, static assets) stays on the AWS network and skips NAT charges.
        aws.ec2.VpcEndpoint(
            f"{name}-s3",
            vpc_id=self.vpc.id,
            service_name=f"com.amazonaws.{config.region}.s3",
            vpc_endpoint_type="Gateway",
            route_table_ids=[table.id for table in route_tables],
            tags=tags(config, "s3-endpoint"),
            opts=child(self),
        )

        self.public_subnet_ids = [s.id for s in public]
        self.private_subnet_ids = [s.id for s in private]
        self.isolated_subnet_ids = [s.id for s in isolated]
        self.nat_gateway_count = len(nat_ids)
        self.register_outputs(
            {
                "vpcId": self.vpc.id,
                "publicSubnetIds": self.public_subnet_ids,
                "privateSubnetIds": self.private_subnet_ids,
                "isolatedSubnetIds": self.isolated_subnet_ids,
            }
        )

    def private_endpoints(self, config: StackConfig, security_group_id: pulumi.Input[str]) -> None:
        """Without a NAT gateway, the AWS APIs private subnets need at run time: Secrets
        Manager (the Lambda bootstrap reads the API's secrets), in one zone to keep it cheap."""
        aws.ec2.VpcEndpoint(
            "network-secretsmanager",
            vpc_id=self.vpc.id,
            service_name=f"com.amazonaws.{config.region}.secretsmanager",
            vpc_endpoint_type="Interface",
            private_dns_enabled=True,
            subnet_ids=self.private_subnet_ids[:1],
            security_group_ids=[security_group_id],
            tags=tags(config, "secretsmanager-endpoint"),
            opts=child(self),
        )

    def _subnet(
        self,
        name: str,
        config: StackConfig,
        tier: str,
        zone: str,
        cidr: str,
        routes: aws.ec2.RouteTable,
    ) -> aws.ec2.Subnet:
        """A subnet of one tier in one zone, attached to its route table."""
        suffix = zone[-1]
        subnet = aws.ec2.Subnet(
            f"{name}-{tier}-{suffix}",
            vpc_id=self.vpc.id,
            cidr_block=cidr,
            availability_zone=zone,
            # Nothing we run gets a public IP, not even in public subnets: only the NAT
            # gateways and ALBs live there.
            map_public_ip_on_launch=False,
            tags=tags(config, f"{tier}-{suffix}", Tier=tier),
            opts=child(self),
        )
        aws.ec2.RouteTableAssociation(
            f"{name}-{tier}-{suffix}",
            subnet_id=subnet.id,
            route_table_id=routes.id,
            opts=child(self),
        )
        return subnet


def _tier_cidrs(vpc_cidr: str, zones: int) -> tuple[list[str], list[str], list[str]]:
    """Public /24s in the first /20, then one /20 per zone for private and isolated subnets."""
    network = ipaddress.ip_network(vpc_cidr)
    public = [str(s) for s in list(network.subnets(new_prefix=24))[:zones]]
    twenties = list(network.subnets(new_prefix=20))
    private = [str(s) for s in twenties[1 : 1 + zones]]
    isolated = [str(s) for s in twenties[8 : 8 + zones]]
    return public, private, isolated
