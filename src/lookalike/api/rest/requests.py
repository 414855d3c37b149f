"""The native API's request bodies, one model per operation (lookalike.api.rest.request_body explains how
they are read and shown in /openapi.json).

Fields are declared in the order the routes read them before the models, so that of two bad fields the
same one is named; a model made of parts lists its parts' bases last-first (Pydantic takes the fields of
the last base first).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    Field,
    SkipValidation,
    ValidationInfo,
    create_model,
    field_validator,
)

from lookalike.api.rest.request_body import (
    Base64Picture,
    FilePart,
    Flag,
    OptionalFlag,
    RequestBody,
    Text,
    whole,
)
from lookalike.api.shared.payload import loose_int, loose_text
from lookalike.domain import errors as e
from lookalike.domain.attributes import SLOTS, AttributeUpdate, Slot
from lookalike.domain.errors import LookalikeError
from lookalike.service.images import SearchOptions


# --- parts ---
class NoFields(RequestBody):
    """The body of an action named wholly by its path (create a key, disable a key, reload the catalogue,
    sweep now): it has no fields, and a body sent anyway is not read."""


class _AttributeMethods(RequestBody):
    def attribute_update(self) -> AttributeUpdate:
        values = {slot.name: getattr(self, slot.name) for slot in SLOTS}
        custom_content = getattr(self, "custom_content")  # noqa: B009 (a field of the generated model)
        return AttributeUpdate.of_slots(values, custom_content=custom_content)


def _slot_field(slot: Slot) -> tuple[Any, None]:
    if slot.kind == "int":
        return Annotated[int | None, whole(slot.error_code)], None  # InvalidIntAttr, InvalidIntAttr2, ...
    return Text, None


# The eight attribute slots (lookalike.domain.attributes) and CustomContent; absent: unchanged or unset.
if TYPE_CHECKING:
    AttributeFields = _AttributeMethods
else:
    AttributeFields = create_model(
        "AttributeFields",
        __base__=_AttributeMethods,
        **{slot.name: _slot_field(slot) for slot in SLOTS},
        custom_content=(Text, None),
    )


class PictureFields(RequestBody):
    """The picture: a multipart file part `picture`, or base64 text `pic_content`."""

    picture: FilePart = None
    pic_content: Annotated[bytes | None, Base64Picture("picture")] = Field(None, validate_default=True)

    def picture_bytes(self) -> bytes:
        found = self.picture if self.picture is not None else self.pic_content
        assert found is not None  # Base64Picture refused a body with neither
        return found


class SearchOptionFields(RequestBody):
    num: Annotated[int, whole(e.INVALID_NUM)] = 10
    start: Annotated[int, whole(e.INVALID_START)] = 0
    category_id: Annotated[int | None, whole(e.INVALID_CATEGORY)] = None
    filter: Text = None
    distinct_product_id: Flag = False
    score_threshold: Text = None

    def search_options(self) -> SearchOptions:
        return SearchOptions(
            num=self.num,
            start=self.start,
            category_id=self.category_id,
            filter=self.filter,
            distinct_product_id=self.distinct_product_id,
            score_threshold=self.score_threshold,
        )


class PictureKey(RequestBody):
    """A picture is named by its ProductId and PicName."""

    product_id: Text = None
    pic_name: Text = None


def _service_type(value: object) -> str:
    text = loose_text(value)
    if not text:
        return "product"
    if text.lower() not in ("product", "generic"):
        raise LookalikeError(e.INVALID_PARAMETER, "service_type is 'product' or 'generic'.")
    return text.lower()


# product (default) or generic, any case.
ServiceTypeField = Annotated[Literal["product", "generic"], BeforeValidator(_service_type)]


def _capacity_given(qps: int | None, info: ValidationInfo) -> int | None:
    """After qps: both capacity and qps are required, refused together once both are read."""
    if info.data.get("capacity") is None:
        raise LookalikeError(e.INVALID_PARAMETER, "capacity and qps are required.")
    return qps


def _required(name: str, message: str) -> BeforeValidator:
    """A whole number that must be given (InvalidParameter: `message` when it is not)."""

    def check(value: object) -> int:
        found = loose_int(value, name)
        if found is None:
            raise LookalikeError(e.INVALID_PARAMETER, message)
        return found

    return BeforeValidator(check)


# capacity and qps are both required: a missing qps here, a missing capacity once qps is read
# (_capacity_given).
RequiredQps = Annotated[int | None, _required("qps", "capacity and qps are required.")]


def _seconds(value: object) -> int:
    seconds = loose_int(value, "seconds")
    if seconds is None or seconds < 0:
        raise LookalikeError(e.INVALID_PARAMETER, "seconds must be a non-negative integer.")
    return seconds


def _unit(value: object) -> str:
    return (loose_text(value) or "month").lower()


class Period(RequestBody):
    """A billing period: `count` (default 1) of `unit` (month, the default, or year)."""

    count: Annotated[int, whole()] = 1
    unit: Annotated[str, BeforeValidator(_unit)] = "month"


def _max_total(value: object) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _WHOLE_NUMBER.fullmatch(value.strip()):
        return int(value)
    raise LookalikeError(
        e.INVALID_AMOUNT,
        f"max_total is an integer of minor units (25806 for 258.06), got {str(value)[:40]!r}.",
    )


_WHOLE_NUMBER = re.compile(r"-?[0-9]{1,18}")
# The quoted total the client agreed to, in integer minor units (negative for a refund); the order is refused
# (PriceChanged) if it now costs more. Fractions are refused rather than truncated.
MaxTotal = Annotated[int | None, BeforeValidator(_max_total)]
# An amount in integer minor units (`<name>_minor`; else `<name>` as a decimal string, read by the route,
# which knows the currency's exponent).
MinorUnits = Annotated[int | None, whole(e.INVALID_AMOUNT)]


# --- images ---
class _AddImageHead(PictureKey, PictureFields):
    category_id: Annotated[int | None, whole(e.INVALID_CATEGORY)] = None
    crop: Flag = True
    region: Text = None


class AddImage(AttributeFields, _AddImageHead):
    """Add or overwrite a picture: product_id, pic_name, the picture, then its category, crop or region,
    attributes and custom_content."""


class UpdateImage(AttributeFields, PictureKey):
    """Change a picture's attributes or custom_content (absent fields are left alone)."""


