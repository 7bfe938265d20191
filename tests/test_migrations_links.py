"""The migrations that moved device and enrollment links out of certs keep every existing
binding, forwards and backwards."""

import datetime as dt

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [
    ("certs", "0005_challenge_device"),
    ("devices", "0006_drop_plain_last_seen_index"),
    ("enrollment", "0001_initial"),
    ("commands", "0003_pushattempt"),
]
AFTER = [
    ("certs", "0006_bindings_leave_certs"),
    ("devices", "0008_enrollment_leaves_devices"),
    ("enrollment", "0002_enrollment_links"),
    ("commands", "0004_about_leaves_queue"),
]
NOW = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def make_old_data(apps) -> dict:
    CA = apps.get_model("certs", "CertificateAuthority")
    Issued = apps.get_model("certs", "IssuedCertificate")
    Challenge = apps.get_model("certs", "ScepChallenge")
    Device = apps.get_model("devices", "Device")
    Enrollment = apps.get_model("enrollment", "Enrollment")
    Command = apps.get_model("commands", "Command")
    ca = CA.objects.create(
        name="ca", certificate_pem="-", private_key_pem=b"k", sha256="c" * 64,
        not_before=NOW, not_after=NOW,
    )  # fmt: skip
    enrollment = Enrollment.objects.create(name="Staff", token="t")
    device = Device.objects.create(udid="OLD-1", enrollment=enrollment, authenticated_at=NOW)
    bound = Issued.objects.create(
        authority=ca, serial="1", subject="CN=a", sha256="a" * 64, certificate_pem="-",
        not_before=NOW, not_after=NOW, device=device, bound_at=NOW, enrollment=enrollment,
    )  # fmt: skip
    loose = Issued.objects.create(
        authority=ca, serial="2", subject="CN=b", sha256="b" * 64, certificate_pem="-",
        not_before=NOW, not_after=NOW,
    )  # fmt: skip
    challenge = Challenge.objects.create(
        challenge_sha256="d" * 64, enrollment=enrollment, device=device, expires_at=NOW
    )
    install = Command.objects.create(uuid="U1", request_type="InstallProfile", about="com.x")
    renewal = Command.objects.create(
        uuid="U2", request_type="InstallProfile", about="identity-renewal"
    )
    plain = Command.objects.create(uuid="U3", request_type="DeviceLock")
    return {
        "device": device.pk, "enrollment": enrollment.pk, "bound": bound.pk, "loose": loose.pk,
        "challenge": challenge.pk, "install": install.pk, "renewal": renewal.pk,
        "plain": plain.pk,
    }  # fmt: skip


@pytest.mark.django_db(transaction=True)
def test_links_survive_the_migrations_both_ways():
    ids = make_old_data(migrate(BEFORE))

    apps = migrate(AFTER)
    binding = apps.get_model("devices", "CertificateBinding").objects.get()
    assert (binding.certificate_id, binding.device_id) == (ids["bound"], ids["device"])
    assert binding.bound_at == NOW
    link = apps.get_model("enrollment", "EnrollmentCertificate").objects.get()
    assert (link.certificate_id, link.enrollment_id) == (ids["bound"], ids["enrollment"])
    challenge = apps.get_model("enrollment", "EnrollmentChallenge").objects.get()
    assert (challenge.challenge_id, challenge.enrollment_id, challenge.device_id) == (
        ids["challenge"], ids["enrollment"], ids["device"],
    )  # fmt: skip
    member = apps.get_model("enrollment", "DeviceEnrollment").objects.get()
    assert (member.device_id, member.enrollment_id, member.since) == (
        ids["device"], ids["enrollment"], NOW,
    )  # fmt: skip
    profile = apps.get_model("enrollment", "ProfileCommand").objects.get()
    assert (profile.command_id, profile.identifier) == (ids["install"], "com.x")
    renewal = apps.get_model("enrollment", "IdentityRenewal").objects.get()
    assert renewal.command_id == ids["renewal"]

    apps = migrate(BEFORE)
    Issued = apps.get_model("certs", "IssuedCertificate")
    bound = Issued.objects.get(pk=ids["bound"])
    assert (bound.device_id, bound.bound_at, bound.enrollment_id) == (
        ids["device"], NOW, ids["enrollment"],
    )  # fmt: skip
    loose = Issued.objects.get(pk=ids["loose"])
    assert (loose.device_id, loose.enrollment_id) == (None, None)
    challenge = apps.get_model("certs", "ScepChallenge").objects.get()
    assert (challenge.enrollment_id, challenge.device_id) == (ids["enrollment"], ids["device"])
    assert apps.get_model("devices", "Device").objects.get().enrollment_id == ids["enrollment"]
    abouts = dict(apps.get_model("commands", "Command").objects.values_list("uuid", "about"))
    assert abouts == {"U1": "com.x", "U2": "identity-renewal", "U3": ""}
    # Leave the database as the other tests expect it: at the latest migrations, not at AFTER
    # (later migrations, such as devices' DailyActivity, would be missing for the rest of the run).
    executor = MigrationExecutor(connection)
    migrate(executor.loader.graph.leaf_nodes())
