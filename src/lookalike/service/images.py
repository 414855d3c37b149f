"""Image use cases: add, search (by picture, by stored picture, by filter), update, delete, exists,
compare and detail. Every call runs the same gate: instance owned and available -> rate limit -> use case.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
from PIL import Image

from lookalike.clock import Clock
from lookalike.domain import errors as e
from lookalike.domain import keypoint_codec
from lookalike.domain.attributes import validate_attributes, validate_update
from lookalike.domain.copy_score import peer_matches, verified_score
from lookalike.domain.duplicates import Pair, pair
from lookalike.domain.errors import LookalikeError
from lookalike.domain.filters import Node, evaluate, parse_filter
from lookalike.domain.image_limits import ImageLimits
from lookalike.domain.models import (
    Account,
    Attributes,
    AttributeUpdate,
    ImageRecord,
    Instance,
    InstanceDetail,
    PicInfo,
    SearchHit,
    SearchResult,
)
from lookalike.domain.region import Box
from lookalike.domain.validation import (
    parse_score_threshold,
    validate_category,
    validate_custom_content,
    validate_key,
    validate_paging,
)
from lookalike.service.accounts import AccountService
from lookalike.service.bulk_analysis import StorageOptions
from lookalike.service.entitlements import Entitlements
from lookalike.service.limits import Operation, RateLimiter
from lookalike.service.metrics import NO_METRICS, Rejection, ServiceMetrics
from lookalike.service.picture_analysis import (
    StoredAnalysis,
    analyze_for_storage,
    choose_category,
    stored_picture,
    thumbnail_size_for,
)
from lookalike.storage.accounts_repo import InstanceRepository
from lookalike.storage.images_repo import ImageRepository, NewPicture, WriteResult
from lookalike.vectors.manager import IndexManager
from lookalike.vision.categories import all_categories
from lookalike.vision.decode import decode_image
from lookalike.vision.embedder import MicroBatcher
from lookalike.vision.keypoints import inliers, query_keypoints
from lookalike.vision.prepare import decode_and_prepare, region_given
from lookalike.vision.thumbnail import make_thumbnail
from lookalike.vision.views import first_search_views, more_search_views

ACTIVE = "active"
# Each query view's k nearest are asked for this many more than the page needs: the shortlist that the
# re-scoring over every view orders (the copy benchmark's sources were all within each view's top 20).
SHORTLIST_MARGIN = 20
# A search by picture checks this many of its first hits with local features (lookalike.domain.copy_score):
# checking the first 20 or 30 found no more copies on the benchmark's tune part
# (bench/copy_verification_choice.py).
VERIFIED_HITS = 10
# A search by picture whose first views (the primary and the whole picture) found a hit sharing at least this
# many verified local feature matches with the query has found its copy: it stops there instead of adding the
# central and copy views, which cost about three quarters of a search's CPU and can only confirm it
# (bench/search_cascade_choice.py: the smallest count that loses no copy on the benchmark's tune part; 75 % of
# its tune queries stop there, and 1.3 % of the same queries once their copy is removed from the catalogue).
COPY_FOUND_MATCHES = 15
# At most this many pictures matched by words join a text search's shortlist (the index's best-ranked).
WORD_MATCHES = 500


@dataclass(frozen=True)
class SearchOptions:
    num: int = 10
    start: int = 0
    category_id: int | None = None
    filter: str | None = None
    distinct_product_id: bool = False
    score_threshold: str | float | None = None


@dataclass(frozen=True)
class AddResult:
    pic_info: PicInfo
    created: bool
    image_id: int = 0  # the stored picture's row id (the console links to it)


@dataclass(frozen=True)
class _Analysis:
    """A search's picture: its first views embedded, and the rest to embed when the first find no copy."""

    views: np.ndarray  # (v, dim) reduced vectors, the primary view (Region / subject crop / whole) first
    weights: np.ndarray  # (v,) what each view's cosine counts for (lookalike.vision.views)
    pic_info: PicInfo
    keypoints: keypoint_codec.Keypoints | None  # local features (None: the check is off)
    more_views: Callable[[], list[tuple[Image.Image, float]]]


@dataclass(frozen=True)
class PairScan:
    """One step of a duplicate scan: how many pictures it read, the last id read, and the pairs found."""

    scanned: int
    last_id: int
    pairs: list[Pair]


