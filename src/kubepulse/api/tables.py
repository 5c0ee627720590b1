"""meta.k8s.io/v1 Table answers, which kubectl asks for to print `get` output."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aiohttp import web

TABLE_CONTENT_TYPE = "application/json;as=Table;v=v1;g=meta.k8s.io"


def wants_table(request: web.Request) -> bool:
    """kubectl get sends Accept: application/json;as=Table;v=v1;g=meta.k8s.io,..."""
    return any(
        "as=Table" in part and "g=meta.k8s.io" in part
        for part in request.headers.get("Accept", "").split(",")
    )


def column(name: str, description: str, priority: int = 0, fmt: str = "") -> dict[str, Any]:
    return {
        "name": name,
        "type": "string",
        "format": fmt,
        "description": description,
        "priority": priority,
    }


def table(
    request: web.Request,
    columns: Sequence[Mapping[str, Any]],
    rows: Sequence[tuple[Sequence[Any], Mapping[str, Any]]],
    resource_version: str = "",
) -> dict[str, Any]:
    """A Table; each row's object follows ?includeObject (default Metadata)."""
    include = request.query.get("includeObject", "Metadata")
    out_rows = []
    for cells, obj in rows:
        row: dict[str, Any] = {"cells": list(cells)}
        if include == "Object":
            row["object"] = obj
        elif include != "None":
            row["object"] = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj.get("metadata", {}),
            }
        out_rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": list(columns),
        "rows": out_rows,
    }
