"""Device <-> identity certificate bindings move from certs (IssuedCertificate.device) to
devices, so that certificates know no device. Every existing binding is kept, both ways."""

import django.db.models.deletion
from django.db import migrations, models


def copy_bindings(apps, schema_editor):
    IssuedCertificate = apps.get_model("certs", "IssuedCertificate")
    CertificateBinding = apps.get_model("devices", "CertificateBinding")
    bound = IssuedCertificate.objects.filter(device__isnull=False)
    CertificateBinding.objects.bulk_create(
        CertificateBinding(
            certificate_id=record.pk,
            device_id=record.device_id,
            bound_at=record.bound_at or record.created_at,
        )
        for record in bound.iterator()
    )


def restore_bindings(apps, schema_editor):
    IssuedCertificate = apps.get_model("certs", "IssuedCertificate")
    CertificateBinding = apps.get_model("devices", "CertificateBinding")
    for binding in CertificateBinding.objects.iterator():
        IssuedCertificate.objects.filter(pk=binding.certificate_id).update(
            device_id=binding.device_id, bound_at=binding.bound_at
        )


class Migration(migrations.Migration):
    dependencies = [
        ("certs", "0005_challenge_device"),
        ("devices", "0006_drop_plain_last_seen_index"),
    ]

    operations = [
        migrations.CreateModel(
            name="CertificateBinding",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("bound_at", models.DateTimeField()),
                (
                    "certificate",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="binding",
                        to="certs.issuedcertificate",
                    ),
                ),
                (
                    "device",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="bindings",
                        to="devices.device",
                    ),
                ),
            ],
        ),
        migrations.RunPython(copy_bindings, restore_bindings),
    ]
