"""Builds the object graph of one Lookalike process from Settings (the composition root)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from lookalike.clock import Clock, SystemClock
from lookalike.config import Settings
from lookalike.service.accounts import AccountService, IssuedKey
from lookalike.service.billing import Billing, CatalogueSource, build_billing
from lookalike.service.bulk_analysis import EngineConnector, choose_increase_engine
from lookalike.service.console_auth import ConsoleAuthService
from lookalike.service.duplicates import DuplicateReports
from lookalike.service.images import ImageService
from lookalike.service.lifecycle import LifecycleService
from lookalike.service.limits import RateLimiter
from lookalike.service.tasks import TaskService, load_link_key
from lookalike.service.text_search import TextSearchService
from lookalike.service.uploads import UploadStore
from lookalike.service.usage import SearchUsageMeter
from lookalike.storage.accounts_repo import AccountRepository, InstanceRepository
from lookalike.storage.billing_repo import SqlBillingStore
from lookalike.storage.console_repo import ConsoleRepository
from lookalike.storage.db import Database, make_engine, migrate, sqlite_url
from lookalike.storage.duplicates_repo import DuplicateRepository
from lookalike.storage.images_repo import ImageRepository
from lookalike.storage.locks import LockStore, SqlLockStore
from lookalike.storage.nonce_store import InMemoryNonceStore, NonceStore
from lookalike.storage.ratelimit_store import InMemoryRateLimitStore, RateLimitStore
from lookalike.storage.secrets import SecretBox
from lookalike.storage.tasks_repo import DUPLICATES, TaskRepository
from lookalike.storage.usage_repo import UsageRepository
from lookalike.vectors.manager import IndexManager
from lookalike.vectors.planner import IndexPolicy
from lookalike.vectors.port import VectorBackend
from lookalike.vectors.reduction import packaged as packaged_reduction
from lookalike.vectors.reencode import migrate_previous_reduction, reencode_raw_features
from lookalike.vision.embedder import EfficientNetEmbedder, MicroBatcher
from lookalike.vision.text_encoder import TextQueryModel

if TYPE_CHECKING:
    import redis

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    engine: Database
    clock: Clock
    accounts: AccountService
    billing: Billing
    lifecycle: LifecycleService
    images: ImageService
    indexes: IndexManager
    batcher: MicroBatcher
    bootstrap_key: IssuedKey | None  # set only on the very first start
    instances_repo: InstanceRepository
    tasks: TaskService  # DumpMeta / IncreaseInstance tasks and their worker
    usage: SearchUsageMeter  # searches per instance and minute (the dashboard's QPS chart)
    duplicates: DuplicateReports  # duplicate reports (their scans run on the task worker)
    # Wall time for request freshness (signature timestamps): real even when `clock` is a test's or demo's.
    request_clock: Clock = field(default_factory=SystemClock)
    # Signature nonces of the Alibaba dialect: in memory, or Redis (shared by replicas) with redis_url.
    nonces: NonceStore = field(default_factory=InMemoryNonceStore)
    # Rate limits (GCRA): in memory, or in Redis so every replica shares them. Console sign-in uses it too.
    rate_store: RateLimitStore = field(default_factory=InMemoryRateLimitStore)
    redis_client: redis.Redis | None = None  # the process's one Redis client (connection pool), if configured

    def close(self) -> None:
        self.tasks.stop()
        self.lifecycle.stop()
        self.indexes.close()
        self.batcher.close()
        self.usage.close()  # its last flush needs the engine
        self.engine.dispose()
        if self.redis_client is not None:
            self.redis_client.close()

    @cached_property
    def uploads(self) -> UploadStore:
        """The Advance-method upload store (AuthorizeFileUpload + PostObject); only its files are state."""
        return UploadStore.from_settings(self.settings, self.clock)

    @cached_property
    def console_auth(self) -> ConsoleAuthService:
        """Web console passwords and sessions, timed by the real clock (see service/console_auth.py)."""
        return build_console_auth(
            self.settings, self.engine, self.accounts, self.request_clock, self.rate_store
        )

    @cached_property
    def text_search(self) -> TextSearchService:
        """SearchImageByText; the sentence model loads on the first text query, not at start-up."""
        return TextSearchService(self.images, TextQueryModel(self.settings.models_dir))


def open_database(settings: Settings) -> Database:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    url = settings.database_url or sqlite_url(settings.data_dir)
    engine = make_engine(url, sqlite_synchronous=settings.sqlite_synchronous)
    migrate(engine)
    return engine


def build_account_service(settings: Settings, engine: Database, clock: Clock, **cache: Any) -> AccountService:
    """`cache`: key_cache_ttl_s and monotonic of AccountService (tests shorten or drive them)."""
    return AccountService(
        AccountRepository(engine),
        InstanceRepository(engine),
        SecretBox.from_data_dir(settings.data_dir),
        clock,
        **cache,
    )


def build_console_auth(
    settings: Settings,
    engine: Database,
    accounts: AccountService,
    clock: Clock,
    rate_store: RateLimitStore | None = None,
) -> ConsoleAuthService:
    return ConsoleAuthService(
        accounts,
        AccountRepository(engine),
        ConsoleRepository(engine),
        clock,
        rate_store or InMemoryRateLimitStore(),
        session_ttl_s=settings.console_session_ttl_s,
        signup_allowed=settings.console_signup,
    )


@dataclass
class ControlPlane:
    """What admin commands need: accounts and billing, without loading the model."""

    engine: Database
    accounts: AccountService
    billing: Billing
    instances: InstanceRepository


def build_control_plane(settings: Settings, clock: Clock) -> ControlPlane:
    engine = open_database(settings)
    return ControlPlane(
        engine,
        build_account_service(settings, engine, clock),
        build_billing_services(settings, engine, clock),
        InstanceRepository(engine),
    )


def build_billing_services(settings: Settings, engine: Database, clock: Clock) -> Billing:
    return build_billing(
        store=SqlBillingStore(engine),
        clock=clock,
        catalogue=CatalogueSource(settings.catalogue_path),
        accounts=AccountRepository(engine),
        instances=InstanceRepository(engine),
        default_trial_seats=settings.trial_seats,
    )


def build_services(
    settings: Settings,
    *,
    clock: Clock | None = None,
    rate_store: RateLimitStore | None = None,
    background: bool = True,
    connect_bulk_engine: EngineConnector | None = None,
) -> Services:
    """The server's services. ``connect_bulk_engine``: how to reach the bulk engine `ray_address` names
    (lookalike.bulk.ray_analysis.RayAnalysisEngine.connect, passed in by the entry point: this layer may
    not import lookalike.bulk); without it IncreaseInstance tasks analyse their pictures here."""
    clock = clock or SystemClock()
    engine = open_database(settings)
    accounts = build_account_service(settings, engine, clock)
    bootstrap_key = accounts.bootstrap_admin(settings.admin_name)

    embedder = EfficientNetEmbedder(
        settings.models_dir, intra_op_threads=settings.embed_threads, device=settings.device
    )
    embedder.load()
    # A GPU takes the batches it is good at; on a CPU the setting stands.
    max_batch = settings.embed_max_batch if embedder.device == "cpu" else embedder.max_batch
    batcher = MicroBatcher(embedder, max_batch=max_batch, max_wait_ms=settings.embed_max_wait_ms)

    billing = build_billing_services(settings, engine, clock)
    image_repo = ImageRepository(engine)
    reduction = packaged_reduction()
    if reduction.source_model != embedder.MODEL_ID or reduction.dim_in != embedder.DIM:
        raise RuntimeError(f"the packaged reduction {reduction.id} is not for {embedder.MODEL_ID}")
    reencode_raw_features(image_repo, reduction)  # rows stored before the reduction existed
    indexes = IndexManager(
        settings.index_dir,
        image_repo,
        reduction,
        backend=vector_backend(settings, engine),
        policy=IndexPolicy(exact_below=settings.index_exact_below),
    )
    instance_ids = InstanceRepository(engine).list_all_ids()
    # Rows stored under the reduction this one replaces move over; their indexes rebuild from SQL.
    migrate_previous_reduction(image_repo, reduction, lambda: indexes.drop_all(instance_ids))
    # Catch every index up with the change log now, so the first search after a crash is complete.
    for instance_id in instance_ids:
        indexes.get(instance_id)
    if background:
        indexes.start_background_saver(settings.index_save_interval_s)
    shared = _shared_stores(settings, engine, clock)
    rate_store = rate_store or shared.rate_store
    usage = SearchUsageMeter(UsageRepository(engine), clock)
    if background:
        usage.start()
    lifecycle = LifecycleService(SqlBillingStore(engine), clock, billing.subscriptions, indexes, shared.locks)
    if background:
        lifecycle.sweep()
        lifecycle.start(settings.sweep_interval_s)
    images = ImageService(
        accounts=accounts,
        entitlements=billing.entitlements,
        instances=InstanceRepository(engine),
        images=image_repo,
        indexes=indexes,
        embedder=batcher,
        limiter=RateLimiter(rate_store, clock, usage),
        clock=clock,
        image_limits=settings.image_limits,
        thumbnail_size=settings.thumbnail_size if settings.thumbnails else None,
        thumbnails_max_capacity=settings.thumbnails_max_capacity,
        copy_verification=settings.copy_verification,
    )
    duplicates = DuplicateReports(
        repo=DuplicateRepository(engine),
        tasks=TaskRepository(engine),
        images=images,
        instances=InstanceRepository(engine),
        clock=clock,
    )
    tasks = TaskService(
        settings=settings,
        repo=TaskRepository(engine),
        images=images,
        accounts=accounts,
        instances=InstanceRepository(engine),
        clock=clock,
        link_key=load_link_key(settings.data_dir),
        runners={DUPLICATES: duplicates},
        increase_engine=choose_increase_engine(settings, connect_bulk_engine),
    )
    duplicates.wake_on_submit(tasks.wake)
    if background:
        tasks.start()  # also resumes tasks a crash interrupted
    return Services(
        settings,
        engine,
        clock,
        accounts,
        billing,
        lifecycle,
        images,
        indexes,
        batcher,
        bootstrap_key,
        InstanceRepository(engine),
        tasks,
        usage,
        duplicates,
        nonces=shared.nonces,
        rate_store=rate_store,
        redis_client=shared.redis_client,
    )


@dataclass
class SharedStores:
    """State every replica must see the same: rate limits, signature nonces, job locks."""

    rate_store: RateLimitStore
    nonces: NonceStore
    locks: LockStore
    redis_client: redis.Redis | None = None


def _shared_stores(settings: Settings, engine: Database, clock: Clock) -> SharedStores:
    if not settings.redis_url:
        return SharedStores(InMemoryRateLimitStore(), InMemoryNonceStore(), SqlLockStore(engine, clock))
    # Imported only here: redis is the optional [scale] dependency.
    from lookalike.storage.locks import RedisLockStore
    from lookalike.storage.redis_stores import RedisNonceStore, RedisRateLimitStore, connect

    client, prefix = connect(settings.redis_url), settings.redis_prefix
    return SharedStores(
        RedisRateLimitStore(client, prefix + "rl:"),
        RedisNonceStore(client, prefix + "nonce:"),
        RedisLockStore(client, prefix + "lock:"),
        redis_client=client,
    )


def vector_backend(settings: Settings, engine: Database) -> VectorBackend | None:
    """None: IndexManager's default (faiss under data_dir/index)."""
    if settings.vector_backend == "faiss":
        return None
    if settings.vector_backend != "milvus":
        raise ValueError(f"unknown vector_backend {settings.vector_backend!r} (faiss or milvus)")
    if not settings.milvus_uri:
        raise ValueError("vector_backend milvus needs milvus_uri (LOOKALIKE_MILVUS_URI)")
    # Imported only here: pymilvus is the optional [scale] dependency.
    from lookalike.vectors.milvus import MilvusBackend

    return MilvusBackend(
        settings.milvus_uri,
        engine=engine,
        token=settings.milvus_token,
        collection_prefix=settings.milvus_collection_prefix,
        consistency=settings.milvus_consistency,
        index_type=settings.milvus_index_type,
        write_through=False,  # IndexManager applies every write from SQL (with the attributes)
    )
