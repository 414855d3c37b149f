"""Plain records that cross layer boundaries (no behaviour, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum

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
class Attributes:
    """The filterable and returned fields of a picture; unset ints are 0, unset strings ""."""

    int_attr: int = 0
    int_attr2: int = 0
    int_attr3: int = 0
    int_attr4: int = 0
    str_attr: str = ""
    str_attr2: str = ""
    str_attr3: str = ""
    str_attr4: str = ""

    def as_filter_fields(self) -> dict[str, int | str]:
        return {
            "int_attr": self.int_attr,
            "int_attr2": self.int_attr2,
            "int_attr3": self.int_attr3,
            "int_attr4": self.int_attr4,
            "str_attr": self.str_attr,
            "str_attr2": self.str_attr2,
            "str_attr3": self.str_attr3,
            "str_attr4": self.str_attr4,
        }


@dataclass(frozen=True)
class AttributeUpdate:
    """A partial update: None leaves the stored value alone."""

    int_attr: int | None = None
    int_attr2: int | None = None
    int_attr3: int | None = None
    int_attr4: int | None = None
    str_attr: str | None = None
    str_attr2: str | None = None
    str_attr3: str | None = None
    str_attr4: str | None = None
    custom_content: str | None = None

    def changed(self) -> dict[str, int | str]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


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