@dataclass(frozen=True)
class PictureList:
    """One page of an instance's pictures for the console."""

    instance: Instance
    records: list[ImageRecord]
    total: int  # pictures matching the filter / ProductId in all
    with_thumbnail: set[int]  # ids among `records` that have a stored thumbnail


@dataclass(frozen=True)
class Preview:
    """A downscaled JPEG of an uploaded photo and the photo's own (oriented) size in pixels."""

    jpeg: bytes
    width: int
    height: int


def _score(raw: float) -> float:
    # Embeddings are L2-normalized, so inner product is cosine; Score lives in [0, 1].
    return float(min(1.0, max(0.0, raw)))


class ImageService:
    def __init__(
        self,
        *,
        accounts: AccountService,
        entitlements: Entitlements,
        instances: InstanceRepository,
        images: ImageRepository,
        indexes: IndexManager,
        embedder: MicroBatcher,
        limiter: RateLimiter,
        clock: Clock,
        image_limits: ImageLimits,
        thumbnail_size: int | None = None,
        thumbnails_max_capacity: int | None = None,
        copy_verification: bool = True,
        metrics: ServiceMetrics = NO_METRICS,
    ) -> None:
        self._accounts = accounts
        self._entitlements = entitlements
        self._instances = instances
        self._images = images
        self._indexes = indexes
        self._embedder = embedder
        self._limiter = limiter
        self._clock = clock
        self._limits = image_limits
        self._thumbnail_size = thumbnail_size  # None: thumbnails are off
        # Instances whose package holds more pictures keep none (their bytes would dominate SQL).
        self._thumbnails_max_capacity = thumbnails_max_capacity
        # Local features stored per picture and checked against a search's first hits.
        self._copy_verification = copy_verification
        # Searches and refusals per instance; public so the composition root can attach its backend.
        self.metrics = metrics

    # --- the gate ---
    def _instance(self, account: Account, name: str, operation: Operation | None) -> Instance:
        """Owned instance with the limits of the package it holds now; data-plane calls need it active."""
        instance = self._entitlements.effective(self._accounts.instance_for(account, name))
        if operation is not None:
            if instance.status != ACTIVE:
                self.metrics.rejected(instance.id, operation.value, Rejection.STATE)
                raise LookalikeError(
                    e.INSTANCE_STATUS_ERROR, "Your instance is unavailable: its subscription has expired."
                )
            self._admit(instance, operation)
        return instance

    def _admit(self, instance: Instance, operation: Operation) -> None:
        """The instance's rate limit for the operation, counted in the metrics either way."""
        try:
            self._limiter.check(instance, operation)
        except LookalikeError:
            self.metrics.rejected(instance.id, operation.value, Rejection.QPS)
            raise
        if operation is Operation.SEARCH:
            self.metrics.searched(instance.id)

    def console_instance(
        self, account: Account, instance_name: str, *, active: bool = False, rate_limited: bool = True
    ) -> Instance:
        """The gate of the console actions (DumpMeta, DumpMetaList, IncreaseInstance, IncreaseList): owned
        instance, rate limited in Detail's class (1/s per instance, shared by these actions and Detail);
        `active` also refuses an unavailable instance, as data-plane calls do. `rate_limited=False` checks
        only the first two, for a caller that validates more before it spends the budget."""
        instance = self._instance(account, instance_name, None)
        if active and instance.status != ACTIVE:
            self.metrics.rejected(instance.id, Operation.DETAIL.value, Rejection.STATE)
            raise LookalikeError(
                e.INSTANCE_STATUS_ERROR, "Your instance is unavailable: its subscription has expired."
            )
        if rate_limited:
            self._admit(instance, Operation.DETAIL)
        return instance

    # --- vision ---
    def _analyze_query(
        self,
        data: bytes,
        *,
        region: str | None,
        crop: bool,
        instance: Instance,
        category_id: int | None,
        with_keypoints: bool,
    ) -> _Analysis:
        """Decode a search's picture, embed its first views (lookalike.vision.views) in one go, reduce them
        and predict the category from the primary view; ``with_keypoints``: also the query's local features
        for the check. Its further views are embedded only when asked (``_every_view``)."""
        decoded, picture, box, boxes = decode_and_prepare(data, self._limits, region, crop)
        given = region_given(region)
        weighted = first_search_views(decoded.image, picture, region_given=given)
        keypoints = None
        if with_keypoints:  # a given Region is what to look for, as for the views
            keypoints = query_keypoints(picture if given else decoded.image)
        embedded = self._embedder.embed_several([view for view, _ in weighted])
        category = choose_category(
            embedded.class_probs[0], service_type=instance.service_type, category_id=category_id
        )
        return _Analysis(
            self._indexes.reduce(embedded.vectors),
            np.array([weight for _, weight in weighted], np.float32),
            PicInfo(category, box, boxes, all_categories()),
            keypoints,
            partial(more_search_views, decoded.image, region_given=given),
        )

    def _every_view(self, analysis: _Analysis) -> tuple[np.ndarray, np.ndarray]:
        """A query's first views with its further ones embedded and appended, and their weights."""
        more = analysis.more_views()
        if not more:
            return analysis.views, analysis.weights
        embedded = self._embedder.embed_several([view for view, _ in more])
        views = np.vstack([analysis.views, self._indexes.reduce(embedded.vectors)])
        return views, np.concatenate([analysis.weights, np.array([weight for _, weight in more], np.float32)])

    def _analyze_for_storage(
        self, data: bytes, *, region: str | None, crop: bool, instance: Instance, category_id: int | None
    ) -> StoredAnalysis:
        """What an add stores for the picture (lookalike.service.picture_analysis, shared with the bulk
        import)."""
        return analyze_for_storage(
            data,
            limits=self._limits,
            embed=self._embedder.embed_several,
            reduce=self._indexes.reduce,
            region=region,
            crop=crop,
            service_type=instance.service_type,
            category_id=category_id,
            with_keypoints=self._copy_verification,
        )

    # --- writes ---
    def add_image(
        self,
        account: Account,
        instance_name: str,
        *,
        product_id: str,
        pic_name: str,
        picture: bytes,
        category_id: int | None = None,
        crop: bool = True,
        region: str | None = None,
        attributes: Attributes | None = None,
        custom_content: str = "",
    ) -> AddResult:
        attributes = attributes or Attributes()
        self.check_add_options(product_id, pic_name, attributes, custom_content, category_id)
        instance = self._instance(account, instance_name, Operation.ADD)
        analysis = self._analyze_for_storage(
            picture, region=region, crop=crop, instance=instance, category_id=category_id
        )
        new = stored_picture(
            analysis,
            product_id=product_id,
            pic_name=pic_name,
            attributes=attributes,
            custom_content=custom_content,
            model_id=self._indexes.model_id,
            thumbnail_size=thumbnail_size_for(
                instance.capacity, size=self._thumbnail_size, max_capacity=self._thumbnails_max_capacity
            ),
        )
        with self._indexes.writing(instance.id) as index:
            capacity = self._entitlements.capacity_for_adds(instance)
            try:
                written = self._images.upsert(
                    instance.id,
                    new.image,
                    capacity=capacity,
                    now=self._clock.now(),
                    thumbnail=new.thumbnail,
                    local_features=new.local_features,
                )
            except LookalikeError as exc:
                if exc.code == e.INSTANCE_OVER_QUOTA:
                    self.metrics.rejected(instance.id, Operation.ADD.value, Rejection.CAPACITY)
                raise
            index.upsert(np.array([written.image_id], np.int64), analysis.vector[None, :], written.seq)
        return AddResult(analysis.pic_info, written.created, written.image_id)

    @staticmethod
    def check_add_options(
        product_id: str, pic_name: str, attributes: Attributes, custom_content: str, category_id: int | None
    ) -> None:
        """What an add checks of its options before it looks at the picture (raises as the add would)."""
        validate_key(product_id, pic_name)
        validate_attributes(attributes)
        validate_custom_content(custom_content)
        if category_id is not None:
            validate_category(category_id)

    def storage_options(self, instance: Instance) -> StorageOptions:
        """What an add to this instance stores besides the picture's vectors, for a bulk engine."""
        return StorageOptions(
            service_type=instance.service_type,
            thumbnail_size=thumbnail_size_for(
                instance.capacity, size=self._thumbnail_size, max_capacity=self._thumbnails_max_capacity
            ),
            model_id=self._indexes.model_id,
            limits=self._limits,
            with_keypoints=self._copy_verification,
        )

    def check_room(self, instance: Instance, keys: Sequence[tuple[str, str]]) -> None:
        """Refuse (INSTANCE_OVER_QUOTA) before a bulk write when the keys the instance does not hold yet,
        added to what it holds, exceed what its package allows (as lookalike.bulk.writer checks an import)."""
        capacity = self._entitlements.capacity_for_adds(instance)
        held = self._images.stored_count(instance.id)
        fresh = len(keys) - len(self._images.existing_keys(instance.id, keys))
        if held + fresh > capacity:
            self.metrics.rejected(instance.id, Operation.ADD.value, Rejection.CAPACITY)
            raise LookalikeError(
                e.INSTANCE_OVER_QUOTA,
                f"The number of items exceeds the limit: the instance holds {held} of {capacity} pictures "
                f"and the task would add {fresh}.",
            )

    def store_analysed(self, instance: Instance, pictures: Sequence[NewPicture]) -> list[WriteResult]:
        """Write pictures a bulk engine analysed (lookalike.service.bulk_analysis) as add_image writes one,
        all in one transaction: the capacity checked for the batch's new keys (INSTANCE_OVER_QUOTA writes
        none of them), the index applied under the instance's write lock. Keys must be distinct."""
        if not pictures:
            return []
        with self._indexes.writing(instance.id) as index:
            capacity = self._entitlements.capacity_for_adds(instance)
            try:
                written = self._images.upsert_many(
                    instance.id, pictures, capacity=capacity, now=self._clock.now()
                )
            except LookalikeError as exc:
                # Counted as add_image counts a refused add: once a picture (a refused batch is retried
                # a picture at a time, lookalike.service.tasks).
                if exc.code == e.INSTANCE_OVER_QUOTA and len(pictures) == 1:
                    self.metrics.rejected(instance.id, Operation.ADD.value, Rejection.CAPACITY)
                raise
            index.upsert(
                np.array([w.image_id for w in written], np.int64),
                np.stack([p.image.embedding for p in pictures]),
                max(w.seq for w in written),
            )
        return written

    def update_image(
        self, account: Account, instance_name: str, *, product_id: str, pic_name: str, change: AttributeUpdate
    ) -> None:
        validate_key(product_id, pic_name)
        validate_update(change)
        if change.custom_content is not None:
            validate_custom_content(change.custom_content)
        instance = self._instance(account, instance_name, Operation.UPDATE)
        if not change.changed():
            raise LookalikeError(
                e.INVALID_PARAMETER, "Nothing to update: give an attribute or CustomContent."
            )
        with self._indexes.writing(instance.id) as index:
            now = self._clock.now()
            written = self._images.update_attributes(instance.id, product_id, pic_name, change, now)
            if written is None:
                raise LookalikeError(e.PIC_NOT_EXIST, "The specified image does not exist.")
            # The vector is unchanged: only the seq moves here. A backend holding attribute copies (Milvus)
            # gets them from the catch-up that `writing` runs for shared backends.
            index.remove(np.empty(0, np.int64), written.seq)

    def delete_images(
        self,
        account: Account,
        instance_name: str,
        *,
        product_id: str | None = None,
        pic_name: str | None = None,
        filter: str | None = None,
        by_filter: bool = False,
    ) -> list[str]:
        """Delete by product (all its pictures), by picture, or by filter; returns the deleted PicNames."""
        node: Node | None = None
        if by_filter:
            node = parse_filter(filter)
            if node is None:
                raise LookalikeError(e.INVALID_FILTER_CLAUSE, "Deleting by filter needs a non-empty Filter.")
        else:
            if not product_id:
                raise LookalikeError(e.NO_SPECIFIED_PRODUCT_ID, "You must specify ProductId.")
        instance = self._instance(account, instance_name, Operation.DELETE)
        with self._indexes.writing(instance.id) as index:
            if by_filter:
                result = self._images.delete(instance.id, filter_node=node)
            else:
                result = self._images.delete(instance.id, product_id=product_id, pic_name=pic_name or None)
            if result.image_ids:
                index.remove(np.array(result.image_ids, np.int64), result.seq)
        return result.pic_names

    def delete_pictures(self, account: Account, instance_name: str, image_ids: list[int]) -> list[int]:
        """Delete these pictures of the instance in one transaction, as one delete call (one unit of the
        delete QPS, as a delete by filter is); ids it does not hold are ignored. Returns the deleted ids."""
        instance = self._instance(account, instance_name, Operation.DELETE)
        if not image_ids:
            return []
        with self._indexes.writing(instance.id) as index:
            result = self._images.delete(instance.id, image_ids=image_ids)
            if result.image_ids:
                index.remove(np.array(result.image_ids, np.int64), result.seq)
        return result.image_ids

    # --- reads ---
    def search_by_pic(
        self,
        account: Account,
        instance_name: str,
        picture: bytes,
        options: SearchOptions = SearchOptions(),
        *,
        crop: bool = True,
        region: str | None = None,
    ) -> SearchResult:
        started = time.perf_counter()
        node, threshold = self._check_search(options)
        instance = self._instance(account, instance_name, Operation.SEARCH)
        analysis = self._analyze_query(
            picture,
            region=region,
            crop=crop,
            instance=instance,
            category_id=options.category_id,
            with_keypoints=self._copy_verification,
        )
        checked: dict[int, int] = {}  # id -> verified matches, shared by both steps
        views, weights = analysis.views, analysis.weights
        hits, matched = self._vector_search(
            instance, views, options, node, threshold, weights, keypoints=analysis.keypoints, checked=checked
        )
        if max(checked.values(), default=0) < COPY_FOUND_MATCHES:  # no verified copy yet: every view
            every, every_weight = self._every_view(analysis)
            if len(every) > len(views):
                hits, matched = self._vector_search(
                    instance,
                    every,
                    options,
                    node,
                    threshold,
                    every_weight,
                    keypoints=analysis.keypoints,
                    checked=checked,
                )
        return SearchResult(hits, matched, _elapsed_ms(started), analysis.pic_info)

    def search_by_name(
        self,
        account: Account,
        instance_name: str,
        product_id: str,
        pic_name: str,
        options: SearchOptions = SearchOptions(),
    ) -> SearchResult:
        started = time.perf_counter()
        validate_key(product_id, pic_name)
        node, threshold = self._check_search(options)
        instance = self._instance(account, instance_name, Operation.SEARCH)
        record = self._images.get(instance.id, product_id, pic_name)
        views = self._images.get_views(instance.id, product_id, pic_name)
        if record is None or views is None:
            raise LookalikeError(e.PIC_NOT_EXIST, "The search picture does not exist.")
        hits, matched = self._vector_search(instance, views, options, node, threshold)
        info = PicInfo(
            record.category_id, _parse_box(record.region), [_parse_box(record.region)], all_categories()
        )
        return SearchResult(hits, matched, _elapsed_ms(started), info)

    @property
    def model_id(self) -> str:
        """The id of the stored vectors (the embedding model and its reduction)."""
        return self._indexes.model_id

    @property
    def feature_model_id(self) -> str:
        """The model whose features ``search_by_vector`` takes (they are reduced like a picture's)."""
        return self._indexes.reduction.source_model

    def search_by_vector(
        self,
        account: Account,
        instance_name: str,
        vector: np.ndarray,
        options: SearchOptions = SearchOptions(),
        *,
        words: list[str] | None = None,
        reduced: bool = False,
    ) -> SearchResult:
        """Search with a query vector made elsewhere (text search) in the feature space of
        ``feature_model_id``; it is reduced into the stored space as a picture's features are. With
        ``reduced`` it is already in the stored space (``model_id``) and is searched as it is.

        ``words`` (lookalike.domain.words.query_words) also match what the tenant wrote about each picture
        (ProductId, PicName, CustomContent) through the full-text index: a picture's score is then the
        larger of its cosine and the share of the words it holds.

        Same gate, paging, filter, threshold and de-duplication as the picture searches; no PicInfo.
        """
        started = time.perf_counter()
        node, threshold = self._check_search(options)
        instance = self._instance(account, instance_name, Operation.SEARCH)
        query = np.ascontiguousarray(vector, dtype=np.float32).reshape(-1)
        if not reduced:
            query = self._indexes.reduce(query)
        lexical = self._images.match_words(instance.id, words, WORD_MATCHES) if words else None
        hits, matched = self._vector_search(
            instance, query[None, :], options, node, threshold, lexical=lexical
        )
        return SearchResult(hits, matched, _elapsed_ms(started))

    def scan_pairs(
        self, instance_id: str, *, after_id: int, limit: int, neighbours: int, threshold: float
    ) -> PairScan:
        """One step of a duplicate scan (no gate: the caller runs a report the tenant started): the next
        ``limit`` pictures past ``after_id``, each searched with its stored views for its ``neighbours``
        nearest, and the pairs whose score reaches ``threshold``. A pair's score is the best cosine between
        a stored view of one and of the other, the re-score a search uses, so it is symmetric."""
        batch = self._images.views_after(instance_id, after_id, limit)
        if not batch:
            return PairScan(0, after_id, [])
        scope = self._indexes.scope(instance_id, None, None)
        k = min(scope.cap, neighbours + 1)  # the picture itself comes back too
        owners = [image_id for image_id, views in batch for _ in range(len(views))]
        nearest = scope.top_many(np.concatenate([views for _, views in batch]), k)
        found: dict[int, set[int]] = {image_id: set() for image_id, _ in batch}
        for owner, ids in zip(owners, nearest, strict=True):
            found[owner].update(int(i) for i in ids if int(i) != owner)
        stored = self._images.views_by_id(instance_id, sorted(set().union(*found.values())))
        pairs: list[Pair] = []
        for image_id, views in batch:
            for other in found[image_id]:
                if other in stored:
                    score = _score(float((views @ stored[other].T).max()))
                    if score >= threshold:
                        pairs.append(pair(image_id, other, score))
        return PairScan(len(batch), batch[-1][0], pairs)

    def pairs_among(self, instance_id: str, ids: list[int], threshold: float) -> list[Pair]:
        """Every pair of these pictures whose score (as ``scan_pairs`` scores) reaches ``threshold``, from
        their stored vectors (no gate: for reports; callers bound the number of ids)."""
        stored = self._images.views_by_id(instance_id, ids)
        kept = sorted(stored)
        if len(kept) < 2:
            return []
        primary = np.stack([stored[i][0] for i in kept])
        whole = np.stack([stored[i][-1] for i in kept])  # the primary again where there is no second view
        scores = np.maximum.reduce(
            [primary @ primary.T, primary @ whole.T, whole @ primary.T, whole @ whole.T]
        )
        rows, cols = np.nonzero(np.triu(scores >= threshold, k=1))
        return [pair(kept[a], kept[b], _score(float(scores[a, b]))) for a, b in zip(rows, cols, strict=True)]

    def records_by_id(self, instance_id: str, ids: list[int]) -> dict[int, ImageRecord]:
        """The records of these pictures that the instance still holds (no gate: for reports)."""
        return self._images.hydrate(instance_id, ids)

    def stored_count(self, instance_id: str) -> int:
        return self._images.stored_count(instance_id)

    def search_by_filter(
        self, account: Account, instance_name: str, filter: str | None, *, num: int = 10, start: int = 0
    ) -> SearchResult:
        started = time.perf_counter()
        validate_paging(num, start)
        node = parse_filter(filter)
        if node is None:
            raise LookalikeError(e.INVALID_FILTER_CLAUSE, "SearchImageByFilter needs a non-empty Filter.")
        instance = self._instance(account, instance_name, Operation.SEARCH)
        records = self._images.list_filtered(instance.id, node, offset=start, limit=num)
        matched = self._images.count(instance.id, node)
        return SearchResult([SearchHit(r, 0.0) for r in records], matched, _elapsed_ms(started))

    # --- console reads (owned instance, any state; no rate limit: a page of thumbnails is many requests) ---
    def list_pictures(
        self,
        account: Account,
        instance_name: str,
        *,
        filter: str | None = None,
        product_id: str | None = None,
        start: int = 0,
        num: int = 24,
    ) -> PictureList:
        """A page of the instance's pictures, oldest first, narrowed by a filter and/or a ProductId."""
        instance = self._instance(account, instance_name, None)  # first: a stranger learns nothing more
        node = parse_filter(filter)
        if start < 0 or not 1 <= num <= 100:
            raise LookalikeError(e.INVALID_PARAMETER, "A page starts at 0 and holds 1 to 100 pictures.")
        records, total = self._images.browse(instance.id, node, product_id or None, offset=start, limit=num)
        with_thumbnail = self._images.with_thumbnails(instance.id, [r.id for r in records])
        return PictureList(instance, records, total, with_thumbnail)

    def picture(self, account: Account, instance_name: str, image_id: int) -> ImageRecord:
        instance = self._instance(account, instance_name, None)
        record = self._images.get_by_id(instance.id, image_id)
        if record is None:
            raise LookalikeError(e.PIC_NOT_EXIST, "The specified image does not exist.")
        return record

    def thumbnail(self, account: Account, instance_name: str, image_id: int) -> bytes | None:
        """The stored thumbnail of one of the instance's pictures; None if there is none (or it is not
        this instance's picture)."""
        instance = self._instance(account, instance_name, None)
        return self._images.thumbnail(instance.id, image_id)

    def thumbnails_for(self, account: Account, instance_name: str, image_ids: list[int]) -> set[int]:
        instance = self._instance(account, instance_name, None)
        return self._images.with_thumbnails(instance.id, image_ids)

    @staticmethod
    def categories() -> list[tuple[int, str]]:
        """The product categories (id, name) a search may be narrowed to."""
        return all_categories()

    def preview(self, picture: bytes, size: int) -> Preview:
        """A downscaled copy of an uploaded photo (never stored), for showing a query next to its results."""
        decoded = decode_image(picture, self._limits, reduced=True)
        return Preview(make_thumbnail(decoded.image, size), decoded.width, decoded.height)

    def check_exists(
        self, account: Account, instance_name: str, product_id: str, pic_name: str
    ) -> ImageRecord | None:
        validate_key(product_id, pic_name)
        instance = self._instance(account, instance_name, Operation.SEARCH)
        return self._images.get(instance.id, product_id, pic_name)

    def compare(self, account: Account, instance_name: str, primary: bytes, secondary: bytes) -> float:
        instance = self._instance(account, instance_name, Operation.SEARCH)
        # The score a search for `primary` would give `secondary` if it were stored.
        query = self._analyze_query(
            primary, region=None, crop=True, instance=instance, category_id=None, with_keypoints=False
        )
        views, weights = self._every_view(query)
        stored = self._analyze_for_storage(
            secondary, region=None, crop=True, instance=instance, category_id=None
        )
        return _score(float(((views @ stored.views.T) * weights[:, None]).max()))

    def detail(self, account: Account, instance_name: str) -> InstanceDetail:
        # Detail works on unavailable instances too (billing needs it), so no status gate here.
        instance = self._instance(account, instance_name, None)
        self._admit(instance, Operation.DETAIL)
        return InstanceDetail(instance, self._instances.count_images(instance.id))

    # --- search internals ---
    @staticmethod
    def _check_search(options: SearchOptions) -> tuple[Node | None, float]:
        validate_paging(options.num, options.start)
        if options.category_id is not None:
            validate_category(options.category_id)
        return parse_filter(options.filter), parse_score_threshold(options.score_threshold)

    def _vector_search(
        self,
        instance: Instance,
        views: np.ndarray,
        options: SearchOptions,
        node: Node | None,
        threshold: float,
        weights: np.ndarray | None = None,
        *,
        lexical: dict[int, float] | None = None,
        keypoints: keypoint_codec.Keypoints | None = None,
        checked: dict[int, int] | None = None,
    ) -> tuple[list[SearchHit], int]:
        """The hits for a query of one or more views (v, dim): each view's k nearest from the index make one
        shortlist, re-scored from SQL as the best weighted cosine over (query views x the hit's stored
        views); ``weights`` (v,) default to 1. ``lexical`` (id -> word score) joins the shortlist, and a
        hit's score is the larger of the two. With the query's ``keypoints``, the first ``VERIFIED_HITS``
        are checked against their stored local features and re-scored (lookalike.domain.copy_score);
        ``checked`` (id -> matches) keeps the counts for the caller and spares a second search checking a hit
        again."""
        weights = np.ones(len(views), np.float32) if weights is None else weights
        extra = np.array(sorted(lexical or {}), np.int64)
        scope = self._indexes.scope(instance.id, node, options.category_id)
        need = options.start + options.num
        if scope.matched == 0:
            return [], 0
        # Over-fetch: stale hits, duplicates of a product and the threshold all thin the list. A shared index
        # may still hold rows SQL deleted (Milvus shows deletes late), so its cap is not SQL's count.
        k = min(scope.cap, need * (4 if options.distinct_product_id else 1) + SHORTLIST_MARGIN)
        # id -> inliers, kept over the rounds of a growing shortlist
        checked = {} if checked is None else checked
        while True:
            found = scope.top_many(views, k)  # one index pass for every view
            shortlist = np.unique(np.concatenate([*found, extra]))
            ids, scores = self._rescore(instance.id, views, weights, shortlist)
            if lexical:
                scores = np.maximum(scores, np.array([lexical.get(int(i), 0.0) for i in ids], np.float32))
                order = np.argsort(-scores, kind="stable")
                ids, scores = ids[order], scores[order]
            if keypoints is not None and len(keypoints) > 0:
                ids, scores = self._verify(instance.id, keypoints, ids, scores, checked)
            hits = self._hydrate(
                instance.id, ids, scores, threshold, options.distinct_product_id, node, options.category_id
            )
            exhausted = all(len(f) < k for f in found) or k >= scope.cap
            below_threshold = len(scores) > 0 and _score(float(scores[-1])) < threshold
            if len(hits) >= need or exhausted or below_threshold:
                break
            k = min(scope.cap, k * 4)
        return hits[options.start : need], scope.matched

    def _rescore(
        self, instance_id: str, views: np.ndarray, weights: np.ndarray, ids: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(ids, scores) best first: each score the best weighted cosine of a query view with a stored view;
        ids that SQL no longer holds are dropped."""
        stored = self._images.views_by_id(instance_id, ids.tolist())
        kept = [i for i in ids.tolist() if i in stored]
        column = weights[:, None]
        scores = np.array([float(((views @ stored[i].T) * column).max()) for i in kept], np.float32)
        order = np.argsort(-scores, kind="stable")
        return np.array(kept, np.int64)[order], scores[order]

    def _verify(
        self,
        instance_id: str,
        query: keypoint_codec.Keypoints,
        ids: np.ndarray,
        scores: np.ndarray,
        checked: dict[int, int],
    ) -> tuple[np.ndarray, np.ndarray]:
        """(ids, scores) best first again after the first ``VERIFIED_HITS`` were checked with local
        features; pictures stored without them keep their score."""
        first = [int(i) for i in ids[:VERIFIED_HITS]]
        stored = self._images.local_features(instance_id, [i for i in first if i not in checked])
        for image_id, blob in stored.items():
            checked[image_id] = inliers(query, keypoint_codec.decode(blob))
        scores = scores.copy()
        counts = peer_matches([checked.setdefault(image_id, 0) for image_id in first])
        for row, found in enumerate(counts):
            if found:
                scores[row] = verified_score(float(scores[row]), found)
        order = np.argsort(-scores, kind="stable")
        return ids[order], scores[order]

    def _hydrate(
        self,
        instance_id: str,
        ids: np.ndarray,
        scores: np.ndarray,
        threshold: float,
        distinct: bool,
        node: Node | None = None,
        category_id: int | None = None,
    ) -> list[SearchHit]:
        records = self._images.hydrate(instance_id, [int(i) for i in ids])
        hits: list[SearchHit] = []
        seen_products: set[str] = set()
        for image_id, raw in zip(ids, scores, strict=True):
            record = records.get(int(image_id))
            if record is None:  # deleted after the index answered
                continue
            # Re-checked on the current row: the index (or Milvus' attribute copies) may be behind SQL.
            if category_id is not None and record.category_id != category_id:
                continue
            if node is not None and not evaluate(node, record.attributes.as_filter_fields()):
                continue
            score = _score(float(raw))
            if score < threshold:
                continue
            if distinct:
                if record.product_id in seen_products:
                    continue
                seen_products.add(record.product_id)
            hits.append(SearchHit(record, score))
        return hits


def _elapsed_ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


def _parse_box(region: str) -> Box:
    x1, x2, y1, y2 = (int(p) for p in region.split(","))
    return Box(x1, x2, y1, y2)
