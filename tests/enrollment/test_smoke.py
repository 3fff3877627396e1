from enrollment import services


def test_world_builds(world):
    app = services.application_submit(
        person=world.person(), disease=world.hypertension, treating_institution=world.county, actor=world.clerk
    )
    assert app.state == "submitted"
    assert app.audit_entries.count() == 1
