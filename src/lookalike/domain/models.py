"""Plain records that cross layer boundaries (no behaviour, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum

# The attribute records live with the slots they are made of; re-exported here, where records are found.
from lookalike.domain.attributes import Attributes as Attributes
from lookalike.domain.attributes import AttributeUpdate as AttributeUpdate
from lookalike.domain.region import Box


class ServiceType(IntEnum):
    """Alibaba numbering, so the compatibility API can return it unchanged."""

    PRODUCT = 0
    GENERIC = 1


OTHER_CATEGORY = 88888888


@dataclass(frozen=True)
class Account:
    id: str
    name: str
    is_admin: bool
    disabled: bool
    created_at: datetime


@dataclass(frozen=True)
class AccessKey:
    id: str
    account_id: str
    disabled: bool
    created_at: datetime


@dataclass(frozen=True)
class Instance:
    id: str
    account_id: str
    name: str
    service_type: ServiceType
    capacity: int
    search_qps: int
    add_qps: int | None
    delete_qps: int | None
    update_qps: int | None
    status: str
    created_at: datetime
    expires_at: datetime | None


@dataclass(frozen=True)
class ImageRecord:
    id: int
    instance_id: str
    product_id: str
    pic_name: str
    category_id: int
    attributes: Attributes
    custom_content: str
    region: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class PicInfo:
    """What the service made of an uploaded picture."""

    category_id: int
    region: Box
    multi_region: list[Box]
    all_categories: list[tuple[int, str]] = field(default_factory=list)


@dataclass(frozen=True)
class SearchHit:
    record: ImageRecord
    score: float


@dataclass(frozen=True)
class SearchResult:
    hits: list[SearchHit]
    matched: int  # candidates in the instance that pass category/filter (Alibaba's DocsReturn)
    search_time_ms: int
    pic_info: PicInfo | None = None


@dataclass(frozen=True)
class InstanceDetail:
    instance: Instance
    total_count: int
