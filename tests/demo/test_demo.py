from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from stdnum.cn import ric

from enrollment.models import Application, AuditEntry, Person
from kernel import roles


@pytest.mark.django_db
def test_seed_demo_creates_users_per_role_and_applications_in_several_states():
    out = StringIO()
    call_command("seed_demo", "--password", "demo-secret-1", "--applications", "12", stdout=out)
    text = out.getvalue()
    assert "demo-secret-1" in text
    users = get_user_model().objects.filter(is_active=True)
    for role in roles.ALL_ROLES:
        assert users.filter(groups__name=role).exists(), role
        assert any(role in line for line in text.splitlines()), role
    assert get_user_model().objects.get(username="clinic").check_password("demo-secret-1")
    assert Application.objects.count() == 12
    assert Application.objects.values("state").distinct().count() >= 3
    assert AuditEntry.objects.count() >= Application.objects.count()
    assert all(ric.is_valid(p.id_number) for p in Person.objects.all())
    # A little dated status history, applied: a resumed suspension and a household that left poverty.
    from enrollment.models import PersonCategory, PersonStatusEvent

    assert PersonStatusEvent.objects.filter(source="demo", applied_at__isnull=False).count() == 4
    assert PersonCategory.objects.filter(category="minimum_living", valid_until__isnull=False).exists()
    # Costs and assistance: last month's settlements and one high-cost alert, for a person holding a category.
    from assistance.models import AssistanceLine, HighCostAlert, Settlement

    alert = HighCostAlert.objects.get()
    assert alert.amount > alert.threshold and alert.has_support_category
    assert Settlement.objects.filter(person=alert.person).count() == 2
    assert AssistanceLine.objects.filter(person=alert.person, kind="category").exists()
    # running it again keeps one set of users and does not refile
    call_command("seed_demo", "--password", "demo-secret-1", stdout=StringIO())
    assert Application.objects.count() == 12
    assert HighCostAlert.objects.count() == 1 and Settlement.objects.count() == 5
