"""Campaigns: work that spans many allocations (a spec's ``[campaign]`` table).

One backlog and one ``results.jsonl`` for the whole campaign; each allocation is a
pilot through the spec's provider that borrows tasks while they fit the time it has
left and gives back what its end interrupts (outcome ``preempted``)."""

from __future__ import annotations

from .coordinator import Campaign, CampaignOutcome, registry_path
from .lookup import find_campaign
from .records import CAMPAIGN_FILE, AllocationRecord, CampaignStatus, read_status

__all__ = [
    "CAMPAIGN_FILE",
    "AllocationRecord",
    "Campaign",
    "CampaignOutcome",
    "CampaignStatus",
    "find_campaign",
    "read_status",
    "registry_path",
]
