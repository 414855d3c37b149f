"""Alibaba Cloud Image Search compatibility (2020-12-14 RPC, 2019-03-25 ROA).

A thin adapter over the service layer: no business rule lives here."""
