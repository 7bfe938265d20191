"""The enrollment app's celery beat entries, installed once by enrollment/migrations/0005.

The DEP entry ticks every minute; each tick syncs only the servers whose last run is
MDM_DEP_SYNC_MINUTES old (enrollment.dep_sync.sync_all), so the setting takes effect without
touching the schedule, and a run on demand (`mdm_dep sync`, the UI) restarts a server's wait.
"""

SCHEDULE: dict[str, tuple[str, int]] = {
    "DEP device sync": ("enrollment.tasks.sync_dep_servers", 60),
}
