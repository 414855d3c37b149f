"""FastAPI dependencies that hand a route the services it uses, read from the one `Services` the composition
root (lookalike.api.app) put on `app.state`. A route names what it needs in its signature
(`images: Images`), so what it touches is visible there and in the dependency graph, instead of reaching
into a service locator."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from starlette.requests import Request

from lookalike.clock import Clock
from lookalike.config import Settings
from lookalike.service.accounts import AccountService
from lookalike.service.billing import Billing as BillingServices
from lookalike.service.console_auth import ConsoleAuthService
from lookalike.service.container import Services
from lookalike.service.duplicates import DuplicateReports
from lookalike.service.images import ImageService
from lookalike.service.lifecycle import LifecycleService
from lookalike.service.tasks import TaskService
from lookalike.service.text_search import TextSearchService
from lookalike.service.usage import SearchUsageMeter
from lookalike.storage.accounts_repo import InstanceRepository


def all_services(request: Request) -> Services:
    """The whole container: for code that hands it on as one (the Alibaba actions' Context)."""
    found: Services = request.app.state.services
    return found


def settings(request: Request) -> Settings:
    return all_services(request).settings


def clock(request: Request) -> Clock:
    return all_services(request).clock


def account_service(request: Request) -> AccountService:
    return all_services(request).accounts


def image_service(request: Request) -> ImageService:
    return all_services(request).images


def text_search_service(request: Request) -> TextSearchService:
    return all_services(request).text_search


def billing_service(request: Request) -> BillingServices:
    return all_services(request).billing


def lifecycle_service(request: Request) -> LifecycleService:
    return all_services(request).lifecycle


def task_service(request: Request) -> TaskService:
    return all_services(request).tasks


def duplicate_reports(request: Request) -> DuplicateReports:
    return all_services(request).duplicates


def console_auth_service(request: Request) -> ConsoleAuthService:
    return all_services(request).console_auth


def usage_meter(request: Request) -> SearchUsageMeter:
    return all_services(request).usage


def instance_repository(request: Request) -> InstanceRepository:
    """Only for an operator grant's per-operation limits, which no service method sets yet."""
    return all_services(request).instances_repo


AllServices = Annotated[Services, Depends(all_services)]
SettingsDep = Annotated[Settings, Depends(settings)]
ClockDep = Annotated[Clock, Depends(clock)]
Accounts = Annotated[AccountService, Depends(account_service)]
Images = Annotated[ImageService, Depends(image_service)]
TextSearch = Annotated[TextSearchService, Depends(text_search_service)]
Billing = Annotated[BillingServices, Depends(billing_service)]
Lifecycle = Annotated[LifecycleService, Depends(lifecycle_service)]
Tasks = Annotated[TaskService, Depends(task_service)]
Duplicates = Annotated[DuplicateReports, Depends(duplicate_reports)]
ConsoleAuth = Annotated[ConsoleAuthService, Depends(console_auth_service)]
Usage = Annotated[SearchUsageMeter, Depends(usage_meter)]
InstanceLimits = Annotated[InstanceRepository, Depends(instance_repository)]
