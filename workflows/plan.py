"""What a workflow will create, what it costs per hour and which quotas it needs: checked before a
run on AWS creates anything billable, and printed by ``sagelocal run <workflow> --plan``.

SageMaker bills instance time per second and limits it per account, region, instance type and use
(the Service Quotas "<type> for training job usage", "... for transform job usage", "... for
endpoint usage"). A new account often has 0 for some types, and a quota of 0 for endpoints shows
up only when the endpoint is created, after training and batch transform were paid for. So the
aws target asks Service Quotas first and refuses to start a run that would hit a limit.
Prices come from the AWS Price List API (on-demand, USD) where it answers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import botocore.exceptions

#: A current-generation general-purpose type offered in every commercial region (ml.m4.xlarge, the
#: notebooks' type, is a previous generation missing in newer regions).
DEFAULT_INSTANCE_TYPE = "ml.m5.xlarge"
USAGES = ("training", "transform", "processing", "endpoint")
QUOTA_INCREASE_URL = "https://console.aws.amazon.com/servicequotas/home/services/sagemaker/quotas"


@dataclass(frozen=True)
class Item:
    """One thing a workflow creates; ``usage`` and ``instances`` for what bills per instance-hour."""

    kind: str
    detail: str
    usage: str | None = None  # one of USAGES
    instances: int = 0  # running at the same time
    instance_type: str | None = None


def instances(kind: str, usage: str, count: int, instance_type: str, note: str = "") -> Item:
    detail = f"{count} x {instance_type}" + (f", {note}" if note else "")
    return Item(kind, detail, usage, count, instance_type)


def quota_name(instance_type: str, usage: str) -> str:
    return f"{instance_type} for {'endpoint' if usage == 'endpoint' else usage + ' job'} usage"


def needed_quotas(items: list[Item]) -> dict[str, int]:
    """Quota name -> instances needed at once (the largest single need: steps run one after another)."""
    needs: dict[str, int] = {}
    for item in items:
        if item.usage:
            name = quota_name(item.instance_type, item.usage)
            needs[name] = max(needs.get(name, 0), item.instances)
    return needs


class QuotaUnavailable(Exception):
    """Service Quotas could not be asked (no permission, not offered in this partition...)."""


def sagemaker_quotas(boto_session, names: set[str]) -> dict[str, float]:
    """The account's values for these SageMaker quotas: applied values, else AWS's defaults."""
    client = boto_session.client("service-quotas")
    found: dict[str, float] = {}
    try:
        for operation in ("list_service_quotas", "list_aws_default_service_quotas"):
            for page in client.get_paginator(operation).paginate(ServiceCode="sagemaker"):
                for quota in page.get("Quotas", []):
                    if quota.get("QuotaName") in names and quota["QuotaName"] not in found:
                        found[quota["QuotaName"]] = float(quota["Value"])
            if names <= found.keys():
                break
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError, NotImplementedError) as error:
        raise QuotaUnavailable(f"{type(error).__name__}: {error}") from error
    return found


def quota_problems(needs: dict[str, int], values: dict[str, float]) -> list[str]:
    problems = []
    for name, count in sorted(needs.items()):
        if name not in values:
            problems.append(f'"{name}": no such quota in this region (is the instance type offered here?)')
        elif values[name] < count:
            problems.append(f'"{name}" is {values[name]:g}, the run needs {count}')
    return problems


def hourly_prices(boto_session, region: str, instance_type: str) -> dict[str, float]:
    """On-demand USD per instance-hour by usage, from the Price List API; empty when it cannot say."""
    client = boto_session.client("pricing", region_name="us-east-1")
    filters = [
        {"Type": "TERM_MATCH", "Field": field, "Value": value}
        for field, value in (("regionCode", region), ("instanceName", instance_type))
    ]
    prices: dict[str, float] = {}
    for page in client.get_paginator("get_products").paginate(ServiceCode="AmazonSageMaker", Filters=filters):
        for text in page.get("PriceList", []):
            product = json.loads(text)
            component = product["product"].get("attributes", {}).get("component", "").lower()
            usage = next((u for u, words in _COMPONENTS.items() if any(w in component for w in words)), None)
            for term in product.get("terms", {}).get("OnDemand", {}).values():
                for dimension in term.get("priceDimensions", {}).values():
                    usd = dimension.get("pricePerUnit", {}).get("USD")
                    if usage and usd and dimension.get("unit", "").lower().startswith("hr"):
                        prices.setdefault(usage, float(usd))
    return prices


_COMPONENTS = {
    "training": ("training",),
    "transform": ("transform", "batch"),
    "processing": ("processing",),
    "endpoint": ("hosting",),
}
