import csv
import json
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from enrollment.models import Disease

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT.parent / "shared" / "reference" / "disease-codes-sample.csv"
CATALOGUE = ROOT / "enrollment" / "data" / "catalogue.json"


def sample_codes() -> dict[str, str]:
    if SAMPLE.exists():
        with SAMPLE.open(encoding="utf-8") as fh:
            return {row["code"]: row["category"] for row in csv.DictReader(fh)}
    # A clean clone outside the workplace: the bundled catalogue must still be self-consistent.
    return {
        d["code"]: ("chronic" if d["type"] == "11" else "special")
        for d in json.loads(CATALOGUE.read_text())["diseases"]
    }


@pytest.mark.django_db
def test_load_catalogue_covers_every_sample_code_with_evidence_rules():
    call_command("load_catalogue", verbosity=0)
    codes = sample_codes()
    loaded = {d.code: d for d in Disease.objects.all()}
    assert set(codes) <= set(loaded)
    for code, category in codes.items():
        disease = loaded[code]
        assert disease.disease_type == ("11" if category == "chronic" else "12")
        assert disease.icd10_prefixes, code
        assert "diagnosis_certificate" in disease.required_documents
        assert disease.min_institution_level in (1, 2, 3)
    assert loaded["M03900"].supports_icd10("I10") and loaded["M03900"].supports_icd10("I15.0")
    assert not loaded["M03900"].supports_icd10("I20")
    assert all(loaded["M01600"].supports_icd10(f"E1{n}") for n in range(5))
    assert loaded["M07803"].exclusive_with.filter(code="M07804").exists()
    assert loaded["M03900"].validity_months == 36
    assert loaded["M08300"].validity_months == 0  # transplant: long-term


@pytest.mark.django_db
def test_load_catalogue_twice_updates_instead_of_duplicating():
    call_command("load_catalogue", verbosity=0)
    n = Disease.objects.count()
    call_command("load_catalogue", verbosity=0)
    assert Disease.objects.count() == n


@pytest.mark.django_db
def test_bad_catalogue_is_refused_with_a_message(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"version": "x", "diseases": [{"code": "X1", "name": "bad", "type": "11"}]}))
    with pytest.raises(CommandError, match="X1"):
        call_command("load_catalogue", str(bad), verbosity=0)
    assert not Disease.objects.exists()
