"""What an add stores for one picture, computed from its bytes: the stored views' reduced vectors, the
category, the Region and MultiRegion, the local features and the thumbnail.

The image service's add and the bulk import's workers (lookalike.bulk) both call these functions, so a
picture imported in bulk is stored exactly as an add stores it. The embedder and the reduction come in as
plain callables: a service passes its MicroBatcher's ``embed_several``, a Ray worker its own model's
``embed`` over a whole batch (``analyze_many``: every view of every picture in one model call).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from lookalike.domain import keypoint_codec
from lookalike.domain.errors import LookalikeError
from lookalike.domain.image_limits import ImageLimits
from lookalike.domain.models import OTHER_CATEGORY, Attributes, PicInfo, ServiceType
from lookalike.domain.region import Box
from lookalike.domain.validation import validate_category
from lookalike.storage.images_repo import NewImage, NewPicture
from lookalike.vision.categories import all_categories, predict_category
from lookalike.vision.embedder import EmbedResult
from lookalike.vision.keypoints import stored_keypoints
from lookalike.vision.prepare import decode_and_prepare
from lookalike.vision.thumbnail import make_thumbnail
from lookalike.vision.views import stored_views

Embed = Callable[[Sequence[Image.Image]], EmbedResult]
Reduce = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class StoredAnalysis:
    """One picture as an add stores it (before the key and attributes are attached)."""

    views: np.ndarray  # (v, dim) reduced vectors, the primary view (Region / subject crop / whole) first
    pic_info: PicInfo
    image: Image.Image  # the whole decoded picture (oriented RGB), for the thumbnail
    keypoints: keypoint_codec.Keypoints | None  # local features (None: the check is off)

    @property
    def vector(self) -> np.ndarray:
        """The primary view's vector: what the index holds."""
        primary: np.ndarray = self.views[0]
        return primary

    @property
    def aux_vector(self) -> np.ndarray | None:
        """The whole picture's vector when the primary view is a part of it."""
        return self.views[1] if len(self.views) > 1 else None


@dataclass(frozen=True)
class PreparedPicture:
    """A decoded picture and the views to embed, before the model runs."""

    image: Image.Image
    views: list[Image.Image]
    box: Box
    boxes: list[Box]
    keypoints: keypoint_codec.Keypoints | None


def prepare_for_storage(
    data: bytes, *, limits: ImageLimits, region: str | None, crop: bool, with_keypoints: bool
) -> PreparedPicture:
    """Decode (raises LookalikeError on a bad picture or Region), choose the stored views
    (lookalike.vision.views) and compute the local features."""
    decoded, picture, box, boxes = decode_and_prepare(data, limits, region, crop)
    views = stored_views(decoded.image, picture)
    keypoints = stored_keypoints(decoded.image) if with_keypoints else None
    return PreparedPicture(decoded.image, views, box, boxes, keypoints)


def choose_category(class_probs: np.ndarray, *, service_type: ServiceType, category_id: int | None) -> int:
    """Generic instances do not classify (as on Alibaba); a given CategoryId wins; else the prediction."""
    if service_type is not ServiceType.PRODUCT:
        return OTHER_CATEGORY
    if category_id is not None:
        validate_category(category_id)
        return category_id
    return predict_category(class_probs)


def finish_storage(
    prepared: PreparedPicture,
    embedded: EmbedResult,
    *,
    reduce: Reduce,
    service_type: ServiceType,
    category_id: int | None,
) -> StoredAnalysis:
    """The embedded views (``embedded``: one row per view of ``prepared``, in order) -> what is stored."""
    views = reduce(embedded.vectors)
    category = choose_category(embedded.class_probs[0], service_type=service_type, category_id=category_id)
    info = PicInfo(category, prepared.box, prepared.boxes, all_categories())
    return StoredAnalysis(views, info, prepared.image, prepared.keypoints)


def analyze_for_storage(
    data: bytes,
    *,
    limits: ImageLimits,
    embed: Embed,
    reduce: Reduce,
    region: str | None,
    crop: bool,
    service_type: ServiceType,
    category_id: int | None = None,
    with_keypoints: bool = True,
) -> StoredAnalysis:
    """Decode, choose the stored views, embed them in one call, reduce them and pick the category."""
    prepared = prepare_for_storage(
        data, limits=limits, region=region, crop=crop, with_keypoints=with_keypoints
    )
    return finish_storage(
        prepared, embed(prepared.views), reduce=reduce, service_type=service_type, category_id=category_id
    )


@dataclass(frozen=True)
class PictureRequest:
    """One picture to analyse for storage: its bytes and the options of its add."""

    data: bytes
    region: str | None = None
    crop: bool = True
    category_id: int | None = None


def analyze_many(
    requests: Sequence[PictureRequest],
    *,
    limits: ImageLimits,
    embed: Embed,
    reduce: Reduce,
    service_type: ServiceType,
    with_keypoints: bool = True,
) -> list[StoredAnalysis | LookalikeError]:
    """``analyze_for_storage`` over a batch, with every view of every good picture in one ``embed`` call;
    a picture that cannot be decoded (or has a bad Region or CategoryId) gets its LookalikeError in its
    place and never stops the others."""
    prepared: list[PreparedPicture | LookalikeError] = []
    for request in requests:
        try:
            if request.category_id is not None:
                validate_category(request.category_id)
            prepared.append(
                prepare_for_storage(
                    request.data,
                    limits=limits,
                    region=request.region,
                    crop=request.crop,
                    with_keypoints=with_keypoints,
                )
            )
        except LookalikeError as exc:
            prepared.append(exc)
    views = [view for p in prepared if isinstance(p, PreparedPicture) for view in p.views]
    embedded = embed(views) if views else None
    results: list[StoredAnalysis | LookalikeError] = []
    offset = 0
    for request, item in zip(requests, prepared, strict=True):
        if isinstance(item, LookalikeError):
            results.append(item)
            continue
        assert embedded is not None
        rows = slice(offset, offset + len(item.views))
        offset += len(item.views)
        part = EmbedResult(embedded.vectors[rows], embedded.class_probs[rows])
        results.append(
            finish_storage(
                item, part, reduce=reduce, service_type=service_type, category_id=request.category_id
            )
        )
    return results


def thumbnail_size_for(capacity: int, *, size: int | None, max_capacity: int | None) -> int | None:
    """The thumbnail an add stores for an instance of this capacity: ``size`` (None: thumbnails are off),
    except for instances whose package holds more than ``max_capacity`` pictures (None: no limit)."""
    if size is None or (max_capacity is not None and capacity > max_capacity):
        return None
    return size


def stored_picture(
    analysis: StoredAnalysis,
    *,
    product_id: str,
    pic_name: str,
    attributes: Attributes,
    custom_content: str,
    model_id: str,
    thumbnail_size: int | None,
) -> NewPicture:
    """The rows an add writes for the analysed picture (``thumbnail_size`` None: no thumbnail)."""
    record = NewImage(
        product_id=product_id,
        pic_name=pic_name,
        category_id=analysis.pic_info.category_id,
        attributes=attributes,
        custom_content=custom_content,
        region=analysis.pic_info.region.to_str(),
        embedding=analysis.vector,
        model_id=model_id,
        aux_embedding=analysis.aux_vector,
    )
    return NewPicture(
        record,
        thumbnail=None if thumbnail_size is None else make_thumbnail(analysis.image, thumbnail_size),
        local_features=None if analysis.keypoints is None else keypoint_codec.encode(analysis.keypoints),
    )
