from django.apps import AppConfig

from syncapp.sealing import keys_announce


class SyncappConfig(AppConfig):
    name = "syncapp"
    verbose_name = "Synchronization"

    def ready(self) -> None:
        # Django app loading: the models exist only now. The kinds register themselves on import, and the
        # models' choices of source and target types are read from them.
        import syncapp.rules  # noqa: F401
        import syncapp.sources  # noqa: F401
        import syncapp.targets  # noqa: F401

        keys_announce()
