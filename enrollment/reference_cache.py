"""The reference data every request reads and a province changes a few times a year, held per process.

Regions (the tree: lineage and descendants), policies, the disease catalogue (with the regions each disease
is available in and its mutually exclusive diseases) and institutions, loaded once per process and reloaded
when any of them changes — in this process at once, in the others at their next request (the mechanism,
its checks and its staleness bound: ``kernel.reference_cache``). One shared key, ``reference``, covers them
all: a change of any is rare, and a reload reads four small tables.

``connect_signals`` (called in ``EnrollmentConfig.ready``) bumps the key on ``post_save``/``post_delete`` of
Region, Policy, Disease, Institution and on ``m2m_changed`` of the disease's regions and exclusions.

Instances handed out are new objects each time (built from the stored column values), so a caller may
change or save one without touching the copy of other threads.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, TypeVar

from django.db import models
from django.db.models.signals import m2m_changed, post_delete, post_save

from enrollment.models import Disease, Institution, Policy, Region
from kernel.reference_cache import ProcessCache, bump, bump_receiver

KEY = "reference"
M = TypeVar("M", bound=models.Model)


@dataclass(frozen=True)
class _Rows:
    """One model's rows as column values: ``names`` (attnames in field order) and pk -> values."""

    names: tuple[str, ...]
    by_pk: dict[int, tuple[Any, ...]]

    @classmethod
    def read(cls, model: type[models.Model]) -> _Rows:
        names = tuple(f.attname for f in model._meta.concrete_fields)
        return cls(names, {row[0]: row for row in model._base_manager.order_by().values_list(*names)})

    def instance(self, model: type[M], pk: int) -> M:
        values = self.by_pk[pk]
        return model.from_db("default", self.names, [copy.deepcopy(v) for v in values])


@dataclass(frozen=True)
class ReferenceData:
    regions: _Rows
    parent_of: dict[int, int | None]
    children_of: dict[int, list[int]]
    policy_pk_by_region: dict[int, int]
    policies: _Rows
    diseases: _Rows
    disease_pk_by_code: dict[str, int]
    disease_region_ids: dict[int, frozenset[int]]
    disease_exclusive_ids: dict[int, frozenset[int]]
    institutions: _Rows
    institution_pk_by_code: dict[str, int]


def _load() -> ReferenceData:
    regions = _Rows.read(Region)
    parent_index = regions.names.index("parent_id")
    parent_of = {pk: row[parent_index] for pk, row in regions.by_pk.items()}
    children_of: dict[int, list[int]] = {}
    for pk, parent in parent_of.items():
        if parent is not None:
            children_of.setdefault(parent, []).append(pk)
    policies = _Rows.read(Policy)
    region_index = policies.names.index("region_id")
    diseases = _Rows.read(Disease)
    code_index = diseases.names.index("code")
    disease_regions: dict[int, set[int]] = {}
    for disease_id, region_id in Disease.regions.through.objects.values_list("disease_id", "region_id"):
        disease_regions.setdefault(disease_id, set()).add(region_id)
    exclusive: dict[int, set[int]] = {}
    for from_id, to_id in Disease.exclusive_with.through.objects.values_list("from_disease_id", "to_disease_id"):
        exclusive.setdefault(from_id, set()).add(to_id)
    institutions = _Rows.read(Institution)
    institution_code_index = institutions.names.index("code")
    return ReferenceData(
        regions=regions,
        parent_of=parent_of,
        children_of=children_of,
        policy_pk_by_region={row[region_index]: pk for pk, row in policies.by_pk.items()},
        policies=policies,
        diseases=diseases,
        disease_pk_by_code={row[code_index]: pk for pk, row in diseases.by_pk.items()},
        disease_region_ids={pk: frozenset(ids) for pk, ids in disease_regions.items()},
        disease_exclusive_ids={pk: frozenset(ids) for pk, ids in exclusive.items()},
        institutions=institutions,
        institution_pk_by_code={row[institution_code_index]: pk for pk, row in institutions.by_pk.items()},
    )


_cache: ProcessCache[ReferenceData] = ProcessCache(KEY, _load)


def data() -> ReferenceData:
    return _cache.get()


def warm() -> None:
    """Load now (tests that count queries; a worker that wants its first request fast)."""
    _cache.get()


def invalidate() -> None:
    bump(KEY)


# ---------------------------------------------------------------------------
# Regions
# ---------------------------------------------------------------------------


def region_lineage_ids(region_id: int) -> list[int]:
    """Ids of the region and its ancestors, nearest first (at most 10, as ``Region.lineage``)."""
    parent_of = data().parent_of
    chain: list[int] = []
    node: int | None = region_id
    while node is not None and len(chain) < 10:
        chain.append(node)
        node = parent_of.get(node)
    return chain


def region_and_descendant_ids(region_id: int) -> list[int]:
    """Ids of a region and everything under it (an unknown id: just itself, as the query answered)."""
    reference = data()
    if region_id not in reference.parent_of:
        return []
    found = [region_id]
    for node in found:  # grows while it is walked: breadth first
        found.extend(reference.children_of.get(node, ()))
    return found


def region_code(region_id: int) -> str | None:
    regions = data().regions
    row = regions.by_pk.get(region_id)
    return row[regions.names.index("code")] if row is not None else None


def region(region_id: int) -> Region | None:
    reference = data()
    return reference.regions.instance(Region, region_id) if region_id in reference.regions.by_pk else None


# ---------------------------------------------------------------------------
# Policies, diseases, institutions
# ---------------------------------------------------------------------------


def policy_for_lineage(region: Region, lineage_ids: list[int]) -> Policy:
    """The policy of the nearest region of ``lineage_ids`` that has one, else the defaults (unsaved)."""
    reference = data()
    for region_id in lineage_ids:
        pk = reference.policy_pk_by_region.get(region_id)
        if pk is not None:
            return reference.policies.instance(Policy, pk)
    return Policy(region=region)


def disease_by_code(code: str) -> Disease | None:
    reference = data()
    pk = reference.disease_pk_by_code.get(code)
    return reference.diseases.instance(Disease, pk) if pk is not None else None


def disease(disease_id: int) -> Disease | None:
    reference = data()
    return reference.diseases.instance(Disease, disease_id) if disease_id in reference.diseases.by_pk else None


def disease_region_ids(disease_id: int) -> frozenset[int]:
    """The regions the disease is available in (empty: every region)."""
    return data().disease_region_ids.get(disease_id, frozenset())


def disease_exclusive_ids(disease_id: int) -> frozenset[int]:
    return data().disease_exclusive_ids.get(disease_id, frozenset())


def institution_by_code(code: str) -> Institution | None:
    reference = data()
    pk = reference.institution_pk_by_code.get(code)
    return reference.institutions.instance(Institution, pk) if pk is not None else None


def institution(institution_id: int) -> Institution | None:
    reference = data()
    by_pk = reference.institutions.by_pk
    return reference.institutions.instance(Institution, institution_id) if institution_id in by_pk else None


# ---------------------------------------------------------------------------
# Invalidation
# ---------------------------------------------------------------------------


def connect_signals() -> None:
    receiver = bump_receiver(KEY)
    for model in (Region, Policy, Disease, Institution):
        uid = f"reference_cache_{model._meta.model_name}"
        post_save.connect(receiver, sender=model, dispatch_uid=uid + "_save", weak=False)
        post_delete.connect(receiver, sender=model, dispatch_uid=uid + "_delete", weak=False)
    for through in (Disease.regions.through, Disease.exclusive_with.through):
        m2m_changed.connect(receiver, sender=through, dispatch_uid=f"reference_cache_{through._meta.model_name}")