class DeleteImages(PictureKey):
    """Delete by product_id (all its pictures), by product_id and pic_name, or by filter."""

    is_delete_by_filter: OptionalFlag = None  # absent: whether a filter is given
    filter: Text = None


class ImageExists(PictureKey):
    """Is this picture stored?"""


# --- searches ---
class _PictureSearchHead(SearchOptionFields, PictureFields):
    pass


class SearchByPicture(_PictureSearchHead):
    """Search with a photo: the picture, the search options, then crop or region."""

    crop: Flag = True
    region: Text = None


class SearchByName(SearchOptionFields, PictureKey):
    """Search with a stored picture's ProductId and PicName."""


class SearchByFilter(SearchOptionFields):
    """List the pictures a filter selects (num and start page them)."""


class SearchByText(SearchOptionFields):
    """Search with words (at most 512 characters)."""

    text: Text = None


PrimaryText = Annotated[bytes | None, Base64Picture("primary")]
SecondaryText = Annotated[bytes | None, Base64Picture("secondary")]


class Compare(RequestBody):
    """Score two pictures against each other: each as a file part or base64 text."""

    primary: FilePart = None
    primary_pic_content: PrimaryText = Field(None, validate_default=True)
    secondary: FilePart = None
    secondary_pic_content: SecondaryText = Field(None, validate_default=True)

    def pictures(self) -> tuple[bytes, bytes]:
        first = self.primary if self.primary is not None else self.primary_pic_content
        second = self.secondary if self.secondary is not None else self.secondary_pic_content
        assert first is not None and second is not None  # Base64Picture refused a missing one
        return first, second


# --- duplicates ---
class StartDuplicateReport(RequestBody):
    """Start a duplicate report of an instance's pictures."""

    # 0.5-1.0, default 0.75; passed on as sent, the service checks it (and names what is wrong).
    threshold: SkipValidation[float | None] = None


KeptImageId = Annotated[int | None, _required("image_id", "image_id (the picture to keep) is required.")]


class KeepOne(RequestBody):
    """Keep this picture of a duplicate group, delete the others."""

    image_id: KeptImageId = Field(None, validate_default=True)


# --- billing ---
class Quote(Period):
    """Price an order before paying: kind = buy, trial, renew or change."""

    kind: Text = None
    package_id: Text = None
    instance: Text = None


class Order(Period):
    """Buy (creates the instance), trial, renew or change."""

    kind: Text = None
    package_id: Text = None
    instance: Text = None
    max_total: MaxTotal = None
    # product or generic: checked for buy and trial only (renew and change keep the instance's).
    service_type: Text = None


class AutoRenew(Period):
    """Renew automatically at the end of each cycle (from the balance), for `count` `unit`s."""

    enabled: Flag = True


# --- operator ---
class CreateAccount(RequestBody):
    name: Text = None


class CreateInstance(RequestBody):
    """An operator grant: an instance of any size at no charge, held for `months` (default 12)."""

    service_type: ServiceTypeField = "product"
    capacity: Annotated[int | None, whole()] = None
    qps: RequiredQps = Field(None, validate_default=True)
    account_id: Text = None
    name: Text = None
    months: Annotated[int | None, whole()] = None
    add_qps: Annotated[int | None, whole()] = None
    delete_qps: Annotated[int | None, whole()] = None
    update_qps: Annotated[int | None, whole()] = None

    _capacity_given = field_validator("qps")(_capacity_given)


class TopUp(RequestBody):
    """Credit an account: `amount` as a decimal string ("361.29") or `amount_minor` in minor units."""

    amount_minor: MinorUnits = None
    amount: Text = None
    account_id: Text = None
    reference: Text = None


class PrivatePackage(RequestBody):
    """A package only one account sees: capacity, qps, monthly price and yearly (default 10 months)."""

    capacity: Annotated[int | None, whole()] = None
    qps: RequiredQps = Field(None, validate_default=True)
    monthly_minor: MinorUnits = None
    monthly: Text = None
    yearly_minor: MinorUnits = None
    yearly: Text = None
    account_id: Text = None
    package_id: Text = None

    _capacity_given = field_validator("qps")(_capacity_given)


class TrialSeats(RequestBody):
    """How many free trials may be taken in all."""

    total: Annotated[int | None, _required("total", "total is required.")] = Field(
        None, validate_default=True
    )


class AdvanceClock(RequestBody):
    """Demo servers only: move the clock forward by `seconds` (a non-negative integer), then sweep."""

    seconds: Annotated[int | None, BeforeValidator(_seconds)] = Field(None, validate_default=True)


# --- queries (GET): FastAPI reads them into these models and documents them as query parameters ---
class EventsQuery(BaseModel):
    after: int = 0  # the last event id already seen


class GroupsQuery(BaseModel):
    # Text, so that a bad page is refused with the route's own message (a positive whole number).
    page: str = "1"
    page_size: str = "20"


class DownloadQuery(BaseModel):
    """The signed link's expiry and signature (the link is the credential)."""

    expires: str | None = None
    signature: str | None = None
