"""A small run of bench/assistance.py: the generator, then the product paths against their SQL baselines on a
few thousand rows. The timings mean nothing here; the product and its baseline must give the same results."""

from __future__ import annotations

import pytest

from bench import assistance

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def test_product_and_baseline_agree_on_amounts_alerts_and_imports() -> None:
    result = assistance.compare(rows=3000, import_rows=200, vacuum=False)
    product_total, baseline_total = result["compute"][2], result["compute"][3]
    assert result["computed"] == 3000 and product_total == baseline_total and product_total > 0
    assert result["alerts"][2] == result["alerts"][3] == result["alerts_in_db"] > 0
    assert result["import"]["created"] == result["import"]["baseline_rows"] == 200
    text = assistance.report(result, "bench")
    assert "NO" not in text and "| assistance computed (3,000 settlements)" in text
