"""The ledger's figures for Prometheus (gathered for the whole studio by config.metrics)."""

from prometheus_client import Counter

CREDITS = Counter(
    "studio_credits",
    "Credits moved by the ledger in this process, by entry kind (spend, refund, grant...)",
    ["kind"],
)
