"""What enrollment knows moves to enrollment: which enrollment led to a certificate, what a
SCEP challenge is for, a device's enrollment, and which profile a queued command installs (or
that it renews an identity). Every existing value is copied, both ways."""

import django.db.models.deletion
from django.db import migrations, models


RENEWAL = "identity-renewal"  # what Command.about held for renewal profiles


def copy_links(apps, schema_editor):
    IssuedCertificate = apps.get_model("certs", "IssuedCertificate")
    ScepChallenge = apps.get_model("certs", "ScepChallenge")
    Device = apps.get_model("devices", "Device")
    Command = apps.get_model("commands", "Command")
    EnrollmentCertificate = apps.get_model("enrollment", "EnrollmentCertificate")
    EnrollmentChallenge = apps.get_model("enrollment", "EnrollmentChallenge")
    DeviceEnrollment = apps.get_model("enrollment", "DeviceEnrollment")
    ProfileCommand = apps.get_model("enrollment", "ProfileCommand")
    IdentityRenewal = apps.get_model("enrollment", "IdentityRenewal")
    EnrollmentCertificate.objects.bulk_create(
        EnrollmentCertificate(certificate_id=pk, enrollment_id=enrollment)
        for pk, enrollment in IssuedCertificate.objects.filter(enrollment__isnull=False)
        .values_list("pk", "enrollment_id")
        .iterator()
    )
    EnrollmentChallenge.objects.bulk_create(
        EnrollmentChallenge(challenge_id=pk, enrollment_id=enrollment, device_id=device)
        for pk, enrollment, device in ScepChallenge.objects.exclude(
            enrollment__isnull=True, device__isnull=True
        )
        .values_list("pk", "enrollment_id", "device_id")
        .iterator()
    )
    DeviceEnrollment.objects.bulk_create(
        DeviceEnrollment(device_id=pk, enrollment_id=enrollment, since=authenticated or created)
        for pk, enrollment, authenticated, created in Device.objects.filter(
            enrollment__isnull=False
        )
        .values_list("pk", "enrollment_id", "authenticated_at", "created_at")
        .iterator()
    )
    IdentityRenewal.objects.bulk_create(
        IdentityRenewal(command_id=pk)
        for pk in Command.objects.filter(about=RENEWAL).values_list("pk", flat=True).iterator()
    )
    ProfileCommand.objects.bulk_create(
        ProfileCommand(command_id=pk, identifier=about)
        for pk, about in Command.objects.exclude(about__in=["", RENEWAL])
        .values_list("pk", "about")
        .iterator()
    )


def restore_links(apps, schema_editor):
    IssuedCertificate = apps.get_model("certs", "IssuedCertificate")
    ScepChallenge = apps.get_model("certs", "ScepChallenge")
    Device = apps.get_model("devices", "Device")
    Command = apps.get_model("commands", "Command")
    for link in apps.get_model("enrollment", "EnrollmentCertificate").objects.iterator():
        IssuedCertificate.objects.filter(pk=link.certificate_id).update(
            enrollment_id=link.enrollment_id
        )
    for link in apps.get_model("enrollment", "EnrollmentChallenge").objects.iterator():
        ScepChallenge.objects.filter(pk=link.challenge_id).update(
            enrollment_id=link.enrollment_id, device_id=link.device_id
        )
    for link in apps.get_model("enrollment", "DeviceEnrollment").objects.iterator():
        Device.objects.filter(pk=link.device_id).update(enrollment_id=link.enrollment_id)
    renewals = apps.get_model("enrollment", "IdentityRenewal").objects.values("command_id")
    Command.objects.filter(pk__in=renewals).update(about=RENEWAL)
    for link in apps.get_model("enrollment", "ProfileCommand").objects.iterator():
        Command.objects.filter(pk=link.command_id).update(about=link.identifier)


class Migration(migrations.Migration):
    dependencies = [
        ("certs", "0005_challenge_device"),
        ("commands", "0003_pushattempt"),
        ("devices", "0007_certificatebinding"),
        ("enrollment", "0001_initial"),
    ]

    operations = [
        migrations.CreateModel(
            name="DeviceEnrollment",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("since", models.DateTimeField()),
                (
                    "device",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="enrollment_link",
                        to="devices.device",
                    ),
                ),
                (
                    "enrollment",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="devices",
                        to="enrollment.enrollment",
                    ),
                ),
            ],
        ),
        migrations.CreateModel(
            name="EnrollmentCertificate",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "certificate",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="enrollment_link",
                        to="certs.issuedcertificate",
                    ),
                ),
                (
                    "enrollment",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="enrollment.enrollment",
                    ),
                ),
            ],
        ),
        migrations.CreateModel(
            name="EnrollmentChallenge",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "challenge",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="enrollment_link",
                        to="certs.scepchallenge",
                    ),
                ),
                (
                    "device",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="devices.device",
                    ),
                ),
                (
                    "enrollment",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="challenges",
                        to="enrollment.enrollment",
                    ),
                ),
            ],
        ),
        migrations.CreateModel(
            name="IdentityRenewal",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                (
                    "command",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="identity_renewal",
                        to="commands.command",
                    ),
                ),
            ],
        ),
        migrations.CreateModel(
            name="ProfileCommand",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("identifier", models.CharField(db_index=True, max_length=255)),
                (
                    "command",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="profile_link",
                        to="commands.command",
                    ),
                ),
            ],
        ),
        migrations.RunPython(copy_links, restore_links),
    ]
