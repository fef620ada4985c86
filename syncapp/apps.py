from django.apps import AppConfig

from syncapp.sealing import keys_announce


class SyncappConfig(AppConfig):
    name = "syncapp"
    verbose_name = "Synchronization"

    def ready(self) -> None:
        keys_announce()
